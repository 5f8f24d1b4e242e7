"""OcCo: Wang, Liu, Yue, Lasenby & Kusner 2021, "Unsupervised Point Cloud Pre-training via Occlusion Completion"
(ICCV 2021), with the decoder of PCN (Yuan, Khot, Held, Mertz & Hebert 2018, "PCN: Point Completion Network").

    partial = the points of x a camera sees from a random direction    # the `occluded` recipe, x's own pose
    g = encoder(partial)                                                 # one vector a cloud
    coarse = MLP(g) -> M points                                          # PCN's first stage
    fine = for every coarse point c and offset u of an s x s grid:  c + MLP(g, c, u)   # folding: M x s^2 points
    loss = CD(coarse, x) + alpha x CD(fine, x)      # CD = (mean nearest distance x -> pred + pred -> x) / 2

The encoder learns what the unseen side of a shape is from the side it sees. The whole cloud is rebuilt in the
partial view's pose; for clouds in any orientation, `--augment pose=pca` puts both in the partial view's principal
axes, the pose an encoder with `--encoder-option align=pca` sees (without it the decoder must infer an arbitrary
turn from the encoder's vector). The paper's choices kept: PCN's
decoder (coarse MLP of two hidden layers, folding MLP of two hidden layers of 512, no BatchNorm in the decoder), the
Chamfer distance on unsquared distances halved, alpha stepping 0.01, 0.1, 0.5, 1 (PCN's steps at 10k, 20k and 50k
of its 300k, here the same fractions of the run: 1/30, 1/15, 1/6), Adam without weight decay at lr 1e-4 for a batch
of 32 (8e-4 x batch/256). Departures, for clouds of a few hundred points on CPUs: 64 coarse points and a 2 x 2 grid
(256 fine ones; the paper: 1,024 and 4 x 4 for 16,384), the coarse MLP 1,024 wide as the paper's but on whatever
width the encoder gives; the partial view comes from a z-buffer of the points (`points.views.seen_from`), not a
rendering of the mesh, and its points are resampled to the cloud's count; the trainer's cosine schedule with warm-up
instead of a decay of 0.7 every 20 epochs. The decoder's first folding layer is applied to the global vector once a
cloud and to (c, u) once a point, summed: the same map as the paper's layer on their concatenation, fewer FLOPs.
"""
from __future__ import annotations

import torch
from torch import nn

from ..views import ViewRequest, Views
from .base import Method, OptimizerDefaults, StepInfo, StepLogs, check_option, register_method
from .mae import chamfer_distance
from .numerics import full_precision

ALPHA_STEPS = ((1 / 30, 0.1), (1 / 15, 0.5), (1 / 6, 1.0))  # (progress from which, alpha); 0.01 before


def fine_weight(progress: float) -> float:
    """PCN's alpha at a point of the run: 0.01, then 0.1, 0.5 and 1 from the ALPHA_STEPS fractions on."""
    alpha = 0.01
    for start, value in ALPHA_STEPS:
        if progress >= start:
            alpha = value
    return alpha


@full_precision
def completion_loss(coarse: torch.Tensor, fine: torch.Tensor, target: torch.Tensor, alpha: float) -> torch.Tensor:
    """OcCo's (PCN's) loss: CD(coarse, target) + alpha x CD(fine, target), each Chamfer distance on unsquared
    nearest-point distances, halved, averaged over the batch; coarse [B, M, 3], fine [B, F, 3], target [B, N, 3]."""
    return (chamfer_distance(coarse, target, squared=False).mean() / 2
            + alpha * chamfer_distance(fine, target, squared=False).mean() / 2)


class FoldingDecoder(nn.Module):
    """PCN's decoder: a global vector [B, D] -> (coarse [B, M, 3], fine [B, M x s^2, 3])."""

    def __init__(self, in_dim: int, coarse: int = 64, grid_size: int = 2, grid_scale: float = 0.05,
                 hidden: int = 1024, folding: int = 512) -> None:
        super().__init__()
        self.coarse_points = int(coarse)
        self.coarse = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden),
                                    nn.ReLU(inplace=True), nn.Linear(hidden, 3 * self.coarse_points))
        steps = torch.linspace(-grid_scale, grid_scale, grid_size)
        self.register_buffer("grid", torch.cartesian_prod(steps, steps), persistent=False)  # [s^2, 2]
        self.from_global = nn.Linear(in_dim, folding)
        self.from_point = nn.Linear(5, folding, bias=False)  # with from_global: one layer on (g, c, u)
        self.folding = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(folding, folding), nn.ReLU(inplace=True),
                                     nn.Linear(folding, 3))

    def forward(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = g.shape[0]
        coarse = self.coarse(g).view(b, self.coarse_points, 3)
        cells = self.grid.shape[0]
        centres = coarse[:, :, None, :].expand(-1, -1, cells, -1)  # [B, M, s^2, 3]
        offsets = self.grid.to(coarse.dtype)[None, None].expand(b, self.coarse_points, -1, -1)
        h = self.from_point(torch.cat([offsets, centres], dim=3)) + self.from_global(g)[:, None, None, :]
        fine = centres + self.folding(h)
        return coarse, fine.reshape(b, -1, 3)


@register_method("occo", "Occlusion completion: rebuild the whole cloud (Chamfer distance) from the part a camera "
                 "sees from a random direction, with PCN's coarse-then-folding decoder (point clouds).",
                 "Wang et al. 2021, arXiv:2010.01089")
class OcCo(Method):
    requested_views = ViewRequest("occluded", global_views=1, clean=True)
    optimizer = OptimizerDefaults("adamw", lr=8e-4, weight_decay=0.0)

    def __init__(self, encoder: nn.Module, coarse: int = 64, grid_size: int = 2, grid_scale: float = 0.05,
                 hidden_dim: int = 1024, folding_dim: int = 512) -> None:
        super().__init__(encoder)
        check_option("occo", "coarse", coarse, 1, 1 << 16)
        check_option("occo", "grid_size", grid_size, 1, 16)
        self.decoder = FoldingDecoder(self.feature_dim, int(coarse), int(grid_size), float(grid_scale),
                                      int(hidden_dim), int(folding_dim))

    def loss_on_views(self, views: Views, step: StepInfo) -> tuple[torch.Tensor, StepLogs]:
        coarse, fine = self.decoder(self.encoder(views.global_views[0]))
        return completion_loss(coarse, fine, views.clean[..., :3], fine_weight(step.progress)), {}
