"""Encoder protocols, declared by base classes rather than probed with `hasattr`.

- `Encoder`: ``forward(x) -> [B, out_dim]``, one vector per sample. `input_width` is how many values one
  input position holds when the input is a vector or a sequence of vectors (a prepared table row's width,
  a series' channels), None otherwise (images); reconstruction heads are sized by it.
- `SequenceEncoder`: an Encoder that also gives one vector per step or token,
  ``forward_sequence(x, step_mask=None) -> [B, T, out_dim]``; `step_mask` [B, T] bool (False = hide that
  step's input) is applied inside the encoder, after the input projection (TS2Vec's timestamp masking;
  masked image modelling will hide patches the same way).

A method states which kind it needs (`Method.encoder_kind`); the trainer checks it with `isinstance`
before building the method and names the encoders that qualify when it does not hold.
"""
from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    """Maps a batch to [B, out_dim] features; subclasses set `out_dim` (and `input_width` where it applies)."""

    out_dim: int
    input_width: int | None = None

    def forward(self, x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        raise NotImplementedError


class SequenceEncoder(Encoder):
    """An Encoder with per-step (per-token) outputs and an input step mask it applies itself."""

    def forward_sequence(self, x: torch.Tensor, step_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


def encoder_kind_name(kind: type[Encoder]) -> str:
    """'a sequence encoder' / 'an encoder', for error messages."""
    return "a sequence encoder (per-step outputs)" if issubclass(kind, SequenceEncoder) else "an encoder"
