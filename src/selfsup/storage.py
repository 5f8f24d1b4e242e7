"""The storage protocol: what the trainer and evaluation know about a split's data.

A split's data is an object with a length, a way to take a batch of indices (in the form the modality's
view maker and `prepare` read) and a description of itself for the run (size, shape, a digest that tells
other data apart on resume). A tensor in memory is the first kind (`TensorStorage`); a memory-mapped
array, a list of graphs or tokenised text fit the same three calls. Modalities build it
(`Modality.storage`); nothing outside them looks at its rank or dtype.
"""
from __future__ import annotations

import hashlib
import mmap
import os
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch


class Storage(Protocol):
    def __len__(self) -> int: ...

    def take(self, indices: torch.Tensor) -> Any:
        """The samples at `indices` (a 1-D long tensor), as one batch."""

    def to(self, device: torch.device) -> Storage:
        """This storage with batches taken on `device` (a copy there when it fits, else self)."""

    def describe(self) -> dict[str, Any]:
        """JSON: samples, shape, dtype and a digest of up to 256 evenly spaced samples."""

    workers: int  # processes worth decoding batches in ahead of the training loop (0: `take` in place is cheap)

    def epoch_samples(self, processes: int, batch: int) -> int:
        """How many samples an epoch of `processes` x `batch` covers (at most len(self))."""

    def epoch_order(self, generator: torch.Generator, processes: int, batch: int) -> torch.Tensor:
        """An epoch's sample order drawn from `generator` (the same on every process), laid out for
        training.distributed.shard: process r's block of global batch s is its own batch."""


class TensorStorage:
    """A tensor whose first axis indexes samples; every epoch a uniform random permutation."""

    workers = 0

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
        h.update(self.sample_bytes(rows))
        return {"samples": n, "shape": list(self.x.shape), "digest": h.hexdigest()}

    def sample_bytes(self, rows: torch.Tensor) -> bytes:
        return self.x[rows].detach().cpu().contiguous().numpy().tobytes()

    def epoch_samples(self, processes: int, batch: int) -> int:
        return len(self)

    def epoch_order(self, generator: torch.Generator, processes: int, batch: int) -> torch.Tensor:
        return torch.randperm(len(self), generator=generator)


class LazyFiles:
    """Read-only descriptors opened on first use in each process (a forked or spawned worker opens its own; a copy
    made by pickling starts empty) and closed with the object in the process that opened them."""

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}
        self._pid = -1

    def __del__(self, getpid=os.getpid, close=os.close) -> None:
        # (os's functions bound at definition: at interpreter exit module globals may already be None)
        if self._pid == getpid():
            for fd in self._fds.values():
                close(fd)

    def fd(self, key: int, path: str) -> int:
        if self._pid != os.getpid():
            self._fds, self._pid = {}, os.getpid()
        if key not in self._fds:
            self._fds[key] = os.open(path, os.O_RDONLY)
        return self._fds[key]

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()


class FileRows:
    """A file of fixed-size rows (C-order [N, ...], no header), mapped copy-on-write: `array` reads it in place (the
    page cache serves it; nothing is loaded up front), `release()` drops the pages this process touched from its
    resident set (they stay in the page cache), and `read(indices)` copies rows with positioned reads without
    mapping them (the resident set holds one batch, whatever the file's size)."""

    def __init__(self, path: str, shape: tuple[int, ...], dtype: str) -> None:
        self.path, self.shape, self.dtype = str(path), tuple(int(d) for d in shape), dtype
        self.files = LazyFiles()  # the descriptor positioned reads use, one per process
        self.row_bytes = int(np.prod(self.shape[1:])) * np.dtype(dtype).itemsize
        with open(self.path, "rb") as f:
            self.map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        self.array = np.frombuffer(self.map, dtype=dtype).reshape(self.shape)

    def release(self) -> None:
        dont_need = getattr(mmap, "MADV_DONTNEED", None)  # not on every platform: then the pages simply stay
        if dont_need is not None:
            self.map.madvise(dont_need)

    def read(self, indices: np.ndarray) -> np.ndarray:
        fd = self.files.fd(0, self.path)
        out = np.empty((len(indices), *self.shape[1:]), dtype=self.dtype)
        rows = out.reshape(len(indices), -1).view(np.uint8)
        for i, index in enumerate(indices.tolist()):
            data = os.pread(fd, self.row_bytes, index * self.row_bytes)
            if len(data) != self.row_bytes:
                raise OSError(f"{self.path}: short read at row {index} (the file changed?)")
            rows[i] = np.frombuffer(data, dtype=np.uint8)
        return out


class FileRowStorage(TensorStorage):
    """Storage read from a `FileRows` file by positioned reads, batch by batch: training's resident memory does not
    grow with the data set (the page cache, shared by every process on the machine, holds the file). `x` is the
    same rows as a tensor over the mapping (for describe and anything that reads the whole split)."""

    def __init__(self, rows: FileRows, x: torch.Tensor, device: torch.device | None = None) -> None:
        super().__init__(x)
        self.rows, self.device = rows, device

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        batch = torch.from_numpy(self.rows.read(indices.cpu().numpy()))
        if self.device is None or self.device.type == "cpu":
            return batch
        return batch.pin_memory().to(self.device, non_blocking=True)

    def to(self, device: torch.device) -> FileRowStorage:
        return FileRowStorage(self.rows, self.x, torch.device(device))

    def sample_bytes(self, rows: torch.Tensor) -> bytes:  # positioned reads: a fault on the mapping reads ahead
        return self.rows.read(rows.numpy()).tobytes()   # ~1 MB around each row into the resident set


PREFETCH_BATCHES = 2  # per worker process


class IndexedBatches(torch.utils.data.Dataset):
    """Batch k of a sequence of index batches, read from storage on the host (what DataLoader workers run)."""

    def __init__(self, storage: Storage, count: int, indices: Callable[[int], torch.Tensor]) -> None:
        self.storage, self.count, self.indices = storage, count, indices

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, k: int) -> Any:
        return self.storage.take(self.indices(k))


def consecutive(k: int, batch: int, n: int) -> torch.Tensor:
    """Indices of batch k of range(n) in batches of `batch` (for read_batches, via functools.partial)."""
    return torch.arange(k * batch, min((k + 1) * batch, n))


def read_batches(storage: Storage, first: int, count: int, indices: Callable[[int], torch.Tensor],
                 device: torch.device, start_method: str | None = None) -> Iterator[Any]:
    """Batches first..count-1 (batch k holds the samples `indices(k)`), in order, on `device`: taken in place when
    `storage.workers` is 0, else decoded ahead by that many DataLoader worker processes on the host (pinned memory
    and non-blocking copies for a GPU), started with `start_method` (default: the platform's; the trainer asks for
    forkserver under torchrun, where forking a process that runs the process group's threads is unsafe). Closing
    the iterator early shuts the workers down."""
    if storage.workers == 0:
        for k in range(first, count):
            yield storage.take(indices(k).to(device))
        return
    loader = torch.utils.data.DataLoader(
        IndexedBatches(storage.to(torch.device("cpu")), count, indices), batch_size=None,
        sampler=range(first, count), num_workers=storage.workers, pin_memory=device.type == "cuda",
        prefetch_factor=PREFETCH_BATCHES, multiprocessing_context=start_method)
    for batch in loader:
        yield batch.to(device, non_blocking=True)
