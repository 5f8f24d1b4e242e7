"""The pass over the training set that `Method.before_epoch` may read (views.DatasetPass)."""
from __future__ import annotations

from dataclasses import replace
from typing import Iterator

import torch

from ..storage import Storage
from ..views import ViewMaker, ViewRequest, Views, with_indices

# The pass's views come from their own generator, seeded from the run's seed and the epoch: the training
# stream is untouched, and every process of a torchrun job draws the same views.
PASS_SEED_OFFSET = 7_919


class TrainingSetPass:
    """Views of every training sample once, in batches of `batch_size` consecutive positions, with `indices`."""

    def __init__(self, data: Storage, view_maker: ViewMaker, request: ViewRequest, batch_size: int, seed: int,
                 epoch: int, device: torch.device) -> None:
        self.data, self.view_maker, self.batch_size = data, view_maker, batch_size
        self.request = replace(request, indices=True)
        self.seed = seed + PASS_SEED_OFFSET * (epoch + 1)
        self.device = device
        self.num_samples = len(data)

    def __iter__(self) -> Iterator[Views]:
        generator = torch.Generator(self.device).manual_seed(self.seed)
        for start in range(0, self.num_samples, self.batch_size):
            idx = torch.arange(start, min(start + self.batch_size, self.num_samples), device=self.device)
            yield with_indices(self.view_maker(self.data.take(idx), generator), idx, self.request)
