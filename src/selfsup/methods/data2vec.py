"""data2vec 2.0: Baevski et al. 2023, "Efficient Self-supervised Learning with Contextualized Target Representations
for Vision, Speech and Language" (data2vec: Baevski et al. 2022).

    with no_grad:
        layers = teacher.layer_outputs(x)                  # the EMA teacher sees every token
        y = layer_norm(mean over the top K layers of instance_norm(layer))   # contextualised targets
    for each of M clones of the batch:                     # the teacher's cost is shared by M masks
        keep = random 20% of the tokens                    # mask ratio 0.8
        pred = decoder(student.tokens(x, keep))            # the student sees the kept tokens only
    loss = mean over hidden tokens of sum_d (pred - y)^2 / sqrt(D)

Everything is in token terms (encoders.TokenEncoder), so the same method trains a ViT on images and the patch
Transformer on series. The paper's image settings: K = 10 of 12 blocks, instance norm of each layer over the tokens
then layer norm of the average, M = 16 clones, mask ratio 0.8, EMA 0.9998 -> 0.99999, AdamW betas (0.9, 0.95),
weight decay 0.05, a convolutional decoder. Departures, for CPU budgets: M = 4 clones; random masks (the paper's
inverse block masks for images; on a video's tubes, a place hidden at every time, as VideoMAE's tube masks); MAE's
light Transformer decoder (128 wide, 2 blocks) with a learned mask token, which works on any token grid (the paper's
decoder is a stack of 2-D or 1-D convolutions and fills hidden positions with noise); EMA from 0.996 to 1 linearly
(as I-JEPA; the paper's rates assume hundreds of thousands of steps); the targets are the blocks' outputs (the
paper's `end_of_block_targets` option; its default takes the feed-forward output before the residual); no [CLS]
loss; K is cut to the encoder's depth. Tokens that hold no observed value (a series' padding) are left out of the
instance norm and of the loss. Masks come from torch's global generator, which checkpoints save, so a resumed run
draws the same.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..encoders import TokenEncoder
from ..layers import MaskedDecoder
from ..views import ViewRequest, Views
from .base import Illustration, OptimizerDefaults, StepInfo, StepLogs, check_option, register_method
from .ijepa import token_illustration
from .mae import tube_keep
from .momentum import TargetEncoderMethod
from .numerics import full_precision


def data2vec_targets(layers: list[torch.Tensor], top_k: int, observed: torch.Tensor | None = None) -> torch.Tensor:
    """[B, T, D]: the mean of the last `top_k` layers [B, T, D], each normalised per sample and feature over the
    tokens (instance norm, eps 1e-5; only tokens with `observed` True [B, T] count), then layer-normalised; in float32
    (element-wise arithmetic, which autocast leaves alone)."""
    weight = torch.ones(layers[0].shape[:2], dtype=torch.float32, device=layers[0].device) if observed is None \
        else observed.float()
    weight = weight[..., None]
    count = weight.sum(dim=1, keepdim=True).clamp(min=1)
    normed = []
    for h in layers[-top_k:]:
        h = h.float()
        mean = (h * weight).sum(dim=1, keepdim=True) / count
        var = ((h - mean).square() * weight).sum(dim=1, keepdim=True) / count
        normed.append((h - mean) / (var + 1e-5).sqrt())
    y = torch.stack(normed).mean(dim=0)
    return F.layer_norm(y, (y.shape[-1],))


@full_precision
def data2vec_loss(pred: torch.Tensor, target: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """Mean over hidden tokens ([B, T] bool) of sum_d (pred - target)^2 / sqrt(D); pred/target [B, T, D]."""
    per_token = (pred - target).square().sum(dim=-1) / math.sqrt(pred.shape[-1])
    weight = hidden.to(per_token.dtype)
    return (per_token * weight).sum() / weight.sum().clamp(min=1)


@register_method("data2vec2", "Predict an EMA teacher's contextualised representations (its top layers, averaged) "
                 "of hidden tokens from the visible ones; images and series (token encoders).",
                 "Baevski et al. 2023, arXiv:2212.07525")
class Data2Vec2(TargetEncoderMethod):
    encoder_kind = TokenEncoder
    requested_views = ViewRequest("geometric", global_views=1)
    optimizer = OptimizerDefaults("adamw", lr=5e-4, weight_decay=0.05, betas=(0.9, 0.95))

    def __init__(self, encoder: TokenEncoder, mask_ratio: float = 0.8, clones: int = 4, top_k_layers: int = 10,
                 decoder_dim: int = 128, decoder_depth: int = 2, decoder_heads: int = 4,
                 base_momentum: float = 0.996) -> None:
        check_option("data2vec2", "mask_ratio", mask_ratio, 0.0, 0.99)
        check_option("data2vec2", "clones", clones, 1, low_open=False)
        check_option("data2vec2", "top_k_layers", top_k_layers, 1, low_open=False)
        super().__init__(encoder, base_momentum)
        self.mask_ratio, self.clones, self.top_k = float(mask_ratio), int(clones), int(top_k_layers)
        self.decoder = MaskedDecoder(encoder.token_dim, decoder_dim, decoder_depth, decoder_heads, encoder.layer_dim)

    def predict(self, x: torch.Tensor, clones: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(predictions, targets, keep, observed) for `clones` copies of the batch under independent masks."""
        observed = ~self.encoder.patches(x).isnan().all(dim=-1)  # tokens holding at least one observed value
        with torch.no_grad():
            y = data2vec_targets(self.target_encoder.layer_outputs(x), self.top_k, observed)
        xs = torch.cat([x] * clones)
        keep = tube_keep(self.encoder, xs, self.mask_ratio)
        positions = self.encoder.position_table(xs, self.decoder.embed.out_features)
        pred = self.decoder(self.encoder.tokens(xs, keep), keep, positions)
        return pred, torch.cat([y] * clones), keep, torch.cat([observed] * clones)

    def illustrate(self, x: torch.Tensor) -> Illustration:
        """The visible tokens' input, and at every hidden token the cosine similarity between the prediction and
        the teacher's target."""
        pred, y, keep, observed = self.predict(x, 1)
        similarity = F.cosine_similarity(pred.float(), y, dim=-1).masked_fill(keep | ~observed, float("nan"))
        return token_illustration(self.encoder, x, keep, similarity,
                                  "data2vec 2.0: predicted against the teacher's targets at the hidden tokens")

    def loss_on_views(self, views: Views, step: StepInfo) -> tuple[torch.Tensor, StepLogs]:
        pred, y, keep, observed = self.predict(views.global_views[0], self.clones)
        return data2vec_loss(pred, y, ~keep & observed), {}
