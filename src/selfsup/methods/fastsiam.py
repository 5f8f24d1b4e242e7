"""FastSiam: Pototzky et al. 2022, "FastSiam: Resource-Efficient Self-supervised Learning on a Single GPU" (GCPR).

SimSiam with a steadier target: each image gives K + 1 = 4 views, and each view's prediction p_i regresses the mean
of the other K views' projections, under a stop-gradient:

    loss = 1/(K+1) sum_i -cos(p_i, stopgrad(1/K sum_{j != i} z_j)).

Encoder, projector (3 layers of 2048, BN on the output), predictor (bottleneck 512) and optimiser (SGD, lr 0.05 x
batch/256, weight decay 1e-4, the predictor's learning rate fixed) are SimSiam's, on which the paper builds; the paper
trains with batches of 32 on one GPU. Views: selfsup's `instance_light` crops (SimSiam's, 20-100% of the area).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..views import ViewRequest
from .base import register_method
from .numerics import full_precision
from .simsiam import SimSiam

VIEWS = 4  # K + 1: the paper's K = 3 target views per predicting view


@full_precision
def fastsiam_loss(predictions: list[torch.Tensor], projections: list[torch.Tensor]) -> torch.Tensor:
    """Mean over views i of -cos(p_i, mean of the other views' projections), the projections detached; row b of every
    tensor is the same sample."""
    z = torch.stack(projections).detach()
    others = (z.sum(dim=0) - z) / (len(projections) - 1)  # others[i]: the mean over the views j != i
    return torch.stack([-F.cosine_similarity(p, t, dim=1).mean() for p, t in zip(predictions, others)]).mean()


@register_method("fastsiam", "SimSiam with 4 views: each prediction regresses the mean of the other views' "
                 "projections.", "Pototzky et al. 2022, GCPR, doi:10.1007/978-3-031-16788-1_4")
class FastSiam(SimSiam):
    requested_views = ViewRequest("instance_light", global_views=VIEWS)

    def loss_on_views(self, views, step):
        z = [self.projector(h) for h in self.encode(views.global_views)]
        p = self.predictor(torch.cat(z)).chunk(len(z))
        return fastsiam_loss(list(p), z), {}
