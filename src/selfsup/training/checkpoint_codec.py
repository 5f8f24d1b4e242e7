"""The checkpoint file format: one safetensors file whose metadata holds a JSON state document.

Encoding and decoding only: what goes into a checkpoint is checkpoint.py's business. Reading parses the
safetensors header as JSON and the tensors as raw bytes: no pickle, no torch.load.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from ..artifacts import jsonable
from ..errors import ConfigError, DataError

FORMAT = "selfsup-checkpoint"
VERSION = 1
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "checkpoint.safetensors"
MAX_HEADER_BYTES = 100_000_000


def checkpoint_file(folder: Path) -> Path:
    """The checkpoint file inside a run (or staging) folder."""
    return Path(folder) / CHECKPOINT_DIR / CHECKPOINT_FILE


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


def encode(state: dict[str, Any], tensors: dict[str, torch.Tensor], fmt: str = FORMAT) -> bytes:
    """safetensors bytes holding `tensors`, with `state` as JSON in the metadata."""
    flat = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    return safetensors.torch.save(flat, metadata={"format": fmt, "state": json.dumps(state, default=jsonable)})


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


def load(path: str | Path) -> Checkpoint:
    """Read and decode a checkpoint file safely."""
    return decode(read(Path(path)), str(path))
