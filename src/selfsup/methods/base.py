"""The Method interface: heads + loss (+ target network / queue) on encoder outputs of views.

A method knows nothing about the modality: it receives a list of view tensors and an encoder
whose forward maps a batch to [B, out_dim] features.
"""
from __future__ import annotations

import copy
import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from ..registry import Registry


@dataclass(frozen=True)
class OptimizerDefaults:
    """A paper's optimiser: name, base learning rate for batch 256, weight decay, momentum."""

    name: str = "sgd"
    lr: float = 0.05
    weight_decay: float = 1e-4
    momentum: float = 0.9
    lr_scaling: str = "linear"  # lr = base_lr * batch / 256 ('linear'), or 'sqrt', or 'none'
    excluded_lr_scale: float = 1.0  # lr multiplier for biases/norm parameters (Barlow Twins: 0.0048 / 0.2)


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
class ParameterRoles:
    """How the optimiser treats a method's parameters, by name prefix (e.g. 'target_encoder.')."""

    frozen: tuple[str, ...] = ()  # never updated by the optimiser (EMA targets, running averages)
    fixed_lr: tuple[str, ...] = ()  # kept at the base learning rate, outside the schedule (SimSiam's predictor)


class Method(nn.Module):
    """Base class: subclasses define `loss_on_views`; the other hooks below are optional and declared here.

    Lifecycle: `setup(context)` once before training; per step the trainer calls the method (its forward:
    `loss_on_views`), steps the optimiser over the parameters `parameter_roles` leaves trainable, then calls
    `update_target(progress)`; checkpoints hold the state dict plus `extra_state()`.
    """

    name: ClassVar[str]
    view_style: ClassVar[str] = "simclr"  # augmentation recipe the paper used
    num_views: ClassVar[int] = 2
    optimizer: ClassVar[OptimizerDefaults] = OptimizerDefaults()

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.feature_dim = int(encoder.out_dim)
        self.batched_views = True  # one forward for all views (BatchNorm sees them jointly)
        self._rank, self._world_size = 0, 1  # set by the trainer under torchrun (set_world)

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
        embeddings; the gradient convention is explained in training/distributed.py.
        """
        if not self.distributed:
            return x
        from ..training.distributed import gather_with_grad

        return gather_with_grad(x)

    def encode(self, views: list[torch.Tensor], encoder: nn.Module | None = None) -> list[torch.Tensor]:
        """Encode every view; in one concatenated forward when `batched_views` (faster)."""
        enc = encoder if encoder is not None else self.encoder
        if self.batched_views and len(views) > 1:
            return list(enc(torch.cat(views)).chunk(len(views)))
        return [enc(v) for v in views]

    def forward(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss on a list of views, and scalar logs; loss functions wear `numerics.full_precision` (float32)."""
        return self.loss_on_views(views)

    def loss_on_views(self, views: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def setup(self, context: TrainingContext) -> None:
        """Called once before training (and before a checkpoint is restored): size state to the data and batch."""

    def parameter_roles(self) -> ParameterRoles:
        """Which parameters the optimiser leaves alone or keeps at a fixed learning rate (default: none)."""
        return ParameterRoles()

    def update_target(self, progress: float) -> None:
        """Called after every optimiser step with training progress in [0, 1] (EMA targets, queues)."""

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


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target = momentum * target + (1 - momentum) * online, for parameters and float buffers."""
    t_params = list(target.parameters())
    o_params = list(online.parameters())
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, o_params, alpha=1.0 - momentum)
    for tb, ob in zip(target.buffers(), online.buffers()):
        tb.copy_(ob)


def cosine_momentum(base: float, progress: float) -> float:
    """BYOL's schedule: tau = 1 - (1 - base) * (cos(pi * progress) + 1) / 2, rising to 1."""
    return 1.0 - (1.0 - base) * (math.cos(math.pi * min(max(progress, 0.0), 1.0)) + 1.0) / 2.0
