"""Crash-safe checkpoints: one safetensors file, written atomically, loaded without executing anything.

`RUN.partial/checkpoint/checkpoint.safetensors` (kept in the finished run as RUN/checkpoint/) holds

  tensors                                   metadata["state"]: one JSON document
  model/<name>      method state_dict       format, version, train config, resolved settings,
                    (encoder, heads, EMA    world size, data fingerprint, loop position (step, epoch,
                    targets, MoCo queue +   step in epoch, samples, training seconds, finished),
                    pointer, BN statistics) optimizer param_groups and scalar state, the method's
  optim/<i>/<key>   optimizer state         `extra_state()` (TS2Vec's count of averaged iterates), epoch-hook
                    (momentum buffers,      state, metrics.jsonl length, numpy/python RNG states
                    Adam moments, ...)      per process
  loop/perm, loop/losses, loop/epoch_losses the epoch's permutation and the losses so far
  hook/<i>/<name>   epoch-hook tensors (the best-RankMe encoder kept by --select rankme)
  rng/<rank>/<name> RNG states per process: the loop's data/augmentation generators and torch's
                    global CPU (and CUDA) generator; under torchrun also the buffers of processes
                    other than rank 0 (their own MoCo queue, BatchNorm statistics)

The file is written to a temporary name, fsynced and renamed over the previous checkpoint, so a
crash at any moment leaves the last complete checkpoint in place. The format is checkpoint_codec.py's,
the RNG states rng_state.py's; this module decides what goes in and puts it back.

Resuming is exact (bit-identical weights on CPU with the same thread count) for `--epochs` runs;
a `--minutes` run continues with the remaining time budget, so its schedule depends on timing.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from . import distributed
from .checkpoint_codec import (CHECKPOINT_DIR, FORMAT, VERSION, Checkpoint, checkpoint_file, decode, encode,  # noqa: F401
                               checkpoint_files, kept_checkpoints, load, read, read_latest, read_state,
                               write_keeping_previous)
from .distributed import World
from .hooks import EpochHook
from .loggers import MetricsLog
from .loop import LoopState
from .rng_state import rng_state

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


def hook_state(hooks: list[EpochHook]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Every epoch hook's declared state (`EpochHook.state`), its tensors under hook/<i>/."""
    tensors: dict[str, torch.Tensor] = {}
    docs: list[dict[str, Any]] = []
    for i, hook in enumerate(hooks):
        doc, ts = hook.state()
        docs.append(doc)
        tensors.update({f"hook/{i}/{k}": v for k, v in ts.items()})
    return tensors, docs


def load_hook_state(hooks: list[EpochHook], docs: list[dict[str, Any]], tensors: dict[str, torch.Tensor]) -> None:
    for i, (hook, doc) in enumerate(zip(hooks, docs)):
        prefix = f"hook/{i}/"
        hook.load_state(doc, {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})


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
                 hooks: list[EpochHook], header: dict[str, Any], device: torch.device, log: MetricsLog | None = None) -> None:
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
        if not self.world.is_main or self.path is None:
            self.last_step = loop.steps
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
        write_keeping_previous(path, encode(state, tensors))
        self.last_step = loop.steps  # only once it is on disk: a failed write keeps the step before
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


def restore(ckpt: Checkpoint, method: torch.nn.Module, optimizer: torch.optim.Optimizer, hooks: list[EpochHook],
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
