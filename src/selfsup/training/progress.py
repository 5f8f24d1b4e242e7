"""What a person watching training sees: a rich progress bar on a terminal, plain lines in a log otherwise.

With stderr redirected (a cluster job, `nohup`, CI) the bar would print nothing useful, so a line is written
every `interval` seconds (at the next logged step) with epoch, step, loss, samples/s, elapsed time and ETA, and
one at the end of every epoch. `--quiet` silences both.
"""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def clock(seconds: float) -> str:
    """75 -> '1:15', 3725 -> '1:02:05'."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """The interface the loop drives (this base class shows nothing: --quiet)."""

    def start(self, steps: int, elapsed: float) -> None:
        """Training starts (or resumes) at `steps` done and `elapsed` seconds."""

    def update(self, steps: int, epoch: int, loss: float, lr: float, rate: float, elapsed: float) -> None:
        """A logged step: the loss of that step, the learning rate, samples/s over the last window."""

    def epoch_end(self, epoch: int, loss: float, steps: int, elapsed: float) -> None:
        """An epoch finished with mean loss `loss`."""

    def message(self, text: str) -> None:
        """A line for the person (a warning), printed without breaking the display."""
        print(text, file=sys.stderr, flush=True)

    def stop(self) -> None:
        """Training ended (or stopped)."""


class Budget:
    """Total work and how far along a run is: steps for --epochs, seconds for --minutes."""

    def __init__(self, total_steps: int | None, budget_s: float | None) -> None:
        self.total_steps, self.budget_s = total_steps, budget_s

    def fraction(self, steps: int, elapsed: float) -> float:
        if self.total_steps:
            return min(1.0, steps / self.total_steps)
        return min(1.0, elapsed / self.budget_s) if self.budget_s else 0.0

    def eta(self, steps: int, elapsed: float) -> float | None:
        if self.budget_s:
            return max(0.0, self.budget_s - elapsed)
        if self.total_steps and steps > 0:
            return elapsed / steps * (self.total_steps - steps)
        return None


class LineProgress(Progress):
    """Plain progress lines on a stream that is not a terminal."""

    def __init__(self, budget: Budget, interval: float = 30.0, stream: TextIO | None = None) -> None:
        self.budget, self.interval = budget, float(interval)
        self.stream = stream or sys.stderr
        self.last = -float("inf")

    def _line(self, text: str) -> None:
        print(f"selfsup: {text}", file=self.stream, flush=True)

    def update(self, steps: int, epoch: int, loss: float, lr: float, rate: float, elapsed: float) -> None:
        now = time.perf_counter()
        if now - self.last < self.interval:
            return
        self.last = now
        total = f"/{self.budget.total_steps}" if self.budget.total_steps else ""
        eta = self.budget.eta(steps, elapsed)
        self._line(f"epoch {epoch} step {steps}{total} ({100 * self.budget.fraction(steps, elapsed):.0f}%): loss "
                   f"{loss:.4f}, lr {lr:.3g}, {rate:,.0f} samples/s, elapsed {clock(elapsed)}"
                   + (f", ETA {clock(eta)}" if eta is not None else ""))

    def epoch_end(self, epoch: int, loss: float, steps: int, elapsed: float) -> None:
        self._line(f"epoch {epoch} done: mean loss {loss:.4f}, {steps} steps, elapsed {clock(elapsed)}")

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class BarProgress(Progress):
    """A rich progress bar on stderr (a terminal)."""

    def __init__(self, budget: Budget) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress as Bar, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.budget = budget
        self.bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                       TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[status]}"),
                       console=Console(stderr=True), transient=False)
        self.task: Any = None

    def start(self, steps: int, elapsed: float) -> None:
        b = self.budget
        self.task = self.bar.add_task("train", total=b.total_steps or b.budget_s, status="",
                                      completed=steps if b.total_steps else elapsed)
        self.bar.start()

    def update(self, steps: int, epoch: int, loss: float, lr: float, rate: float, elapsed: float) -> None:
        b = self.budget
        self.bar.update(self.task, completed=steps if b.total_steps else min(elapsed, b.budget_s or elapsed),
                        status=f"loss {loss:.4f} lr {lr:.3g} {rate:,.0f} samples/s")

    def message(self, text: str) -> None:
        self.bar.console.print(text, markup=False, highlight=False)

    def stop(self) -> None:
        self.bar.stop()


def make_progress(enabled: bool, budget: Budget, interval: float = 30.0) -> Progress:
    """The bar on a terminal, lines elsewhere, nothing when disabled (--quiet, or a process other than rank 0)."""
    if not enabled:
        return Progress()
    return BarProgress(budget) if sys.stderr.isatty() else LineProgress(budget, interval)
