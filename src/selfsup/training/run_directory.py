"""The run directory on disk: staging it as RUN.partial, checking space and permissions, writing the finished run.

A run is written into RUN.partial and renamed to RUN only when complete; summary.json (the completeness
marker) is its last file, so no half-written run ever looks complete.
"""
from __future__ import annotations

import os
import shutil
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..artifacts import exclusive_lock, save_tensors, write_json, write_yaml
from ..errors import ConfigError
from ..resolved import Resolved
from ..run import COMPLETE_MARKER
from . import checkpoint as ckpt_io
from ..config import TrainConfig
from .distributed import World, agreed

MIN_FREE_BYTES = 50 * 2**20


def staging_path(out: Path) -> Path:
    """Where a run is written until it is complete: RUN.partial next to RUN."""
    return out.with_name(out.name + ".partial")


@contextmanager
def run_lock(out: Path | None, world: World, option: str = "--out") -> Iterator[None]:
    """Rank 0 holds RUN.lock while the run is trained, resumed or written (artifacts.exclusive_lock): a second
    `train --out RUN` or `--resume RUN` is refused in one line (naming `option`) instead of writing into the same
    RUN.partial."""
    held = ExitStack()
    if out is not None:
        agreed(world, lambda: held.enter_context(exclusive_lock(out, option)))
    with held:
        yield


def prepare_output(out: Path, overwrite: bool = False) -> Path:
    """Check the run directory can be created (not existing, writable) and return its staging path."""
    if overwrite and out.is_dir() and (out / COMPLETE_MARKER).exists():
        shutil.rmtree(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        hint = " (or pass --overwrite to replace a finished run)" if (out / COMPLETE_MARKER).exists() else ""
        raise ConfigError(f"--out {out}: already exists; choose a new path or remove it{hint}")
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create parent folder ({exc.strerror})") from None
    if not parent.is_dir():
        raise ConfigError(f"--out {out}: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"--out {out}: folder {parent} is not writable")
    if shutil.disk_usage(parent).free < MIN_FREE_BYTES:
        raise ConfigError(f"--out {out}: less than 50 MiB free on {parent}")
    staging = staging_path(out)
    if ckpt_io.kept_checkpoints(staging) and not overwrite:
        raise ConfigError(f"--out {out}: {staging} holds an interrupted run; continue it with "
                          f"`selfsup train --resume {out}` or pass --overwrite to start again")
    if staging.exists():
        shutil.rmtree(staging)
    try:
        staging.mkdir()
        probe = staging / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ConfigError(f"--out {out}: cannot write in {parent} ({exc.strerror})") from None
    return staging


def resume_staging(out: Path) -> Path:
    """The staging folder of an interrupted run, checked to hold a checkpoint and to be writable."""
    staging = staging_path(out)
    if (out / COMPLETE_MARKER).exists():
        raise ConfigError(f"--resume {out}: the run is already complete; nothing to resume")
    path = ckpt_io.checkpoint_file(staging)
    if not ckpt_io.kept_checkpoints(staging):
        where = staging if staging.exists() else out
        raise ConfigError(f"--resume {out}: no checkpoint in {where} (looked for {path})")
    if not os.access(staging, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise ConfigError(f"--resume {out}: {staging} is not writable")
    return staging


def check_free_space(folder: Path, needed: int, flag: str) -> None:
    """Refuse to start when the disk cannot hold three checkpoints (the two kept + the new one being written) and the
    run."""
    free = shutil.disk_usage(folder).free
    if free < needed + MIN_FREE_BYTES:
        raise ConfigError(f"{flag}: only {free / 2**20:.0f} MiB free on {folder}; checkpoints and the run need "
                          f"about {(needed + MIN_FREE_BYTES) / 2**20:.0f} MiB")


def write_run(folder: Path, cfg: TrainConfig, resolved: Resolved, method, summary: dict[str, Any]) -> None:
    """The run's artifacts; summary.json (the completeness marker) goes last."""
    write_yaml(folder / "config.yaml", {"train": cfg.to_dict(), "resolved": resolved.to_dict()})
    save_tensors(folder / "encoder.safetensors", method.encoder.state_dict(), {"format": "selfsup-encoder"})
    heads = {k: v for k, v in method.state_dict().items() if not k.startswith("encoder.")}
    if heads:
        save_tensors(folder / "method.safetensors", heads, {"format": "selfsup-method", "method": cfg.method})
    write_json(folder / COMPLETE_MARKER, summary)
