"""VICReg: Bardes et al. 2022, "Variance-Invariance-Covariance Regularization".

Invariance (MSE between views) + variance (hinge on each dimension's std) + covariance
(off-diagonal penalty) with lambda=25, mu=25, nu=1; LARS lr 0.2 x batch/256, weight decay 1e-6.
Projector 3 layers of 2048 (the paper's 8192 is for ImageNet ResNet-50).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..views import ViewRequest
from .barlow_twins import off_diagonal
from .base import Method, OptimizerDefaults, mlp, register_method
from .numerics import full_precision


@full_precision
def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, sim_weight: float = 25.0, var_weight: float = 25.0,
                cov_weight: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """lambda * MSE(z1, z2) + mu * mean ReLU(1 - std) + nu * sum of squared off-diagonal covariances / D."""
    n, d = z1.shape
    invariance = F.mse_loss(z1, z2)
    z1 = z1 - z1.mean(0)
    z2 = z2 - z2.mean(0)
    std1 = torch.sqrt(z1.var(0) + eps)
    std2 = torch.sqrt(z2.var(0) + eps)
    variance = 0.5 * (F.relu(1 - std1).mean() + F.relu(1 - std2).mean())
    cov1 = z1.T @ z1 / (n - 1)
    cov2 = z2.T @ z2 / (n - 1)
    covariance = off_diagonal(cov1).pow(2).sum() / d + off_diagonal(cov2).pow(2).sum() / d
    return sim_weight * invariance + var_weight * variance + cov_weight * covariance


@register_method("vicreg", "Variance-invariance-covariance regularisation of two views' projections.",
                 "Bardes et al. 2022, arXiv:2105.04906")
class VICReg(Method):
    optimizer = OptimizerDefaults("lars", lr=0.2, weight_decay=1e-6)
    requested_views = ViewRequest("asymmetric")

    def __init__(self, encoder, proj_dim: int = 2048, proj_hidden_dim: int = 2048, sim_weight: float = 25.0,
                 var_weight: float = 25.0, cov_weight: float = 1.0) -> None:
        super().__init__(encoder)
        self.weights = (sim_weight, var_weight, cov_weight)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, num_layers=3)

    def loss_on_views(self, views):
        z1, z2 = (self.projector(h) for h in self.encode(views.global_views))
        if self.distributed:  # batch statistics over every process's batch
            z1, z2 = self.gather(z1), self.gather(z2)
        loss = vicreg_loss(z1, z2, *self.weights)
        return loss, {}
