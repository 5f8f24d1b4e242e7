"""Optimisers over a method's parameter groups (SGD, AdamW, LARS of You et al. 2017) and applying the schedules."""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch
from torch import nn

from ..errors import ConfigError
from ..methods.base import Method, ParameterRoles


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise trust ratios (You et al. 2017, arXiv:1708.03888).

    Parameter groups with `lars_exclude=True` (biases, normalisation) get neither weight decay nor
    adaptation, as in SimCLR, BYOL, Barlow Twins and VICReg.
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.001) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta,
                                      lars_exclude=False))

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad
                if not group["lars_exclude"]:
                    d_p = d_p.add(p, alpha=group["weight_decay"])
                    p_norm, g_norm = torch.norm(p), torch.norm(d_p)
                    trust = torch.where((p_norm > 0) & (g_norm > 0), group["eta"] * p_norm / g_norm,
                                        torch.ones_like(p_norm))
                    d_p = d_p.mul(trust)
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = torch.clone(d_p).detach()
                else:
                    buf.mul_(group["momentum"]).add_(d_p)
                p.add_(buf, alpha=-group["lr"])
        return loss


def parameter_groups(method: nn.Module, weight_decay: float, roles: ParameterRoles = ParameterRoles(),
                     targets: tuple[nn.Module, ...] = (), encoder: nn.Module | None = None) -> list[dict]:
    """Trainable parameters in groups: regular / excluded from decay (1-D: biases, norms, and the modules `roles`
    names), fixed-lr ones, and those of `encoder` apart from the rest (`in_encoder`); the parameters of frozen
    modules, of momentum `targets` and any with requires_grad=False are left out."""
    def ids(modules: tuple[nn.Module, ...]) -> set[int]:
        return {id(p) for m in modules for p in m.parameters()}

    frozen, fixed, no_decay = ids(tuple(roles.frozen) + tuple(targets)), ids(roles.fixed_lr), ids(roles.no_weight_decay)
    in_encoder = ids((encoder,)) if encoder is not None else set()
    groups: dict[tuple[bool, bool, bool], list[torch.Tensor]] = {}
    for p in method.parameters():
        if not p.requires_grad or id(p) in frozen:
            continue
        key = (p.ndim <= 1 or id(p) in no_decay, id(p) in fixed, id(p) in in_encoder)
        groups.setdefault(key, []).append(p)
    return [{"params": ps, "weight_decay": 0.0 if excl else weight_decay, "lars_exclude": excl, "fixed_lr": fixed,
             "in_encoder": enc} for (excl, fixed, enc), ps in sorted(groups.items())]


def scaled_lr(base_lr: float, batch_size: int, rule: str) -> float:
    """Learning rate scaled with the (global) batch size from the paper's batch-256 value."""
    if rule == "linear":
        return base_lr * batch_size / 256
    if rule == "sqrt":
        return base_lr * math.sqrt(batch_size / 256)
    return base_lr


def build_optimizer(method: Method, name: str, lr: float, weight_decay: float, momentum: float = 0.9,
                    excluded_lr_scale: float = 1.0, betas: tuple[float, float] = (0.9, 0.999),
                    encoder_lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """The named optimiser over the method's trainable parameters (as its `parameter_roles` declares); the encoder's
    at lr x `encoder_lr_scale`."""
    targets = tuple(target for _, target in method.momentum_pairs())
    groups = parameter_groups(method, weight_decay, method.parameter_roles(), targets,  # the same groups as ever at 1
                              method.encoder if encoder_lr_scale != 1.0 else None)
    for g in groups:
        g["base_lr"] = (lr * (excluded_lr_scale if g["lars_exclude"] else 1.0)
                        * (encoder_lr_scale if g["in_encoder"] else 1.0))
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, betas=betas)
    raise ConfigError(f"--optimizer must be one of lars, sgd, adamw; got {name!r}")


def apply_schedules(optimizer: torch.optim.Optimizer, lr_factor: float, weight_decay: float | None = None) -> float:
    """Set every group's learning rate to its base rate times `lr_factor` (fixed-lr groups keep the base rate) and,
    when given, the weight decay of every decayed group; returns the current (largest) scheduled lr."""
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] if g.get("fixed_lr") else g["base_lr"] * lr_factor
        if weight_decay is not None and not g["lars_exclude"]:
            g["weight_decay"] = weight_decay
    return max(g["base_lr"] for g in optimizer.param_groups) * lr_factor
