"""One schedule mechanism for learning rate, weight decay and target momentum: a value of training progress.

`progress` runs from 0 (first step) to 1 (end of the step or time budget). A `Schedule` rises linearly from
`warmup_start` to `start` over the first `warmup` fraction, then follows a half cosine from `start` to `end`
(constant when they are equal): the learning-rate factor is Schedule(1, 0, warmup=0.1), a DINO-style
weight decay Schedule(0.04, 0.4), BYOL's target momentum Schedule(0.99, 1.0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    start: float
    end: float
    warmup: float = 0.0  # fraction of training spent warming up
    warmup_start: float = 0.0

    def __call__(self, progress: float) -> float:
        p = min(max(float(progress), 0.0), 1.0)
        if self.warmup > 0 and p < self.warmup:
            return self.warmup_start + (self.start - self.warmup_start) * p / self.warmup
        if self.start == self.end:
            return self.start
        q = (p - self.warmup) / max(1e-8, 1.0 - self.warmup)
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * q))
