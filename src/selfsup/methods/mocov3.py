"""MoCo v3: Chen, Xie & He 2021, "An Empirical Study of Training Self-Supervised Vision Transformers" (ICCV,
arXiv:2104.02057).

A query encoder (backbone, 3-layer projector 4096-256 with BatchNorm, 2-layer predictor 4096-256) and a
momentum key encoder (EMA of backbone and projector, momentum 0.99 -> 1 on a cosine). No queue: the keys
of the batch (gathered from every process) are the negatives. The loss is symmetrised,
ctr(q1, k2) + ctr(q2, k1) with ctr(q, k) = 2 T CrossEntropy(q k^T / T, diagonal), temperature T = 1.0
(the paper's ResNet-50 value; 0.2 for ViTs). LARS, lr 0.3 x batch/256 (ResNet recipe), weight decay 1.5e-6;
BYOL's asymmetric augmentation.

Departure: momentum 0.99 instead of 0.99 -> 0.996 start for short runs (the paper's ResNet base is 0.99 too).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..views import ViewRequest
from .base import OptimizerDefaults, check_option, mlp, register_method
from .momentum import OnlineTargetMethod
from .numerics import full_precision


@full_precision
def mocov3_loss(q: torch.Tensor, k: torch.Tensor, temperature: float = 1.0, offset: int = 0) -> torch.Tensor:
    """2 T x cross entropy of q's similarities to all keys k (row i's positive: key offset + i), cosine / T.

    Under torchrun `k` holds the keys of every process (rank order) and `offset` is this process's first row.
    """
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    logits = q @ k.T / temperature
    targets = torch.arange(q.shape[0], device=q.device) + offset
    return 2 * temperature * F.cross_entropy(logits, targets)


@register_method("mocov3", "Contrastive with a predictor and a momentum key encoder; the batch's keys are the "
                 "negatives (no queue).", "Chen, Xie & He 2021, arXiv:2104.02057")
class MoCoV3(OnlineTargetMethod):
    requested_views = ViewRequest("asymmetric")
    optimizer = OptimizerDefaults("lars", lr=0.3, weight_decay=1.5e-6)

    def __init__(self, encoder, temperature: float = 1.0, proj_hidden_dim: int = 4096, proj_dim: int = 256,
                 pred_hidden_dim: int = 4096, base_momentum: float = 0.99) -> None:
        super().__init__(encoder, base_momentum)
        check_option("mocov3", "temperature", temperature, 0.0)
        self.temperature = temperature
        self.make_targets(mlp(self.feature_dim, proj_hidden_dim, proj_dim, num_layers=3, last_bn=True,
                              last_bn_affine=False),
                          mlp(proj_dim, pred_hidden_dim, proj_dim, num_layers=2, last_bn=True, last_bn_affine=False))

    def loss_on_views(self, views, step):
        q1, q2, k1, k2 = self.predictions_and_targets(views)
        with torch.no_grad():  # every process's keys are negatives
            k1, k2 = self.gather(k1), self.gather(k2)
        offset = self.rank * q1.shape[0]
        loss = mocov3_loss(q1, k2, self.temperature, offset) + mocov3_loss(q2, k1, self.temperature, offset)
        return loss, {}
