"""What the modalities' Transformers over patch tokens share (image.vit, video.encoders): the subclass embeds its
input's patches with their positions (`embed`), then pre-norm blocks and a final LayerNorm run over the tokens,
hidden tokens removed before the first block; the embedding is the mean of the tokens."""
from __future__ import annotations

import torch
from torch import nn

from ..encoders import TokenEncoder


class PatchTransformer(TokenEncoder):
    """A TokenEncoder of `blocks` and a final `norm` over the tokens `embed` makes (a subclass sets all three)."""

    blocks: nn.ModuleList
    norm: nn.LayerNorm

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, width]: x's patches embedded, plus their positions."""
        raise NotImplementedError

    def parameter_depths(self) -> tuple[dict[str, int], int]:
        """The patch embedding at depth 0, block i at i + 1, the final norm at depth + 1 (as MAE's layer ids)."""
        last = len(self.blocks) + 1
        depth = {"patch_embed": 0, "norm": last}
        return {name: int(name.split(".")[1]) + 1 if name.startswith("blocks.") else depth[name.split(".")[0]]
                for name, _ in self.named_parameters()}, last

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs, t = [], self.embed(x)
        for block in self.blocks:
            t = block(t)
            outputs.append(t)
        return outputs

    def tokens(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        t = self.embed(x)
        if keep is not None:  # hidden patches leave here: the blocks see K tokens per sample
            t = t[keep].view(t.shape[0], -1, t.shape[-1])
        for block in self.blocks:
            t = block(t)
        return self.norm(t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x).mean(dim=1)
