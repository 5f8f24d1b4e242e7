"""`SequenceEncoder`: an Encoder that also gives one vector per step or token,
``forward_sequence(x, step_mask=None) -> [B, T, out_dim]``; `step_mask` [B, T] bool (False = hide that
step's input) is applied inside the encoder, after the input projection (TS2Vec's timestamp masking;
masked image modelling will hide patches the same way).
"""
from __future__ import annotations

import torch

from .base import Encoder


class SequenceEncoder(Encoder):
    """An Encoder with per-step (per-token) outputs and an input step mask it applies itself."""

    def forward_sequence(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError
