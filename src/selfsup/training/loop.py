"""One training loop for every method and modality: epochs or a wall-clock budget, warm-up + cosine."""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import TrainingError
from ..methods.base import Method
from .optim import lr_factor, set_lr

EpochHook = Callable[[int, Method], dict[str, Any]]


@dataclass
class LoopSettings:
    """What the loop needs beyond the method and data (derived from TrainConfig)."""

    batch_size: int
    epochs: int | None
    minutes: float | None
    warmup_fraction: float
    seed: int
    device: torch.device
    precision: str = "fp32"
    channels_last: bool = False
    log_every: int = 10
    progress: bool = True


@dataclass
class LoopResult:
    """What a finished loop reports."""

    steps: int = 0
    epochs: float = 0.0
    seconds: float = 0.0
    samples: int = 0
    losses: list[float] = field(default_factory=list)
    final_loss: float = float("nan")

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


class MetricsLog:
    """metrics.jsonl: one JSON object per logging step and per epoch, flushed as written."""

    def __init__(self, path: Path | None) -> None:
        self.file = open(path, "a", encoding="utf-8") if path is not None else None

    def write(self, record: dict[str, Any]) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for the network; losses cast to float32 themselves."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def progress_bar(enabled: bool):
    """A rich progress bar on stderr (loss, lr, samples/s), or a no-op."""
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                    TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
                    console=Console(stderr=True), transient=False)


def run_loop(method: Method, optimizer: torch.optim.Optimizer, data: torch.Tensor, view_maker: Callable,
             settings: LoopSettings, log: MetricsLog, epoch_hooks: list[EpochHook] = (),
             mask: torch.Tensor | None = None) -> LoopResult:
    """Train `method` on storage tensor `data` (never its labels) until the epoch or time budget is spent."""
    n = len(data)
    batch = min(settings.batch_size, n)
    steps_per_epoch = max(1, n // batch)
    total_steps = settings.epochs * steps_per_epoch if settings.epochs else None
    budget_s = settings.minutes * 60 if settings.minutes else None
    gen = torch.Generator().manual_seed(settings.seed)
    aug_gen = gen if settings.device.type == "cpu" else torch.Generator(settings.device).manual_seed(settings.seed)
    data_on_device = data.to(settings.device) if settings.device.type != "cpu" else data
    mask_on_device = mask.to(settings.device) if mask is not None else None
    result = LoopResult()
    method.train()
    bar = progress_bar(settings.progress)
    task = bar.add_task("train", total=total_steps or budget_s, status="") if bar else None
    if bar:
        bar.start()
    start = time.perf_counter()
    window_start, window_samples = start, 0
    try:
        epoch = 0
        done = False
        while not done:
            perm = torch.randperm(n, generator=gen)
            epoch_losses = []
            for i in range(steps_per_epoch):
                elapsed = time.perf_counter() - start
                if budget_s is not None and elapsed >= budget_s:
                    done = True
                    break
                progress = (result.steps + 1) / total_steps if total_steps else elapsed / budget_s
                lr = set_lr(optimizer, lr_factor(progress, settings.warmup_fraction))
                idx = perm[i * batch:(i + 1) * batch].to(settings.device)
                x = data_on_device[idx]
                kwargs = {"mask": mask_on_device[idx]} if mask_on_device is not None else {}
                views = view_maker(x, aug_gen, **kwargs)
                if settings.channels_last and views[0].ndim == 4:
                    views = [v.contiguous(memory_format=torch.channels_last) for v in views]
                with autocast_context(settings.device, settings.precision):
                    loss, logs = method(views)
                if not math.isfinite(logs["loss"]):
                    raise TrainingError(f"loss became {logs['loss']} at step {result.steps} (epoch {epoch}); "
                                        "try a lower --lr or another --precision")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                method.update_target(progress)
                result.steps += 1
                result.samples += len(idx)
                window_samples += len(idx)
                epoch_losses.append(logs["loss"])
                if result.steps % settings.log_every == 0 or result.steps == 1:
                    now = time.perf_counter()
                    rate = window_samples / max(now - window_start, 1e-9)
                    window_start, window_samples = now, 0
                    log.write({"step": result.steps, "epoch": epoch, "lr": lr, "samples_per_s": rate,
                               "elapsed_s": now - start, **logs})
                    if bar:
                        bar.update(task, completed=result.steps if total_steps else min(now - start, budget_s),
                                   status=f"loss {logs['loss']:.4f} lr {lr:.3g} {rate:,.0f} samples/s")
                if total_steps is not None and result.steps >= total_steps:
                    done = True
                    break
            if epoch_losses:
                train_seconds = time.perf_counter() - start
                record = {"epoch": epoch, "type": "epoch", "loss": sum(epoch_losses) / len(epoch_losses),
                          "steps": result.steps, "elapsed_s": train_seconds}
                hook_start = time.perf_counter()
                for hook in epoch_hooks:
                    record.update(hook(epoch, method))
                method.train()
                start += time.perf_counter() - hook_start  # monitoring is not charged to the budget
                log.write(record)
                result.losses.extend(epoch_losses)
                epoch += 1
        result.seconds = time.perf_counter() - start
        result.epochs = result.steps / steps_per_epoch
        result.final_loss = result.losses[-1] if result.losses else float("nan")
    finally:
        if bar:
            bar.stop()
    return result
