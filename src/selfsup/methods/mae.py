"""MAE: He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners".

    keep = random 25% of each input's patches            # mask ratio 0.75, a new draw per sample and step
    latent = encoder.tokens(x, keep)                      # the encoder sees the kept patches only
    full = mask_token everywhere, latent (embedded) where kept, + fixed position code
    pred = decoder(full)                                  # a light Transformer, then a linear map to patch values
    target = per-patch normalised patches of x            # norm_pix_loss
    loss = mean squared error over the hidden patches only

Views: `geometric` (random resized crop of 20-100%, horizontal flip, no colour change), one per sample. AdamW with
betas (0.9, 0.95), weight decay 0.05, base lr 1.5e-4 x batch/256, cosine schedule with warm-up (the trainer's).
Departures, for CPU budgets and small images: the decoder is 128 wide with 2 blocks and 4 heads (paper: 512, 8,
16; its ablation finds one block already good for fine-tuning), there is no [CLS] token (the encoder's
embedding is the mean of its tokens), and the number of kept patches is T x (1 - mask_ratio) rounded to the
nearest (MAE's code floors it: the same count whenever the fraction is below one half, e.g. 49 of 196 at 0.75).
On a series (the patch Transformer) this is masked series modelling as PatchTST pre-trains (Nie et al. 2023:
patches, 40% hidden, MSE on them; --method-option mask_ratio=0.4 for its ratio), with MAE's dropped tokens and
decoder, and a patch's unobserved values left out of its target. On a point Transformer
(`TokenEncoder.patch_points`) a patch is a set of points, so the error is the Chamfer distance of each hidden
patch's predicted and true points, and the target is not normalised (its points are offsets from the patch's centre
already); point_mae.py has Point-MAE's defaults. The mask is drawn from torch's global generator, which checkpoints
save and restore, so a resumed run draws the same masks.
"""
from __future__ import annotations

import math

import torch

from ..encoders import TokenEncoder
from ..layers import MaskedDecoder
from ..views import ViewRequest, Views
from .base import Illustration, Method, OptimizerDefaults, StepInfo, StepLogs, check_option, register_method
from .numerics import full_precision


def patch_statistics(patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, std = sqrt(unbiased variance + 1e-6), observed count) of each patch [B, T, P] -> [B, T, 1] each, over
    its observed (not NaN) values."""
    observed = ~patches.isnan()
    count = observed.sum(dim=-1, keepdim=True)
    values = patches.nan_to_num(0.0)
    mean = values.sum(dim=-1, keepdim=True) / count.clamp(min=1)
    var = ((values - mean).square() * observed).sum(dim=-1, keepdim=True) / (count - 1).clamp(min=1)
    return mean, (var + 1e-6).sqrt(), count


@full_precision
def mae_loss(pred: torch.Tensor, target: torch.Tensor, hidden: torch.Tensor, normalise_target: bool = True
             ) -> torch.Tensor:
    """Mean over hidden patches of the per-patch mean squared error; pred/target [B, T, P], hidden [B, T] bool.
    With `normalise_target` each target patch is standardised by its own mean and (unbiased) variance (+1e-6).
    NaN in `target` is a value never observed (a series' padding or gap): it is left out of the patch's statistics
    and error, and a patch with no observed value out of the mean."""
    observed = ~target.isnan()
    mean, std, count = patch_statistics(target)
    target = target.nan_to_num(0.0)
    if normalise_target:
        target = (target - mean) / std
    per_patch = ((pred - target).square() * observed).sum(dim=-1) / count.squeeze(-1).clamp(min=1)
    weight = (hidden & (count.squeeze(-1) > 0)).to(per_patch.dtype)
    return (per_patch * weight).sum() / weight.sum().clamp(min=1)


def chamfer_distance(pred: torch.Tensor, target: torch.Tensor, squared: bool = True) -> torch.Tensor:
    """[N]: the Chamfer distance of each predicted set of points pred [N, M, k] to its true set target [N, Q, k]: the
    mean distance from each true point to its nearest predicted point plus the mean from each predicted point to its
    nearest true one, of squared distances (`squared`, Point-MAE's L2) or of distances (OcCo's)."""
    distance = torch.cdist(pred, target)  # [N, M, Q]
    if squared:
        distance = distance.square()
    return distance.amin(dim=1).mean(dim=1) + distance.amin(dim=2).mean(dim=1)


@full_precision
def chamfer_loss(pred: torch.Tensor, target: torch.Tensor, hidden: torch.Tensor, coordinates: int) -> torch.Tensor:
    """Mean over hidden patches of the Chamfer distance (`chamfer_distance`, squared: Point-MAE's L2) between the
    predicted and the true set of points of each patch; pred/target [B, T, points x coordinates]."""
    b, t, _ = target.shape
    sets = pred.reshape(b * t, -1, coordinates), target.reshape(b * t, -1, coordinates)
    per_patch = chamfer_distance(*sets).view(b, t)
    weight = hidden.to(per_patch.dtype)
    return (per_patch * weight).sum() / weight.sum().clamp(min=1)


def random_keep(batch: int, tokens: int, mask_ratio: float, device: torch.device) -> torch.Tensor:
    """[batch, tokens] bool with exactly round(tokens x (1 - mask_ratio)) (at least 1) True per row, uniformly."""
    kept = max(1, int(round(tokens * (1 - mask_ratio))))
    ranks = torch.rand(batch, tokens, device=device).argsort(dim=1).argsort(dim=1)
    return ranks < kept


def tube_keep(encoder: TokenEncoder, x: torch.Tensor, mask_ratio: float) -> torch.Tensor:
    """[B, T] bool: random places of the token grid's non-time axes kept (round(places x (1 - ratio)), at least 1),
    each kept at every step of its time axes (`TokenEncoder.time_axes`; none: random_keep over every token)."""
    grid = encoder.token_grid(x)
    steps, places = math.prod(grid[:encoder.time_axes]), math.prod(grid[encoder.time_axes:])
    keep = random_keep(x.shape[0], places, mask_ratio, x.device)
    return keep[:, None, :].expand(-1, steps, -1).reshape(x.shape[0], steps * places)


@register_method("mae", "Masked autoencoder: reconstruct hidden patches' pixels from the visible quarter "
                 "(token encoders, e.g. vit_tiny).", "He et al. 2022, arXiv:2111.06377")
class MAE(Method):
    encoder_kind = TokenEncoder
    requested_views = ViewRequest("geometric", global_views=1)
    optimizer = OptimizerDefaults("adamw", lr=1.5e-4, weight_decay=0.05, betas=(0.9, 0.95))

    def __init__(self, encoder: TokenEncoder, mask_ratio: float = 0.75, decoder_dim: int = 128,
                 decoder_depth: int = 2, decoder_heads: int = 4, norm_pix_loss: bool = True) -> None:
        super().__init__(encoder)
        check_option("mae", "mask_ratio", mask_ratio, 0.0, 0.99)
        # a set of points (encoder.patch_points) is already centred on its patch's centre; its target is as it is
        self.mask_ratio = float(mask_ratio)
        self.norm_pix_loss = bool(norm_pix_loss) and not encoder.patch_points
        self.decoder = MaskedDecoder(encoder.token_dim, decoder_dim, decoder_depth, decoder_heads, encoder.patch_dim)

    def keep_mask(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T] bool: the patches the encoder sees (a random fraction 1 - mask_ratio of each input's)."""
        return random_keep(x.shape[0], self.encoder.token_count(x), self.mask_ratio, x.device)

    def reconstruct(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """[B, T, patch_dim]: the decoder's prediction of every patch from the kept ones."""
        positions = self.encoder.position_table(x, self.decoder.embed.out_features)
        return self.decoder(self.encoder.tokens(x, keep), keep, positions)

    def illustrate(self, x: torch.Tensor) -> Illustration:
        """The visible patches, and the reconstruction (hidden patches predicted, visible ones pasted back; with
        normalised targets each prediction is put back at its patch's own mean and spread, as MAE's demo does)."""
        keep = self.keep_mask(x)
        target = self.encoder.patches(x)
        pred = self.reconstruct(x, keep).float()
        if self.norm_pix_loss:
            mean, std, _ = patch_statistics(target)
            pred = pred * std + mean
        kept = keep[..., None]
        visible = torch.where(kept, target, torch.full_like(target, float("nan")))
        return Illustration({"input": x, f"visible ({1 - self.mask_ratio:.0%})": self.encoder.unpatch(visible, x),
                             "reconstruction": self.encoder.unpatch(torch.where(kept, target, pred), x)},
                            caption="MAE: the decoder's prediction of every hidden patch from the visible ones")

    def loss_on_views(self, views: Views, step: StepInfo) -> tuple[torch.Tensor, StepLogs]:
        x = views.global_views[0]
        keep = self.keep_mask(x)
        pred = self.reconstruct(x, keep)
        return self.reconstruction_loss(pred, self.encoder.patches(x), ~keep), {}

    def reconstruction_loss(self, pred: torch.Tensor, target: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """The hidden patches' error: value by value, or up to the points' order where a patch is a set of points."""
        if self.encoder.patch_points:
            return chamfer_loss(pred, target, hidden, self.encoder.patch_points)
        return mae_loss(pred, target, hidden, self.norm_pix_loss)

