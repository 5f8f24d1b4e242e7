"""BYOL: Grill et al. 2020, "Bootstrap Your Own Latent".

An online network with a predictor regresses an EMA target network's projection of the other
view. Projector and predictor 4096-256; target momentum rises from 0.99 to 1 on a cosine schedule
(the paper's 0.996 base is tuned for 300-1000 ImageNet epochs; 0.99 is its value for shorter
runs and solo-learn's for CIFAR); LARS lr 0.2 x batch/256, weight decay 1.5e-6.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


from ..views import ViewRequest
from .base import OptimizerDefaults, mlp, register_method
from .momentum import OnlineTargetMethod
from .numerics import full_precision


@full_precision
def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z) averaged over the batch; z is the (detached) target projection."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=1)).mean()


@register_method("byol", "Predict an EMA target network's projection of the other view (no negatives).",
                 "Grill et al. 2020, arXiv:2006.07733")
class BYOL(OnlineTargetMethod):
    optimizer = OptimizerDefaults("lars", lr=0.2, weight_decay=1.5e-6)
    requested_views = ViewRequest("asymmetric")

    def __init__(self, encoder, proj_hidden_dim: int = 4096, proj_dim: int = 256,
                 pred_hidden_dim: int = 4096, base_momentum: float = 0.99) -> None:
        super().__init__(encoder, base_momentum)
        self.make_targets(mlp(self.feature_dim, proj_hidden_dim, proj_dim), mlp(proj_dim, pred_hidden_dim, proj_dim))

    def loss_on_views(self, views, step):
        p1, p2, t1, t2 = self.predictions_and_targets(views)
        loss = 0.5 * (byol_loss(p1, t2) + byol_loss(p2, t1))
        return loss, {}
