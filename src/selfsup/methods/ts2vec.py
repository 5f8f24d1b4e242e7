"""TS2Vec: Yue et al. 2022, "TS2Vec: Towards Universal Representation of Time Series" (AAAI, arXiv:2106.10466).

Two overlapping random crops of each series are encoded with random timestamp masking (each step's
input hidden with probability 0.5 after the input projection); on their common segment the
*hierarchical contrastive loss* compares the per-step representations: at every scale of a pyramid
built by max-pooling pairs of steps, an instance-wise term (the same step of the same series in the
other crop is the positive, the other series of the batch at that step are negatives) and a temporal
term (the same step in the other crop is the positive, the other steps of the same series are
negatives), averaged with weight alpha = 0.5, until one step remains. Paper defaults: AdamW lr 1e-3,
batch 8, 320-d output, 200 iterations for small data sets (600 beyond 100,000 values), evaluation
with the weights averaged over all iterations (`torch.optim.swa_utils.AveragedModel`), at a constant
learning rate (`lr_schedule='constant'`; 'trainer' uses the trainer's warm-up + cosine schedule).

Views (recipe 'overlapping_crops', made by the modality with the loop's generator): two crops of each
series (``views.global_views``) that share ``views.overlap.length`` steps, each with its random timestamp mask
(``views.keep``, True = the encoder sees the step; hidden with probability `mask_p`); steps outside a series'
first..last observation are padding and left out of the loss (``views.overlap.valid``), so unequal lengths
are handled exactly. The crops follow the paper's code: a segment of random length >= 2^(temporal_unit + 1)
common to both, each crop extended to a random left and right end, one random offset per series; series
longer than `max_train_length` are first cut to a random window of that length.
The encoder must be a `SequenceEncoder` (per-step outputs; it applies the timestamp mask itself).
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from torch import nn

from ..encoders import SequenceEncoder
from ..errors import ConfigError
from ..views import ViewRequest
from .base import Method, OptimizerDefaults, ParameterRoles, StepInfo, make_target, register_method
from .numerics import full_precision


def _contrast(z: torch.Tensor, valid: torch.Tensor, n: int) -> torch.Tensor:
    """Mean over valid anchors of -log softmax(positive) for groups [G, 2n, D] whose item k pairs with k +- n.

    Similarities are dot products; each anchor's candidates are the other 2n-1 valid items of its group.
    """
    sim = torch.matmul(z, z.transpose(1, 2))  # G x 2n x 2n
    eye = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    drop = eye.unsqueeze(0) | ~valid.unsqueeze(1)  # not itself, not invalid candidates
    logits = sim.masked_fill(drop, float("-inf"))
    idx = torch.arange(2 * n, device=z.device)
    pos = torch.where(idx < n, idx + n, idx - n)
    pos_logit = logits[:, idx, pos]
    lse = torch.logsumexp(logits, dim=-1)
    loss = (lse - pos_logit).masked_fill(~valid, 0.0)
    return loss.sum() / valid.sum().clamp(min=1)


@full_precision
def instance_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """At each step t, series b's two crops are positives; the other series at step t are negatives. z: [B, T, D]."""
    b = z1.shape[0]
    if b == 1:
        return z1.new_zeros(())
    v = torch.ones(z1.shape[:2], dtype=torch.bool, device=z1.device) if valid is None else valid
    z = torch.cat([z1, z2], dim=0).transpose(0, 1)  # T x 2B x D
    return _contrast(z, torch.cat([v, v], dim=0).transpose(0, 1), b)


@full_precision
def temporal_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """For each series, step t of one crop and step t of the other are positives; other steps are negatives."""
    t = z1.shape[1]
    if t == 1:
        return z1.new_zeros(())
    v = torch.ones(z1.shape[:2], dtype=torch.bool, device=z1.device) if valid is None else valid
    return _contrast(torch.cat([z1, z2], dim=1), torch.cat([v, v], dim=1), t)


def _pool_pairs(z: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Max-pool [B, T, D] over pairs of steps (an odd last step is dropped), ignoring invalid steps."""
    pooled = F.max_pool1d(z.masked_fill(~valid.unsqueeze(-1), float("-inf")).transpose(1, 2), 2).transpose(1, 2)
    pv = F.max_pool1d(valid.float().unsqueeze(1), 2).squeeze(1) > 0
    return pooled.masked_fill(~pv.unsqueeze(-1), 0.0), pv


@full_precision
def hierarchical_contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, valid: torch.Tensor | None = None,
                                  alpha: float = 0.5, temporal_unit: int = 0) -> torch.Tensor:
    """TS2Vec's loss on per-step representations z1, z2 [B, T, D] of the same steps in two crops.

    At each level d (T, T/2, ... steps, max-pooled by pairs): alpha * instance + (1 - alpha) * temporal
    (the temporal term only from level `temporal_unit` on); at the single-step top level only the
    instance term; the sum divided by the number of levels. `valid` [B, T] (default all True) removes
    padded steps from every term and from the pooling.
    """
    if valid is None:
        valid = torch.ones(z1.shape[:2], dtype=torch.bool, device=z1.device)
    loss = z1.new_zeros(())
    d = 0
    while z1.shape[1] > 1:
        if alpha != 0:
            loss = loss + alpha * instance_contrastive_loss(z1, z2, valid)
        if d >= temporal_unit and 1 - alpha != 0:
            loss = loss + (1 - alpha) * temporal_contrastive_loss(z1, z2, valid)
        d += 1
        z1, _ = _pool_pairs(z1, valid)
        z2, valid = _pool_pairs(z2, valid)
    if z1.shape[1] == 1:
        if alpha != 0:
            loss = loss + alpha * instance_contrastive_loss(z1, z2, valid)
        d += 1
    return loss / d


@register_method("ts2vec", "Hierarchical contrastive loss (instance + temporal, max-pooled pyramid) between "
                 "two overlapping crops of each series; needs a per-time-step encoder.",
                 "Yue et al. 2022, arXiv:2106.10466")
class TS2Vec(Method):
    encoder_kind = SequenceEncoder
    requested_views = ViewRequest("overlapping_crops", global_views=2, keep=True)
    optimizer = OptimizerDefaults("adamw", lr=1e-3, weight_decay=1e-2, lr_scaling="none")

    def __init__(self, encoder, alpha: float = 0.5, temporal_unit: int = 0, mask_p: float = 0.5,
                 max_train_length: int = 3000, average: str = "swa", lr_schedule: str = "constant") -> None:
        super().__init__(encoder)
        if average not in ("swa", "none"):
            raise ConfigError(f"ts2vec: average must be 'swa' or 'none', got {average!r}")
        if not 0 <= mask_p < 1:
            raise ConfigError(f"ts2vec: mask_p must be in [0, 1), got {mask_p}")
        if lr_schedule not in ("constant", "trainer"):
            raise ConfigError(f"ts2vec: lr_schedule must be 'constant' (the paper's) or 'trainer' (warm-up + "
                              f"cosine), got {lr_schedule!r}")
        self.alpha, self.temporal_unit, self.mask_p = alpha, temporal_unit, mask_p
        self.max_train_length = max_train_length
        self.average = average
        if average == "swa":
            # `encoder` (what a run saves) is the running average of all iterates; `online` is trained.
            self.online = encoder
            self.encoder = make_target(encoder)
        self.n_averaged = 1  # iterates in the average (the initial weights count as one)
        self.lr_schedule = lr_schedule

    def view_request(self) -> ViewRequest:
        return replace(self.requested_views, options={"mask_p": self.mask_p, "max_length": self.max_train_length,
                                                      "min_length": 2 ** (self.temporal_unit + 1)})

    @property
    def net(self):
        """The encoder being trained (the running average is `encoder` when average='swa')."""
        return self.online if self.average == "swa" else self.encoder

    def parameter_roles(self) -> ParameterRoles:
        """With the paper's constant schedule the trained encoder keeps its learning rate."""
        return ParameterRoles(fixed_lr=(self.net,) if self.lr_schedule == "constant" else ())

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """SWA as an EMA: after the n-th step average <- n/(n+1) average + 1/(n+1) online (equal weights)."""
        return [(self.online, self.encoder)] if self.average == "swa" else []

    def target_momentum(self, progress: float) -> float:
        return self.n_averaged / (self.n_averaged + 1)

    def after_optimizer_step(self, step: StepInfo) -> None:
        self.n_averaged += 1

    def extra_state(self) -> dict[str, float]:
        return {"n_averaged": self.n_averaged}

    def load_extra_state(self, state: dict[str, float]) -> None:
        self.n_averaged = int(state["n_averaged"])

    def loss_on_views(self, views, step):
        (in1, in2), (keep1, keep2), overlap = views.global_views, views.keep, views.overlap
        out1 = self.net.forward_sequence(in1, step_mask=keep1)
        out2 = self.net.forward_sequence(in2, step_mask=keep2)
        common = slice(overlap.start_first, overlap.start_first + overlap.length)
        out1, out2 = out1[:, common], out2[:, overlap.start_second:overlap.start_second + overlap.length]
        loss = hierarchical_contrastive_loss(out1, out2, overlap.valid, self.alpha, self.temporal_unit)
        return loss, {}
