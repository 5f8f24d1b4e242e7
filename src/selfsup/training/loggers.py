"""Where training metrics go: `metrics.jsonl` in the run directory always, and optional sinks beside it.

The loop writes one record per logging step (``{"step", "epoch", "lr", "loss", ...}``) and one per epoch
(``{"type": "epoch", "epoch", "loss", monitor fields ...}``) to a `MetricsLog`. The log appends each record to
`metrics.jsonl` and hands it to every sink named by ``--log`` (`TrainConfig.log`):

- ``tensorboard``: event files in ``RUN/tensorboard/`` through ``torch.utils.tensorboard`` (needs the
  ``tensorboard`` package: ``pip install 'selfsup[tensorboard]'``); step records as ``train/<name>`` at the
  optimiser step, epoch records as ``epoch/<name>`` at the epoch.
- ``mlflow``: the same scalars as MLflow metrics in the active tracking URI (``MLFLOW_TRACKING_URI``, e.g.
  ``sqlite:///mlflow.db``, else MLflow's default), in a run named after the run directory
  (``pip install 'selfsup[mlflow]'``).

Only numeric fields become scalars. A resumed run truncates `metrics.jsonl` to its checkpoint and tells the
sinks the step it continues from, so TensorBoard drops the events logged after the checkpoint.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError

SINKS = ("tensorboard", "mlflow")


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The record's numeric fields (booleans and non-finite values left out), without the step counters."""
    return {k: float(v) for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("step", "epoch")
            and math.isfinite(float(v))}


class TensorBoardSink:
    """Scalars to TensorBoard event files in `folder`."""

    def __init__(self, folder: Path, resume_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--log tensorboard needs the tensorboard package: "
                              "pip install 'selfsup[tensorboard]'") from None
        self.writer = SummaryWriter(log_dir=str(folder), purge_step=resume_step)

    def write(self, record: dict[str, Any]) -> None:
        epoch_record = record.get("type") == "epoch"
        prefix, step = ("epoch", record.get("epoch", 0)) if epoch_record else ("train", record.get("step", 0))
        for name, value in scalars(record).items():
            self.writer.add_scalar(f"{prefix}/{name}", value, global_step=int(step))

    def close(self) -> None:
        self.writer.close()


class MLflowSink:
    """Scalars as MLflow metrics in a run named `name`."""

    def __init__(self, name: str, resume_step: int | None = None) -> None:
        try:
            import mlflow
        except ImportError:
            raise ConfigError("--log mlflow needs the mlflow package: pip install 'selfsup[mlflow]'") from None
        self.mlflow = mlflow
        try:
            self.run = mlflow.start_run(run_name=name)
        except Exception as exc:  # noqa: BLE001 -- MLflow's own errors (tracking URI, store) in one line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"--log mlflow: cannot start an MLflow run ({first})") from None

    def write(self, record: dict[str, Any]) -> None:
        epoch_record = record.get("type") == "epoch"
        prefix, step = ("epoch", record.get("epoch", 0)) if epoch_record else ("train", record.get("step", 0))
        values = {f"{prefix}/{k}": v for k, v in scalars(record).items()}
        if values:
            self.mlflow.log_metrics(values, step=int(step))

    def close(self) -> None:
        self.mlflow.end_run()


def check_sinks(names: list[str]) -> None:
    """Raise ConfigError for an unknown sink name."""
    unknown = [n for n in names if n not in SINKS]
    if unknown:
        raise ConfigError(f"--log {','.join(unknown)}: unknown; choose from {', '.join(SINKS)}")


def open_sinks(names: list[str], run_folder: Path | None, run_name: str,
               resume_step: int | None = None) -> list[Any]:
    """The sinks named in `names`, writing next to the run (in `run_folder`, the run's staging folder)."""
    check_sinks(names)
    if names and run_folder is None:
        raise ConfigError(f"--log {','.join(names)} writes into the run directory: give --out (out= in Python)")
    makers: dict[str, Callable[[], Any]] = {
        "tensorboard": lambda: TensorBoardSink(run_folder / "tensorboard", resume_step),
        "mlflow": lambda: MLflowSink(run_name, resume_step),
    }
    sinks: list[Any] = []
    try:
        for name in dict.fromkeys(names):
            sinks.append(makers[name]())
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


class MetricsLog:
    """metrics.jsonl: one JSON object per logging step and per epoch, flushed as written, and forwarded to sinks."""

    def __init__(self, path: Path | None, truncate_at: int | None = None, sinks: list[Any] | None = None) -> None:
        if path is not None and truncate_at is not None and path.exists() and path.stat().st_size > truncate_at:
            with open(path, "r+b") as f:  # a resumed run drops what was logged after its checkpoint
                f.truncate(truncate_at)
        self.file = open(path, "a", encoding="utf-8") if path is not None else None
        self.sinks = list(sinks or [])

    def position(self) -> int:
        """Bytes written so far (made durable), recorded in checkpoints."""
        if self.file is None:
            return 0
        self.file.flush()
        os.fsync(self.file.fileno())
        return self.file.tell()

    def write(self, record: dict[str, Any]) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        for sink in self.sinks:
            sink.write(record)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        for sink in self.sinks:
            sink.close()
        self.sinks = []
