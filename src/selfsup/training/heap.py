"""Keep a training step's large buffers in the process between steps instead of handing them back to the kernel.

glibc's malloc serves a request above its mmap threshold (128 KiB, adapted upwards to at most 32 MiB on 64-bit
Linux) with a fresh ``mmap`` and gives it back with ``munmap`` when it is freed. A training step allocates and
frees the same large activations every step (ConvNet-4 at batch 256 on 28x28 images: 51 MB for each map of its
first block, in bf16), so every step faults those pages in again and the operating system zeroes each one before
the operator that asked for the memory can write it: on a 2-core AVX-512 machine, BatchNorm's forward on such a map
took 25 ms instead of 6, max-pool's 28 ms instead of 5, and the whole SimCLR step 438 ms instead of 377.

`retained_heap` sets M_MMAP_MAX to 0 (every block comes from the heap) and M_TRIM_THRESHOLD to 1 GiB (what a
step frees stays for the next one) for the length of a training run, then sets glibc's defaults back and
returns the free memory with ``malloc_trim(0)``. The price is memory: what a step frees stays with the process, so
peak RSS grows (benchmarks/results/data_scale.json, ConvNet-4 of widths 32-256 on 64 px images at batch 256: 2.07
GB on 2026-12-07 against 1.44 GB on 2026-12-05 without it, for 355 images/s against 238). The one lasting change:
once set, glibc stops adapting its mmap threshold (it stays at the value it had, 128 KiB unless it had grown).
Where the C library is not glibc (macOS, musl) nothing changes.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
from contextlib import contextmanager
from typing import Iterator

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters (malloc.h)
GLIBC_DEFAULTS = {M_TRIM_THRESHOLD: 128 * 1024, M_MMAP_MAX: 65536}
RETAINED = {M_TRIM_THRESHOLD: 1 << 30, M_MMAP_MAX: 0}

_lock = threading.Lock()
_depth = 0  # nested or concurrent runs in one process: the first sets, the last puts back


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (it has mallopt and malloc_trim), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version, libc.mallopt, libc.malloc_trim  # AttributeError where it is not glibc
    except (OSError, AttributeError):
        return None
    return libc


def _set(libc: ctypes.CDLL, values: dict[int, int]) -> None:
    for param, value in values.items():
        libc.mallopt(ctypes.c_int(param), ctypes.c_int(value))


@contextmanager
def retained_heap() -> Iterator[bool]:
    """Within the block, freed memory stays in the heap for the next step (glibc only); yields whether it applies."""
    global _depth
    libc = _glibc()
    if libc is None:
        yield False
        return
    with _lock:
        if _depth == 0:
            _set(libc, RETAINED)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _set(libc, GLIBC_DEFAULTS)
                libc.malloc_trim(ctypes.c_size_t(0))
