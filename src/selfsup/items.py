"""Samples kept encoded (image files, members of tar shards, cells of Parquet or Arrow files) and decoded when read.

An `Items` collection reads one sample's encoded bytes by position and says which shard (a file, a row group, a
record batch) holds it; it is picklable and opens its files lazily in each process, so forked decoding processes
and DataLoader workers read it without copies. Two ways to use it:

- `decode_all` decodes every item once, in parallel (forked processes writing into one shared anonymous mapping),
  into an array in memory: the path for data that fits the memory budget.
- `ItemStorage` is a `storage.Storage` that decodes a batch when it is taken, with `workers` processes reading
  ahead of the training loop (training/feeder.py): the path for data that does not fit.

Streaming order (`ItemStorage.epoch_order`): the shards are dealt to the processes of a torchrun job in turn (shard
k to process k mod P, or contiguous equal parts of the items when there are fewer shards than processes), so the
processes read disjoint shards; each epoch every process visits its shards in a shuffled order and the samples in
a shuffled order within windows of `buffer` consecutive samples (as webdataset's shuffle buffer and wids'
chunked sampler do: reads stay local to a shard, a sample moves at most a window). Every process draws the same
order from the run's shared generator and takes its own block of each global batch (distributed.shard), so the
order is a plain index tensor: a resumed run continues at the same sample of the same shard.
"""
from __future__ import annotations

import hashlib
import mmap
import multiprocessing
import os
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np
import torch

from .errors import ConfigError

DEFAULT_BUFFER = 4096  # samples per shuffle window of a streamed epoch
DECODE_CHUNK = 256  # items per unit of parallel decoding


class Items(Protocol):
    """Encoded samples readable by position (picklable; files are opened lazily in each process)."""

    shards: np.ndarray  # int64 [N]: the shard holding each item (non-decreasing)

    def __len__(self) -> int: ...

    def read(self, i: int) -> bytes:
        """Item i's encoded bytes."""

    def where(self, i: int) -> str:
        """Item i's location in words (file, shard and member) for error messages."""

    def fingerprint(self) -> str:
        """A digest of the items' names and sizes (tells other inputs apart)."""


Decoder = Callable[[bytes, str], np.ndarray]  # (encoded bytes, where) -> sample array; DataError on bad input


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable on Linux, else the physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


_TARGET: dict[str, Any] = {}  # what forked decoding processes inherit: items, decoder, the shared output


def one_thread() -> None:
    """Initializer of a decoding process: one such process per core, so torch's kernels (the images' resize) must
    start no threads of their own."""
    import torch

    torch.set_num_threads(1)


def _decode_range(bounds: tuple[int, int]) -> None:
    items, decoder, out = _TARGET["items"], _TARGET["decoder"], _TARGET["out"]
    for i in range(*bounds):
        out[i] = decoder(items.read(i), items.where(i))


def decode_all(items: Items, decoder: Decoder, shape: tuple[int, ...], dtype: str, positions: np.ndarray | None = None,
               workers: int | None = None) -> np.ndarray:
    """Decode the items at `positions` (default all) into one array [len, *shape], in `workers` forked processes
    (default: every core) writing into a shared anonymous mapping, so nothing is copied back; serially where the
    platform cannot fork. The first bad item stops it with its DataError."""
    subset = items if positions is None else Subset(items, np.asarray(positions, dtype=np.int64))
    count = len(subset)
    row = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buffer = mmap.mmap(-1, max(count * row, 1))  # MAP_SHARED | MAP_ANONYMOUS: forked writers fill it in place
    out = np.frombuffer(buffer, dtype=dtype, count=count * int(np.prod(shape))).reshape(count, *shape)
    workers = max(1, min(workers or cpu_count(), -(-count // DECODE_CHUNK)))
    _TARGET.update(items=subset, decoder=decoder, out=out)
    try:
        ranges = [(s, min(s + DECODE_CHUNK, count)) for s in range(0, count, DECODE_CHUNK)]
        if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
            for r in ranges:
                _decode_range(r)
        else:
            with multiprocessing.get_context("fork").Pool(workers, initializer=one_thread) as pool:
                for _ in pool.imap_unordered(_decode_range, ranges):
                    pass
    finally:
        _TARGET.clear()
    return out


@dataclass
class Subset:
    """The items at `positions` of another collection, in that order."""

    items: Items
    positions: np.ndarray

    @property
    def shards(self) -> np.ndarray:
        return self.items.shards[self.positions]

    def __len__(self) -> int:
        return len(self.positions)

    def read(self, i: int) -> bytes:
        return self.items.read(int(self.positions[i]))

    def where(self, i: int) -> str:
        return self.items.where(int(self.positions[i]))

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.items.fingerprint().encode())
        h.update(self.positions.tobytes())
        return h.hexdigest()


def evenly_spaced(n: int, count: int) -> np.ndarray:
    """`count` positions spread evenly over range(n) (all of them when n <= count)."""
    return np.arange(n) if n <= count else np.linspace(0, n - 1, count).round().astype(np.int64)


class ItemStorage:
    """A `storage.Storage` over encoded items: `take` decodes the batch (in the calling process); `workers` says how
    many processes the training loop should decode in, reading ahead (training/feeder.py)."""

    def __init__(self, items: Items, decoder: Decoder, sample_shape: tuple[int, ...], dtype: str, workers: int,
                 buffer: int = DEFAULT_BUFFER, device: torch.device | None = None) -> None:
        self.items, self.decoder, self.sample_shape, self.dtype = items, decoder, tuple(sample_shape), dtype
        self.workers, self.buffer, self.device = workers, buffer, device

    def __len__(self) -> int:
        return len(self.items)

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        out = np.empty((len(indices), *self.sample_shape), dtype=self.dtype)
        for row, i in enumerate(indices.tolist()):
            out[row] = self.decoder(self.items.read(i), self.items.where(i))
        batch = torch.from_numpy(out)
        if self.device is None or self.device.type == "cpu":
            return batch
        return batch.pin_memory().to(self.device, non_blocking=True)

    def to(self, device: torch.device) -> ItemStorage:
        return ItemStorage(self.items, self.decoder, self.sample_shape, self.dtype, self.workers, self.buffer,
                           torch.device(device))

    def describe(self) -> dict[str, Any]:
        return {"samples": len(self), "shape": [len(self), *self.sample_shape], "digest": self.items.fingerprint(),
                "shards": int(len(np.unique(self.items.shards))), "read": f"decoded by {self.workers} worker processes"}

    def shard_spans(self, processes: int) -> list[list[tuple[int, int]]]:
        """Each process's shards as (first, end) item ranges: shard k to process k mod P; with fewer shards than
        processes, contiguous equal parts of the items stand for shards (the items are grouped by shard)."""
        n = len(self)
        ids, first, counts = np.unique(self.items.shards, return_index=True, return_counts=True)
        if len(ids) < processes:
            cuts = [r * n // processes for r in range(processes + 1)]
            return [[(cuts[r], cuts[r + 1])] for r in range(processes)]
        spans = [(int(f), int(f + c)) for f, c in zip(first, counts)]
        return [spans[r::processes] for r in range(processes)]

    def epoch_samples(self, processes: int, batch: int) -> int:
        sizes = [sum(end - first for first, end in own) for own in self.shard_spans(processes)]
        steps = min(sizes) // batch
        if steps == 0:
            raise ConfigError(f"the data's shards give a process only {min(sizes)} samples, fewer than one batch of "
                              f"{batch}; use a smaller --batch-size or fewer processes")
        return steps * batch * processes

    def epoch_order(self, generator: torch.Generator, processes: int, batch: int) -> torch.Tensor:
        steps = self.epoch_samples(processes, batch) // (batch * processes)
        streams = []
        for own in self.shard_spans(processes):
            visit = torch.randperm(len(own), generator=generator).tolist()
            positions = np.concatenate([np.arange(*own[k]) for k in visit])
            for start in range(0, len(positions), self.buffer):
                window = positions[start:start + self.buffer]
                positions[start:start + self.buffer] = window[torch.randperm(len(window), generator=generator).numpy()]
            streams.append(torch.from_numpy(positions[:steps * batch]).view(steps, batch))
        return torch.stack(streams, dim=1).reshape(-1)  # [steps, processes, batch]: distributed.shard's layout


def item_fingerprint(names: list[str], sizes: list[int] | np.ndarray) -> str:
    """SHA-256 over item names and sizes."""
    h = hashlib.sha256()
    for name, size in zip(names, np.asarray(sizes).tolist()):
        h.update(f"{name}\0{size}\n".encode())
    return h.hexdigest()
