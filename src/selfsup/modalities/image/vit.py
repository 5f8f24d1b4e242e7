"""Vision Transformers (Dosovitskiy et al. 2021) as token encoders (encoders.TokenEncoder): patches embedded by a
strided convolution, fixed 2-D sine-cosine positions (as MAE; they follow any input size, so views may be smaller
than the images), pre-norm blocks over `scaled_dot_product_attention`, a final LayerNorm, and no [CLS] token: the
pooled embedding is the mean of the tokens (MAE reports global pooling as good as [CLS] after fine-tuning).

Patches hidden by a keep-mask are removed before the first block, so a 75%-masked forward runs the transformer on a
quarter of the tokens. Sizes: ViT-Tiny (192 wide, 12 blocks, 3 heads; DeiT) and ViT-Small (384, 12, 6); the patch
side follows the image: 2 px up to 16 px, 4 px up to 32 px (28 px Fashion-MNIST: 7 x 7 tokens), 8 px up to 96 px
(12 x 12) and 16 px above (224 px: 14 x 14, the paper's ViT/16).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import torch
from torch import nn

from ...encoders import TokenEncoder
from ...encoders.base import FineTuning
from ...errors import ConfigError
from ...layers import Block, init_transformer, sincos_2d
from ..transformer import PatchTransformer

SIZES = {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6)}  # width, depth, heads


def default_patch(image_size: int) -> int:
    return 2 if image_size <= 16 else 4 if image_size <= 32 else 8 if image_size <= 96 else 16


class VisionTransformer(PatchTransformer):
    """A ViT over `channels`-channel images cut into `patch_size` patches.

    Fine-tuning (selfsup.finetune) keeps the Transformers' recipe (MAE's AdamW, warm-up, layer-wise decay 0.75, the
    standardising head) at a base rate of 4.5e-3, nine times their 5e-4: a few thousand labelled images and at most
    1,000 steps are far from MAE's 100 epochs of ImageNet. The protocol then chooses among a third and three times
    the rate on validation; with every digits label it chose 1.35e-2 (benchmarks/results/token_encoders.json)."""

    fine_tuning: ClassVar[FineTuning] = replace(TokenEncoder.fine_tuning, lr=4.5e-3)

    def __init__(self, channels: int, patch_size: int, dim: int, depth: int, heads: int,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.patch_size, self.channels = patch_size, channels
        self.patch_embed = nn.Conv2d(channels, dim, patch_size, stride=patch_size)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.out_dim = self.token_dim = self.layer_dim = dim
        self.patch_dim = patch_size * patch_size * channels
        self._tables: dict[tuple[int, int, int, torch.device], torch.Tensor] = {}
        init_transformer(self)
        w = self.patch_embed.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # as a linear layer over the flattened patch (MAE)
        nn.init.zeros_(self.patch_embed.bias)

    def grid(self, x: torch.Tensor) -> tuple[int, int]:
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ConfigError(f"images of {h}x{w} pixels do not divide into {self.patch_size}-pixel patches; choose "
                              "--encoder-option patch_size=P dividing the views' size")
        return h // self.patch_size, w // self.patch_size

    def token_grid(self, x: torch.Tensor) -> tuple[int, int]:
        return self.grid(x)

    def token_count(self, x: torch.Tensor) -> int:
        gh, gw = self.grid(x)
        return gh * gw

    def position_table(self, x: torch.Tensor, width: int) -> torch.Tensor:
        gh, gw = self.grid(x)
        key = (gh, gw, width, x.device)  # made once per device: no host-to-device copy per step
        if key not in self._tables:
            self._tables[key] = sincos_2d(gh, gw, width).to(x.device)[None]
        return self._tables[key]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, width]: the patches embedded, plus their positions."""
        t = self.patch_embed(x).flatten(2).transpose(1, 2)
        return t + self.position_table(x, t.shape[-1]).to(t.dtype)

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        gh, gw = self.grid(x)
        p = self.patch_size
        b, c = x.shape[:2]
        return x.reshape(b, c, gh, p, gw, p).permute(0, 2, 4, 3, 5, 1).reshape(b, gh * gw, p * p * c)

    def unpatch(self, patches: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        gh, gw = self.grid(x)
        p, (b, c) = self.patch_size, x.shape[:2]
        return patches.reshape(b, gh, gw, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, gh * p, gw * p)


def vit(size: str, spec: dict[str, Any], patch_size: int | None = None, depth: int | None = None,
        mlp_ratio: float = 4.0) -> VisionTransformer:
    dim, default_depth, heads = SIZES[size]
    return VisionTransformer(spec["channels"], patch_size or default_patch(spec["size"]), dim, depth or default_depth,
                             heads, mlp_ratio)
