"""SimSiam: Chen & He 2021, "Exploring Simple Siamese Representation Learning".

Symmetric negative cosine between a predictor's output and the stop-gradient projection of the
other view. Projector 3 layers of 2048 with BN on the output; predictor bottleneck 512;
SGD lr 0.05 x batch/256, weight decay 1e-4, the predictor's learning rate kept fixed (as the paper).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..views import ViewRequest
from .base import Method, OptimizerDefaults, ParameterRoles, mlp, register_method
from .numerics import full_precision


@full_precision
def simsiam_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Negative cosine similarity D(p, stopgrad(z)), averaged over the batch."""
    return -F.cosine_similarity(p, z.detach(), dim=1).mean()


@register_method("simsiam", "Siamese views with a predictor and stop-gradient (no negatives, no EMA).",
                 "Chen & He 2021, arXiv:2011.10566")
class SimSiam(Method):
    optimizer = OptimizerDefaults("sgd", lr=0.05, weight_decay=1e-4)
    requested_views = ViewRequest("instance_light")

    def __init__(self, encoder, proj_dim: int = 2048, pred_hidden_dim: int = 512, proj_layers: int = 3) -> None:
        super().__init__(encoder)
        self.projector = mlp(self.feature_dim, proj_dim, proj_dim, num_layers=proj_layers,
                             last_bn=True, last_bn_affine=False)
        self.predictor = mlp(proj_dim, pred_hidden_dim, proj_dim)

    def parameter_roles(self) -> ParameterRoles:
        return ParameterRoles(fixed_lr=(self.predictor,))  # the paper keeps the predictor's lr fixed

    def loss_on_views(self, views, step):
        z1, z2 = (self.projector(h) for h in self.encode(views.global_views))
        p1, p2 = self.predictor(torch.cat([z1, z2])).chunk(2)
        loss = 0.5 * (simsiam_loss(p1, z2) + simsiam_loss(p2, z1))
        return loss, {}
