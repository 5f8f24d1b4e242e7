"""From a TrainConfig to a finished run directory: data, encoder, method, loop, artifacts."""
from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..artifacts import save_tensors, write_json, write_yaml
from ..data import Dataset, load_dataset
from ..errors import ConfigError
from ..methods import methods
from ..modalities.base import get_modality
from ..run import COMPLETE_MARKER, Run
from .config import TrainConfig
from .loop import LoopSettings, MetricsLog, run_loop
from .optim import build_optimizer, scaled_lr


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


def split_encoder_name(name: str) -> tuple[str, dict[str, Any]]:
    """'timm:resnet50' -> ('timm', {'name': 'resnet50'})."""
    head, sep, tail = name.partition(":")
    return (head, {"name": tail}) if sep else (name, {})


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
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"--out {out}: folder {parent} is not writable")
    if shutil.disk_usage(parent).free < 50 * 2**20:
        raise ConfigError(f"--out {out}: less than 50 MiB free on {parent}")
    staging = out.with_name(out.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    return staging


def build_method(cfg: TrainConfig, dataset: Dataset) -> tuple[Any, dict[str, Any]]:
    """The configured method around a fresh encoder, and the resolved settings to record."""
    modality = get_modality(dataset.modality)
    spec = modality.fit_spec(dataset.train.x)
    enc_name, enc_opts = split_encoder_name(cfg.encoder or modality.default_encoder(spec))
    enc_opts = {**enc_opts, **cfg.encoder_options}
    if enc_name not in modality.encoders:
        known = ", ".join(modality.encoders.names())
        raise ConfigError(f"--encoder {enc_name!r} is not an encoder for {dataset.modality} data; known: {known}")
    method_cls = methods.get(cfg.method)
    unknown = set(cfg.method_options) - set(method_cls.hyperparameters())
    if unknown:
        raise ConfigError(f"method {cfg.method!r} has no option(s) {', '.join(sorted(unknown))}; "
                          f"options: {', '.join(method_cls.hyperparameters())}")
    torch.manual_seed(cfg.seed)
    encoder = modality.build_encoder(enc_name, spec, **enc_opts)
    method = method_cls(encoder, **cfg.method_options)
    method.batched_views = cfg.batched_views
    batch = min(cfg.batch_size, len(dataset.train))
    if hasattr(method, "configure"):
        method.configure(len(dataset.train), batch)
    defaults = method_cls.optimizer
    resolved = {
        "modality": dataset.modality, "data_spec": spec, "encoder": enc_name, "encoder_options": enc_opts,
        "method_options": {**method_cls.hyperparameters(), **cfg.method_options},
        "optimizer": cfg.optimizer or defaults.name,
        "lr": cfg.lr if cfg.lr is not None else scaled_lr(defaults.lr, batch, defaults.lr_scaling),
        "weight_decay": cfg.weight_decay if cfg.weight_decay is not None else defaults.weight_decay,
        "momentum": defaults.momentum, "batch_size": batch, "view_style": method.view_style,
    }
    return method, resolved


def train(cfg: TrainConfig, out: str | Path | None = None, progress: bool = True,
          dataset: Dataset | None = None, overwrite: bool = False) -> Run:
    """Train a self-supervised encoder as `cfg` says; with `out`, write a complete run directory atomically."""
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    out_path = Path(out) if out is not None else None
    staging = prepare_output(out_path, overwrite) if out_path is not None else None
    setup_start = time.perf_counter()
    try:
        if dataset is None:
            dataset = load_dataset(cfg.data, cfg.data_dir, cfg.modality)
        method, resolved = build_method(cfg, dataset)
        method.to(device)
        if cfg.channels_last:
            method.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(method, resolved["optimizer"], resolved["lr"], resolved["weight_decay"],
                                    resolved["momentum"])
        modality = get_modality(dataset.modality)
        view_maker = modality.view_maker(method.view_style, resolved["data_spec"], cfg.augmentation_strength,
                                         cfg.augmentation)
        settings = LoopSettings(resolved["batch_size"], cfg.epochs, cfg.minutes, cfg.warmup_fraction, cfg.seed,
                                device, cfg.precision, cfg.channels_last, cfg.log_every, progress)
        hooks = epoch_hooks(cfg, dataset, resolved, device)
        setup_seconds = time.perf_counter() - setup_start
        log = MetricsLog(staging / "metrics.jsonl" if staging else None)
        try:
            result = run_loop(method, optimizer, dataset.train.x, view_maker, settings, log, hooks,
                              mask=dataset.train.mask)
        finally:
            log.close()
        selected = select_encoder(method, hooks)
        summary = {
            "complete": True, "data": cfg.data, "method": cfg.method, "encoder": resolved["encoder"],
            "train_samples": len(dataset.train), "steps": result.steps, "epochs": round(result.epochs, 3),
            "train_seconds": round(result.seconds, 2), "setup_seconds": round(setup_seconds, 2),
            "samples_per_s": round(result.samples_per_s, 1), "final_loss": result.final_loss,
            "selected": selected, "device": str(device), "threads": torch.get_num_threads(),
            "versions": {"selfsup": __version__, "torch": torch.__version__, "numpy": np.__version__,
                         "python": sys.version.split()[0], "platform": platform.platform()},
        }
        method.to("cpu")
        if cfg.channels_last:
            method.to(memory_format=torch.contiguous_format)
        run = Run(cfg, resolved, method.encoder.eval(), out_path, summary)
        if staging is not None:
            write_run(staging, cfg, resolved, method, summary)
            if out_path.exists():
                out_path.rmdir()
            staging.rename(out_path)
        return run
    except BaseException:
        if staging is not None and not any(p.name != "metrics.jsonl" for p in staging.iterdir()):
            shutil.rmtree(staging, ignore_errors=True)
        raise


def write_run(folder: Path, cfg: TrainConfig, resolved: dict[str, Any], method, summary: dict[str, Any]) -> None:
    """The run's artifacts; summary.json (the completeness marker) goes last."""
    write_yaml(folder / "config.yaml", {"train": cfg.to_dict(), "resolved": resolved})
    save_tensors(folder / "encoder.safetensors", method.encoder.state_dict(), {"format": "selfsup-encoder"})
    heads = {k: v for k, v in method.state_dict().items() if not k.startswith("encoder.")}
    if heads:
        save_tensors(folder / "method.safetensors", heads, {"format": "selfsup-method", "method": cfg.method})
    write_json(folder / COMPLETE_MARKER, summary)


def epoch_hooks(cfg: TrainConfig, dataset: Dataset, resolved: dict[str, Any], device: torch.device) -> list:
    """Per-epoch monitoring (label-free diagnostics, online kNN) when enabled."""
    if not cfg.monitor and cfg.select == "last":
        return []
    from .monitor import EpochMonitor

    return [EpochMonitor(dataset, resolved, device, seed=cfg.seed, keep_best_rankme=cfg.select == "rankme")]


def select_encoder(method, hooks: list) -> str:
    """With --select rankme, load the best-RankMe encoder weights kept by the monitor."""
    for hook in hooks:
        best = getattr(hook, "best_state", None)
        if best is not None:
            method.encoder.load_state_dict(best)
            return f"rankme (epoch {hook.best_epoch}, RankMe {hook.best_rankme:.2f})"
    return "last"
