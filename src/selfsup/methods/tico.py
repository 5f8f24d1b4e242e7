"""TiCo: Zhu et al. 2022, "TiCo: Transformation Invariance and Covariance Contrast for Self-Supervised Visual
Representation Learning".

The paper's algorithm, per batch of unit-norm projections z1 (online network, view 1) and z2 (view 2):
    B = z1^T z1 / N                      (the batch's second-moment matrix, without gradient)
    C = beta C + (1 - beta) B            (a running covariance: an implicit memory bank of past batches)
    loss = -mean_i <z1_i, z2_i> + rho * mean_i z1_i^T C z1_i
The second term contrasts each embedding with the embeddings of past batches (TiCo as MoCo with an unbounded
queue). C is a buffer: the loss reads the updated matrix, and the buffer takes that value after the optimiser
step, outside autograd; it starts at zero.

Defaults: beta 0.9, the paper's, and rho 20, the value of the TiCo code LightlySSL's loss was written from
(sayannag/TiCo-pytorch) and of LightlySSL's earlier releases (1.6 defaults to 8); the paper's projector 4096-256
(Linear-BN-ReLU-Linear); view 2 encoded by an EMA copy of the encoder
and projector, as in BYOL, with momentum rising from 0.99 to 1 on a cosine (BYOL's schedule as selfsup runs it);
BYOL's views and optimiser (LARS, lr 0.2 x batch/256, weight decay 1.5e-6). The loss is the paper's,
one-directional (z1 from the online network, z2 from the target), without a symmetric second term; LightlySSL's
TiCoLoss adds the constant 1 to it (the same gradients). Across processes the projections of every process are
gathered, so C and the loss are those of the global batch on every process.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..schedules import Schedule
from ..views import ViewRequest
from .base import Method, OptimizerDefaults, StepInfo, check_option, make_target, mlp, register_method
from .numerics import full_precision


def updated_covariance(z1: torch.Tensor, covariance: torch.Tensor, beta: float) -> torch.Tensor:
    """beta C + (1 - beta) z1^T z1 / N over unit-norm z1, without gradient."""
    z = F.normalize(z1.detach(), dim=1)
    return beta * covariance + (1 - beta) * (z.T @ z) / z.shape[0]


@full_precision
def tico_loss(z1: torch.Tensor, z2: torch.Tensor, covariance: torch.Tensor, beta: float = 0.9,
              rho: float = 20.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(-mean cos(z1, z2) + rho mean_i z1_i^T C z1_i, C) with z1, z2 normalised and C = beta `covariance` +
    (1 - beta) z1^T z1 / N, the updated covariance (no gradient), which the caller keeps for the next step."""
    covariance = updated_covariance(z1, covariance.detach(), beta)
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    invariance = -(z1 * z2).sum(dim=1).mean()
    contrast = ((z1 @ covariance) * z1).sum(dim=1).mean()
    return invariance + rho * contrast, covariance


@register_method("tico", "Transformation invariance plus contrast against a running covariance of past embeddings.",
                 "Zhu et al. 2022, arXiv:2206.10698")
class TiCo(Method):
    optimizer = OptimizerDefaults("lars", lr=0.2, weight_decay=1.5e-6)
    requested_views = ViewRequest("asymmetric")

    def __init__(self, encoder, proj_hidden_dim: int = 4096, proj_dim: int = 256, beta: float = 0.9,
                 rho: float = 20.0, base_momentum: float = 0.99) -> None:
        super().__init__(encoder)
        check_option("tico", "beta", beta, 0.0, 1.0, low_open=False)
        check_option("tico", "rho", rho, 0.0, low_open=False)
        check_option("tico", "base_momentum", base_momentum, 0.0, 1.0, low_open=False)
        self.beta, self.rho = beta, rho
        self.momentum = Schedule(base_momentum, 1.0)  # cosine from base_momentum to 1
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim)
        self.target_encoder = make_target(self.encoder)
        self.target_projector = make_target(self.projector)
        self.register_buffer("covariance", torch.zeros(proj_dim, proj_dim))
        self.pending_covariance: torch.Tensor | None = None  # this step's C, kept after the optimiser step

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoder, self.target_encoder), (self.projector, self.target_projector)]

    def target_momentum(self, progress: float) -> float:
        return self.momentum(progress)

    def loss_on_views(self, views, step):
        first, second = views.global_views
        z1 = self.projector(self.encode([first])[0])
        with torch.no_grad():
            z2 = self.target_projector(self.encode([second], self.target_encoder)[0])
        if self.distributed:  # C and the loss of the global batch, identical on every process
            z1, z2 = self.gather(z1), self.gather(z2)
        loss, self.pending_covariance = tico_loss(z1, z2, self.covariance, self.beta, self.rho)
        return loss, {}

    @torch.no_grad()
    def after_optimizer_step(self, step: StepInfo) -> None:
        if self.pending_covariance is not None:
            self.covariance.copy_(self.pending_covariance)
            self.pending_covariance = None
