"""VIME (self-supervised part): Yoon et al. 2020, "VIME: Extending the Success of Self- and
Semi-supervised Learning to Tabular Domain" (NeurIPS 2020).

Views (recipe 'mask_and_replace'): the corrupted input x~ (``views.global_views[0]``: each feature masked
with probability p_m = 0.3 and replaced by a value from the feature's empirical marginal), the clean input x
(``views.clean``) and the mask m (``views.corruption_mask``, True where x~ differs from x), all [B, D].
From the encoder's output h = f(x~), a mask estimator predicts m (binary cross-entropy) and a
feature estimator reconstructs x (mean squared error); loss = mask loss + alpha * reconstruction
loss, alpha = 2.0 (the released code's default). Only x~ goes through the encoder.

Head sizes: both heads output D values. D is the encoder's declared `input_width` (the tabular encoders
set it from the data spec) or the method option `input_dim`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders import Encoder
from ..errors import ConfigError
from ..views import ViewRequest
from .base import Method, OptimizerDefaults, register_method
from .numerics import full_precision


def input_width(encoder: Encoder, input_dim: int | None, method: str) -> int:
    """The reconstruction target's width: the `input_dim` option, else the encoder's declared `input_width`."""
    d = input_dim if input_dim is not None else encoder.input_width
    if not d:
        raise ConfigError(f"method {method!r} reconstructs vector inputs: it needs an encoder that declares its "
                          "input width (`Encoder.input_width`, e.g. the tabular encoders) or --method-option input_dim=D")
    return int(d)


@full_precision
def vime_loss(mask_logits: torch.Tensor, mask: torch.Tensor, reconstruction: torch.Tensor, target: torch.Tensor,
              alpha: float = 2.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, mask loss, reconstruction loss): BCE(mask estimate, m) + alpha * MSE(feature estimate, x)."""
    mask_loss = F.binary_cross_entropy_with_logits(mask_logits, mask.float())
    recon_loss = F.mse_loss(reconstruction, target)
    return mask_loss + alpha * recon_loss, mask_loss, recon_loss


@register_method("vime", "Tables: estimate which features were masked-and-replaced and reconstruct the originals.",
                 "Yoon et al. 2020, NeurIPS")
class VIME(Method):
    optimizer = OptimizerDefaults("adamw", lr=1e-3, weight_decay=0.0, lr_scaling="none")
    requested_views = ViewRequest("mask_and_replace", global_views=1, clean=True, corruption_mask=True)

    def __init__(self, encoder, alpha: float = 2.0, input_dim: int | None = None) -> None:
        super().__init__(encoder)
        self.alpha = alpha
        d = input_width(encoder, input_dim, "vime")
        self.mask_head = nn.Linear(self.feature_dim, d)
        self.feature_head = nn.Linear(self.feature_dim, d)

    def loss_on_views(self, views, step):
        h = self.encoder(views.global_views[0])
        loss, m_loss, r_loss = vime_loss(self.mask_head(h), views.corruption_mask, self.feature_head(h), views.clean,
                                         self.alpha)
        return loss, {"mask_loss": m_loss.detach(), "reconstruction_loss": r_loss.detach()}
