"""The storage protocol: what the trainer and evaluation know about a split's data.

A split's data is an object with a length, a way to take a batch of indices (in the form the modality's
view maker and `prepare` read) and a description of itself for the run (size, shape, a digest that tells
other data apart on resume). A tensor in memory is the first kind (`TensorStorage`); a memory-mapped
array, a list of graphs or tokenised text fit the same three calls. Modalities build it
(`Modality.storage`); nothing outside them looks at its rank or dtype.
"""
from __future__ import annotations

import hashlib
from typing import Any, Protocol

import torch


class Storage(Protocol):
    def __len__(self) -> int: ...

    def take(self, indices: torch.Tensor) -> Any:
        """The samples at `indices` (a 1-D long tensor), as one batch."""

    def to(self, device: torch.device) -> Storage:
        """This storage with batches taken on `device` (a copy there when it fits, else self)."""

    def describe(self) -> dict[str, Any]:
        """JSON: samples, shape, dtype and a digest of up to 256 evenly spaced samples."""


class TensorStorage:
    """A tensor whose first axis indexes samples."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        return self.x[indices.to(self.x.device)]

    def to(self, device: torch.device) -> TensorStorage:
        return self if self.x.device == torch.device(device) else TensorStorage(self.x.to(device))

    def describe(self) -> dict[str, Any]:
        n = len(self)
        rows = torch.linspace(0, max(n - 1, 0), steps=min(n, 256)).round().long().unique()
        h = hashlib.blake2b(digest_size=16)
        h.update(repr((tuple(self.x.shape), str(self.x.dtype))).encode())
        h.update(self.x[rows].detach().cpu().contiguous().numpy().tobytes())
        return {"samples": n, "shape": list(self.x.shape), "digest": h.hexdigest()}
