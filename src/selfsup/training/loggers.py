"""Where training metrics go: `metrics.jsonl` in the run directory always, and optional sinks beside it.

The loop writes one record per logging step (``{"step", "epoch", "lr", "loss", ...}``) and one per epoch
(``{"type": "epoch", "epoch", "loss", monitor fields ...}``) to a `MetricsLog`. The log appends each record to
`metrics.jsonl` and hands it to every sink named by ``--log`` (`TrainConfig.log`):

- ``tensorboard``: event files in ``RUN/tensorboard/`` through ``torch.utils.tensorboard`` (needs the
  ``tensorboard`` package: ``pip install 'selfsup[tensorboard]'``); step records as ``train/<name>`` and epoch
  records as ``epoch/<name>``, both at the optimiser step (an epoch record at the step that ended it).
- ``mlflow``: the same scalars as MLflow metrics in the active tracking URI (``MLFLOW_TRACKING_URI``, e.g.
  ``sqlite:///mlflow.db``, else MLflow's default), in a run named after the run directory
  (``pip install 'selfsup[mlflow]'``).

Only numeric fields become scalars. A resumed run truncates `metrics.jsonl` to its checkpoint and tells the
sinks the step of the checkpoint, so TensorBoard drops the events logged after it (a resumed MLflow run is a
new MLflow run of the same name). A sink that fails while training (a tracking server gone, a full disk) is
reported once on stderr and dropped: metrics.jsonl and training go on.
"""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable

from ..artifacts import named_os_error
from ..config import check_sinks
from ..errors import ConfigError



def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The record's numeric fields (booleans and non-finite values left out), without the step counters."""
    return {k: float(v) for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("step", "epoch")
            and math.isfinite(float(v))}


def where(record: dict[str, Any]) -> tuple[str, int]:
    """A record's tag prefix and its x value, the optimiser step: 'train' at 'step', 'epoch' at the epoch's 'steps'."""
    if record.get("type") == "epoch":
        return "epoch", int(record.get("steps", 0))
    return "train", int(record.get("step", 0))


class TensorBoardSink:
    """Scalars to TensorBoard event files in `folder`."""

    def __init__(self, folder: Path, resume_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--log tensorboard needs the tensorboard package: "
                              "pip install 'selfsup[tensorboard]'") from None
        # events after the checkpoint's step were logged by the interrupted run and are logged again
        self.writer = SummaryWriter(log_dir=str(folder), purge_step=None if resume_step is None else resume_step + 1)

    def write(self, record: dict[str, Any]) -> None:
        prefix, step = where(record)
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
            self.run = mlflow.start_run(run_name=name, nested=mlflow.active_run() is not None)
        except Exception as exc:  # noqa: BLE001 -- MLflow's own errors (tracking URI, store) in one line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"--log mlflow: cannot start an MLflow run ({first})") from None

    def write(self, record: dict[str, Any]) -> None:
        prefix, step = where(record)
        values = {f"{prefix}/{k}": v for k, v in scalars(record).items()}
        if values:
            self.mlflow.log_metrics(values, step=int(step))

    def close(self) -> None:
        self.mlflow.end_run()


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
            line = json.dumps(record) + "\n"
            try:
                self.file.write(line)
                self.file.flush()
            except OSError as exc:  # a full disk: name the file (a resume truncates the torn line)
                raise named_os_error(exc, Path(self.file.name), len(line)) from None
        for sink in list(self.sinks):
            try:
                sink.write(record)
            except Exception as exc:  # noqa: BLE001 -- a monitoring sink must not stop training (or hang torchrun)
                self.sinks.remove(sink)
                print(f"selfsup: warning: {type(sink).__name__} failed and is dropped "
                      f"({type(exc).__name__}: {exc}); metrics.jsonl goes on", file=sys.stderr, flush=True)

    def close(self) -> None:
        try:
            if self.file is not None:
                self.file.close()
        except OSError:  # a full disk: the unwritten tail is lost, and a resume truncates to its checkpoint anyway
            pass
        finally:
            for sink in self.sinks:
                sink.close()
            self.sinks = []
