"""`selfsup train` and `--resume`: from a TrainConfig to a finished run directory.

This module only drives: devices.py picks device and precision, run_directory.py stages and writes the run,
plan.py assembles method, storage and views, loop.py trains, checkpoint.py saves and restores. Every step that
may fail on one process goes through `distributed.agreed`, so under torchrun all processes fail together.
"""
from __future__ import annotations

import errno
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..artifacts import jsonable
from ..data import Dataset
from ..encoders import Encoder
from ..errors import ConfigError, TrainingError
from ..loading import load_dataset
from ..resolved import Resolved
from ..run import Run, estimate_norm_statistics
from ..version import __version__
from . import checkpoint as ckpt_io
from . import distributed
from ..config import TrainConfig
from .devices import resolve_device, resolve_precision
from .distributed import World, agreed
from .heap import retained_heap
from .hooks import EpochHook
from .loggers import MetricsLog, open_sinks
from .loop import LoopResult, LoopSettings, TrainingInterrupted, run_loop
from .optim import build_optimizer
from .plan import TrainingPlan, build_plan
from .rng_state import restore_global_rng
from .run_directory import check_free_space, prepare_output, resume_staging, run_lock, staging_path, write_run
from .threads import CpuShare


def train(cfg: TrainConfig, out: str | Path | None = None, progress: bool = True,
          dataset: Dataset | None = None, overwrite: bool = False) -> Run:
    """Train a self-supervised encoder as `cfg` says; with `out`, write a complete run directory atomically.

    Under torchrun (WORLD_SIZE > 1) every process calls this; rank 0 alone writes `out`. When torchrun's elastic
    agent restarts the group (`--max-restarts N`, after a worker died), the restarted processes find the run's last
    checkpoint in OUT.partial and resume from it by themselves, as `--resume OUT` would.
    """
    world = distributed.init()
    out_path = Path(out) if out is not None else None
    if out_path is not None and distributed.restarted_by_agent(world) and _interrupted_run(out_path, cfg, world):
        if world.is_main:
            print(f"selfsup: torchrun restarted the group: resuming {out_path} from its last checkpoint",
                  file=sys.stderr, flush=True)
        return resume(out_path, progress, dataset,
                      overrides={"device": cfg.device, "threads": cfg.threads, "data_dir": cfg.data_dir})
    return _train(cfg, out_path, progress, dataset, world, overwrite=overwrite)


#: What a resume may change; any other difference makes a checkpoint another run's.
RESUME_OVERRIDES = ("device", "threads", "data_dir")


def _interrupted_run(out: Path, cfg: TrainConfig, world: World) -> bool:
    """Whether rank 0 sees, at `out`, an interrupted run of this configuration (a staging folder whose checkpoint
    was written with `cfg`, resume overrides aside), on every process. A checkpoint of another configuration (an
    older run the first attempt refused to overwrite) is not resumed: training starts as the command says."""
    def same_run() -> bool:
        kept = ckpt_io.kept_checkpoints(staging_path(out))
        if not kept:
            return False
        saved = ckpt_io.read_state(kept[0]).get("config", {})
        now = json.loads(json.dumps(cfg.to_dict(), default=jsonable))
        return all(saved.get(k) == v for k, v in now.items() if k not in RESUME_OVERRIDES)
    found = agreed(world, same_run)
    return distributed.broadcast_bytes(b"1" if found else b"0", world) == b"1"


def resume(run: str | Path, progress: bool = True, dataset: Dataset | None = None,
           overrides: dict[str, Any] | None = None) -> Run:
    """Continue an interrupted run from the last checkpoint in RUN.partial/checkpoint/ and finish it.

    With --epochs the result is bit-identical to an uninterrupted run (CPU, same threads); with
    --minutes the remaining time budget is used. `overrides` may change device, threads and data_dir.
    """
    out = Path(run)
    if out.name.endswith(".partial") and not (out.with_name(out.name + ".partial")).exists():
        out = out.with_name(out.name[: -len(".partial")])  # the staging folder named itself: continue its run
    allowed = set(RESUME_OVERRIDES)
    extra = sorted(set(overrides or {}) - allowed)
    if extra:
        raise ConfigError(f"--resume continues {out} with its saved configuration; drop "
                          f"{', '.join('--' + e.replace('_', '-') for e in extra)}")
    world = distributed.init()
    latest = agreed(world, lambda: ckpt_io.read_latest(resume_staging(out)))
    raw, path = latest if latest is not None else (None, ckpt_io.checkpoint_file(staging_path(out)))
    ckpt = ckpt_io.decode(distributed.broadcast_bytes(raw, world), str(path))
    cfg = TrainConfig.from_dict({**ckpt.state["config"], **(overrides or {})}, str(path))
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
    try:  # the step's large buffers stay in the heap between steps (training/heap.py)
        with retained_heap(), run_lock(out_path, world, "--out" if checkpoint is None else "--resume"):
            return _train_with_threads(cfg, out_path, progress, dataset, world, overwrite, checkpoint, share)
    finally:  # neither a fixed nor an adapted thread count outlives the run
        torch.set_num_threads(threads_before)


def _train_with_threads(cfg: TrainConfig, out_path: Path | None, progress: bool, dataset: Dataset | None,
                        world: World, overwrite: bool, checkpoint: ckpt_io.Checkpoint | None,
                        share: CpuShare | None) -> Run:
    if cfg.log and out_path is None:
        raise ConfigError(f"--log {','.join(cfg.log)} writes into the run directory: give --out (out= in Python)")
    device = distributed.process_device(resolve_device(cfg.device), world)
    staging = None
    if out_path is not None:  # only rank 0 touches the file system
        staging = agreed(world, lambda: prepare_output(out_path, overwrite) if checkpoint is None
                         else resume_staging(out_path))
    setup_start = time.perf_counter()
    try:
        in_memory = dataset is not None
        dataset = dataset if in_memory else shared_dataset(cfg, world)
        plan = build_plan(cfg, dataset, world.size)
        method, resolved = plan.method, plan.resolved
        resolved.data_in_memory = in_memory
        optimizer = place_model(cfg, plan, device, world)
        checkpoint_seconds = cfg.checkpoint_minutes * 60 if cfg.checkpoint_minutes else None
        resolved.precision = resolve_precision(cfg.precision, device)
        settings = LoopSettings(resolved.batch_size, cfg.epochs, cfg.minutes, plan.lr_schedule(cfg), cfg.seed,
                                device, resolved.precision, plan.weight_decay_schedule(cfg), cfg.log_every,
                                progress and world.is_main, cfg.log_interval, world, cfg.checkpoint_every_steps,
                                checkpoint_seconds, cpu_share=share)
        hooks = epoch_hooks(cfg, dataset, resolved, device, method.encoder) if world.is_main else []  # before training
        header = {"config": cfg.to_dict(), "resolved": resolved.to_dict(), "world_size": world.size,
                  "data": plan.storage.describe()}
        loop_state, rng = None, None
        if checkpoint is not None:
            check_same_run(checkpoint, header, out_path)
            loop_state, rng_tensors, rng_doc = ckpt_io.restore(checkpoint, method, optimizer, hooks, world.rank)
            rng = (rng_tensors, rng_doc)
        checkpointing = out_path is not None and (checkpoint_seconds or cfg.checkpoint_every_steps)
        if out_path is not None and checkpointing:  # out_path, not staging: every process takes part in `agreed`
            needed = 3 * ckpt_io.state_bytes_estimate(method, resolved.optimizer)
            agreed(world, lambda: check_free_space(staging, needed, f"--out {out_path}"))
        model = distributed.ddp(method, device) if world.distributed else None
        if checkpoint is not None and world.distributed:
            ckpt_io.restore_own_buffers(checkpoint, method, world.rank)
        setup_seconds = time.perf_counter() - setup_start
        metrics_at = checkpoint.state["metrics_bytes"] if checkpoint is not None else None
        sinks, resume_step = [], checkpoint.step if checkpoint is not None else None
        if out_path is not None:
            sinks = agreed(world, lambda: open_sinks(cfg.log, staging, out_path.name, resume_step=resume_step)) or []
        log = MetricsLog(staging / "metrics.jsonl" if staging else None, truncate_at=metrics_at, sinks=sinks)
        saver = ckpt_io.Checkpointer(staging, world, method, optimizer, hooks, header, device, log) \
            if checkpointing else None
        if saver is not None and checkpoint is not None:  # the checkpoint resumed from is the last good one so far
            saver.last_step = checkpoint.step
        if rng is not None:
            restore_global_rng(*rng, device)
        try:
            result = run_loop(method, optimizer, plan.storage, plan.view_maker, settings, log, hooks,
                              model=model, resume=loop_state, checkpoint=saver.save if saver else None,
                              pass_view_maker=plan.pass_view_maker)
        except (TrainingInterrupted, TrainingError, OSError) as exc:
            stopped = stopped_run(exc, world, out_path, staging, saver)
            if stopped is exc:
                raise
            raise stopped from None
        finally:
            log.close()
        model = None  # the DDP wrapper and its reducer go now, not whenever the garbage collector finds them
        if world.distributed and cfg.sync_bn:
            distributed.revert_sync_batchnorm(method)
        summary = run_summary(cfg, plan, dataset, result, device, world, share, checkpoint, setup_seconds,
                              select_encoder(method, hooks))
        if resolved.norm_statistics == "inputs":  # every process alike: the same rows from the same seed
            estimate_norm_statistics(method.encoder, plan.modality, resolved.data_spec, plan.storage, cfg.seed)
        release_model(cfg, method, resolved)
        run = Run(cfg, resolved, method.encoder.eval(), out_path if world.is_main else None, summary,
                  dataset if in_memory else None)
        if out_path is not None:
            agreed(world, lambda: finish_run(staging, out_path, cfg, resolved, method, summary))
        return run
    except BaseException:
        if staging is not None and staging.exists() and not ckpt_io.kept_checkpoints(staging) \
                and not any(p.name not in ("metrics.jsonl", ckpt_io.CHECKPOINT_DIR) for p in staging.iterdir()):
            shutil.rmtree(staging, ignore_errors=True)
        raise


def shared_dataset(cfg: TrainConfig, world: World) -> Dataset:
    """The run's data: loaded by rank 0 first (it may download), then by the others from its cache."""
    budget = None if cfg.memory_budget is None else int(cfg.memory_budget * 1e9)
    dataset = agreed(world, lambda: load_dataset(cfg.data, cfg.data_dir, cfg.modality, budget))
    if world.distributed:
        dataset = agreed(world, lambda: dataset if dataset is not None else load_dataset(
            cfg.data, cfg.data_dir, cfg.modality, budget), main_only=False)
    return dataset


def place_model(cfg: TrainConfig, plan: TrainingPlan, device: torch.device, world: World) -> torch.optim.Optimizer:
    """The plan's method on `device` (channels-last, compiled, synchronised batch norm as configured), and its
    optimizer."""
    method, resolved = plan.method, plan.resolved
    method.to(device)
    if resolved.channels_last:
        method.to(memory_format=torch.channels_last)
    if cfg.compile:  # in place, so parameter names (checkpoints, weights) stay those of the plain module
        method.encoder.compile()
    if world.distributed:
        method.set_world(world.rank, world.size)
        if cfg.sync_bn:
            distributed.convert_sync_batchnorm(method, device)
    return build_optimizer(method, resolved.optimizer, resolved.lr, resolved.weight_decay,
                           resolved.momentum, resolved.excluded_lr_scale, tuple(resolved.betas),
                           resolved.encoder_lr_scale)


def stopped_run(exc: BaseException, world: World, out_path: Path | None, staging: Path | None,
                saver: ckpt_io.Checkpointer | None) -> BaseException:
    """What a stopped training loop raises: an interruption or a training error with the checkpoint it leaves and
    the command that continues it; a full disk as a training error naming the file; any other error as it is."""
    launcher = f"torchrun --nproc_per_node {world.size} -m selfsup" if world.distributed else "selfsup"
    if isinstance(exc, TrainingInterrupted):
        where = f"; checkpoint saved in {staging}; continue with: {launcher} train --resume {out_path}" \
            if staging is not None else ""
        return TrainingInterrupted(f"{exc}{where}", exc.step)
    if isinstance(exc, TrainingError):
        return TrainingError(f"{exc}{kept_checkpoint(saver, staging)}")
    if not isinstance(exc, OSError) or exc.errno != errno.ENOSPC or staging is None:
        return exc
    # a full disk mid-run: the complete checkpoint before it is kept, and resumes
    resume_with = f"; free space and continue with: {launcher} train --resume {out_path}" \
        if saver is not None and saver.last_step is not None else ""
    return TrainingError(f"{exc.filename or staging}: {exc.strerror}{kept_checkpoint(saver, staging)}{resume_with}")


def run_summary(cfg: TrainConfig, plan: TrainingPlan, dataset: Dataset, result: LoopResult, device: torch.device,
                world: World, share: CpuShare | None, checkpoint: ckpt_io.Checkpoint | None, setup_seconds: float,
                selected: Any) -> dict[str, Any]:
    """summary.json of a finished run."""
    resolved = plan.resolved
    summary = {
        "complete": True, "data": cfg.data, "method": cfg.method, "encoder": resolved.encoder,
        "train_samples": len(plan.storage), "data_path": dataset.info.get("data_path", "memory"),
        "steps": result.steps, "epochs": round(result.epochs, 3),
        "train_seconds": round(result.seconds, 2), "setup_seconds": round(setup_seconds, 2),
        "samples_per_s": round(result.samples_per_s * world.size, 1), "final_loss": result.final_loss,
        "selected": selected, "device": str(device), "precision": resolved.precision,
        "threads": torch.get_num_threads(),
        "threads_policy": "adaptive (training/threads.py)" if share is not None
        else "fixed (--threads)" if cfg.threads else "fixed (--compile)",
        "world_size": world.size, "batch_size": resolved.batch_size,
        "global_batch_size": resolved.batch_size * world.size,
        "versions": {"selfsup": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": sys.version.split()[0], "platform": platform.platform()},
    }
    if share is not None and share.changes:
        summary["thread_changes"] = share.changes
    if checkpoint is not None:
        summary["resumed_from_step"] = checkpoint.step
    if result.warnings:
        summary["warnings"] = result.warnings
    return summary


def release_model(cfg: TrainConfig, method: Any, resolved: Resolved) -> None:
    """The trained method back on the CPU, contiguous and eager (evaluation uses other batch sizes and eval mode)."""
    method.to("cpu")
    if resolved.channels_last:
        method.to(memory_format=torch.contiguous_format)
    if cfg.compile:
        method.encoder._compiled_call_impl = None


def kept_checkpoint(saver: ckpt_io.Checkpointer | None, staging: Path | None) -> str:
    """The clause naming the last checkpoint a failed run leaves (empty when it left none)."""
    if saver is None or saver.last_step is None or staging is None:
        return ""
    return f"; the last good checkpoint (step {saver.last_step}) is kept in {staging}"


def finish_run(staging: Path, out: Path, cfg: TrainConfig, resolved: Resolved, method,
               summary: dict[str, Any]) -> None:
    """Write the run into its staging folder and move it into place."""
    write_run(staging, cfg, resolved, method, summary)
    latest, previous = ckpt_io.checkpoint_files(staging)
    for extra in (previous, latest.with_name(latest.name + ".damaged")):  # a finished run keeps its last one only
        extra.unlink(missing_ok=True)
    if out.exists():
        out.rmdir()
    staging.rename(out)


def check_same_run(checkpoint: ckpt_io.Checkpoint, header: dict[str, Any], out: Path | None) -> None:
    """A checkpoint continues only the run it was written by: same data and same resolved settings."""
    saved = checkpoint.state
    if saved["data"] != header["data"]:
        was, now_data = saved["data"], header["data"]
        if was["samples"] != now_data["samples"]:
            what = f"{was['samples']} training samples then, {now_data['samples']} now"
        elif was["shape"] != now_data["shape"]:
            what = f"samples of shape {was['shape']} then, {now_data['shape']} now"
        else:
            what = (f"same count and shape ({was['samples']} x {was['shape'][1:]}), but other content: checksum of "
                    f"256 sampled training rows {was['digest'][:12]} then, {now_data['digest'][:12]} now")
        raise ConfigError(f"--resume {out}: the training data differ from the checkpoint's ({what})")
    now = json.loads(json.dumps(header["resolved"], default=jsonable))
    changed = sorted(k for k in set(saved["resolved"]) | set(now) if saved["resolved"].get(k) != now.get(k))
    if changed:
        raise ConfigError(f"--resume {out}: settings differ from the checkpoint's ({', '.join(changed)})")


def epoch_hooks(cfg: TrainConfig, dataset: Dataset, resolved: Resolved, device: torch.device, encoder: Encoder
                ) -> list[EpochHook]:
    """Per-epoch monitoring (label-free diagnostics, online kNN) when enabled; `encoder` is the run's encoder before
    training (a resumed run's too: its checkpoint is restored after the hooks are made), the monitor's reference."""
    if not cfg.monitor and cfg.select == "last":
        return []
    from .monitor import EpochMonitor

    return [EpochMonitor(dataset, resolved, device, encoder, seed=cfg.seed, keep_best_rankme=cfg.select == "rankme")]


def select_encoder(method, hooks: list[EpochHook]) -> str:
    """Load the encoder weights a hook selected (--select rankme: the monitor's best-RankMe epoch), if any."""
    for hook in hooks:
        selected = hook.selected_encoder()
        if selected is not None:
            method.encoder.load_state_dict(selected[0])
            return selected[1]
    return "last"
