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
from ..methods.base import Method, StepInfo
from ..schedules import Schedule
from ..termination import Terminated
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
    checkpoint); a second signal interrupts at once (KeyboardInterrupt, or Terminated for SIGTERM)."""

    def __init__(self, enabled: bool) -> None:
        self.requested = False
        self.previous: dict[int, Any] = {}
        if enabled and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise Terminated("terminated") if signum == signal.SIGTERM else KeyboardInterrupt
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
    trainer = Trainer(method, optimizer, storage, view_maker, settings, log, epoch_hooks, model, resume, checkpoint,
                      pass_view_maker)
    return trainer.run()


def injected_fault() -> Callable[[int, torch.Tensor], torch.Tensor] | None:
    """The test-only fault FAULT_NONFINITE_STEP asks for, read once per run: (step, loss) -> NaN at that step."""
    at = os.environ.get(FAULT_NONFINITE_STEP)
    if at is None:
        return None
    return lambda step, loss: torch.full_like(loss, float("nan")) if str(step) == at else loss


class Trainer:
    """run_loop's state between steps, and its parts: an epoch (`train_epoch`), a step (`step`), the checkpoint
    decisions (`maybe_checkpoint`, `end_epoch`) and the losses read at sync points (`flush`).

    Schedules, in one place (`step`): progress = (steps + 1) / total steps for an --epochs run, elapsed / budget for
    a --minutes run; the learning rate and weight decay are the settings' schedules at that progress, and the
    method's own schedules (EMA momentum, temperatures) read the same progress in `optimisation_step`."""

    def __init__(self, method: Method, optimizer: torch.optim.Optimizer, storage: Storage, view_maker: ViewMaker,
                 settings: LoopSettings, log: MetricsLog, epoch_hooks: list[EpochHook],
                 model: torch.nn.Module | None, resume: LoopState | None,
                 checkpoint: Callable[[LoopState], None] | None, pass_view_maker: ViewMaker | None) -> None:
        self.method, self.optimizer, self.settings, self.log = method, optimizer, settings, log
        self.view_maker, self.pass_view_maker, self.epoch_hooks = view_maker, pass_view_maker or view_maker, epoch_hooks
        self.checkpoint, self.fault = checkpoint, injected_fault()
        world = self.world = settings.world
        self.batch = min(settings.batch_size, max(1, len(storage) // world.size))  # per process
        self.steps_per_epoch = max(1, storage.epoch_samples(world.size, self.batch) // (self.batch * world.size))
        self.total_steps = settings.epochs * self.steps_per_epoch if settings.epochs else None
        self.budget_s = settings.minutes * 60 if settings.minutes else None
        self.gen = torch.Generator().manual_seed(settings.seed)  # permutations: the same on every process
        if not world.distributed:
            self.aug_gen = self.gen if settings.device.type == "cpu" else \
                torch.Generator(settings.device).manual_seed(settings.seed)
        else:  # each process augments its own samples with its own stream
            self.aug_gen = torch.Generator(settings.device).manual_seed(settings.seed + 1_000_003 * (world.rank + 1))
        self.generators = {"data": self.gen} if self.aug_gen is self.gen else \
            {"data": self.gen, "augment": self.aug_gen}
        state = self.state = resume or LoopState()
        for name, g in self.generators.items():
            if name in state.generators:
                g.set_state(state.generators[name])
        self.data = storage.to(settings.device)
        self.forward = model if model is not None else method
        self.request = method.view_request()
        self.result = LoopResult(steps=state.steps, samples=state.samples, losses=list(state.losses))
        self.wrote_checkpoint = resume is not None  # a resumed run has one already
        self.epoch, self.first_step, self.perm = state.epoch, state.step_in_epoch, state.perm
        self.epoch_losses = list(state.epoch_losses)
        self.pending: list[tuple[int, int, torch.Tensor]] = []  # (step, epoch, loss on the device) not yet read

    def run(self) -> LoopResult:
        if self.state.finished:
            return finish(self.result, self.state.train_seconds, self.steps_per_epoch)
        self.method.train()
        self.bar = make_progress(self.settings.progress, Budget(self.total_steps, self.budget_s),
                                 self.settings.progress_interval)
        self.bar.start(self.state.steps, self.state.train_seconds)
        self.signals = StopSignals(enabled=self.checkpoint is not None)
        if self.settings.cpu_share is not None:
            self.settings.cpu_share.start()
        self.start = time.perf_counter() - self.state.train_seconds
        self.window_start, self.window_samples = time.perf_counter(), 0
        self.last_ckpt_wall, self.last_ckpt_step = time.perf_counter(), self.state.steps
        self.feed = None  # this epoch's batches (training/feeder.py)
        try:
            done = False
            while not done:
                done = self.train_epoch()
                self.end_epoch(done)
            self.flush()
            seconds = time.perf_counter() - self.start
            if self.checkpoint is not None:
                self.save(self.snapshot(0, finished=True))
            return finish(self.result, seconds, self.steps_per_epoch)
        finally:
            if self.feed is not None:
                self.feed.close()
            self.signals.close()
            self.bar.stop()

    def train_epoch(self) -> bool:
        """The rest of the current epoch (all of it at an epoch start); True when the budget is spent."""
        settings, world = self.settings, self.world
        if self.perm is None:
            self.perm = self.data.epoch_order(self.gen, world.size, self.batch)
            self.epoch_losses, self.first_step = [], 0
            epoch_pass = TrainingSetPass(self.data, self.pass_view_maker, self.request, self.batch, settings.seed,
                                         self.epoch, settings.device)
            before_epoch(self.method, self.epoch, epoch_pass, settings.device, settings.precision)
        self.feed = epoch_batches(self.data, self.perm, self.first_step, self.steps_per_epoch, self.batch, world,
                                  settings.device)
        for i in range(self.first_step, self.steps_per_epoch):
            now = time.perf_counter()
            (elapsed, since_ckpt), (stop,) = sync_values(world, [now - self.start, now - self.last_ckpt_wall],
                                                         [float(self.signals.requested)])
            if stop and self.checkpoint is not None:
                self.save(self.snapshot(i))
                raise TrainingInterrupted(f"interrupted at step {self.result.steps}", self.result.steps)
            if self.budget_s is not None and elapsed >= self.budget_s:
                return True
            self.maybe_checkpoint(i, since_ckpt)
            self.step(i, elapsed)
            if self.total_steps is not None and self.result.steps >= self.total_steps:
                return True
        return False

    def maybe_checkpoint(self, i: int, since_ckpt: float) -> None:
        """A checkpoint before step `i` when `checkpoint_every_steps` or `checkpoint_seconds` asks for one."""
        settings, steps = self.settings, self.result.steps
        if self.checkpoint is not None and steps != self.last_ckpt_step and (
                (settings.checkpoint_every_steps and steps % settings.checkpoint_every_steps == 0)
                or (settings.checkpoint_seconds is not None and since_ckpt >= settings.checkpoint_seconds)):
            self.save(self.snapshot(i))
            self.wrote_checkpoint = True
            self.last_ckpt_wall, self.last_ckpt_step = time.perf_counter(), steps

    def step(self, i: int, elapsed: float) -> None:
        """Step `i` of the epoch: the schedules at this step's progress, the views, one optimisation step."""
        settings, result = self.settings, self.result
        progress = (result.steps + 1) / self.total_steps if self.total_steps else elapsed / self.budget_s
        idx = shard(self.perm, i, self.batch, self.world).to(settings.device)
        views = with_indices(self.view_maker(next(self.feed), self.aug_gen), idx, self.request)
        wd = settings.weight_decay_schedule(progress) if settings.weight_decay_schedule else None
        lr = apply_schedules(self.optimizer, settings.lr_schedule(progress), wd)
        loss, logs = optimisation_step(self.method, self.forward, self.optimizer, views,
                                       StepInfo(result.steps, progress), settings.device, settings.precision)
        if self.fault is not None:
            loss = self.fault(result.steps + 1, loss)
        result.steps += 1
        self.pending.append((result.steps, self.epoch, loss))
        result.samples += len(idx)
        self.window_samples += len(idx)
        if settings.cpu_share is not None:
            settings.cpu_share.maybe_update()
        if result.steps % settings.log_every == 0 or result.steps == 1:
            self.log_step(lr, wd, logs)

    def log_step(self, lr: float, wd: float | None, logs: dict[str, Any]) -> None:
        """A metrics line and a progress update (a sync point: the pending losses are read)."""
        value = self.flush()
        now = time.perf_counter()
        rate = self.window_samples * self.world.size / max(now - self.window_start, 1e-9)
        self.window_start, self.window_samples = now, 0
        extra = {k: float(v) for k, v in logs.items()}
        if wd is not None:
            extra["weight_decay"] = wd
        self.log.write({"step": self.result.steps, "epoch": self.epoch, "lr": lr, "samples_per_s": rate,
                        "elapsed_s": now - self.start, "threads": torch.get_num_threads(), "loss": value, **extra})
        self.bar.update(self.result.steps, self.epoch, value, lr, rate, now - self.start)

    def end_epoch(self, done: bool) -> None:
        """Close the epoch's feed; at a completed epoch: the epoch hooks (not charged to the budget), the epoch
        record, and a checkpoint (the first epoch's always, then at most once a minute) unless training is done."""
        self.feed.close()
        self.perm, self.first_step = None, 0
        self.flush()
        if not self.epoch_losses:
            return
        result, epoch, world = self.result, self.epoch, self.world
        record = {"epoch": epoch, "type": "epoch", "loss": sum(self.epoch_losses) / len(self.epoch_losses),
                  "steps": result.steps, "elapsed_s": time.perf_counter() - self.start}
        hook_start = time.perf_counter()
        for hook in self.epoch_hooks:
            record.update(hook(epoch, self.method))
        if record.get("collapsed") and not result.warnings:
            warn_collapse(result, epoch, record, self.bar)
        self.method.train()
        self.start += time.perf_counter() - hook_start  # monitoring is not charged to the budget
        self.log.write(record)
        self.bar.epoch_end(epoch, record["loss"], result.steps, time.perf_counter() - self.start)
        result.losses.extend(self.epoch_losses)
        self.epoch_losses = []
        self.epoch += 1
        if self.checkpoint is not None and not done:
            (since_ckpt,), _ = sync_values(world, [time.perf_counter() - self.last_ckpt_wall], [])
            if not self.wrote_checkpoint or since_ckpt >= EPOCH_END_CHECKPOINT_S:
                self.save(self.snapshot(0))
                self.wrote_checkpoint = True
                self.last_ckpt_wall, self.last_ckpt_step = time.perf_counter(), result.steps

    def flush(self) -> float:
        """Read the pending losses (the mean over processes), raise on a non-finite one; the last step's loss."""
        if not self.pending:
            return self.epoch_losses[-1] if self.epoch_losses else float("nan")
        values = torch.stack([v for _, _, v in self.pending]).float().tolist()
        if self.world.distributed:  # the loss of the global batch: the mean over processes
            _, totals = sync_values(self.world, [], values)
            values = [t / self.world.size for t in totals]
        for (step, step_epoch, _), value in zip(self.pending, values):
            if not math.isfinite(value):
                raise TrainingError(f"loss became {value} at step {step} (epoch {step_epoch}); "
                                    "try a lower --lr or another --precision")
        self.pending.clear()
        self.epoch_losses.extend(values)
        return values[-1]

    def snapshot(self, step_in_epoch: int, finished: bool = False) -> LoopState:
        self.flush()
        return LoopState(self.result.steps, self.epoch, step_in_epoch, self.result.samples,
                         time.perf_counter() - self.start, finished, self.perm, list(self.epoch_losses),
                         list(self.result.losses), {k: g.get_state() for k, g in self.generators.items()})

    def save(self, state: LoopState) -> None:
        """Write a checkpoint (its writing is not charged to training time)."""
        t0 = time.perf_counter()
        self.checkpoint(state)
        self.start += time.perf_counter() - t0


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
    initial = record.get("embedding_std_initial")
    initial = "" if initial is None else f"; the initial encoder's {initial:.2g}"
    message = (f"warning: embeddings collapsed at epoch {epoch} (mean per-dimension std "
               f"{record.get('embedding_std', float('nan')):.2g}, near zero{initial}): every input maps to about the "
               "same vector; try a lower --lr, a larger --batch-size or another method")
    result.warnings.append(message)
    bar.message(f"selfsup: {message}")


def finish(result: LoopResult, seconds: float, steps_per_epoch: int) -> LoopResult:
    result.seconds = seconds
    result.epochs = result.steps / steps_per_epoch
    result.final_loss = result.losses[-1] if result.losses else float("nan")
    return result
