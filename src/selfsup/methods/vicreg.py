"""VICReg: Bardes et al. 2022, "Variance-Invariance-Covariance Regularization".

Invariance (MSE between views) + variance (hinge on each dimension's std) + covariance
(off-diagonal penalty) with lambda=25, mu=25, nu=1; LARS lr 0.2 x batch/256, weight decay 1e-6.
Projector 3 layers of 2048 (the paper's 8192 is for ImageNet ResNet-50).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..views import ViewRequest
from .base import Method, OptimizerDefaults, mlp, register_method
from .numerics import full_precision


def variance_term(z: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Mean over features (and positions) of ReLU(1 - sqrt(var + eps)), the variance over the batch (dim 0) of
    z [N, ..., D]."""
    return F.relu(1 - torch.sqrt(z.var(0) + eps)).mean()


def covariance_term(z: torch.Tensor) -> torch.Tensor:
    """Sum of the squared off-diagonal entries of the D x D covariance over the batch (dim 0), / D; z [N, ..., D]
    has one covariance per position, and the terms are averaged over positions."""
    n, d = z.shape[0], z.shape[-1]
    z = z - z.mean(0)
    cov = torch.einsum("n...c,n...d->...cd", z, z) / (n - 1)
    off = cov - torch.diag_embed(torch.diagonal(cov, dim1=-2, dim2=-1))
    return off.square().sum(dim=(-2, -1)).mean() / d


@full_precision
def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, sim_weight: float = 25.0, var_weight: float = 25.0,
                cov_weight: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """lambda * MSE(z1, z2) + mu * mean ReLU(1 - std) + nu * sum of squared off-diagonal covariances / D.

    z1, z2 [N, D]; or [N, ..., D], the batch statistics then taken at each position and averaged over positions
    (VICRegL's matched local features)."""
    invariance = F.mse_loss(z1, z2)
    variance = 0.5 * (variance_term(z1, eps) + variance_term(z2, eps))
    covariance = covariance_term(z1) + covariance_term(z2)
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

    def loss_on_views(self, views, step):
        z1, z2 = (self.projector(h) for h in self.encode(views.global_views))
        if self.distributed:  # batch statistics over every process's batch
            z1, z2 = self.gather(z1), self.gather(z2)
        loss = vicreg_loss(z1, z2, *self.weights)
        return loss, {}
