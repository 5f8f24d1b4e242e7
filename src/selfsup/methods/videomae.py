"""VideoMAE: Tong, Song, Wang & Wang 2022, "VideoMAE: Masked Autoencoders are Data-Efficient Learners for
Self-Supervised Video Pre-Training".

    keep = a random 10% of the places of each clip's tube grid, the same places at every time   # tube masking
    latent = encoder.tokens(x, keep)                     # the encoder sees the kept tubes only
    pred = decoder(latent at kept places, mask tokens elsewhere, + fixed position code)
    loss = mean squared error of the hidden tubes' per-tube normalised pixels

MAE (methods/mae.py) with the paper's two changes for video: a mask ratio of 90% (frames repeat each other, so a
lower ratio leaves the task to copying) and tube masking (a place hidden in one frame is hidden in all, so it
cannot be copied from its neighbour in time; `TokenEncoder.time_axes` says which axes of the token grid are time).
On an encoder without a time axis the mask is MAE's, at 90%. Departures: those of mae.py (a 128-wide 2-block
decoder, no [CLS] token); the paper's AdamW (betas 0.9, 0.95, weight decay 0.05), base lr 1.5e-4 x batch/256 as
MAE (the paper: 1.5e-4 on 2048-clip batches scaled as MAE).
"""
from __future__ import annotations

import torch

from ..encoders import TokenEncoder
from .base import register_method
from .mae import MAE, tube_keep


@register_method("videomae", "Masked autoencoder for video: reconstruct the 90% of tubes hidden at the same places "
                 "in every frame (token encoders, e.g. video_vit).", "Tong et al. 2022, arXiv:2203.12602")
class VideoMAE(MAE):
    def __init__(self, encoder: TokenEncoder, mask_ratio: float = 0.9, decoder_dim: int = 128,
                 decoder_depth: int = 2, decoder_heads: int = 4, norm_pix_loss: bool = True) -> None:
        super().__init__(encoder, mask_ratio, decoder_dim, decoder_depth, decoder_heads, norm_pix_loss)

    def keep_mask(self, x: torch.Tensor) -> torch.Tensor:
        return tube_keep(self.encoder, x, self.mask_ratio)
