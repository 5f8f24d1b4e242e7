"""The training driver, one for every method and modality: epochs or a wall-clock budget, schedules,
checkpoints at step boundaries, stop signals, and one agreement on every decision under torchrun.

It reads tensors on the host only at sync points (a log line, a checkpoint, an epoch end, the end): the
step's losses wait on the device until then, and a non-finite loss is reported there with the step it
happened at (no checkpoint is written after it)."""
from __future__ import annotations

import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..errors import TrainingError
from ..methods.base import Method
from ..schedules import Schedule
from ..storage import Storage
from ..views import ViewMaker, with_indices
from .distributed import World, shard, sync_values
from .epoch_pass import TrainingSetPass
from .feeder import epoch_batches
from .hooks import EpochHook
from .loggers import MetricsLog
from .optim import apply_schedules
from .progress import Budget, Progress, make_progress
from .step import autocast_context, optimisation_step
from .threads import CpuShare


# Test-only fault injection: the loss of step N (1-based, as `step` in metrics.jsonl) is replaced by NaN,
# exercising the non-finite-loss path exactly as a diverging run would.
FAULT_NONFINITE_STEP = "SELFSUP_FAULT_NONFINITE_STEP"
# Besides every `checkpoint_seconds` (10 minutes by default) and every `checkpoint_every_steps`, a checkpoint is
# written at the end of the first epoch and then at epoch ends at least this long after the previous one, so a
# short run killed after its first epoch can always be resumed.
EPOCH_END_CHECKPOINT_S = 60.0


@dataclass
class LoopSettings:
    """What the loop needs beyond the method and data (derived from TrainConfig)."""

    batch_size: int
    epochs: int | None
    minutes: float | None
    lr_schedule: Schedule  # factor of each group's base learning rate
    seed: int
    device: torch.device
    precision: str = "fp32"
    weight_decay_schedule: Schedule | None = None  # None: the optimiser's weight decay stays as built
    log_every: int = 10
    progress: bool = True
    progress_interval: float = 30.0  # seconds between progress lines when stderr is not a terminal
    world: World = field(default_factory=World)
    checkpoint_every_steps: int | None = None
    checkpoint_seconds: float | None = None
    cpu_share: CpuShare | None = None  # adapts the thread count to other work (None: threads fixed)


@dataclass
class LoopState:
    """Where training stands at a step boundary: everything the loop needs to continue exactly from there."""

    steps: int = 0                    # optimiser steps done
    epoch: int = 0                    # current epoch
    step_in_epoch: int = 0            # next step's index within the epoch
    samples: int = 0                  # samples seen by this process
    train_seconds: float = 0.0        # training time so far (monitoring excluded)
    finished: bool = False            # the budget is spent; only the run directory remains to be written
    perm: torch.Tensor | None = None  # the epoch's permutation (None at an epoch start)
    epoch_losses: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    generators: dict[str, torch.Tensor] = field(default_factory=dict)  # data/augmentation generator states


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM at a step boundary, after writing a checkpoint."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


class StopSignals:
    """While installed, SIGINT (Ctrl-C) and SIGTERM ask the loop to stop at the next step boundary (after a
    checkpoint); a second signal interrupts at once."""

    def __init__(self, enabled: bool) -> None:
        self.requested = False
        self.previous: dict[int, Any] = {}
        if enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def close(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}


@dataclass
class LoopResult:
    """What a finished loop reports."""

    steps: int = 0
    epochs: float = 0.0
    seconds: float = 0.0
    samples: int = 0
    losses: list[float] = field(default_factory=list)
    final_loss: float = float("nan")
    warnings: list[str] = field(default_factory=list)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


def run_loop(method: Method, optimizer: torch.optim.Optimizer, storage: Storage, view_maker: ViewMaker,
             settings: LoopSettings, log: MetricsLog, epoch_hooks: list[EpochHook] = (), *,
             model: torch.nn.Module | None = None, resume: LoopState | None = None,
             checkpoint: Callable[[LoopState], None] | None = None,
             pass_view_maker: ViewMaker | None = None) -> LoopResult:
    """Train `method` on `storage` (never its labels) until the epoch or time budget is spent.

    `model` is what the forward pass calls (the DDP wrapper under torchrun; default the method).
    `pass_view_maker` makes the views of `Method.before_epoch`'s pass over the data (default `view_maker`; the
    plan gives one without the local crops).
    `checkpoint(state)` is called at step boundaries (every `checkpoint_every_steps` steps, every
    `checkpoint_seconds`, at epoch ends as EPOCH_END_CHECKPOINT_S says, on SIGINT/SIGTERM and when training
    ends); `resume` continues from such a state.
    Under torchrun every process runs this loop on its shard of each global batch; stop, budget and
    checkpoint decisions and the logged loss are synchronised so all processes take the same steps.
    """
    world = settings.world
    n = len(storage)
    batch = min(settings.batch_size, max(1, n // world.size))  # per process
    steps_per_epoch = max(1, storage.epoch_samples(world.size, batch) // (batch * world.size))
    total_steps = settings.epochs * steps_per_epoch if settings.epochs else None
    budget_s = settings.minutes * 60 if settings.minutes else None
    gen = torch.Generator().manual_seed(settings.seed)  # permutations: the same on every process
    if not world.distributed:
        aug_gen = gen if settings.device.type == "cpu" else torch.Generator(settings.device).manual_seed(settings.seed)
    else:  # each process augments its own samples with its own stream
        aug_gen = torch.Generator(settings.device).manual_seed(settings.seed + 1_000_003 * (world.rank + 1))
    generators = {"data": gen} if aug_gen is gen else {"data": gen, "augment": aug_gen}
    state = resume or LoopState()
    for name, g in generators.items():
        if name in state.generators:
            g.set_state(state.generators[name])
    data = storage.to(settings.device)
    forward = model if model is not None else method
    request = method.view_request()
    result = LoopResult(steps=state.steps, samples=state.samples, losses=list(state.losses))
    if state.finished:
        return finish(result, state.train_seconds, steps_per_epoch)
    method.train()
    bar = make_progress(settings.progress, Budget(total_steps, budget_s), settings.progress_interval)
    bar.start(state.steps, state.train_seconds)
    signals = StopSignals(enabled=checkpoint is not None)
    share = settings.cpu_share
    if share is not None:
        share.start()
    start = time.perf_counter() - state.train_seconds
    window_start, window_samples = time.perf_counter(), 0
    last_ckpt_wall, last_ckpt_step = time.perf_counter(), state.steps
    wrote_checkpoint = resume is not None  # a resumed run has one already
    epoch, first_step, perm, epoch_losses = state.epoch, state.step_in_epoch, state.perm, list(state.epoch_losses)
    pending: list[tuple[int, int, torch.Tensor]] = []  # (step, epoch, loss on the device) not yet read

    def flush() -> float:
        """Read the pending losses (the mean over processes), raise on a non-finite one; the last step's loss."""
        if not pending:
            return epoch_losses[-1] if epoch_losses else float("nan")
        values = torch.stack([v for _, _, v in pending]).float().tolist()
        if world.distributed:  # the loss of the global batch: the mean over processes
            _, totals = sync_values(world, [], values)
            values = [t / world.size for t in totals]
        for (step, step_epoch, _), value in zip(pending, values):
            if not math.isfinite(value):
                raise TrainingError(f"loss became {value} at step {step} (epoch {step_epoch}); "
                                    "try a lower --lr or another --precision")
        pending.clear()
        epoch_losses.extend(values)
        return values[-1]

    def snapshot(step_in_epoch: int, finished: bool = False) -> LoopState:
        flush()
        return LoopState(result.steps, epoch, step_in_epoch, result.samples, time.perf_counter() - start, finished,
                         perm, list(epoch_losses), list(result.losses),
                         {k: g.get_state() for k, g in generators.items()})

    def save(state_now: LoopState) -> None:  # checkpoint writing is not charged to training time
        nonlocal start
        t0 = time.perf_counter()
        checkpoint(state_now)
        start += time.perf_counter() - t0

    feed = None  # this epoch's batches (training/feeder.py)
    try:
        done = False
        while not done:
            if perm is None:
                perm = data.epoch_order(gen, world.size, batch)
                epoch_losses, first_step = [], 0
                epoch_pass = TrainingSetPass(data, pass_view_maker or view_maker, request, batch, settings.seed, epoch,
                                             settings.device)
                before_epoch(method, epoch, epoch_pass, settings.device, settings.precision)
            feed = epoch_batches(data, perm, first_step, steps_per_epoch, batch, world, settings.device)
            for i in range(first_step, steps_per_epoch):
                now = time.perf_counter()
                (elapsed, since_ckpt), (stop,) = sync_values(world, [now - start, now - last_ckpt_wall],
                                                             [float(signals.requested)])
                if stop and checkpoint is not None:
                    save(snapshot(i))
                    raise TrainingInterrupted(f"interrupted at step {result.steps}", result.steps)
                if budget_s is not None and elapsed >= budget_s:
                    done = True
                    break
                if checkpoint is not None and result.steps != last_ckpt_step and (
                        (settings.checkpoint_every_steps and result.steps % settings.checkpoint_every_steps == 0)
                        or (settings.checkpoint_seconds is not None and since_ckpt >= settings.checkpoint_seconds)):
                    save(snapshot(i))
                    wrote_checkpoint = True
                    last_ckpt_wall, last_ckpt_step = time.perf_counter(), result.steps
                progress = (result.steps + 1) / total_steps if total_steps else elapsed / budget_s
                idx = shard(perm, i, batch, world)
                idx = idx.to(settings.device)
                views = with_indices(view_maker(next(feed), aug_gen), idx, request)
                wd = settings.weight_decay_schedule(progress) if settings.weight_decay_schedule else None
                lr = apply_schedules(optimizer, settings.lr_schedule(progress), wd)
                loss, logs = optimisation_step(method, forward, optimizer, views, progress, settings.device,
                                               settings.precision)
                if os.environ.get(FAULT_NONFINITE_STEP) == str(result.steps + 1):
                    loss = torch.full_like(loss, float("nan"))
                result.steps += 1
                pending.append((result.steps, epoch, loss))
                result.samples += len(idx)
                window_samples += len(idx)
                if share is not None:
                    share.maybe_update()
                if result.steps % settings.log_every == 0 or result.steps == 1:
                    value = flush()
                    now = time.perf_counter()
                    rate = window_samples * world.size / max(now - window_start, 1e-9)
                    window_start, window_samples = now, 0
                    extra = {k: float(v) for k, v in logs.items()}
                    if wd is not None:
                        extra["weight_decay"] = wd
                    log.write({"step": result.steps, "epoch": epoch, "lr": lr, "samples_per_s": rate,
                               "elapsed_s": now - start, "threads": torch.get_num_threads(), "loss": value, **extra})
                    bar.update(result.steps, epoch, value, lr, rate, now - start)
                if total_steps is not None and result.steps >= total_steps:
                    done = True
                    break
            feed.close()
            perm, first_step = None, 0
            flush()
            if epoch_losses:
                train_seconds = time.perf_counter() - start
                record = {"epoch": epoch, "type": "epoch", "loss": sum(epoch_losses) / len(epoch_losses),
                          "steps": result.steps, "elapsed_s": train_seconds}
                hook_start = time.perf_counter()
                for hook in epoch_hooks:
                    record.update(hook(epoch, method))
                if record.get("collapsed") and not result.warnings:
                    warn_collapse(result, epoch, record, bar)
                method.train()
                start += time.perf_counter() - hook_start  # monitoring is not charged to the budget
                log.write(record)
                bar.epoch_end(epoch, record["loss"], result.steps, time.perf_counter() - start)
                result.losses.extend(epoch_losses)
                epoch_losses = []
                epoch += 1
                if checkpoint is not None and not done:  # epoch ends: the first always, then at most once a minute
                    (since_ckpt,), _ = sync_values(world, [time.perf_counter() - last_ckpt_wall], [])
                    if not wrote_checkpoint or since_ckpt >= EPOCH_END_CHECKPOINT_S:
                        save(snapshot(0))
                        wrote_checkpoint = True
                        last_ckpt_wall, last_ckpt_step = time.perf_counter(), result.steps
        flush()
        seconds = time.perf_counter() - start
        if checkpoint is not None:
            save(snapshot(0, finished=True))
        return finish(result, seconds, steps_per_epoch)
    finally:
        if feed is not None:
            feed.close()
        signals.close()
        bar.stop()


def before_epoch(method: Method, epoch: int, data: TrainingSetPass, device: torch.device, precision: str) -> None:
    """The method's epoch-start hook, in eval mode, without gradients, under the run's autocast; charged to training
    time (it is part of the method's cost)."""
    method.eval()
    try:
        with torch.no_grad(), autocast_context(device, precision):
            method.before_epoch(epoch, data)
    finally:
        method.train()


def warn_collapse(result: LoopResult, epoch: int, record: dict[str, Any], bar: Progress) -> None:
    """Say once, on stderr, that the embeddings have collapsed (per-dimension std near zero)."""
    message = (f"warning: embeddings collapsed at epoch {epoch} (mean per-dimension std "
               f"{record.get('embedding_std', float('nan')):.2g}, near zero): every input maps to about the same "
               "vector; try a lower --lr, a larger --batch-size or another method")
    result.warnings.append(message)
    bar.message(f"selfsup: {message}")


def finish(result: LoopResult, seconds: float, steps_per_epoch: int) -> LoopResult:
    result.seconds = seconds
    result.epochs = result.steps / steps_per_epoch
    result.final_loss = result.losses[-1] if result.losses else float("nan")
    return result
