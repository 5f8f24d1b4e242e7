"""A FIFO queue of embeddings kept on the device (MoCo's negatives, NNCLR's support set)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def enqueue(queue: torch.Tensor, pointer: torch.Tensor, keys: torch.Tensor) -> None:
    """Write L2-normalised `keys` into `queue` at `pointer` (wrapping) and advance it, without reading the pointer
    on the host (no device sync); at most len(queue) keys, the first ones."""
    n, size = min(len(keys), queue.shape[0]), queue.shape[0]
    idx = (torch.arange(n, device=keys.device) + pointer) % size
    queue.index_copy_(0, idx, F.normalize(keys[:n].float(), dim=1).to(queue.dtype))
    pointer.copy_((pointer + n) % size)


def capped_queue(queue: torch.Tensor, requested: int, num_samples: int, batch: int, unit: int) -> torch.Tensor:
    """A queue of at most `requested` rows that never holds the same sample twice: below the number of training
    samples by one global `batch`, in whole multiples of `unit` (the rows written per step), at least `unit`.
    Returns `queue` itself when its size is already right, else a new random normalised queue of that size."""
    size = min(requested, max(unit, (num_samples // batch - 1) * batch))
    size = max(unit, (size // unit) * unit)
    if size == queue.shape[0]:
        return queue
    return F.normalize(torch.randn(size, queue.shape[1], device=queue.device), dim=1)
