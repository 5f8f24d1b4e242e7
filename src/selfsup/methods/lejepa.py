"""LeJEPA: Balestriero & LeCun 2025, "LeJEPA: Provable and Scalable Self-Supervised Learning Without the Heuristics"
(arXiv:2511.08544).

No teacher, no stop-gradient, no predictor network: the projected embeddings of every view of an image are pulled
towards the mean of its global views' embeddings (the prediction loss), and SIGReg keeps the embeddings an isotropic
Gaussian, which rules out collapse:

    loss = lambda SIGReg(z) + (1 - lambda) 1/V sum_v mean_b ||c_b - z_{v,b}||^2 / D,  c_b = 1/V_g sum_g z_{g,b}

(g over the V_g global views, v over all V views).

SIGReg (Sketched Isotropic Gaussian Regularisation) projects the N embeddings of a view on K random unit directions
a_k and tests each 1-D sample against N(0, 1) with the Epps-Pulley statistic, the weighted L2 distance between its
empirical characteristic function and the Gaussian's, phi(t) = exp(-t^2 / 2):

    EP_k = N integral_{-t_max}^{t_max} |1/N sum_b exp(i t a_k^T z_b) - phi(t)|^2 phi(t) dt,

integrated with the trapezoidal rule on `knots` points of [0, t_max] (the integrand is even: the weights are doubled),
and averaged over directions and views. Defaults of the authors' code and README: lambda 0.05 (the paper explores
0.01-0.1), K = 1024 directions redrawn every step, 17 knots on [0, 3], 2 global and 6 local views (crops of 30-100% and
5-30% of the image, the local ones at 98/224 of the side, the same colour augmentations on all), a 3-layer projector
(2048 hidden, BatchNorm, ReLU) to 128 dimensions (the authors' minimal example; LightlySSL's head has 64), AdamW with lr
5e-4 and weight decay 5e-2 (their ViT value; 5e-4 for ResNets: `--weight-decay 5e-4`).

The directions of step s are drawn from a torch.Generator seeded with s (as the authors' code seeds with its global
step): the same on every process and on every device, and a run resumed from a checkpoint draws the same ones.

Departures, stated: the views are selfsup's `instance` views (SimCLR's: crops of 8-100% of the area for the global
views, colour jitter with saturation 0.4 and no solarisation, where the authors' jitter saturation by 0.2 and solarise
with probability 0.2) and multi-crop local views (5-40% of the area on images); under torchrun SIGReg is computed on
every process's batch (gathered), as the authors' all-reduce of the characteristic functions does.
"""
from __future__ import annotations

import torch

from ..views import ViewRequest
from .base import OptimizerDefaults, check_option, mlp, register_method
from .multicrop import MultiCropMethod
from .numerics import full_precision

SLICE_SEED = 0  # the directions of step s come from a generator seeded with SLICE_SEED + s


def random_directions(dim: int, count: int, step: int, device: torch.device) -> torch.Tensor:
    """`count` unit vectors of R^dim as the columns of a [dim, count] matrix, drawn (on the CPU, so every device gets
    the same) from a generator seeded with the step."""
    a = torch.randn(dim, count, generator=torch.Generator().manual_seed(SLICE_SEED + step))
    return (a / a.norm(dim=0)).to(device)


@full_precision
def sigreg(z: torch.Tensor, directions: torch.Tensor, knots: int = 17, t_max: float = 3.0) -> torch.Tensor:
    """Epps-Pulley statistic of the embeddings `z` [..., N, D] projected on each column of `directions` [D, K], against
    N(0, 1); averaged over the directions and the leading dimensions (views)."""
    n = z.shape[-2]
    t = torch.linspace(0, t_max, knots, dtype=z.dtype, device=z.device)
    phi = torch.exp(-t.square() / 2)  # the standard Gaussian's characteristic function, also the test's weight
    trapezoid = torch.full_like(t, 2 * t_max / (knots - 1))  # twice the weights on [0, t_max]: the even integrand
    trapezoid[[0, -1]] /= 2
    xt = (z @ directions).unsqueeze(-1) * t  # [..., N, K, knots]
    error = (xt.cos().mean(dim=-3) - phi).square() + xt.sin().mean(dim=-3).square()  # |ecf(t) - phi(t)|^2
    return (n * (error @ (trapezoid * phi))).mean()


@full_precision
def lejepa_loss(global_z: list[torch.Tensor], local_z: list[torch.Tensor], directions: torch.Tensor,
                lambd: float = 0.05, knots: int = 17, t_max: float = 3.0) -> torch.Tensor:
    """lambda SIGReg(every view) + (1 - lambda) mean squared distance of every view's embedding to the mean of the
    global views' embeddings; all embeddings [N, D], row b the same sample in each."""
    every = torch.stack([*global_z, *local_z])
    centres = torch.stack(global_z).mean(dim=0)
    prediction = (centres - every).square().mean()
    return lambd * sigreg(every, directions, knots, t_max) + (1 - lambd) * prediction


@register_method("lejepa", "SIGReg keeps embeddings isotropic Gaussian while every view predicts the mean of the "
                 "global views' embeddings.", "Balestriero & LeCun 2025, arXiv:2511.08544")
class LeJEPA(MultiCropMethod):
    requested_views = ViewRequest("instance", global_views=2, local_views=6, local_size=98 / 224)
    optimizer = OptimizerDefaults("adamw", lr=5e-4, weight_decay=5e-2, lr_scaling="none")

    def __init__(self, encoder, proj_hidden_dim: int = 2048, proj_dim: int = 128, local_crops: int = 6,
                 lambd: float = 0.05, num_slices: int = 1024, knots: int = 17, t_max: float = 3.0) -> None:
        super().__init__(encoder, local_crops, frozen_epochs=0)
        check_option("lejepa", "lambd", lambd, 0.0, 1.0, low_open=False)
        check_option("lejepa", "num_slices", num_slices, 1, low_open=False)
        check_option("lejepa", "knots", knots, 2, low_open=False)
        check_option("lejepa", "t_max", t_max, 0.0)
        self.lambd, self.num_slices, self.knots, self.t_max = lambd, int(num_slices), int(knots), t_max
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, num_layers=3)

    def loss_on_views(self, views, step):
        z = [self.projector(h) for h in self.encode(views.crops)]
        if self.distributed:  # SIGReg's characteristic functions over the global batch
            z = [self.gather(v) for v in z]
        directions = random_directions(z[0].shape[1], self.num_slices, step.step, z[0].device)
        g = len(views.global_views)
        return lejepa_loss(z[:g], z[g:], directions, self.lambd, self.knots, self.t_max), {}
