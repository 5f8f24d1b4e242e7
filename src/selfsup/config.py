"""The complete, serialisable description of a training run (what config.yaml holds)."""
from __future__ import annotations

import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable


from .yaml_io import read_yaml
from .errors import ConfigError, DataError


FLAGS = {"checkpoint_every_steps": "--checkpoint-every", "augmentation_strength": "--aug-strength",
         "method_options": "--method-option", "encoder_options": "--encoder-option", "augmentation": "--augment"}


def option(default: Any, help: str, **cli: Any) -> Any:
    """A TrainConfig field with its command-line help; `cli` holds argparse's `choices` and `metavar`, and `group`
    (fields of one group exclude each other on the command line). A callable default is a default factory."""
    metadata = {"help": help, **cli}
    if callable(default):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


def merge_options(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` applied; option dictionaries (method_options, ...) are merged key by key. The one merge of
    training options: a preset under the caller's options (presets.with_preset, the API), a --config file under the
    command line's flags, a search candidate under the user's options."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def option_kinds() -> dict[str, type]:
    """Each TrainConfig field's plain type, which its command-line flag takes: X for `X | None` (leaving the flag out
    is the None), dict for `dict[str, Any]` (KEY=VALUE items), list for `list[str]`."""
    out = {}
    for name, hint in typing.get_type_hints(TrainConfig).items():
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        out[name] = typing.get_origin(hint) or hint
    return out


def option_flag(name: str) -> str:
    """The command-line spelling of a TrainConfig field (batch_size -> --batch-size; `name:` in a config file)."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def type_name(hint: Any) -> str:
    """'an integer', 'a number', 'an integer or nothing', ... for messages."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # Optional: leaving the option out is the None
        return " or ".join(type_name(a) for a in args if a is not type(None))
    origin = typing.get_origin(hint) or hint
    if origin in (list, tuple) and args:
        return f"a list of {type_name(args[0]).split(' ', 1)[-1]}s"
    return {int: "an integer", float: "a finite number", bool: "true or false", str: "a string", dict: "a mapping",
            list: "a list", tuple: "a list"}.get(origin, getattr(origin, "__name__", str(origin)))


def matches(value: Any, hint: Any) -> bool:
    """Whether `value` (from the command line, YAML or Python) has the annotated type; floats must be finite."""
    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if origin in (list, tuple) or hint in (list, tuple):
        return isinstance(value, (list, tuple)) and (not args or args[-1] is Ellipsis and all(
            matches(v, args[0]) for v in value) or all(matches(v, args[0]) for v in value))
    return isinstance(value, origin or hint) if isinstance(origin or hint, type) else True


def check_typed(values: dict[str, Any], hints: dict[str, Any], flag: Callable[[str], str]) -> None:
    """ConfigError naming the first value whose type does not match its annotation."""
    for name, value in values.items():
        hint = hints.get(name, Any)
        if not matches(value, hint):
            raise ConfigError(f"{flag(name)}: expected {type_name(hint)}, got {value!r}")


#: The metric sinks `--log` may name (training.loggers opens them).
SINKS = ("tensorboard", "mlflow")


def check_sinks(names: list[str]) -> None:
    """Raise ConfigError for an unknown sink name."""
    unknown = [n for n in names if n not in SINKS]
    if unknown:
        raise ConfigError(f"--log {','.join(unknown)}: unknown; choose from {', '.join(SINKS)}")


@dataclass
class TrainConfig:
    """Every option of `selfsup train`; `config.yaml` of a run re-creates the run exactly."""

    data: str = option("digits", "data source, e.g. digits, fashion-mnist, folder:PATH, npy:PATH (default digits)")
    data_dir: str | None = option(None, "where dataset files live (e.g. Fashion-MNIST IDX files)")
    modality: str | None = option(None, "force a modality for ambiguous sources (image, timeseries, tabular, text, "
                                        "graph, audio, points, video)")
    memory_budget: float | None = option(None, "decoded images (folder:, tar:, parquet:, hf:) up to GB are held in "
                                               "memory; larger data is streamed, decoded by worker processes "
                                               "(default: half the memory available)", metavar="GB")
    method: str = option("simclr", "self-supervised method (see `selfsup methods`; default simclr)")
    method_options: dict[str, Any] = option(dict, "method hyper-parameter", metavar="KEY=VALUE")
    encoder: str | None = option(None, "encoder (see `selfsup encoders`; default depends on the data)")
    encoder_options: dict[str, Any] = option(dict, "encoder argument", metavar="KEY=VALUE")
    epochs: int | None = option(None, "number of epochs (default 100)", group="budget")
    minutes: float | None = option(None, "wall-clock training budget; the schedule spans it", group="budget")
    batch_size: int = option(256, "samples per step and per process (default 256; under torchrun the global batch "
                                  "is x processes)")
    optimizer: str | None = option(None, "default: the method's paper", choices=("lars", "sgd", "adamw"))
    lr: float | None = option(None, "learning rate (default: paper value x batch/256)")
    encoder_lr_scale: float = option(1.0, "the encoder trains at lr x this, the method's heads at lr (adapting a "
                                          "pretrained encoder: e.g. --lr 5e-4 --encoder-lr-scale 0.06 gives it 3e-5)")
    weight_decay: float | None = option(None, "default: the method's paper")
    weight_decay_end: float | None = option(None, "weight decay at the end of training, reached on a cosine from "
                                                  "--weight-decay (DINO: 0.04 -> 0.4)")
    warmup_fraction: float = option(0.1, "share of the steps with a linear learning-rate warm-up before the cosine "
                                         "(default 0.1)")
    augmentation_strength: float = option(1.0, "scale augmentation (1 = paper)")
    augmentation: dict[str, Any] = option(dict, "view option of the modality (images: size, local_size, "
                                                "crop_scale=[0.2,1], flip_p, ...)", metavar="KEY=VALUE")
    seed: int = option(0, "seed of the weights, the data order and the views (default 0)")
    device: str = option("auto", "auto (default), cpu or cuda[:N]")
    threads: int | None = option(None, "CPU threads for PyTorch, fixed (default: adaptive, the cores that other "
                                       "processes leave free, re-checked during training)")
    precision: str = option("auto", "fp32, bf16 or auto (default: bf16 where the device computes it natively)",
                            choices=("fp32", "bf16", "auto"))
    channels_last: bool = option(True, "the channels-last memory layout for images (default; --no-channels-last "
                                       "keeps NCHW: channels_last is 1.5x faster measured on CPU)")
    compile: bool = option(False, "torch.compile the encoder (off by default: 0.75x measured on a 2-core CPU)")
    batched_views: bool = option(True, "make a batch's views in one batched call (default; --no-batched-views makes "
                                       "them sample by sample)")
    log_every: int = option(10, "steps between two records of metrics.jsonl (default 10)")
    log_interval: float = option(30.0, "seconds between progress lines when stderr is not a terminal (default 30)")
    select: str = option("last", "keep the last or the best-RankMe checkpoint", choices=("last", "rankme"))
    monitor: bool = option(True, "per-epoch diagnostics (default; --no-monitor skips them)")
    checkpoint_minutes: float | None = option(10.0, "write a checkpoint every N minutes (default 10)")
    checkpoint_every_steps: int | None = option(None, "also write a checkpoint every STEPS optimiser steps",
                                                metavar="STEPS")
    sync_bn: bool = option(False, "under torchrun: BatchNorm statistics over the global batch of all processes")
    norm_statistics: str = option("method", "where the trained encoder's BatchNorm statistics come from: the "
                                  "training views, or re-estimated on the training inputs when training ends "
                                  "(default: the method's choice)", choices=("method", "views", "inputs"))
    log: list[str] = option(list, "metric sinks beside metrics.jsonl, comma-separated: tensorboard "
                                  "(RUN/tensorboard/), mlflow")

    DEFAULT_EPOCHS = 100

    def validate(self) -> "TrainConfig":
        """Check types, ranges and combinations; raises ConfigError naming the argument, the value and what is allowed."""
        hints = typing.get_type_hints(type(self))
        check_typed({f.name: getattr(self, f.name) for f in fields(self)}, hints, option_flag)
        if self.seed < 0 or self.seed >= 2**32:
            raise ConfigError(f"--seed must be in [0, 2^32), got {self.seed}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be >= 1 (or left out: adaptive), got {self.threads}")
        if self.augmentation_strength < 0:
            raise ConfigError(f"--aug-strength must be >= 0 (0: nearly no augmentation), got {self.augmentation_strength}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.log_interval <= 0:
            raise ConfigError(f"--log-interval must be > 0 seconds, got {self.log_interval}")
        if self.log_every < 1:
            raise ConfigError(f"--log-every must be >= 1, got {self.log_every}")
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
        if self.memory_budget is not None and not self.memory_budget >= 0:
            raise ConfigError(f"--memory-budget must be >= 0 GB, got {self.memory_budget}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr}")
        if not self.encoder_lr_scale > 0:
            raise ConfigError(f"--encoder-lr-scale must be > 0, got {self.encoder_lr_scale}")
        if self.weight_decay_end is not None and not self.weight_decay_end >= 0:
            raise ConfigError(f"--weight-decay-end must be >= 0, got {self.weight_decay_end}")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"--warmup-fraction must be in [0, 1), got {self.warmup_fraction}")
        for f in fields(self):  # the declared choices, as the command line's parser checks them
            value, choices = getattr(self, f.name), f.metadata.get("choices")
            if choices and value is not None and value not in choices:
                raise ConfigError(f"{option_flag(f.name)} must be one of {', '.join(choices)}, got {value!r}")
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
            doc = read_yaml(p, "config file")
        except DataError as exc:
            raise ConfigError(f"--config {exc}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{p}: expected a mapping")
        return cls.from_dict(doc.get("train", doc), str(p))
