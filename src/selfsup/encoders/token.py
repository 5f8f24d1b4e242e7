"""`TokenEncoder`: an Encoder over patch tokens that really drops the hidden ones (masked modelling: MAE, I-JEPA):
``tokens(x, keep=None) -> [B, K, token_dim]`` are the outputs of the kept patches only (hidden patches never
enter the transformer), ``patches(x)`` cuts the input into the patches the tokens stand for, and
``position_table(x, width)`` gives the fixed position code of x's tokens at another width (for decoders and
predictors, which thereby need not know whether the tokens lie on a grid or a line), and
``layer_outputs(x)`` every block's output for all tokens (data2vec's targets are the average of the top ones).
Unobserved input values (a series' padding and missing values) are NaN in ``patches``.
"""
from __future__ import annotations

from typing import ClassVar

import torch

from .base import Encoder, FineTuning


class TokenEncoder(Encoder):
    """An Encoder over patch tokens; `forward(x)` is the mean of all tokens' outputs [B, out_dim] (evaluation)."""

    fine_tuning: ClassVar[FineTuning] = FineTuning("adamw", lr=5e-4, weight_decay=0.05, warmup=0.1, layer_decay=0.75,
                                                  head_norm=True)
    token_dim: int  # width of one token's output
    patch_dim: int  # values in one patch of the input (what `patches` cuts; a reconstruction target's width)
    layer_dim: int  # width of one block's output (`layer_outputs`)
    #: how many leading axes of `token_grid` are time (a video's tubes: 1): a mask that hides a place hides it at
    #: every time (VideoMAE's tube masking, V-JEPA's blocks), else a masked place would be copied from its neighbour
    #: in time
    time_axes: ClassVar[int] = 0
    #: 0: a patch's values are ordered (pixels, a series' steps) and reconstructed value by value; d > 0: a patch is
    #: an unordered set of points of d coordinates (patch_dim / d of them: a point cloud's neighbourhood), which a
    #: reconstruction matches up to their order (Chamfer distance)
    patch_points: ClassVar[int] = 0

    def token_count(self, x: torch.Tensor) -> int:
        """How many tokens (patches) input `x` makes."""
        raise NotImplementedError

    def token_grid(self, x: torch.Tensor) -> tuple[int, ...]:
        """How x's tokens are arranged, in token order: (rows, columns) for an image, (steps,) for a series
        (block masks are drawn on it)."""
        raise NotImplementedError

    def tokens(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """[B, K, token_dim]: the kept tokens' outputs in token order, after the final norm. `keep` [B, T] bool holds
        the same number K of True in every row (None: all T tokens)."""
        raise NotImplementedError

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, patch_dim]: the input cut into the tokens' patches; NaN where a value was not observed."""
        raise NotImplementedError

    def unpatch(self, patches: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The inverse of `patches`: [B, T, patch_dim] values laid back out in x's shape."""
        raise NotImplementedError

    def covered(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """x-shaped bool: the input values that the patches of `tokens` [B, T] bool hold (where patches tile the
        input, `unpatch` of the mask)."""
        return self.unpatch(tokens[..., None].expand(-1, -1, self.patch_dim).to(x.dtype), x) > 0

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output [B, T, layer_dim] for all T tokens, first block first (the residual stream, before
        any final norm)."""
        raise NotImplementedError

    def position_table(self, x: torch.Tensor, width: int) -> torch.Tensor:
        """[1, T, width] where every input's tokens sit at the same places (a grid, a line), [B, T, width] where
        each input's sit at its own (a point cloud's patch centres): the fixed position code of x's tokens, at
        `width`."""
        raise NotImplementedError
