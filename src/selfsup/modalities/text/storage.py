"""Text training storage: batches of items of similar length (Hugging Face's `group_by_length`, fairseq's buckets).

A batch is padded to its longest item, so with uniformly random batches most of a Transformer's work is padding:
on the 200k sentences of benchmarks/text.py (median 11 tokens, 95th percentile 32) a random batch of 64 computes
3.5 positions for every real token. Each epoch here draws a uniform permutation, cuts it into groups of
`GROUP_BATCHES` global batches, sorts each group by the items' token counts (the run's tokenizer, applied once when
the storage is made) and shuffles the order of the resulting global batches: every item is still seen once an
epoch, which items share a batch is still random within a length band, and the ratio falls to about 1.05
(benchmarks/results/text.json, `padding`). Sorting by UTF-8 bytes instead, which needs no tokenising, was measured
too: 1.6, since bytes per token vary too much (correlation 0.94 with the token counts).

For in-batch contrastive methods (SimCSE, DeCLUTR, SimCLR on text) the negatives of a batch then have about the
length of the positive, so length stops being a cue that tells a sentence's other view from the rest (a bias of
SimCSE noted by ESimCSE, Wu et al. 2022, which repeats words to break it).

The layout keeps training.distributed.shard's contract: global batch s is perm[s*B*R:(s+1)*B*R], process r takes its
r-th block of B, so every process of a global batch gets items of the same length band.
"""
from __future__ import annotations

from typing import Any

import torch

from ...storage import TensorStorage
from .codec import from_storage
from .tokenizer import encode

#: global batches sorted together: HF Trainer's LengthGroupedSampler uses 50 as well
GROUP_BATCHES = 50


#: items tokenised at a time when counting tokens (bounds the memory of the decoded strings)
COUNT_CHUNK = 65_536


def item_lengths(x: torch.Tensor) -> torch.Tensor:
    """Bytes of each item of uint8 storage [N, L] (zero-padded)."""
    return (x != 0).sum(dim=1)


def token_counts(x: torch.Tensor, tokenizer: dict[str, Any]) -> torch.Tensor:
    """Tokens of each item of uint8 storage under the run's tokenizer (as `prepare` cuts them), int64 [N]."""
    counts = [torch.tensor([len(ids) for ids in encode(from_storage(x[i:i + COUNT_CHUNK]), tokenizer)],
                           dtype=torch.long) for i in range(0, len(x), COUNT_CHUNK)]
    return torch.cat(counts) if counts else torch.zeros(0, dtype=torch.long)


def length_grouped_order(lengths: torch.Tensor, generator: torch.Generator, global_batch: int,
                         group_batches: int = GROUP_BATCHES) -> torch.Tensor:
    """A permutation of range(len(lengths)) whose consecutive blocks of `global_batch` hold items of similar length,
    the blocks in random order (the last, partial block stays last: the loop drops it)."""
    n = len(lengths)
    perm = torch.randperm(n, generator=generator)
    group = global_batch * group_batches
    sorted_groups = [chunk[torch.sort(lengths[chunk], stable=True).indices] for chunk in perm.split(group)]
    order = torch.cat(sorted_groups) if sorted_groups else perm
    full = n // global_batch * global_batch
    blocks = order[:full].view(-1, global_batch)
    blocks = blocks[torch.randperm(len(blocks), generator=generator)]
    return torch.cat([blocks.reshape(-1), order[full:]])


class LengthGroupedStorage(TensorStorage):
    """In-memory text storage whose epochs batch items of similar length (`lengths`: tokens, else bytes) together."""

    def __init__(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> None:
        super().__init__(x)
        self.lengths = item_lengths(x).cpu() if lengths is None else lengths.cpu()

    def to(self, device: torch.device) -> LengthGroupedStorage:
        return self if self.x.device == torch.device(device) else LengthGroupedStorage(self.x.to(device), self.lengths)

    def epoch_order(self, generator: torch.Generator, processes: int, batch: int) -> torch.Tensor:
        return length_grouped_order(self.lengths, generator, processes * batch)
