"""Denoising autoencoder: Vincent et al. 2008, "Extracting and Composing Robust Features with Denoising
Autoencoders" (ICML 2008); on tables with swap noise as in Jahrer's 2018 Porto Seguro solution.

Views (recipe 'swap_noise'): the corrupted input x~ (``views.global_views[0]``; for tables each cell with
probability 0.15 takes the value of another row), the clean input x (``views.clean``) and the corruption mask
(``views.corruption_mask``), all [B, D]. A decoder (Linear-BN-ReLU-Linear, 256 hidden) maps
f(x~) back to D values; loss = mean squared error to x, with the corrupted cells weighted by
`corrupted_weight` (1.0 = plain MSE over all cells).

The decoder's output width D is the encoder's declared `input_width` (the tabular encoders set it) or the
method option `input_dim`.
"""
from __future__ import annotations

import torch

from ..views import ViewRequest
from .base import Method, OptimizerDefaults, mlp, register_method
from .numerics import full_precision
from .vime import input_width


@full_precision
def denoising_loss(reconstruction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                   corrupted_weight: float = 1.0) -> torch.Tensor:
    """Weighted MSE: cells with mask 1 weigh `corrupted_weight`, the others 1 (normalised by total weight)."""
    err = (reconstruction - target).pow(2)
    if mask is None or corrupted_weight == 1.0:
        return err.mean()
    w = 1.0 + (corrupted_weight - 1.0) * mask.float()
    return (err * w).sum() / w.sum()


@register_method("dae", "Denoising autoencoder: reconstruct the clean row from a swap-noise-corrupted one.",
                 "Vincent et al. 2008, ICML")
class DenoisingAutoencoder(Method):
    optimizer = OptimizerDefaults("adamw", lr=1e-3, weight_decay=0.0, lr_scaling="none")
    requested_views = ViewRequest("swap_noise", global_views=1, clean=True, corruption_mask=True)

    def __init__(self, encoder, decoder_hidden_dim: int = 256, corrupted_weight: float = 1.0,
                 input_dim: int | None = None) -> None:
        super().__init__(encoder)
        self.corrupted_weight = corrupted_weight
        self.decoder = mlp(self.feature_dim, decoder_hidden_dim, input_width(encoder, input_dim, "dae"))

    def loss_on_views(self, views, step):
        reconstruction = self.decoder(self.encoder(views.global_views[0]))
        loss = denoising_loss(reconstruction, views.clean, views.corruption_mask, self.corrupted_weight)
        return loss, {}
