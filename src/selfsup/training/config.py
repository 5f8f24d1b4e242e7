"""The complete, serialisable description of a training run (what config.yaml holds)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .loggers import check_sinks


@dataclass
class TrainConfig:
    """Every option of `selfsup train`; `config.yaml` of a run re-creates the run exactly."""

    data: str = "digits"
    data_dir: str | None = None
    modality: str | None = None
    method: str = "simclr"
    method_options: dict[str, Any] = field(default_factory=dict)
    encoder: str | None = None
    encoder_options: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    minutes: float | None = None
    batch_size: int = 256
    optimizer: str | None = None
    lr: float | None = None
    weight_decay: float | None = None
    weight_decay_end: float | None = None  # cosine from weight_decay to this value (None: constant)
    warmup_fraction: float = 0.1
    augmentation_strength: float = 1.0
    augmentation: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    batched_views: bool = True
    log_every: int = 10
    select: str = "last"
    monitor: bool = True
    checkpoint_minutes: float | None = 10.0  # a checkpoint every N minutes (None: only --checkpoint-every)
    checkpoint_every_steps: int | None = None  # and/or every N optimiser steps
    sync_bn: bool = False  # under torchrun: BatchNorm statistics over the global batch
    log: list[str] = field(default_factory=list)  # metric sinks beside metrics.jsonl: tensorboard, mlflow

    DEFAULT_EPOCHS = 100

    def validate(self) -> "TrainConfig":
        """Check ranges and combinations; raises ConfigError naming the argument."""
        if self.epochs is not None and self.minutes is not None:
            raise ConfigError("give either --epochs or --minutes, not both")
        if self.epochs is None and self.minutes is None:
            self.epochs = self.DEFAULT_EPOCHS
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        if self.minutes is not None and not self.minutes > 0:
            raise ConfigError(f"--minutes must be > 0, got {self.minutes}")
        if self.batch_size < 2:
            raise ConfigError(f"--batch-size must be >= 2, got {self.batch_size}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr}")
        if self.weight_decay_end is not None and not self.weight_decay_end >= 0:
            raise ConfigError(f"--weight-decay-end must be >= 0, got {self.weight_decay_end}")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"--warmup-fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.precision not in ("fp32", "bf16", "auto"):
            raise ConfigError(f"--precision must be fp32, bf16 or auto, got {self.precision!r}")
        if self.select not in ("last", "rankme"):
            raise ConfigError(f"--select must be 'last' or 'rankme', got {self.select!r}")
        if self.checkpoint_minutes is not None and not self.checkpoint_minutes > 0:
            raise ConfigError(f"--checkpoint-minutes must be > 0, got {self.checkpoint_minutes}")
        if self.checkpoint_every_steps is not None and self.checkpoint_every_steps < 1:
            raise ConfigError(f"--checkpoint-every must be >= 1 step, got {self.checkpoint_every_steps}")
        if not isinstance(self.log, list) or not all(isinstance(n, str) for n in self.log):
            raise ConfigError(f"--log must be a comma-separated list of names, got {self.log!r}")
        check_sinks(self.log)
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda[:N], got {self.device!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        """Read a run's config.yaml (its 'train' section, or a flat mapping)."""
        p = Path(path)
        try:
            doc = yaml.safe_load(p.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{p}: cannot read config ({exc})") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{p}: expected a mapping")
        return cls.from_dict(doc.get("train", doc), str(p))
