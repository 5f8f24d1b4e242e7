"""Masked-value reconstruction: Zerveas et al. 2021, "A Transformer-based Framework for Multivariate Time
Series Representation Learning" (KDD, arXiv:2010.02803).

For every channel of every series an independent binary mask is drawn as a two-state Markov chain:
masked segments have geometric lengths with mean `mean_span` (lm = 3) and the expected masked
fraction is `ratio` (r = 0.15), so unmasked segments have mean lm (1 - r) / r. Masked values are
set to 0 (the mean after z-scoring), the encoder maps the series to one vector per step, a linear
head reconstructs every channel, and the loss is the mean squared error over the masked values
only (values that were never observed -- NaN -- are neither inputs nor targets). Paper: Adam-type
optimiser with lr 1e-3.

Contract with the encoder (modality-agnostic): views are float tensors [B, C, T] (NaN = missing);
the encoder must offer ``forward_sequence(x) -> [B, T, D]``, else a ConfigError is raised.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from .base import Method, OptimizerDefaults, register_method
from .numerics import full_precision


def geometric_noise_mask(shape: tuple[int, ...], length: int, ratio: float = 0.15, mean_span: float = 3.0,
                         generator: torch.Generator | None = None, device: torch.device | None = None) -> torch.Tensor:
    """bool [*shape, length], True = masked: alternating runs with geometric lengths (masked mean `mean_span`,
    unmasked mean mean_span (1 - ratio) / ratio), the first state masked with probability `ratio`.

    Equivalent to Zerveas et al.'s per-step Markov chain (p(masked -> unmasked) = 1 / mean_span), sampled as
    run lengths so it needs no loop over time.
    """
    if not 0 < ratio < 1:
        raise ConfigError(f"masking ratio must be in (0, 1), got {ratio}")
    n = int(math.prod(shape))
    p_m = 1.0 / max(mean_span, 1.0)  # leave a masked run
    p_u = p_m * ratio / (1.0 - ratio)  # leave an unmasked run
    mean_pair = 1 / p_m + 1 / p_u
    runs = max(4, int(2 * math.ceil(length / mean_pair) + 8))
    while True:
        u = torch.rand((n, runs), generator=generator).clamp_(min=1e-12)
        start_masked = torch.rand((n, 1), generator=generator) < ratio
        j = torch.arange(runs)
        masked_run = (j[None, :] % 2 == 0) == start_masked  # runs alternate, the first is masked or not
        p = torch.where(masked_run, torch.full_like(u, p_m), torch.full_like(u, p_u))
        lens = torch.floor(torch.log(u) / torch.log1p(-p)).long() + 1  # geometric on {1, 2, ...}
        ends = torch.cumsum(lens, dim=1)
        if bool((ends[:, -1] >= length).all()):
            break
        runs *= 2
    t = torch.arange(length).expand(n, -1).contiguous()
    which = torch.searchsorted(ends, t, right=True).clamp(max=runs - 1)
    mask = masked_run.gather(1, which)
    return mask.view(*shape, length).to(device) if device is not None else mask.view(*shape, length)


@full_precision
def masked_mse_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the entries where mask is True (and target is observed)."""
    sel = mask & ~torch.isnan(target)
    diff = (pred - torch.nan_to_num(target)).masked_fill(~sel, 0.0)
    return diff.pow(2).sum() / sel.sum().clamp(min=1)


@register_method("masked_reconstruction", "Reconstruct randomly masked values (geometric segments, 15%) from "
                 "per-time-step representations; MSE on masked values only.",
                 "Zerveas et al. 2021, arXiv:2010.02803")
class MaskedReconstruction(Method):
    view_style = "masked"
    num_views = 1  # uses views[0]; further views (if the modality makes them) are ignored
    optimizer = OptimizerDefaults("adamw", lr=1e-3, weight_decay=0.0, lr_scaling="none")

    def __init__(self, encoder, ratio: float = 0.15, mean_span: float = 3.0, channels: int | None = None) -> None:
        super().__init__(encoder)
        if not callable(getattr(encoder, "forward_sequence", None)):
            raise ConfigError(f"method 'masked_reconstruction' needs an encoder with per-time-step outputs "
                              f"(forward_sequence); {type(encoder).__name__} has none")
        if not 0 < ratio < 1:
            raise ConfigError(f"masked_reconstruction: ratio must be in (0, 1), got {ratio}")
        self.ratio, self.mean_span = ratio, mean_span
        channels = channels or getattr(encoder, "in_channels", None)
        if channels is None:
            raise ConfigError("masked_reconstruction: the encoder does not say its input channels; "
                              "pass --method-option channels=C")
        self.head = nn.Linear(self.feature_dim, int(channels))

    def loss_on_views(self, views):
        x = views[0]
        if x.dim() != 3 or x.shape[1] != self.head.out_features:
            raise ConfigError(f"masked_reconstruction expects views [batch, {self.head.out_features}, length], "
                              f"got {tuple(x.shape)}")
        mask = geometric_noise_mask(tuple(x.shape[:2]), x.shape[-1], self.ratio, self.mean_span, device=x.device)
        inp = x.masked_fill(mask & ~torch.isnan(x), 0.0)  # NaN (never observed) stays NaN
        h = self.encoder.forward_sequence(inp)  # B x T x D
        pred = self.head(h).transpose(1, 2)  # B x C x T
        loss = masked_mse_loss(pred, x, mask)
        return loss, {"loss": loss.item()}
