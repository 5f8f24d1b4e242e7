"""From a TrainConfig to a finished run directory: data, encoder, method, loop, artifacts."""
from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..version import __version__
from ..artifacts import save_tensors, write_json, write_yaml
from ..data import Dataset
from ..loading import load_dataset
from ..errors import ConfigError, TrainingError
from ..methods import TrainingContext, methods
from ..modalities import get_modality
from ..run import COMPLETE_MARKER, Run
from . import checkpoint as ckpt_io
from . import distributed
from .config import TrainConfig
from .distributed import World, agree
from .loggers import MetricsLog, open_sinks
from .loop import LoopSettings, TrainingInterrupted, run_loop
from .optim import build_optimizer, scaled_lr
from .threads import CpuShare

MIN_FREE_BYTES = 50 * 2**20


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 arithmetic (AVX512-BF16 or AMX); elsewhere bf16 autocast is emulated and slow."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> bf16 where the hardware computes it natively (measured: ~10x slower than fp32 when emulated)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def split_encoder_name(name: str) -> tuple[str, dict[str, Any]]:
    """'timm:resnet50' -> ('timm', {'name': 'resnet50'})."""
    head, sep, tail = name.partition(":")
    return (head, {"name": tail}) if sep else (name, {})


def staging_path(out: Path) -> Path:
    """Where a run is written until it is complete: RUN.partial next to RUN."""
    return out.with_name(out.name + ".partial")


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
    if ckpt_io.checkpoint_file(staging).exists() and not overwrite:
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
    if not path.exists():
        where = staging if staging.exists() else out
        raise ConfigError(f"--resume {out}: no checkpoint in {where} (looked for {path})")
    if not os.access(staging, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise ConfigError(f"--resume {out}: {staging} is not writable")
    return staging


def check_free_space(folder: Path, needed: int, flag: str) -> None:
    """Refuse to start when the disk cannot hold two checkpoints (old + new during the atomic swap) and the run."""
    free = shutil.disk_usage(folder).free
    if free < needed + MIN_FREE_BYTES:
        raise ConfigError(f"{flag}: only {free / 2**20:.0f} MiB free on {folder}; checkpoints and the run need "
                          f"about {(needed + MIN_FREE_BYTES) / 2**20:.0f} MiB")


def build_method(cfg: TrainConfig, dataset: Dataset, world_size: int = 1) -> tuple[Any, dict[str, Any]]:
    """The configured method around a fresh encoder, and the resolved settings to record.

    The batch size is per process; the learning rate scales with the global batch (batch x processes)
    by the method's paper rule (linear for SimCLR/BYOL/VICReg/..., as OptimizerDefaults.lr_scaling says).
    """
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
    batch = min(cfg.batch_size, max(1, len(dataset.train) // world_size))
    if world_size > 1 and batch < 2:
        raise ConfigError(f"{len(dataset.train)} training samples are too few for {world_size} processes")
    global_batch = batch * world_size
    steps_per_epoch = max(1, len(dataset.train) // global_batch)
    method.setup(TrainingContext(len(dataset.train), batch, world_size,
                                 cfg.epochs * steps_per_epoch if cfg.epochs else None))
    defaults = method_cls.optimizer
    resolved = {
        "modality": dataset.modality, "data_spec": spec, "encoder": enc_name, "encoder_options": enc_opts,
        "method_options": {**method_cls.hyperparameters(), **cfg.method_options},
        "optimizer": cfg.optimizer or defaults.name,
        "lr": cfg.lr if cfg.lr is not None else scaled_lr(defaults.lr, global_batch, defaults.lr_scaling),
        "weight_decay": cfg.weight_decay if cfg.weight_decay is not None else defaults.weight_decay,
        "momentum": defaults.momentum, "excluded_lr_scale": defaults.excluded_lr_scale, "batch_size": batch,
        "view_style": method.view_style,
        # the data source's view defaults (e.g. no mirror images of digits) under the caller's own options
        "augmentation": {**dataset.info.get("view_options", {}), **cfg.augmentation},
    }
    if world_size > 1:
        resolved.update({"world_size": world_size, "global_batch_size": global_batch, "sync_bn": cfg.sync_bn})
    return method, resolved


def train(cfg: TrainConfig, out: str | Path | None = None, progress: bool = True,
          dataset: Dataset | None = None, overwrite: bool = False) -> Run:
    """Train a self-supervised encoder as `cfg` says; with `out`, write a complete run directory atomically.

    Under torchrun (WORLD_SIZE > 1) every process calls this; rank 0 alone writes `out`.
    """
    world = distributed.init()
    return _train(cfg, Path(out) if out is not None else None, progress, dataset, world, overwrite=overwrite)


def resume(run: str | Path, progress: bool = True, dataset: Dataset | None = None,
           overrides: dict[str, Any] | None = None) -> Run:
    """Continue an interrupted run from the last checkpoint in RUN.partial/checkpoint/ and finish it.

    With --epochs the result is bit-identical to an uninterrupted run (CPU, same threads); with
    --minutes the remaining time budget is used. `overrides` may change device, threads and data_dir.
    """
    out = Path(run)
    allowed = {"device", "threads", "data_dir"}
    extra = sorted(set(overrides or {}) - allowed)
    if extra:
        raise ConfigError(f"--resume continues {out} with its saved configuration; drop "
                          f"{', '.join('--' + e.replace('_', '-') for e in extra)}")
    world = distributed.init()
    raw, error = None, None
    if world.is_main:
        try:
            raw = ckpt_io.read(ckpt_io.checkpoint_file(resume_staging(out)))
        except BaseException as exc:  # noqa: BLE001 -- every process must learn about it
            error = exc
    agree(error, world)
    where = str(ckpt_io.checkpoint_file(staging_path(out)))
    ckpt = ckpt_io.decode(distributed.broadcast_bytes(raw, world), where)
    cfg = TrainConfig.from_dict({**ckpt.state["config"], **(overrides or {})}, where)
    if ckpt.state["world_size"] != world.size:
        raise ConfigError(f"--resume {out}: the checkpoint was written by {ckpt.state['world_size']} process(es); "
                          f"resume with the same number (torchrun --nproc_per_node), not {world.size}")
    return _train(cfg, out, progress, dataset, world, checkpoint=ckpt)


def _train(cfg: TrainConfig, out_path: Path | None, progress: bool, dataset: Dataset | None, world: World,
           overwrite: bool = False, checkpoint: ckpt_io.Checkpoint | None = None) -> Run:
    cfg.validate()
    threads_before = torch.get_num_threads()
    share = None
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif not cfg.compile:  # compiled CPU kernels keep the thread count they were compiled with
        share = CpuShare()  # measures other processes' CPU use from now on (setup included): training/threads.py
    try:
        return _train_with_threads(cfg, out_path, progress, dataset, world, overwrite, checkpoint, share)
    finally:  # neither a fixed nor an adapted thread count outlives the run
        torch.set_num_threads(threads_before)


def _train_with_threads(cfg: TrainConfig, out_path: Path | None, progress: bool, dataset: Dataset | None,
                        world: World, overwrite: bool, checkpoint: ckpt_io.Checkpoint | None,
                        share: CpuShare | None) -> Run:
    if cfg.log and out_path is None:
        raise ConfigError(f"--log {','.join(cfg.log)} writes into the run directory: give --out (out= in Python)")
    device = distributed.process_device(resolve_device(cfg.device), world)
    staging, error = None, None
    if world.is_main and out_path is not None:  # only rank 0 touches the file system
        try:
            staging = prepare_output(out_path, overwrite) if checkpoint is None else resume_staging(out_path)
        except BaseException as exc:  # noqa: BLE001
            error = exc
    agree(error, world)
    setup_start = time.perf_counter()
    try:
        for turn in ((True,), (False,)) if world.distributed else ((True,),):  # rank 0 first (downloads)
            error = None
            if dataset is None and world.is_main == turn[0]:
                try:
                    dataset = load_dataset(cfg.data, cfg.data_dir, cfg.modality)
                except BaseException as exc:  # noqa: BLE001
                    error = exc
            agree(error, world)
        method, resolved = build_method(cfg, dataset, world.size)
        method.to(device)
        if cfg.channels_last:
            method.to(memory_format=torch.channels_last)
        if cfg.compile:  # in place, so parameter names (checkpoints, weights) stay those of the plain module
            method.encoder.compile()
        if world.distributed:
            method.set_world(world.rank, world.size)
            if cfg.sync_bn:
                distributed.convert_sync_batchnorm(method, device)
        optimizer = build_optimizer(method, resolved["optimizer"], resolved["lr"], resolved["weight_decay"],
                                    resolved["momentum"], resolved["excluded_lr_scale"])
        modality = get_modality(dataset.modality)
        view_maker = modality.view_maker(method.view_style, resolved["data_spec"], cfg.augmentation_strength,
                                         resolved["augmentation"])
        checkpoint_seconds = cfg.checkpoint_minutes * 60 if cfg.checkpoint_minutes else None
        resolved["precision"] = resolve_precision(cfg.precision, device)
        settings = LoopSettings(resolved["batch_size"], cfg.epochs, cfg.minutes, cfg.warmup_fraction, cfg.seed,
                                device, resolved["precision"], cfg.channels_last, cfg.log_every,
                                progress and world.is_main, world, cfg.checkpoint_every_steps, checkpoint_seconds,
                                cpu_share=share)
        hooks = epoch_hooks(cfg, dataset, resolved, device) if world.is_main else []
        header = {"config": cfg.to_dict(), "resolved": resolved, "world_size": world.size,
                  "data": ckpt_io.data_fingerprint(dataset.train.x, dataset.train.mask)}
        loop_state, rng = None, None
        if checkpoint is not None:
            check_same_run(checkpoint, header, out_path)
            loop_state, rng_tensors, rng_doc = ckpt_io.restore(checkpoint, method, optimizer, hooks, world.rank)
            rng = (rng_tensors, rng_doc)
        checkpointing = out_path is not None and (checkpoint_seconds or cfg.checkpoint_every_steps)
        error = None
        if staging is not None and checkpointing:
            try:
                needed = 2 * ckpt_io.state_bytes_estimate(method, resolved["optimizer"])
                check_free_space(staging, needed, f"--out {out_path}")
            except BaseException as exc:  # noqa: BLE001
                error = exc
        agree(error, world)
        model = distributed.ddp(method, device) if world.distributed else None
        if checkpoint is not None and world.distributed:
            ckpt_io.restore_own_buffers(checkpoint, method, world.rank)
        setup_seconds = time.perf_counter() - setup_start
        metrics_at = checkpoint.state["metrics_bytes"] if checkpoint is not None else None
        sinks, error = [], None
        if staging is not None:
            try:
                sinks = open_sinks(cfg.log, staging, out_path.name,
                                   resume_step=checkpoint.step if checkpoint is not None else None)
            except BaseException as exc:  # noqa: BLE001
                error = exc
        agree(error, world)
        log = MetricsLog(staging / "metrics.jsonl" if staging else None, truncate_at=metrics_at, sinks=sinks)
        saver = ckpt_io.Checkpointer(staging, world, method, optimizer, hooks, header, device, log) \
            if checkpointing else None
        if rng is not None:
            ckpt_io.restore_global_rng(*rng, device)
        try:
            result = run_loop(method, optimizer, dataset.train.x, view_maker, settings, log, hooks,
                              mask=dataset.train.mask, model=model, resume=loop_state,
                              checkpoint=saver.save if saver else None)
        except TrainingInterrupted as exc:
            launcher = f"torchrun --nproc_per_node {world.size} -m selfsup" if world.distributed else "selfsup"
            where = f"; checkpoint saved in {staging}; continue with: {launcher} train --resume {out_path}" \
                if staging is not None else ""
            raise TrainingInterrupted(f"{exc}{where}", exc.step) from None
        except TrainingError as exc:
            kept = f"; the last good checkpoint (step {saver.last_step}) is kept in {staging}" \
                if saver is not None and saver.last_step is not None and staging is not None else ""
            raise TrainingError(f"{exc}{kept}") from None
        finally:
            log.close()
        model = None  # the DDP wrapper and its reducer go now, not whenever the garbage collector finds them
        if world.distributed and cfg.sync_bn:
            distributed.revert_sync_batchnorm(method)
        selected = select_encoder(method, hooks)
        summary = {
            "complete": True, "data": cfg.data, "method": cfg.method, "encoder": resolved["encoder"],
            "train_samples": len(dataset.train), "steps": result.steps, "epochs": round(result.epochs, 3),
            "train_seconds": round(result.seconds, 2), "setup_seconds": round(setup_seconds, 2),
            "samples_per_s": round(result.samples_per_s * world.size, 1), "final_loss": result.final_loss,
            "selected": selected, "device": str(device), "precision": resolved["precision"],
            "threads": torch.get_num_threads(),
            "threads_policy": "adaptive (training/threads.py)" if share is not None
            else "fixed (--threads)" if cfg.threads else "fixed (--compile)",
            "world_size": world.size, "batch_size": resolved["batch_size"],
            "global_batch_size": resolved["batch_size"] * world.size,
            "versions": {"selfsup": __version__, "torch": torch.__version__, "numpy": np.__version__,
                         "python": sys.version.split()[0], "platform": platform.platform()},
        }
        if share is not None and share.changes:
            summary["thread_changes"] = share.changes
        if checkpoint is not None:
            summary["resumed_from_step"] = checkpoint.step
        if result.warnings:
            summary["warnings"] = result.warnings
        method.to("cpu")
        if cfg.channels_last:
            method.to(memory_format=torch.contiguous_format)
        if cfg.compile:  # the returned encoder runs eagerly (evaluation uses other batch sizes and eval mode)
            method.encoder._compiled_call_impl = None
        run = Run(cfg, resolved, method.encoder.eval(), out_path if world.is_main else None, summary)
        error = None
        if staging is not None:
            try:
                write_run(staging, cfg, resolved, method, summary)
                if out_path.exists():
                    out_path.rmdir()
                staging.rename(out_path)
            except BaseException as exc:  # noqa: BLE001
                error = exc
        agree(error, world)
        return run
    except BaseException:
        if staging is not None and staging.exists() and not ckpt_io.checkpoint_file(staging).exists() \
                and not any(p.name not in ("metrics.jsonl", ckpt_io.CHECKPOINT_DIR) for p in staging.iterdir()):
            shutil.rmtree(staging, ignore_errors=True)
        raise


def check_same_run(checkpoint: ckpt_io.Checkpoint, header: dict[str, Any], out: Path | None) -> None:
    """A checkpoint continues only the run it was written by: same data and same resolved settings."""
    saved = checkpoint.state
    if saved["data"] != header["data"]:
        raise ConfigError(f"--resume {out}: the training data differ from the checkpoint's "
                          f"({saved['data']['samples']} samples of shape {saved['data']['shape']} there, "
                          f"{header['data']['samples']} of shape {header['data']['shape']} now)")
    now = json.loads(json.dumps(header["resolved"], default=ckpt_io.jsonable))
    changed = sorted(k for k in set(saved["resolved"]) | set(now) if saved["resolved"].get(k) != now.get(k))
    if changed:
        raise ConfigError(f"--resume {out}: settings differ from the checkpoint's ({', '.join(changed)})")


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
