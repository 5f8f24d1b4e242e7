"""Crash-safe checkpoints: one safetensors file, written atomically, loaded without executing anything.

`RUN.partial/checkpoint/checkpoint.safetensors` (kept in the finished run as RUN/checkpoint/) holds

  tensors                                   metadata["state"]: one JSON document
  model/<name>      method state_dict       format, version, train config, resolved settings,
                    (encoder, heads, EMA    world size, data fingerprint, loop position (step, epoch,
                    targets, MoCo queue +   step in epoch, samples, training seconds, finished),
                    pointer, BN statistics) optimizer param_groups and scalar state, the method's
  optim/<i>/<key>   optimizer state         scalar attributes (BYOL's current momentum), epoch-hook
                    (momentum buffers,      state, metrics.jsonl length, numpy/python RNG states
                    Adam moments, ...)      per process
  loop/perm, loop/losses, loop/epoch_losses the epoch's permutation and the losses so far
  hook/<i>/<name>   epoch-hook tensors (the best-RankMe encoder kept by --select rankme)
  rng/<rank>/<name> RNG states per process: the loop's data/augmentation generators and torch's
                    global CPU (and CUDA) generator; under torchrun also the buffers of processes
                    other than rank 0 (their own MoCo queue, BatchNorm statistics)

The file is written to a temporary name, fsynced and renamed over the previous checkpoint, so a
crash at any moment leaves the last complete checkpoint in place. Reading parses the safetensors
header as JSON and the tensors as raw bytes: no pickle, no torch.load.

Resuming is exact (bit-identical weights on CPU with the same thread count) for `--epochs` runs;
a `--minutes` run continues with the remaining time budget, so its schedule depends on timing.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from ..artifacts import atomic_write_bytes
from ..errors import ConfigError, DataError
from . import distributed
from .distributed import World
from .loggers import MetricsLog
from .loop import LoopState

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


# ----------------------------------------------------------------------------------------------
# Encoding and safe decoding

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


def jsonable(o: Any) -> Any:
    if hasattr(o, "item") and getattr(o, "ndim", 0) == 0:
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


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


# ----------------------------------------------------------------------------------------------
# Pieces of state

def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state_dict split into tensors and JSON (param groups, non-tensor values)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim/{idx}/{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def load_optimizer_state(optimizer: torch.optim.Optimizer, doc: dict[str, Any],
                         tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim/"):
            _, idx, key = name.split("/", 2)
            state.setdefault(int(idx), {})[key] = value
    for idx, entry in doc["scalars"].items():
        state.setdefault(int(idx), {}).update(entry)
    groups = [{k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
              for g in doc["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


HOOK_SCALARS = ("best_rankme", "best_epoch")


def hook_state(hooks: list) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Epoch hooks' state: `checkpoint_state()` when a hook has one, else the monitor's best-RankMe record."""
    tensors: dict[str, torch.Tensor] = {}
    docs: list[dict[str, Any]] = []
    for i, hook in enumerate(hooks):
        if hasattr(hook, "checkpoint_state"):
            doc, ts = hook.checkpoint_state()
        else:
            doc = {k: getattr(hook, k) for k in HOOK_SCALARS if hasattr(hook, k)}
            best = getattr(hook, "best_state", None)
            ts = dict(best) if best is not None else {}
            doc["has_best_state"] = best is not None
        docs.append(doc)
        tensors.update({f"hook/{i}/{k}": v for k, v in ts.items()})
    return tensors, docs


def load_hook_state(hooks: list, docs: list[dict[str, Any]], tensors: dict[str, torch.Tensor]) -> None:
    for i, (hook, doc) in enumerate(zip(hooks, docs)):
        prefix = f"hook/{i}/"
        ts = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if hasattr(hook, "load_checkpoint_state"):
            hook.load_checkpoint_state(doc, ts)
            continue
        for k in HOOK_SCALARS:
            if k in doc:
                setattr(hook, k, doc[k])
        if doc.get("has_best_state"):
            hook.best_state = ts


def rng_state(generators: dict[str, torch.Tensor], device: torch.device) -> tuple[dict[str, torch.Tensor], dict]:
    """This process's RNG states: the loop's generators, torch's global CPU/CUDA generators, numpy, random."""
    tensors = {f"gen_{k}": v for k, v in generators.items()}
    tensors["torch_cpu"] = torch.get_rng_state()
    if device.type == "cuda":
        tensors["torch_cuda"] = torch.cuda.get_rng_state(device)
    alg, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(keys.astype(np.int64))
    version, internal, gauss = random.getstate()
    doc = {"numpy": [alg, int(pos), int(has_gauss), float(cached)], "python": [version, list(internal), gauss]}
    return tensors, doc


def restore_global_rng(tensors: dict[str, torch.Tensor], doc: dict, device: torch.device) -> None:
    """Set torch's, numpy's and Python's global RNGs from `rng_state` output."""
    torch.set_rng_state(tensors["torch_cpu"])
    if device.type == "cuda" and "torch_cuda" in tensors:
        torch.cuda.set_rng_state(tensors["torch_cuda"], device)
    alg, pos, has_gauss, cached = doc["numpy"]
    np.random.set_state((alg, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = doc["python"]
    random.setstate((version, tuple(internal), gauss))


def data_fingerprint(x: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, Any]:
    """Size, shape and a digest of up to 256 evenly spaced rows: enough to notice other data on resume."""
    n = len(x)
    rows = torch.linspace(0, max(n - 1, 0), steps=min(n, 256)).round().long().unique()
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((tuple(x.shape), str(x.dtype))).encode())
    h.update(x[rows].detach().cpu().contiguous().numpy().tobytes())
    if mask is not None:
        h.update(mask[rows].detach().cpu().contiguous().numpy().tobytes())
    return {"samples": n, "shape": list(x.shape), "digest": h.hexdigest()}


def state_bytes_estimate(method: torch.nn.Module, optimizer_name: str) -> int:
    """About how large a checkpoint of this method (and its optimizer state) is."""
    model = sum(t.numel() * t.element_size() for t in method.state_dict().values())
    trainable = sum(p.numel() * p.element_size() for p in method.parameters() if p.requires_grad)
    return model + trainable * (2 if optimizer_name == "adamw" else 1) + (1 << 20)


# ----------------------------------------------------------------------------------------------
# Writing during training, restoring on resume

class Checkpointer:
    """Writes checkpoints of a training run; a collective under torchrun (every process calls `save`)."""

    def __init__(self, folder: Path | None, world: World, method: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 hooks: list, header: dict[str, Any], device: torch.device, log: MetricsLog | None = None) -> None:
        self.folder = folder
        self.world = world
        self.method = method
        self.optimizer = optimizer
        self.hooks = hooks
        self.header = header
        self.device = device
        self.log = log
        self.last_step: int | None = None

    @property
    def path(self) -> Path | None:
        return checkpoint_file(self.folder) if self.folder is not None else None

    def save(self, loop: LoopState) -> None:
        rng_tensors, rng_doc = rng_state(loop.generators, self.device)
        if self.world.distributed and not self.world.is_main:  # per-process buffers (MoCo's queue, BN statistics)
            rng_tensors.update({f"buffer/{k}": v for k, v in self.method.named_buffers()})
        if self.world.distributed:  # every process's RNG states, gathered to rank 0 (safetensors bytes)
            parts = distributed.all_gather_bytes(encode(rng_doc, rng_tensors, "selfsup-rng"), self.world)
            bundles = [decode(p, f"rng of process {r}", "selfsup-rng") for r, p in enumerate(parts)]
        else:
            bundles = [Checkpoint(rng_doc, rng_tensors)]
        self.last_step = loop.steps
        if not self.world.is_main or self.path is None:
            return
        tensors = {f"model/{k}": v for k, v in self.method.state_dict().items()}
        opt_tensors, opt_doc = optimizer_state(self.optimizer)
        tensors.update(opt_tensors)
        hk_tensors, hk_docs = hook_state(self.hooks)
        tensors.update(hk_tensors)
        if loop.perm is not None:
            tensors["loop/perm"] = loop.perm
        tensors["loop/losses"] = torch.tensor(loop.losses, dtype=torch.float64)
        tensors["loop/epoch_losses"] = torch.tensor(loop.epoch_losses, dtype=torch.float64)
        for r, bundle in enumerate(bundles):
            tensors.update({f"rng/{r}/{k}": v for k, v in bundle.tensors.items()})
        state = {
            "format": FORMAT, "version": VERSION, **self.header,
            "position": {"steps": loop.steps, "epoch": loop.epoch, "step_in_epoch": loop.step_in_epoch,
                         "samples": loop.samples, "train_seconds": loop.train_seconds, "finished": loop.finished,
                         "generators": sorted(loop.generators)},
            "optimizer": opt_doc, "method_state": self.method.extra_state(), "hooks": hk_docs,
            "rng": [b.state for b in bundles], "metrics_bytes": self.log.position() if self.log else 0,
        }
        path = self.path
        path.parent.mkdir(exist_ok=True)
        atomic_write_bytes(path, encode(state, tensors))
        try:  # make the rename itself durable
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass


def restore_own_buffers(ckpt: Checkpoint, method: torch.nn.Module, rank: int) -> None:
    """Under torchrun, a process other than rank 0 takes back its own buffers (its MoCo queue, BN statistics).

    Call it after wrapping in DDP, which copies rank 0's buffers to every process when it is set up.
    """
    prefix = f"rng/{rank}/buffer/"
    own = {k[len(prefix):]: v for k, v in ckpt.tensors.items() if k.startswith(prefix)}
    buffers = dict(method.named_buffers())
    with torch.no_grad():
        for name, value in own.items():
            buffers[name].copy_(value)


def restore(ckpt: Checkpoint, method: torch.nn.Module, optimizer: torch.optim.Optimizer, hooks: list,
            rank: int) -> tuple[LoopState, dict[str, torch.Tensor], dict]:
    """Load a checkpoint into the method, optimizer and hooks; returns the loop state and this process's
    global RNG state (to set with `restore_global_rng` right before the loop starts)."""
    s = ckpt.state
    model = {k[len("model/"):]: v for k, v in ckpt.tensors.items() if k.startswith("model/")}
    method.load_state_dict(model)
    method.load_extra_state(s["method_state"])
    load_optimizer_state(optimizer, s["optimizer"], ckpt.tensors)
    load_hook_state(hooks, s["hooks"], ckpt.tensors)
    prefix = f"rng/{rank}/"
    rng = {k[len(prefix):]: v for k, v in ckpt.tensors.items() if k.startswith(prefix)}
    pos = s["position"]
    loop = LoopState(
        steps=pos["steps"], epoch=pos["epoch"], step_in_epoch=pos["step_in_epoch"], samples=pos["samples"],
        train_seconds=pos["train_seconds"], finished=pos["finished"], perm=ckpt.tensors.get("loop/perm"),
        epoch_losses=ckpt.tensors["loop/epoch_losses"].tolist(), losses=ckpt.tensors["loop/losses"].tolist(),
        generators={name: rng[f"gen_{name}"] for name in pos["generators"]})
    return loop, rng, s["rng"][rank]
