"""The batches of an epoch in step order (storage.read_batches: taken in place, or decoded ahead by worker processes
when the storage says decoding is worth them). Batch i is this process's block of global batch i
(distributed.shard) either way, so both give the same batches."""
from __future__ import annotations

import functools
from typing import Iterator

import torch

from ..storage import Storage, read_batches
from .distributed import World, shard


def epoch_batches(storage: Storage, order: torch.Tensor, first_step: int, steps: int, batch: int, world: World,
                  device: torch.device) -> Iterator[torch.Tensor]:
    """This process's batches of steps first_step..steps-1 of the epoch with `order`, on `device`."""
    return read_batches(storage, first_step, steps, functools.partial(shard, order, batch=batch, world=world), device,
                        "forkserver" if world.distributed else None)
