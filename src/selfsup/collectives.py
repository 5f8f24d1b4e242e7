"""Collectives with gradients, for losses that need the global batch under torchrun (training/distributed.py).

Why the gradients are exact. Process r computes a loss L_r on its local batch such that the mean
over processes, (1/R) sum_r L_r, equals the single-process loss L on the concatenated global batch
(SimCLR: the local anchors' NT-Xent against the candidates of all processes; VICReg / Barlow
Twins: the loss of the gathered global batch, identical on every process; per-sample losses such
as BYOL's: the local mean). Every cross-process exchange with a gradient (`gather_with_grad`,
`all_reduce_with_grad`) sums the incoming gradients over processes in its backward pass, so
process r's backward yields the part of d(sum_r L_r)/d(theta) that flows through its own forward;
DDP averages these over the R processes, which gives exactly dL/d(theta) of the single-process run.

`sinkhorn` (equal-mass assignments: SwAV's and MSN's codes, DINOv2's targets, the equal-size clusters of
evaluation/spectral.py) sums over every process's rows when asked, so each process gets its rows of the codes of
the global batch.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along dim 0; backward sums the gradients over processes and keeps this process's slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


class _AllReduceWithGrad(torch.autograd.Function):
    """Sum over processes; backward sums the gradients over processes too."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = x.contiguous().clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's `x` (same shape everywhere) along dim 0, rank order; gradients flow back."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


def all_reduce_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Sum of `x` over processes, differentiable."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _AllReduceWithGrad.apply(x)


@torch.no_grad()
def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """The sum of `x` over processes, without a gradient (statistics such as DINO's centre); `x` itself in one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    x = x.contiguous().clone()
    dist.all_reduce(x)
    return x


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3, distributed: bool = False
             ) -> torch.Tensor:
    """Codes [B, K] whose columns (prototypes) get equal mass and whose rows (samples) sum to 1.

    Q = exp(scores / epsilon)^T is alternately normalised over prototypes and samples; with `distributed` the
    sums run over every process's rows (the global batch), so every process gets its rows of the codes one
    process would compute on the concatenated batch.
    """
    reduce = all_reduce_sum if distributed else (lambda x: x)
    q = torch.exp(scores.float() / epsilon).T  # K x B; scores are cosines in [-1, 1]: at most e^20 for eps 0.05
    k = q.shape[0]
    b = reduce(torch.tensor([float(q.shape[1])], device=q.device))
    q = q / reduce(q.sum().reshape(1))
    for _ in range(iterations):
        q = q / reduce(q.sum(dim=1, keepdim=True)) / k  # every prototype gets mass 1/K
        q = q / q.sum(dim=0, keepdim=True) / b  # every sample mass 1/B
    return (q * b).T
