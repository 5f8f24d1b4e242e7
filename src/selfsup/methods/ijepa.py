"""I-JEPA: Assran et al. 2023, "Self-Supervised Learning from Images with a Joint-Embedding Predictive Architecture".

    targets = 4 blocks of the token grid (each 15-20% of it, aspect ratio 0.75-1.5)
    context = one block of 85-100% of the grid (aspect 1), minus every target block
    h = layer_norm(target_encoder(x))                     # EMA of the context encoder, all tokens, no gradient
    s = context_encoder.tokens(x, context)                # the context tokens only
    for each target block B: p_B = predictor(s, positions of the context, positions of B)
    loss = mean over blocks of || p_B - h[B] ||^2          # in representation space, never pixels

Block sizes are drawn once per batch (every image of a batch has blocks of the same shape, as the paper's collator
does) and placed independently per image; the context of every image is cut to the smallest context of the batch
(keeping its first tokens in grid order), so the batch stays rectangular. The predictor is a narrow Transformer
(the paper's: 384 wide, 12 blocks for ViT-H; here 96 wide, 4 blocks, 4 heads for ViT-Tiny) fed with the context
tokens and one mask token per target position, each with the fixed position code. EMA momentum 0.996 -> 1
linearly, AdamW lr 0.001 for batch 2048 (1.25e-4 x batch/256), weight decay 0.04 -> 0.4 (cosine), `geometric`
views with no colour change (the paper uses random resized crops only). Departures: the squared L2 distance of the
paper's text (its code uses a smooth L1); a block's area and aspect ratio drawn independently, the aspect
log-uniform (the authors' collator uses one uniform draw for both), and blocks placed anywhere on the grid (the
collator never reaches the last row and column, so its context block is at most (H-1) x (W-1)); masks from
torch's global generator (checkpointed, so a resume draws the same). On a series (a 1-D token grid) the blocks
are segments of the given fractions of its length.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..encoders import TokenEncoder
from ..layers import MaskedDecoder
from ..views import ViewRequest, Views
from .base import Illustration, OptimizerDefaults, StepInfo, StepLogs, check_option, register_method
from .momentum import TargetEncoderMethod
from .numerics import full_precision


def block_shape(grid: tuple[int, ...], scale: tuple[float, float], aspect: tuple[float, float],
                time_axes: int = 0) -> tuple[int, ...]:
    """One block's side along each axis of `grid`: an area of U(scale) of the grid with an aspect ratio
    (rows / columns) log-uniform in `aspect` (a 1-D grid: a length of U(scale) of it); at least 1, at most the grid.
    The first `time_axes` axes (a video's time) are spanned whole: the block is a region of space at every time
    (V-JEPA's tubes, Bardes et al. 2024)."""
    if time_axes:
        return tuple(grid[:time_axes]) + block_shape(grid[time_axes:], scale, aspect)
    area = (scale[0] + (scale[1] - scale[0]) * float(torch.rand(()))) * math.prod(grid)
    if len(grid) == 1:
        return (min(grid[0], max(1, round(area))),)
    ratio = math.exp(math.log(aspect[0]) + (math.log(aspect[1]) - math.log(aspect[0])) * float(torch.rand(())))
    rows, cols = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
    return min(grid[0], max(1, rows)), min(grid[1], max(1, cols))


def place_blocks(batch: int, grid: tuple[int, ...], shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """[batch, prod(grid)] bool: a block of `shape` at a uniformly random position in each sample's grid."""
    inside = torch.ones(batch, *([1] * len(grid)), dtype=torch.bool, device=device)
    for axis, (size, side) in enumerate(zip(grid, shape)):
        start = torch.randint(0, size - side + 1, (batch,), device=device)
        coords = torch.arange(size, device=device)
        along = (coords >= start[:, None]) & (coords < (start + side)[:, None])  # [batch, size]
        view = [batch] + [1] * len(grid)
        view[axis + 1] = size
        inside = inside & along.view(view)
    return inside.reshape(batch, -1)


def first_true(mask: torch.Tensor, count: int) -> torch.Tensor:
    """`mask` [B, T] bool with only its first `count` True per row kept (every row must have at least `count`)."""
    return mask & (mask.cumsum(dim=1) <= count)


def positions_of(mask: torch.Tensor) -> torch.Tensor:
    """[B, K]: the token indices where `mask` [B, T] is True, ascending (every row has the same count K)."""
    return mask.nonzero()[:, 1].view(mask.shape[0], -1)


def take_tokens(values: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """values [B or 1, T, D] at token indices where [B, K] -> [B, K, D] (a table of 1 row serves every sample)."""
    values = values.expand(where.shape[0], -1, -1)
    return torch.gather(values, 1, where[..., None].expand(-1, -1, values.shape[-1]))


@full_precision
def ijepa_loss(predictions: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """Mean over target blocks of the mean squared error between predicted and target representations."""
    return sum(F.mse_loss(p, t) for p, t in zip(predictions, targets)) / len(predictions)


class Predictor(MaskedDecoder):
    """Context tokens (embedded) and mask tokens at the target positions, each plus its position code, through a
    narrow Transformer; the targets' outputs mapped back to the encoder's width (MAE's decoder, over the context and
    one target block rather than the whole grid)."""

    def __init__(self, token_dim: int, dim: int, depth: int, heads: int) -> None:
        super().__init__(token_dim, dim, depth, heads, token_dim)

    def forward(self, context: torch.Tensor, context_pos: torch.Tensor, target_pos: torch.Tensor) -> torch.Tensor:
        x = self.embed(context) + context_pos.to(context.dtype)
        m = self.mask_token.to(x.dtype) + target_pos.to(x.dtype)
        z = torch.cat([x, m], dim=1)
        for block in self.blocks:
            z = block(z)
        return self.out(self.norm(z[:, x.shape[1]:]))


@register_method("ijepa", "Predict the representations of hidden target blocks from a context block, in "
                 "representation space, against an EMA target encoder (token encoders).",
                 "Assran et al. 2023, arXiv:2301.08243")
class IJEPA(TargetEncoderMethod):
    encoder_kind = TokenEncoder
    requested_views = ViewRequest("geometric", global_views=1)
    optimizer = OptimizerDefaults("adamw", lr=1.25e-4, weight_decay=0.04, weight_decay_end=0.4)

    def __init__(self, encoder: TokenEncoder, targets: int = 4, target_scale_min: float = 0.15,
                 target_scale_max: float = 0.2, context_scale_min: float = 0.85, predictor_dim: int = 96,
                 predictor_depth: int = 4, predictor_heads: int = 4, base_momentum: float = 0.996) -> None:
        check_option("ijepa", "targets", targets, 1, low_open=False)
        check_option("ijepa", "target_scale_min", target_scale_min, 0.0, target_scale_max)
        check_option("ijepa", "target_scale_max", target_scale_max, 0.0, 1.0)
        check_option("ijepa", "context_scale_min", context_scale_min, 0.0, 1.0)
        super().__init__(encoder, base_momentum)
        self.targets = int(targets)
        self.target_scale = (float(target_scale_min), float(target_scale_max))
        self.context_scale = (float(context_scale_min), 1.0)
        self.predictor = Predictor(encoder.token_dim, predictor_dim, predictor_depth, predictor_heads)

    def masks(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(context [B, T], target blocks [B, T] each): every row of a mask holds the same number of True."""
        grid, b = self.encoder.token_grid(x), x.shape[0]
        target_shape = block_shape(grid, self.target_scale, (0.75, 1.5), self.encoder.time_axes)
        blocks = [place_blocks(b, grid, target_shape, x.device) for _ in range(self.targets)]
        context = place_blocks(b, grid, block_shape(grid, self.context_scale, (1.0, 1.0), self.encoder.time_axes),
                               x.device)
        for block in blocks:
            context = context & ~block
        empty = ~context.any(dim=1)  # targets covering a small grid's whole context block: keep its first token
        context[:, 0] |= empty
        return first_true(context, int(context.sum(dim=1).min())), blocks

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor],
                                                 list[torch.Tensor]]:
        """(context mask, per target block: its token positions [B, K], predictions and targets [B, K, D])."""
        context, blocks = self.masks(x)
        with torch.no_grad():
            h = self.target_encoder.tokens(x)
            h = F.layer_norm(h, (h.shape[-1],))
        s = self.encoder.tokens(x, context)
        table = self.encoder.position_table(x, self.predictor.embed.out_features)
        context_pos = take_tokens(table, positions_of(context))
        wheres, predictions, targets = [], [], []
        for block in blocks:
            where = positions_of(block)
            wheres.append(where)
            predictions.append(self.predictor(s, context_pos, take_tokens(table, where)))
            targets.append(take_tokens(h, where))
        return context, wheres, predictions, targets

    def illustrate(self, x: torch.Tensor) -> Illustration:
        """The context the encoder sees, and at every target position the cosine similarity between the predicted
        representation and the target encoder's."""
        context, wheres, predictions, targets = self.predict(x)
        similarity = torch.full(context.shape, float("nan"), device=x.device)
        for where, p, t in zip(wheres, predictions, targets):
            similarity.scatter_(1, where, F.cosine_similarity(p.float(), t.float(), dim=-1))
        return token_illustration(self.encoder, x, context, similarity,
                                  "I-JEPA: predicted against target representations of the target blocks")

    def loss_on_views(self, views: Views, step: StepInfo) -> tuple[torch.Tensor, StepLogs]:
        _, _, predictions, targets = self.predict(views.global_views[0])
        return ijepa_loss(predictions, targets), {}


def token_illustration(encoder: TokenEncoder, x: torch.Tensor, visible: torch.Tensor, similarity: torch.Tensor,
                       caption: str) -> Illustration:
    """The input, its `visible` [B, T] tokens' patches, and a per-token `similarity` [B, T] (NaN: none) laid out
    over the input."""
    patches = encoder.patches(x)
    shown = torch.where(visible[..., None], patches, torch.full_like(patches, float("nan")))
    spread = similarity[..., None].expand(-1, -1, patches.shape[-1])
    return Illustration({"input": x, "visible": encoder.unpatch(shown, x)},
                        {"prediction vs target (cosine)": encoder.unpatch(spread, x)}, caption)
