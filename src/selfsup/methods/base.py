"""The Method interface: what a self-supervised objective declares and the hooks the trainer calls.

A method knows nothing about the modality. It declares the views it needs (`view_request`, a
`views.ViewRequest`) and the encoder protocol it needs (`encoder_kind`, from `selfsup.encoders`), receives a
typed `views.Views` each step, and defines heads, loss and state through the hooks below.
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from ..collectives import gather_with_grad
from ..encoders import Encoder
from ..errors import ConfigError
from ..registry import Registry
from ..schedules import Schedule
from ..views import DatasetPass, ViewRequest, Views

StepLogs = dict[str, torch.Tensor]


@dataclass(frozen=True)
class OptimizerDefaults:
    """A paper's optimiser: name, base learning rate for batch 256, weight decay, momentum."""

    name: str = "sgd"
    lr: float = 0.05
    weight_decay: float = 1e-4
    momentum: float = 0.9
    lr_scaling: str = "linear"  # lr = base_lr * batch / 256 ('linear'), or 'sqrt', or 'none'
    excluded_lr_scale: float = 1.0  # lr multiplier for biases/norm parameters (Barlow Twins: 0.0048 / 0.2)
    weight_decay_end: float | None = None  # weight decay at the end of training, on a cosine (DINO: 0.04 -> 0.4)
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW's (MAE: 0.9, 0.95)


@dataclass(frozen=True)
class TrainingContext:
    """What the trainer tells a method once before training (`Method.setup`)."""

    num_samples: int  # training samples
    batch_size: int  # per process
    world_size: int = 1  # training processes
    total_steps: int | None = None  # optimiser steps planned (None: a time budget)

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size


@dataclass(frozen=True)
class StepInfo:
    """Where a step stands, as the trainer passes it to `loss_on_views`, `before_optimizer_step` and
    `after_optimizer_step`: `step` the 0-based index of that optimiser step since the start of the run (a resumed
    run goes on counting), `progress` in [0, 1] the training progress every schedule of that step reads (the
    learning rate, weight decay, EMA momentum: steps done after it / steps planned, or elapsed / budget). The
    default is the first step, for calls outside the trainer."""

    step: int = 0
    progress: float = 0.0


@dataclass(frozen=True)
class ParameterRoles:
    """How the optimiser treats some of a method's modules (by identity, not by name).

    The targets of `Method.momentum_pairs` are never optimised and need not be listed here.
    """

    frozen: tuple[nn.Module, ...] = ()  # never updated by the optimiser (running statistics, fixed prototypes)
    fixed_lr: tuple[nn.Module, ...] = ()  # kept at the base learning rate, outside the schedule (SimSiam's predictor)
    no_weight_decay: tuple[nn.Module, ...] = ()  # besides biases and normalisation weights, which never decay


@dataclass
class Illustration:
    """Pictures for a report, each tensor shaped like the prepared inputs: `pictures` are inputs or predictions in
    input space (NaN: not shown, e.g. a hidden patch), `maps` one value in [-1, 1] per input position (NaN: none)."""

    pictures: dict[str, torch.Tensor]
    maps: dict[str, torch.Tensor] = field(default_factory=dict)
    caption: str = ""


class Method(nn.Module):
    """Base class: subclasses define `loss_on_views`; every other hook has a default and is declared here.

    Lifecycle, as the trainer drives it:
      `setup(context)` once, before the optimiser is built and before a checkpoint is restored;
      `before_epoch(epoch, data)` at the start of every epoch (not when a run resumes inside one: the state it
      set is in the checkpoint), in eval mode and without gradients, `data` a pass over the whole training set;
      per step: views made as `view_request()` says -> `forward(views, step)` (= `loss_on_views`, `step` a
      `StepInfo`: the step's index and progress, so schedules read inside a loss are the step's own) returns the
      loss and logs as tensors (no host sync inside a step: the trainer reads them only when it logs) -> backward ->
      `before_optimizer_step(step)` (gradient surgery, freezing a layer) -> optimiser step -> every
      (online, target) pair of `momentum_pairs()` moves by EMA with `target_momentum(progress)` (in one place,
      training/step.py) -> `after_optimizer_step(step)` (queues, centres, prototypes);
      checkpoints hold the state dict plus `extra_state()`.
    """

    name: ClassVar[str]
    encoder_kind: ClassVar[type[Encoder]] = Encoder  # the encoder protocol the method needs
    requested_views: ClassVar[ViewRequest] = ViewRequest("instance")  # the views it needs (recipe, counts, extras)
    optimizer: ClassVar[OptimizerDefaults] = OptimizerDefaults()
    #: where the encoder's BatchNorm statistics come from once training ends: "views" (the running averages over
    #: the training views, as trained) or "inputs" (re-estimated on the training inputs as `embed` gives them, for
    #: a method whose views are unlike its inputs: the tiles of an enlarged crop)
    norm_statistics: ClassVar[str] = "views"
    #: encoder options the method sets by default, by encoder name, under the caller's own (`--encoder-option`
    #: wins), e.g. {"gin": {"norm": "none"}}
    encoder_defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.feature_dim = int(encoder.out_dim)
        self.batched_views = True  # one forward per group of equal-shape views (BatchNorm sees them jointly)
        self._rank, self._world_size = 0, 1  # set by the trainer under torchrun (set_world)

    # ---- what the method needs ----
    def view_request(self) -> ViewRequest:
        """The views each step needs: `requested_views`, with the recipe options this instance's hyper-parameters
        set (TS2Vec's masking probability); the recipe and the counts stay those of the class declaration."""
        return self.requested_views

    # ---- the step ----
    def forward(self, views: Views, step: StepInfo = StepInfo()) -> tuple[torch.Tensor, StepLogs]:
        """Loss on one batch's views at `step` and logs (detached 0-d tensors; the trainer adds 'loss' itself).

        Loss functions wear `numerics.full_precision` (float32 under autocast).
        """
        return self.loss_on_views(views, step)

    def loss_on_views(self, views: Views, step: StepInfo) -> tuple[torch.Tensor, StepLogs]:
        raise NotImplementedError

    def encode(self, crops: list[torch.Tensor], encoder: nn.Module | None = None) -> list[torch.Tensor]:
        """Features of every crop, in order. With `batched_views`, one forward per run of consecutive crops of
        the same shape (multi-crop: the global views together, the local views together), so BatchNorm
        normalises each resolution group with that group's batch statistics, as DINO's multi-crop wrapper does;
        otherwise one forward per crop."""
        enc = encoder if encoder is not None else self.encoder
        if not self.batched_views:
            return [enc(v) for v in crops]
        out: list[torch.Tensor] = []
        i = 0
        while i < len(crops):
            j = i + 1
            while j < len(crops) and crops[j].shape == crops[i].shape:
                j += 1
            group = crops[i:j]
            out.extend(enc(torch.cat(group)).chunk(len(group)) if len(group) > 1 else [enc(group[0])])
            i = j
        return out

    # ---- distributed ----
    def set_world(self, rank: int, world_size: int) -> None:
        """Tell the method it is one of `world_size` training processes (the trainer does, under torchrun)."""
        self._rank, self._world_size = int(rank), int(world_size)

    @property
    def distributed(self) -> bool:
        """Whether losses must combine this process's batch with the other processes' (see `gather`)."""
        return self._world_size > 1

    @property
    def rank(self) -> int:
        return self._rank

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """`x` of every training process concatenated along dim 0 in rank order, gradients flowing back to
        each process's own part (identity in a single process).

        Methods whose loss needs the global batch (in-batch negatives, batch statistics) call it on their
        embeddings; the gradient convention is proved in selfsup/collectives.py.
        """
        return gather_with_grad(x) if self.distributed else x

    # ---- lifecycle hooks (defaults: nothing to do) ----
    def setup(self, context: TrainingContext) -> None:
        """Called once before training (and before a checkpoint is restored): size state to the data and batch."""

    def before_epoch(self, epoch: int, data: DatasetPass) -> None:
        """At the start of epoch `epoch` (0-based), before its first step, in eval mode, without gradients: state
        that depends on the whole training set (DeepCluster's k-means over a memory bank, SeLa's self-labelling).
        Iterating `data` yields views of every sample with `indices`; default: nothing."""

    def parameter_roles(self) -> ParameterRoles:
        """Modules the optimiser leaves alone, keeps at a fixed learning rate or does not decay (default: none)."""
        return ParameterRoles()

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) modules: after every optimiser step target <- m target + (1 - m) online (buffers
        copied), m = `target_momentum(progress)`; targets are never optimised. Default: none."""
        return []

    def target_momentum(self, progress: float) -> float:
        """The EMA momentum m after the step at `progress` in [0, 1] (only read when there are momentum pairs)."""
        return 0.0

    def before_optimizer_step(self, step: StepInfo) -> None:
        """After backward, before the optimiser takes `step` (gradients are in place)."""

    def after_optimizer_step(self, step: StepInfo) -> None:
        """After the optimiser took `step` and the EMA of the momentum pairs moved (queues, centres, prototypes)."""

    def illustrate(self, x: torch.Tensor) -> Illustration | None:
        """What the method learned to do, on prepared inputs `x` (no augmentation), for the report: the inputs it
        sees and what it predicts (MAE's reconstruction, I-JEPA's prediction quality per position). Called in eval
        mode without gradients, with torch's generator seeded; default: nothing to show."""
        return None

    def extra_state(self) -> dict[str, float]:
        """Scalar state that is neither a parameter nor a buffer (checkpointed; default: none)."""
        return {}

    def load_extra_state(self, state: dict[str, float]) -> None:
        """Restore what `extra_state` returned."""

    @classmethod
    def hyperparameters(cls) -> dict[str, Any]:
        """The constructor's keyword defaults (the paper's hyper-parameters)."""
        sig = inspect.signature(cls.__init__)
        return {k: p.default for k, p in sig.parameters.items()
                if k not in ("self", "encoder") and p.default is not inspect.Parameter.empty}


methods: Registry[type[Method]] = Registry("method")


def register_method(name: str, summary: str, paper: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator that registers a Method subclass under `name`."""

    def deco(cls: type[Method]) -> type[Method]:
        cls.name = name
        methods.add(name, cls, summary, paper)
        return cls

    return deco


def check_option(method: str, name: str, value: float, low: float, high: float = float("inf"),
                 low_open: bool = True) -> None:
    """ConfigError unless low < value <= high (low <= value with low_open=False): `--method-option NAME=...`."""
    ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bound = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if high != float("inf") else "")
        raise ConfigError(f"--method-option {name}={value!r} for {method!r}: must be {bound}")


def mlp(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2,
        last_bn: bool = False, last_bn_affine: bool = True) -> nn.Sequential:
    """Projector/predictor MLP: (Linear-BN-ReLU) x (num_layers-1), then Linear (+ optional BN)."""
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers - 1):
        layers += [nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim, bias=not last_bn))
    if last_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=last_bn_affine))
    return nn.Sequential(*layers)


def make_target(module: nn.Module) -> nn.Module:
    """A frozen copy of `module`, updated only by EMA."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


def cosine_momentum(base: float, progress: float) -> float:
    """BYOL's schedule: tau = 1 - (1 - base) * (cos(pi * progress) + 1) / 2, rising to 1."""
    return Schedule(base, 1.0)(progress)
