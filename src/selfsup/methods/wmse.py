"""W-MSE: Ermolov et al. 2021, "Whitening for Self-Supervised Representation Learning" (ICML, arXiv:2007.06346).

No negatives and no asymmetry: the embeddings of each view are whitened (Cholesky whitening: zero mean, identity
covariance) within random sub-batches of `w_size` samples, which scatters them over the unit sphere, and the MSE
between the L2-normalised whitened embeddings of every pair of positives is minimised. Per step, for each of
`w_iter` random partitions of the batch into sub-batches, and for each view v and sub-batch S:

    mu = mean_{i in S} z_i^v,  Sigma = 1/(|S|-1) sum_{i in S} (z_i^v - mu)(z_i^v - mu)^T,
    Sigma_eps = (1 - eps) Sigma + eps I = L L^T (Cholesky),  w_i^v = L^{-1} (z_i^v - mu)  for i in S,

    loss = mean over partitions and over pairs of views (v < u) of  mean_i (2 - 2 cos(w_i^v, w_i^u)).

The paper's CIFAR settings (its Table 1, official code's defaults): sub-batches of 128, one whitening iteration,
shrinkage eps = 0, a 64-d embedding from a 2-layer head (1024 hidden, BatchNorm, ReLU) applied to all views' features
at once, `num_views` = 2 positives per image ("W-MSE 2"; 4 gives "W-MSE 4"), Adam with lr 3e-3 and L2 penalty 1e-6.

Departures, stated:
- AdamW (decoupled weight decay 1e-6) stands for Adam with an L2 penalty of 1e-6, lr 3e-3 unscaled by the batch; the
  trainer's schedule stands for the paper's 500 warm-up steps and two step drops (x0.2, 50 and 25 epochs before the
  end); the views are selfsup's `instance_light` crops (20-100% of the area, as the paper's).
- A batch that does not divide into sub-batches of exactly `w_size` is split into `batch // w_size` sub-batches of
  near-equal size (each at least `w_size`; the official code requires a multiple); a batch smaller than `w_size` is
  one sub-batch.
- A sub-batch with no more samples than the embedding has dimensions has a singular covariance, which no Cholesky
  factor whitens: there the shrinkage is at least `SINGULAR_SHRINKAGE` (0.01). The paper's setting (128 > 64) never
  meets this; tiny batches do.
- The running mean and covariance the official whitening layer can keep are not kept: they only serve the loss in
  evaluation mode, which training never computes (the official W-MSE turns them off too).
- Under torchrun each process whitens sub-batches of its own samples: a partition of the global batch like any other.
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from ..views import ViewRequest
from .base import Method, OptimizerDefaults, check_option, mlp, register_method
from .numerics import full_precision

#: the least shrinkage of a sub-batch's covariance when the sub-batch has no more samples than dimensions
SINGULAR_SHRINKAGE = 0.01


@full_precision
def cholesky_whiten(z: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """L^{-1} (z_i - mu) for the rows z_i of `z` [n, D], L L^T = (1 - eps) Sigma + eps I, Sigma the rows' unbiased
    covariance: rows with zero mean and identity covariance (shrunk towards I by eps)."""
    n, d = z.shape
    if n <= d:
        eps = max(eps, SINGULAR_SHRINKAGE)
    centred = z - z.mean(dim=0)
    eye = torch.eye(d, dtype=z.dtype, device=z.device)
    cov = centred.T @ centred / (n - 1)
    chol = torch.linalg.cholesky((1 - eps) * cov + eps * eye)
    inverse = torch.linalg.solve_triangular(chol, eye, upper=False)  # the whitening matrix W = L^{-1}
    return centred @ inverse.T


@full_precision
def wmse_loss(views: list[torch.Tensor], partitions: list[list[torch.Tensor]], eps: float = 0.0) -> torch.Tensor:
    """W-MSE of the embeddings `views` (one [B, D] tensor per positive view, row i the same sample in each): for each
    partition of the rows (a list of index tensors, the sub-batches), every view whitened within every sub-batch, then
    2 - 2 cos between the whitened embeddings of each pair of views, averaged over samples, pairs and partitions."""
    batch = views[0].shape[0]
    total, terms = views[0].new_zeros(()), 0
    for subsets in partitions:
        whitened = [torch.cat([cholesky_whiten(z[idx], eps) for idx in subsets]) for z in views]  # rows permuted alike
        for v in range(len(views)):
            for u in range(v + 1, len(views)):
                cos = F.cosine_similarity(whitened[v], whitened[u], dim=1)
                total = total + 2 - 2 * cos.sum() / batch
                terms += 1
    return total / terms


def random_partition(batch: int, w_size: int, device: torch.device) -> list[torch.Tensor]:
    """A random partition of range(batch) into `batch // w_size` sub-batches of near-equal size (one when smaller)."""
    return list(torch.randperm(batch, device=device).tensor_split(max(1, batch // w_size)))


@register_method("wmse", "Whitening MSE: views whitened in random sub-batches, then pulled together (no negatives).",
                 "Ermolov et al. 2021, arXiv:2007.06346")
class WMSE(Method):
    optimizer = OptimizerDefaults("adamw", lr=3e-3, weight_decay=1e-6, lr_scaling="none")
    requested_views = ViewRequest("instance_light")

    def __init__(self, encoder, proj_hidden_dim: int = 1024, proj_dim: int = 64, num_views: int = 2,
                 w_size: int = 128, w_iter: int = 1, w_eps: float = 0.0) -> None:
        super().__init__(encoder)
        check_option("wmse", "num_views", num_views, 2, low_open=False)
        check_option("wmse", "w_size", w_size, 2, low_open=False)
        check_option("wmse", "w_iter", w_iter, 1, low_open=False)
        check_option("wmse", "w_eps", w_eps, 0.0, 1.0, low_open=False)
        self.num_views, self.w_size, self.w_iter, self.w_eps = int(num_views), int(w_size), int(w_iter), w_eps
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim)  # Linear-BN-ReLU-Linear, as the official head

    def view_request(self) -> ViewRequest:
        return replace(self.requested_views, global_views=self.num_views)

    def loss_on_views(self, views, step):
        h = self.encode(views.global_views)
        z = self.projector(torch.cat(h)).chunk(len(h))  # one head pass over every view, as the official code
        batch = z[0].shape[0]
        partitions = [random_partition(batch, self.w_size, z[0].device) for _ in range(self.w_iter)]
        return wmse_loss(list(z), partitions, self.w_eps), {}
