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

Contract with the encoder (modality-agnostic): views are float tensors [B, C, T] cut along the last
axis; a step whose channels are all NaN is padding or missing. The encoder must offer
``forward_sequence(x, step_mask=None) -> [B, T, D]`` (one vector per step; ``step_mask`` [B, T] bool,
False = hide that step's input). Without ``forward_sequence`` a ConfigError is raised; without a
``step_mask`` argument the hidden steps' inputs are set to NaN instead. Steps outside a series'
first..last observation (padding) are left out of the loss, so unequal lengths are handled exactly.
"""
from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import Method, OptimizerDefaults, ParameterRoles, make_target, register_method
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


def series_span(x: torch.Tensor) -> torch.Tensor:
    """bool [B, T]: steps between the first and the last step with any non-NaN channel."""
    obs = ~torch.isnan(x).all(dim=1)
    t = torch.arange(x.shape[-1], device=x.device)
    first = torch.where(obs.any(1), obs.int().argmax(1), torch.full_like(obs[:, 0], x.shape[-1], dtype=torch.long))
    last = x.shape[-1] - 1 - obs.flip(1).int().argmax(1)
    return (t >= first[:, None]) & (t <= last[:, None])


def _take(x: torch.Tensor, start: torch.Tensor, length: int) -> torch.Tensor:
    """Per-row windows x[b, ..., start[b] : start[b] + length] along the last axis."""
    idx = start[:, None] + torch.arange(length, device=x.device)
    idx = idx.view(x.shape[0], *([1] * (x.dim() - 2)), length).expand(*x.shape[:-1], length)
    return torch.gather(x, -1, idx)


def _randint(low: int, high: int, size: tuple[int, ...] = ()) -> torch.Tensor:
    """Uniform integers in [low, high) from the global torch generator (seeded by the trainer)."""
    return torch.randint(low, high, size) if size else torch.randint(low, high, (1,))[0]


@register_method("ts2vec", "Hierarchical contrastive loss (instance + temporal, max-pooled pyramid) between "
                 "two overlapping crops of each series; needs a per-time-step encoder.",
                 "Yue et al. 2022, arXiv:2106.10466")
class TS2Vec(Method):
    view_style = "ts2vec"
    num_views = 1  # uses views[0]; further views (if the modality makes them) are ignored
    optimizer = OptimizerDefaults("adamw", lr=1e-3, weight_decay=1e-2, lr_scaling="none")

    def __init__(self, encoder, alpha: float = 0.5, temporal_unit: int = 0, mask_p: float = 0.5,
                 max_train_length: int = 3000, average: str = "swa", lr_schedule: str = "constant") -> None:
        super().__init__(encoder)
        if not callable(getattr(encoder, "forward_sequence", None)):
            raise ConfigError(f"method 'ts2vec' needs an encoder with per-time-step outputs "
                              f"(forward_sequence); {type(encoder).__name__} has none")
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
        self._step_mask_arg = "step_mask" in inspect.signature(encoder.forward_sequence).parameters
        if average == "swa":
            # `encoder` (what a run saves) is the running average of all iterates; `online` is trained.
            self.online = encoder
            self.encoder = make_target(encoder)
            self.register_buffer("n_averaged", torch.ones((), dtype=torch.long))
        self.lr_schedule = lr_schedule

    @property
    def net(self):
        """The encoder being trained (the running average is `encoder` when average='swa')."""
        return self.online if self.average == "swa" else self.encoder

    def parameter_roles(self) -> ParameterRoles:
        """The running average is not trained; with the paper's constant schedule the trained encoder keeps its lr."""
        trained = "online." if self.average == "swa" else "encoder."
        return ParameterRoles(frozen=("encoder.",) if self.average == "swa" else (),
                              fixed_lr=(trained,) if self.lr_schedule == "constant" else ())

    @torch.no_grad()
    def update_target(self, progress: float) -> None:
        if self.average != "swa":
            return
        n = float(self.n_averaged)
        avg, cur = list(self.encoder.parameters()), list(self.online.parameters())
        torch._foreach_mul_(avg, n / (n + 1))
        torch._foreach_add_(avg, cur, alpha=1 / (n + 1))
        for tb, ob in zip(self.encoder.buffers(), self.online.buffers()):
            tb.copy_(ob)
        self.n_averaged += 1

    def _sequence(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        if self._step_mask_arg:
            return self.net.forward_sequence(x, step_mask=keep)
        return self.net.forward_sequence(x.masked_fill(~keep.unsqueeze(1), float("nan")))

    def loss_on_views(self, views):
        x = views[0]
        if x.dim() != 3:
            raise ConfigError(f"ts2vec expects series views [batch, channels, length], got {tuple(x.shape)}")
        valid = series_span(x)
        # only as long as the batch's longest series (steps beyond are padding in every row)
        ts_l = int(valid.any(0).nonzero().max()) + 1 if valid.any() else x.shape[-1]
        x, valid = x[..., :ts_l], valid[:, :ts_l]
        if ts_l > self.max_train_length:
            off = int(_randint(0, ts_l - self.max_train_length + 1))
            x, valid = x[..., off:off + self.max_train_length], valid[:, off:off + self.max_train_length]
            ts_l = self.max_train_length
        lo = 2 ** (self.temporal_unit + 1)
        if ts_l < lo:
            raise ConfigError(f"ts2vec needs series of at least {lo} steps, got {ts_l}")
        b = x.shape[0]
        crop_l = int(_randint(lo, ts_l + 1))
        crop_left = int(_randint(0, ts_l - crop_l + 1))
        crop_right = crop_left + crop_l
        crop_eleft = int(_randint(0, crop_left + 1))
        crop_eright = int(_randint(crop_right, ts_l + 1))
        offset = _randint(-crop_eleft, ts_l - crop_eright + 1, (b,)).to(x.device)
        in1 = _take(x, offset + crop_eleft, crop_right - crop_eleft)
        in2 = _take(x, offset + crop_left, crop_eright - crop_left)
        keep1 = (torch.rand(in1.shape[0], in1.shape[-1]) >= self.mask_p).to(x.device)
        keep2 = (torch.rand(in2.shape[0], in2.shape[-1]) >= self.mask_p).to(x.device)
        out1 = self._sequence(in1, keep1)[:, -crop_l:]
        out2 = self._sequence(in2, keep2)[:, :crop_l]
        common = _take(valid, offset + crop_left, crop_l)
        loss = hierarchical_contrastive_loss(out1, out2, common, self.alpha, self.temporal_unit)
        return loss, {"loss": loss.item()}
