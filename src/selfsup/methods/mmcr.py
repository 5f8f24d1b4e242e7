"""MMCR: Yerxa et al. 2023, "Learning Efficient Coding of Natural Images with Maximum Manifold Capacity
Representations".

Each sample is seen through K augmented views, embedded on the unit sphere; the views of sample i form its
manifold Z_i (K x D) and their mean its centroid c_i. The loss maximises the nuclear norm of the N x D matrix of
centroids (the sum of its singular values): the centroids grow towards unit length (the views of a sample agree)
and spread over many orthogonal directions (samples differ). A second term, lambda times the mean nuclear norm of
the manifolds Z_i, compresses each manifold further:
    loss = -||C||_* + lambda * mean_i ||Z_i||_*

Defaults: K = 8 views per sample ("instance" views; LightlySSL's MMCRTransform also makes 8); lambda 0, the
centroid term alone (LightlySSL's MMCRLoss defaults to 5e-3); projector 2048-512 (Linear-BN-ReLU-Linear), the
paper's output width with a hidden layer narrower than its 8192; SimCLR's optimiser (LARS, lr 0.3 x batch/256,
weight decay 1e-6). One network embeds every view: the momentum-encoder variant, which LightlySSL's MMCRLoss takes
as its two inputs (online and momentum embeddings, K/2 views each, lambda 5e-3), is not used. Across processes the
centroids of every process are gathered, so the loss is that of the global batch on every process.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..views import ViewRequest
from .base import Method, OptimizerDefaults, check_option, mlp, register_method
from .numerics import full_precision

VIEWS = 8


@full_precision
def mmcr_centroids(z: torch.Tensor) -> torch.Tensor:
    """The centroid of each sample's views: z [N, K, D] projected onto the unit sphere, then averaged -> [N, D]."""
    return F.normalize(z, dim=-1).mean(dim=1)


@full_precision
def mmcr_loss(z: torch.Tensor, lambd: float = 0.0, centroids: torch.Tensor | None = None) -> torch.Tensor:
    """-||C||_* + lambda * mean_i ||Z_i||_* for embeddings z [N, K, D] (K views of N samples, normalised here).

    `centroids`: the global batch's centroid matrix when the batch is spread over processes (default: z's own).
    """
    c = mmcr_centroids(z) if centroids is None else centroids
    loss = -torch.linalg.svdvals(c).sum()
    if lambd:
        loss = loss + lambd * torch.linalg.svdvals(F.normalize(z, dim=-1)).sum(dim=1).mean()
    return loss


@register_method("mmcr", "Maximum manifold capacity: the nuclear norm of many views' centroids is maximised.",
                 "Yerxa et al. 2023, arXiv:2303.03307")
class MMCR(Method):
    optimizer = OptimizerDefaults("lars", lr=0.3, weight_decay=1e-6)
    requested_views = ViewRequest("instance", global_views=VIEWS)

    def __init__(self, encoder, proj_hidden_dim: int = 2048, proj_dim: int = 512, lambd: float = 0.0) -> None:
        super().__init__(encoder)
        check_option("mmcr", "lambd", lambd, 0.0, low_open=False)
        self.lambd = lambd
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim)

    def loss_on_views(self, views, step):
        h = torch.cat(self.encode(views.global_views))  # [K * N, feature_dim], view-major
        z = self.projector(h).unflatten(0, (len(views.global_views), -1)).transpose(0, 1)  # [N, K, D]
        centroids = self.gather(mmcr_centroids(z)) if self.distributed else None  # the global batch's matrix
        return mmcr_loss(z, self.lambd, centroids), {}
