"""The checkpoint file format: one safetensors file whose metadata holds a JSON state document and a checksum.

Encoding and decoding only: what goes into a checkpoint is checkpoint.py's business. Reading parses the
safetensors header as JSON and the tensors as raw bytes: no pickle, no torch.load. The checksum (BLAKE2b of the state
document and of every tensor's name, dtype, shape and bytes) is verified on every decode, so a flipped byte on disk is
found when the checkpoint is read, not by chance. A run keeps its last two checkpoints (`checkpoint_files`): the
latest, and the one before it, which `read_latest` falls back to when the latest is damaged or missing.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from ..artifacts import atomic_write_bytes, jsonable
from ..errors import ConfigError, DataError

FORMAT = "selfsup-checkpoint"
VERSION = 1
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "checkpoint.safetensors"
PREVIOUS_FILE = "previous.safetensors"
MAX_HEADER_BYTES = 100_000_000


def checkpoint_file(folder: Path) -> Path:
    """The checkpoint file inside a run (or staging) folder."""
    return Path(folder) / CHECKPOINT_DIR / CHECKPOINT_FILE


def checkpoint_files(folder: Path) -> tuple[Path, Path]:
    """The latest checkpoint of a run (or staging) folder and the one written before it."""
    latest = checkpoint_file(folder)
    return latest, latest.with_name(PREVIOUS_FILE)


def kept_checkpoints(folder: Path) -> list[Path]:
    """The checkpoint files `folder` holds, latest first (empty: nothing to resume)."""
    return [p for p in checkpoint_files(folder) if p.exists()]


@dataclass
class Checkpoint:
    """A decoded checkpoint: the JSON state document and the named tensors."""

    state: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    @property
    def step(self) -> int:
        return int(self.state["position"]["steps"])


def safetensors_metadata(data: bytes, where: str) -> dict[str, str]:
    """The `__metadata__` of a safetensors byte string, parsed as plain JSON (never unpickled)."""
    if len(data) < 8:
        raise DataError(f"{where}: not a selfsup checkpoint (file too short)")
    size = int.from_bytes(data[:8], "little")
    if size > min(MAX_HEADER_BYTES, len(data) - 8):
        raise DataError(f"{where}: not a selfsup checkpoint (no safetensors header)")
    try:
        header = json.loads(data[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataError(f"{where}: not a selfsup checkpoint (unreadable safetensors header)") from None
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else None
    if not isinstance(meta, dict):
        raise DataError(f"{where}: not a selfsup checkpoint (malformed safetensors header)")
    return meta


def checksum(state_json: str, tensors: dict[str, torch.Tensor]) -> str:
    """BLAKE2b of the state document and of every tensor (name, dtype, shape, bytes), in name order."""
    h = hashlib.blake2b(state_json.encode("utf-8"), digest_size=16)
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data if t.numel() else b"")
    return h.hexdigest()


def encode(state: dict[str, Any], tensors: dict[str, torch.Tensor], fmt: str = FORMAT) -> bytes:
    """safetensors bytes holding `tensors`, with `state` as JSON and their checksum in the metadata."""
    flat = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    doc = json.dumps(state, default=jsonable)
    return safetensors.torch.save(flat, metadata={"format": fmt, "state": doc, "checksum": checksum(doc, flat)})


def decode(data: bytes, where: str, fmt: str = FORMAT) -> Checkpoint:
    """Parse bytes written by `encode`; DataError naming `where` for anything else."""
    meta = safetensors_metadata(data, where)
    if meta.get("format") != fmt:
        raise DataError(f"{where}: not a selfsup checkpoint (format {meta.get('format')!r})")
    try:
        state = json.loads(meta["state"])
        tensors = safetensors.torch.load(data)
    except Exception as exc:
        raise DataError(f"{where}: damaged checkpoint ({type(exc).__name__}: {exc})") from None
    if "checksum" in meta and checksum(meta["state"], tensors) != meta["checksum"]:  # files before 2026-12 have none
        raise DataError(f"{where}: damaged checkpoint (its bytes no longer match the checksum written with them)")
    if not isinstance(state, dict) or (fmt == FORMAT and state.get("version") != VERSION):
        raise DataError(f"{where}: unsupported checkpoint version {state.get('version') if isinstance(state, dict) else '?'}")
    return Checkpoint(state, tensors)


def read(path: Path) -> bytes:
    """The raw bytes of a checkpoint file (ConfigError naming it when missing)."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no checkpoint") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read checkpoint ({exc.strerror})") from None


def read_latest(folder: Path, fmt: str = FORMAT) -> tuple[bytes, Path]:
    """The bytes of the latest sound checkpoint of `folder` and its path: the latest, or where that one is damaged
    or missing, the previous one (with a one-line warning naming what was skipped; a damaged latest is renamed
    *.damaged). Errors when neither is sound."""
    latest, previous = checkpoint_files(folder)
    try:
        data = read(latest)
        decode(data, str(latest), fmt)
        return data, latest
    except (ConfigError, DataError) as exc:
        if not previous.exists():
            raise
        problem = str(exc)
    data = read(previous)
    ckpt = decode(data, str(previous), fmt)
    if latest.exists():  # set aside, so that the next save does not keep it as the checkpoint before the latest
        os.replace(latest, latest.with_name(latest.name + ".damaged"))
    warnings.warn(f"{problem}; resuming from the checkpoint before it ({previous}, step {ckpt.step})", stacklevel=2)
    return data, previous


def write_keeping_previous(path: Path, data: bytes) -> None:
    """Write checkpoint bytes to `path` atomically, the checkpoint it replaces kept as PREVIOUS_FILE beside it; a
    complete latest checkpoint exists at every moment (hard link, then rename; a copy where links are refused)."""
    previous = path.with_name(PREVIOUS_FILE)
    if path.exists():
        keep = previous.with_name(previous.name + ".tmp")
        keep.unlink(missing_ok=True)
        try:
            os.link(path, keep)
        except OSError:  # a file system without hard links
            atomic_write_bytes(keep, path.read_bytes())
        os.replace(keep, previous)
    atomic_write_bytes(path, data)


def read_state(path: Path) -> dict[str, Any]:
    """The state document of a checkpoint file, from its header alone (not verified: `decode` does that)."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            head = f.read(min(size, MAX_HEADER_BYTES))
        state = json.loads(safetensors_metadata(len(head).to_bytes(8, "little") + head, str(path)).get("state", "{}"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def load(path: str | Path) -> Checkpoint:
    """Read and decode a checkpoint file safely."""
    return decode(read(Path(path)), str(path))
