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
