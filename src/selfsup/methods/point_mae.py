"""Point-MAE: Pang, Wang, Tay, Liu, Tian & Yuan 2022, "Masked Autoencoders for Point Cloud Self-supervised
Learning".

    centres = farthest point sampling of the cloud; patch = each centre's k nearest points, relative to it
    keep = a random 40% of each cloud's patches             # mask ratio 0.6
    latent = encoder.tokens(x, keep)                        # the encoder sees the kept patches only
    pred = decoder(latent at kept patches, mask tokens elsewhere, + the centres' position code)
    loss = Chamfer distance (L2) between each hidden patch's predicted and true points

MAE (methods/mae.py) on a point Transformer (`TokenEncoder.patch_points`: a patch is a set of points, so the error
is the Chamfer distance, not value by value, and the target is not normalised: its points are already offsets
from the patch's centre). The paper's AdamW, lr 1e-3 at batch 128 (base 2e-3 x batch/256), weight decay 0.05,
cosine schedule with warm-up. Views: `geometric` (the whole cloud turned, scaled and shifted), as the paper's
scale-and-translate augmentation. Departures: those of mae.py (a 128-wide decoder of 2 blocks and 4 heads; the
paper's is 384 wide, 4 blocks and 6 heads) and of the point Transformer (points/encoders.py); the decoder's
positions are a fixed code of the centres (the paper: a learned MLP of them).
"""
from __future__ import annotations

from ..encoders import TokenEncoder
from .base import OptimizerDefaults, register_method
from .mae import MAE


@register_method("point_mae", "Masked autoencoder for point clouds: rebuild the 60% of patches hidden (their "
                 "points, by Chamfer distance) from the visible ones (token encoders, e.g. point_transformer).",
                 "Pang et al. 2022, arXiv:2203.06604")
class PointMAE(MAE):
    optimizer = OptimizerDefaults("adamw", lr=2e-3, weight_decay=0.05, betas=(0.9, 0.999))

    def __init__(self, encoder: TokenEncoder, mask_ratio: float = 0.6, decoder_dim: int = 128,
                 decoder_depth: int = 2, decoder_heads: int = 4, norm_pix_loss: bool = False) -> None:
        super().__init__(encoder, mask_ratio, decoder_dim, decoder_depth, decoder_heads, norm_pix_loss)
