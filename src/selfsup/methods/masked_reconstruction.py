"""Masked-value reconstruction: Zerveas et al. 2021, "A Transformer-based Framework for Multivariate Time
Series Representation Learning" (KDD, arXiv:2010.02803).

For every channel of every series an independent binary mask is drawn as a two-state Markov chain:
masked segments have geometric lengths with mean `mean_span` (lm = 3) and the expected masked
fraction is `ratio` (r = 0.15), so unmasked segments have mean lm (1 - r) / r. Masked values are
set to 0 (the mean after z-scoring), the encoder maps the series to one vector per step, a linear
head reconstructs every channel, and the loss is the mean squared error over the masked values
only (values that were never observed -- NaN -- are neither inputs nor targets). Paper: Adam-type
optimiser with lr 1e-3.

Views (recipe 'masked_values', made by the modality with the loop's generator): the masked input
(``views.global_views[0]``, [B, C, T]), the clean input (``views.clean``) and the mask
(``views.corruption_mask``, True = masked). The encoder must be a `SequenceEncoder`; the head is sized by its
declared `input_width` (channels) unless the `channels` option says otherwise.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ..encoders import SequenceEncoder
from ..errors import ConfigError
from ..views import ViewRequest
from .base import Method, OptimizerDefaults, register_method
from .numerics import full_precision


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
    encoder_kind = SequenceEncoder
    requested_views = ViewRequest("masked_values", global_views=1, clean=True, corruption_mask=True)
    optimizer = OptimizerDefaults("adamw", lr=1e-3, weight_decay=0.0, lr_scaling="none")

    def __init__(self, encoder, ratio: float = 0.15, mean_span: float = 3.0, channels: int | None = None) -> None:
        super().__init__(encoder)
        if not 0 < ratio < 1:
            raise ConfigError(f"masked_reconstruction: ratio must be in (0, 1), got {ratio}")
        self.ratio, self.mean_span = ratio, mean_span
        channels = channels or encoder.input_width
        if channels is None:
            raise ConfigError("masked_reconstruction: the encoder does not say its input channels; "
                              "pass --method-option channels=C")
        self.head = nn.Linear(self.feature_dim, int(channels))

    def view_request(self) -> ViewRequest:
        return replace(self.requested_views, options={"ratio": self.ratio, "mean_span": self.mean_span})

    def loss_on_views(self, views, step):
        h = self.encoder.forward_sequence(views.global_views[0])  # B x T x D
        pred = self.head(h).transpose(1, 2)  # B x C x T
        loss = masked_mse_loss(pred, views.clean, views.corruption_mask)
        return loss, {}
