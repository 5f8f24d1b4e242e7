"""One optimisation step, the same for every method, in the order `Method`'s docstring promises.

forward under autocast (the losses switch it off themselves) -> backward -> `before_optimizer_step` ->
optimiser step -> EMA of every (online, target) pair the method declares, with its `target_momentum` ->
`after_optimizer_step`. Nothing here reads a tensor on the host: the loss and logs come back as tensors and
the loop reads them only when it logs, checkpoints or ends an epoch.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..methods.base import Method, StepInfo
from ..views import Views


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for the network; the loss functions switch it off (methods/numerics.full_precision)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target = momentum * target + (1 - momentum) * online for parameters; float buffers copied from online."""
    t_params = list(target.parameters())
    o_params = list(online.parameters())
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, o_params, alpha=1.0 - momentum)
    for tb, ob in zip(target.buffers(), online.buffers()):
        tb.copy_(ob)


def optimisation_step(method: Method, forward: nn.Module, optimizer: torch.optim.Optimizer, views: Views,
                      step: StepInfo, device: torch.device, precision: str
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
    """Step `step` on `views`; `forward` is what runs the method (its DDP wrapper under torchrun).

    Returns the detached loss and the method's logs (plus 'target_momentum' when the method has targets).
    """
    with autocast_context(device, precision):
        loss, logs = forward(views, step)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    method.before_optimizer_step(step)
    optimizer.step()
    pairs = method.momentum_pairs()
    out: dict[str, torch.Tensor | float] = dict(logs)
    if pairs:
        momentum = method.target_momentum(step.progress)
        for online, target in pairs:
            ema_update(target, online, momentum)
        out["target_momentum"] = momentum
    method.after_optimizer_step(step)
    return loss.detach(), out
