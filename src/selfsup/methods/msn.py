"""MSN: Assran et al. 2022, "Masked Siamese Networks for Label-Efficient Learning" (ECCV, arXiv:2204.07141).

    x+, x = two augmented views of an image (target, anchor)
    anchors: x with a random mask_ratio of its patches dropped                  # random masking
             10 focal views: a small block of x's patch grid, randomly masked too  # focal masking
    z_v = head(mean of encoder.tokens(x, keep_v))  for every anchor v        # the encoder sees kept patches only
    z+  = target_head(mean of target_encoder.tokens(x+))                     # EMA networks, unmasked, no gradient
    p_v = softmax(cos(z_v, prototypes) / 0.1)                                # soft assignment to the prototypes
    p+  = softmax(cos(z+, prototypes) / 0.025)                               # sharpened target (0.1 sharpened by 0.25)
    p+  = Sinkhorn(p+, 3 iterations)                                         # optional: balanced targets
    loss = mean_v H(p+, p_v) - lambda H(mean over anchors of p_v)           # cross-entropy minus me-max, lambda = 1

The target is global view 0 and the anchor global view 1 of the `instance` recipe (two independent augmentations).
The projection head is 3 layers (2048 hidden, BatchNorm and GELU after the hidden layers, 256 out), the prototypes
a learnable [K, 256] matrix L2-normalised in the loss, without weight decay. The target networks are an EMA of the
online ones, momentum 0.996 rising linearly to 1. Sinkhorn-Knopp works on the sharpened probabilities, over the
global batch under torchrun (all-reduced sums), and the me-max term averages the anchor predictions over the global
batch. AdamW, lr 0.001 at batch 1024 taken as 2.5e-4 x batch/256, weight decay 0.04 -> 0.4 on a cosine. The
target's sharpening by 0.25 of a softmax at 0.1 is the softmax at 0.025, computed that way.

`prior='power_law'` is PMSN (Assran et al. 2023, "The Hidden Uniform Cluster Prior in Self-Supervised Learning",
arXiv:2210.07277): the me-max term, which is KL(mean prediction || uniform), is replaced by
KL(prior || mean prediction) with prior_k proportional to k^-0.25 over the prototypes k = 1..K (the direction
LightlySSL's PMSNLoss uses).

Defaults as the paper's ViT-S/16 setting: 10 focal views, mask ratio 0.15 (larger models mask more). Departures,
stated: K = 256 prototypes (the paper's 1024 is for ImageNet with batch 1024; the datasets and batches here are
small); the representation is the mean of the kept tokens (the encoders here have no [CLS] token); a focal view is
a square block of the anchor view's patch grid covering 5-30% of it (drawn once per batch and placed per image),
where the paper takes separately augmented 96-pixel crops of 5-30% of the image, so the focal views here share the
anchor's augmentation and resolution and work on any grid (a series' patches: a segment); the image modality's
`instance` views (SimCLR's crops of 8-100%, jitter, blur; the paper's anchor and target crops cover 30-100%); no
gradient clipping (the paper clips at 3.0). Masks come from torch's global generator (checkpointed).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..collectives import all_reduce_sum, all_reduce_with_grad, sinkhorn
from ..encoders import TokenEncoder
from ..errors import ConfigError
from ..views import ViewRequest, Views
from .base import OptimizerDefaults, ParameterRoles, StepInfo, StepLogs, check_option, make_target, register_method
from .ijepa import block_shape, place_blocks
from .momentum import TargetEncoderMethod
from .numerics import full_precision

PRIORS = ("uniform", "power_law")


def power_law_prior(k: int, exponent: float, device: torch.device) -> torch.Tensor:
    """[k]: p_i proportional to i^-exponent for i = 1..k, summing to 1 (PMSN's prior)."""
    p = torch.arange(1, k + 1, device=device, dtype=torch.float32).pow(-exponent)
    return p / p.sum()


def prior_matching(mean_probs: torch.Tensor, prior: str, exponent: float) -> torch.Tensor:
    """The regulariser of the mean anchor prediction [K]: 'uniform' is MSN's me-max, log K - H(mean) =
    KL(mean || uniform); 'power_law' is PMSN's KL(power-law prior || mean)."""
    if prior == "uniform":
        return math.log(mean_probs.shape[0]) + (mean_probs * mean_probs.log()).sum()
    target = power_law_prior(mean_probs.shape[0], exponent, mean_probs.device)
    return (target * (target.log() - mean_probs.log())).sum()


@full_precision
def msn_loss(anchors: list[torch.Tensor], target: torch.Tensor, prototypes: torch.Tensor, temperature: float = 0.1,
             target_temperature: float = 0.025, sinkhorn_iterations: int = 3, me_max_weight: float = 1.0,
             prior: str = "uniform", power_law_exponent: float = 0.25, distributed: bool = False) -> torch.Tensor:
    """Mean over anchors (every view, every sample) of H(p+, p_anchor), plus `me_max_weight` times the prior matching
    of the anchors' mean prediction (global batch when `distributed`).

    `anchors` [B, D] per anchor view, `target` [B, D] (its own view), `prototypes` [K, D]; all are L2-normalised here.
    p_anchor = softmax(cos / temperature); p+ = softmax(cos / target_temperature), then Sinkhorn-balanced when
    `sinkhorn_iterations` > 0, without gradient."""
    protos = F.normalize(prototypes, dim=1)
    log_p = F.log_softmax(F.normalize(torch.cat(anchors), dim=1) @ protos.T / temperature, dim=1)
    with torch.no_grad():
        t = F.normalize(target, dim=1) @ protos.T
        if sinkhorn_iterations > 0:  # Sinkhorn of softmax(t / T+): exp(log_softmax) enters it unchanged
            q = sinkhorn(F.log_softmax(t / target_temperature, dim=1), 1.0, sinkhorn_iterations, distributed)
        else:
            q = F.softmax(t / target_temperature, dim=1)
    loss = -(q.repeat(len(anchors), 1) * log_p).sum(dim=1).mean()
    if me_max_weight > 0:
        probs = log_p.exp()
        total = torch.cat([probs.sum(dim=0), probs.new_tensor([float(probs.shape[0])])])
        if distributed:  # the mean prediction over every process's anchors, gradients to each own part
            total = torch.cat([all_reduce_with_grad(total[:-1]), all_reduce_sum(total[-1:])])
        loss = loss + me_max_weight * prior_matching(total[:-1] / total[-1], prior, power_law_exponent)
    return loss


def random_subset(allowed: torch.Tensor, kept: int) -> torch.Tensor:
    """[B, T] bool: `kept` of the True positions of each row of `allowed` [B, T] (every row has at least `kept`),
    uniformly at random."""
    scores = torch.rand(allowed.shape, device=allowed.device).masked_fill(~allowed, 2.0)
    return scores.argsort(dim=1).argsort(dim=1) < kept


class MSNHead(nn.Sequential):
    """3 linear layers, BatchNorm and GELU after the two hidden ones (the paper's projection head; no bias before
    a BatchNorm)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.GELU(),
                         nn.Linear(hidden_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.GELU(),
                         nn.Linear(hidden_dim, out_dim))


@register_method("msn", "Masked Siamese networks: masked anchor views match an EMA target view's sharpened "
                 "prototype assignment, with a mean-entropy maximisation (token encoders).",
                 "Assran et al. 2022, arXiv:2204.07141")
class MSN(TargetEncoderMethod):
    encoder_kind = TokenEncoder
    requested_views = ViewRequest("instance", global_views=2)
    optimizer = OptimizerDefaults("adamw", lr=2.5e-4, weight_decay=0.04, weight_decay_end=0.4)

    def __init__(self, encoder: TokenEncoder, mask_ratio: float = 0.15, focal_views: int = 10,
                 focal_scale_min: float = 0.05, focal_scale_max: float = 0.3, num_prototypes: int = 256,
                 hidden_dim: int = 2048, out_dim: int = 256, temperature: float = 0.1,
                 target_temperature: float = 0.025, sinkhorn_iterations: int = 3, me_max_weight: float = 1.0,
                 prior: str = "uniform", power_law_exponent: float = 0.25, base_momentum: float = 0.996) -> None:
        check_option("msn", "mask_ratio", mask_ratio, 0.0, 0.99, low_open=False)
        check_option("msn", "focal_views", focal_views, 0, low_open=False)
        check_option("msn", "focal_scale_min", focal_scale_min, 0.0, focal_scale_max)
        check_option("msn", "focal_scale_max", focal_scale_max, 0.0, 1.0)
        check_option("msn", "num_prototypes", num_prototypes, 1, low_open=False)
        for name, value in (("temperature", temperature), ("target_temperature", target_temperature)):
            check_option("msn", name, value, 0.0)
        check_option("msn", "sinkhorn_iterations", sinkhorn_iterations, 0, low_open=False)
        check_option("msn", "me_max_weight", me_max_weight, 0.0, low_open=False)
        if prior not in PRIORS:
            raise ConfigError(f"--method-option prior={prior!r} for 'msn': must be one of {', '.join(PRIORS)}")
        super().__init__(encoder, base_momentum)
        self.mask_ratio, self.focal_views = float(mask_ratio), int(focal_views)
        self.focal_scale = (float(focal_scale_min), float(focal_scale_max))
        self.temperature, self.target_temperature = float(temperature), float(target_temperature)
        self.sinkhorn_iterations, self.me_max_weight = int(sinkhorn_iterations), float(me_max_weight)
        self.prior, self.power_law_exponent = prior, float(power_law_exponent)
        self.head = MSNHead(encoder.token_dim, hidden_dim, out_dim)
        self.target_head = make_target(self.head)
        self.prototypes = nn.Linear(out_dim, num_prototypes, bias=False)  # the weight rows are the prototypes
        bound = out_dim ** -0.5
        nn.init.uniform_(self.prototypes.weight, -bound, bound)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [*super().momentum_pairs(), (self.head, self.target_head)]

    def parameter_roles(self) -> ParameterRoles:
        return ParameterRoles(no_weight_decay=(self.prototypes,))

    def masked_mean(self, x: torch.Tensor, visible: torch.Tensor, count: int) -> torch.Tensor:
        """[B, token_dim]: the mean output of a random (1 - mask_ratio) of the `count` tokens `visible` [B, T] shows
        in each row (at least one), a new draw per row."""
        keep = random_subset(visible, max(1, round(count * (1 - self.mask_ratio))))
        return self.encoder.tokens(x, keep).mean(dim=1)

    def anchor_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[B, token_dim] of the anchor view (all tokens visible, randomly masked) and of each focal view (one block
        of the anchor's token grid, of the same shape for the whole batch, randomly masked too)."""
        grid, b = self.encoder.token_grid(x), x.shape[0]
        everything = torch.ones(b, math.prod(grid), dtype=torch.bool, device=x.device)
        features = [self.masked_mean(x, everything, math.prod(grid))]
        if self.focal_views:
            shape = block_shape(grid, self.focal_scale, (1.0, 1.0), self.encoder.time_axes)
            blocks = place_blocks(b * self.focal_views, grid, shape, x.device)
            focal = self.masked_mean(torch.cat([x] * self.focal_views), blocks, math.prod(shape))
            features.extend(focal.chunk(self.focal_views))
        return features

    def loss_on_views(self, views: Views, step: StepInfo) -> tuple[torch.Tensor, StepLogs]:
        target_view, anchor_view = views.global_views
        features = self.anchor_features(anchor_view)
        anchors = self.head(torch.cat(features)).chunk(len(features))
        with torch.no_grad():
            target = self.target_head(self.target_encoder.tokens(target_view).mean(dim=1))
        loss = msn_loss(list(anchors), target, self.prototypes.weight, self.temperature, self.target_temperature,
                        self.sinkhorn_iterations, self.me_max_weight, self.prior, self.power_law_exponent,
                        self.distributed)
        return loss, {}
