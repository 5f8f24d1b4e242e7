"""Atomic artifact writing: temporary file + rename, so readers never see half a file; and the lock that keeps a
second writer out of a run or cache folder while one writes it."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import yaml
from safetensors.torch import save


def _umask() -> int:
    mask = os.umask(0o022)  # reading the process's umask means setting it: put it straight back
    os.umask(mask)
    return mask


def temporary_beside(path: Path) -> tuple[int, str]:
    """(fd, name) of a new temporary file in `path`'s folder, with the mode a plain open() would give `path`
    (0666 less the umask: 0644 under the usual 022, not mkstemp's 0600); an OSError names `path`, not the
    temporary name the user never typed."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes to `path` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    fd, tmp = temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a quota: named by the file the user knows, the target left as it was
        Path(tmp).unlink(missing_ok=True)
        raise named_os_error(exc, path, len(data)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def named_os_error(exc: OSError, path: Path, size: int | None = None) -> OSError:
    """`exc` as an OSError naming `path` (a write to an open file names none); a full disk also says how much was
    being written, so the user knows the space it needs."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC and size is not None:
        reason = f"{reason} (writing {size / 2**20:.1f} MiB)"
    return OSError(exc.errno, reason, str(path))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=jsonable) + "\n")


def write_yaml(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False))


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Save a flat dict of tensors as safetensors, atomically (shared storage is cloned), through the same writer as
    every artifact (its errors name `path`; safetensors' own file writer reports a full disk as its own error)."""
    flat = {k: v.detach().contiguous().clone().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, save(flat, metadata=metadata))


_HELD_LOCKS: set[int] = set()


def _drop_locks_in_child() -> None:
    """A forked child (a decoding pool, a DataLoader worker) closes its copy of every lock descriptor: a flock lives
    while any descriptor of it is open, and a child outliving a killed holder must not keep the lock."""
    for fd in list(_HELD_LOCKS):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_drop_locks_in_child)


@contextmanager
def exclusive_lock(target: Path, flag: str) -> Iterator[None]:
    """Hold TARGET.lock (beside `target`, holding this process's pid) while `target` is written: a second writer gets
    a one-line ConfigError naming the holder's pid. The kernel drops the lock when its holder dies (even by kill -9),
    so a stale lock file never blocks; it is removed when the holder finishes."""
    from .errors import ConfigError

    target = Path(target).expanduser().resolve()
    lock = target.with_name(target.name + ".lock")
    fd = -1
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise ConfigError(f"{flag} {target}: another selfsup process (pid {holder}) is writing it; wait for "
                                  "it to finish or choose another path") from None
            try:  # the holder before us may have removed the file between our open and our lock: take the new one
                if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
            fd = -1
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
    except BaseException as exc:
        if fd >= 0:
            os.close(fd)
        if isinstance(exc, OSError):
            raise ConfigError(f"{flag} {target}: cannot lock it ({exc.strerror}: {lock})") from None
        raise
    _HELD_LOCKS.add(fd)
    try:
        yield
    finally:
        _HELD_LOCKS.discard(fd)
        lock.unlink(missing_ok=True)
        os.close(fd)


def jsonable(o: Any) -> Any:
    """The JSON codec's fallback for artifacts and checkpoints alike: numpy/torch scalars and arrays, paths."""
    if isinstance(o, (np.generic, torch.Tensor, np.ndarray)):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")

