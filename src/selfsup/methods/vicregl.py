"""VICRegL: Bardes et al. 2022, "VICRegL: Self-Supervised Learning of Local Visual Features" (NeurIPS,
arXiv:2210.01571).

VICReg on the pooled features of the views, plus VICReg on their local features, matched across views:

    z_v = projector(mean of encoder.tokens(view v))              # global embeddings, every crop
    m_v = maps_projector(encoder.tokens(view v))                 # one local embedding per token
    global = lambda mean_(i global, j != i) MSE(z_i, z_j) + mu mean_v var(z_v) + nu mean_v cov(z_v)
    for each pair (i global, j != i):
        a, b = the 20 tokens of m_i closest to their nearest token of m_j, and those neighbours
        c, d = the 4 tokens of m_j closest to their nearest token of m_i, and those neighbours
        local_ij = (VICReg(a, b) + VICReg(c, d)) / 2             # batch statistics per matched slot
    loss = alpha global + (1 - alpha) mean_ij local_ij           # alpha = 0.75

lambda = mu = 25, nu = 1 with the covariance term averaged over the views (the authors' code; half of VICReg's
sum over two views). Matches are kept best first, 20 and 4 of them (the paper's text and LightlySSL; the authors'
code keeps every token in its feature-space matching, in token order). Projectors: 3 layers of 2048 for the global
embeddings (the paper's 8192 is for ImageNet, as in selfsup's VICReg), 3 layers of 512 for the local ones (the
paper's). AdamW, lr 5e-4 x batch/256, weight decay 0.05: the authors' code default, for ConvNeXt, a LayerNorm
network like the token encoders here (their ResNet-50 recipe: LARS, lr 0.3, weight decay 1e-6). 2 global + 6
local crops (multi-crop), BYOL's asymmetric augmentations as VICReg.

Departures, stated:
- the local features are a token encoder's per-token outputs (a ViT's patches, a series' patches): selfsup's
  convolutional image encoders give no feature map;
- local features are matched in feature space only. The paper also matches them by location (each position to
  the nearest positions of the other view in image coordinates, which needs the crops' geometry); selfsup's views
  do not carry it, so that term is left out, and local_ij is the feature-space term alone;
- tokens that hold no observed value (a series' padding) are never matched;
- the local projector learns at the same rate as the rest (the authors' code: a tenth), and the crops are the
  modality's (the authors': 40-100% global, 8-40% local).
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from ..encoders import TokenEncoder
from ..views import ViewRequest, Views
from .base import Method, OptimizerDefaults, StepInfo, StepLogs, check_option, mlp, register_method
from .numerics import full_precision
from .vicreg import covariance_term, variance_term, vicreg_loss


def nearest_matches(a: torch.Tensor, b: torch.Tensor, matches: int, valid_a: torch.Tensor | None = None,
                    valid_b: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(the `matches` rows of a closest (L2) to their nearest row of b, those nearest rows), [B, k, D] each, k =
    min(matches, N), closest pair first; a [B, N, D], b [B, M, D]. Rows with `valid_*` [B, N] / [B, M] False are
    never a neighbour and come last among the rows of a."""
    with torch.no_grad():
        distance = torch.cdist(a, b)  # [B, N, M]
        if valid_b is not None:
            distance = distance.masked_fill(~valid_b[:, None, :], float("inf"))
        closest, neighbour = distance.min(dim=2)  # [B, N]
        if valid_a is not None:
            closest = closest.masked_fill(~valid_a, float("inf"))
        chosen = closest.topk(min(matches, a.shape[1]), dim=1, largest=False).indices  # [B, k]
        partner = torch.gather(neighbour, 1, chosen)
    pick = lambda x, rows: torch.gather(x, 1, rows[..., None].expand(-1, -1, x.shape[-1]))  # noqa: E731
    return pick(a, chosen), pick(b, partner)


@full_precision
def vicregl_loss(embeddings: list[torch.Tensor], maps: list[torch.Tensor], global_views: int = 2, alpha: float = 0.75,
                 sim_weight: float = 25.0, var_weight: float = 25.0, cov_weight: float = 1.0,
                 matches: tuple[int, int] = (20, 4), valid: list[torch.Tensor] | None = None) -> torch.Tensor:
    """alpha x VICReg of the embeddings [B, D] + (1 - alpha) x VICReg of the feature-space-matched local maps
    [B, N_v, D'] (see the module docstring); views in order, the `global_views` first; `valid` [B, N_v] bool per
    view marks the tokens that may be matched (None: all)."""
    pairs = [(i, j) for i in range(global_views) for j in range(len(embeddings)) if j != i]
    invariance = sum(F.mse_loss(embeddings[i], embeddings[j]) for i, j in pairs) / len(pairs)
    variance = sum(variance_term(z) for z in embeddings) / len(embeddings)
    covariance = sum(covariance_term(z) for z in embeddings) / len(embeddings)
    global_term = sim_weight * invariance + var_weight * variance + cov_weight * covariance
    ok = valid if valid is not None else [None] * len(maps)
    local_term = sum(0.5 * (vicreg_loss(*nearest_matches(maps[i], maps[j], matches[0], ok[i], ok[j]),
                                        sim_weight, var_weight, 0.5 * cov_weight)
                            + vicreg_loss(*nearest_matches(maps[j], maps[i], matches[1], ok[j], ok[i]),
                                          sim_weight, var_weight, 0.5 * cov_weight))
                     for i, j in pairs) / len(pairs)
    return alpha * global_term + (1 - alpha) * local_term


@register_method("vicregl", "VICReg on pooled features plus VICReg on local features matched across views by "
                 "feature-space nearest neighbours (token encoders).", "Bardes et al. 2022, arXiv:2210.01571")
class VICRegL(Method):
    encoder_kind = TokenEncoder
    requested_views = ViewRequest("asymmetric", global_views=2, local_views=6, local_size=96 / 224)
    optimizer = OptimizerDefaults("adamw", lr=5e-4, weight_decay=0.05)

    def __init__(self, encoder: TokenEncoder, proj_dim: int = 2048, proj_hidden_dim: int = 2048,
                 maps_proj_dim: int = 512, maps_proj_hidden_dim: int = 512, local_crops: int = 6, alpha: float = 0.75,
                 sim_weight: float = 25.0, var_weight: float = 25.0, cov_weight: float = 1.0,
                 global_matches: int = 20, local_matches: int = 4) -> None:
        super().__init__(encoder)
        check_option("vicregl", "local_crops", local_crops, 0, low_open=False)
        check_option("vicregl", "alpha", alpha, 0.0, 1.0, low_open=False)
        check_option("vicregl", "global_matches", global_matches, 1, low_open=False)
        check_option("vicregl", "local_matches", local_matches, 1, low_open=False)
        self.local_crops, self.alpha = int(local_crops), float(alpha)
        self.weights = (sim_weight, var_weight, cov_weight)
        self.matches = (int(global_matches), int(local_matches))
        self.projector = mlp(encoder.token_dim, proj_hidden_dim, proj_dim, num_layers=3)
        self.maps_projector = mlp(encoder.token_dim, maps_proj_hidden_dim, maps_proj_dim, num_layers=3)

    def view_request(self) -> ViewRequest:
        return replace(self.requested_views, local_views=self.local_crops)

    def loss_on_views(self, views: Views, step: StepInfo) -> tuple[torch.Tensor, StepLogs]:
        tokens = self.encode(views.crops, self.encoder.tokens)  # [B, T_v, token_dim] per view
        embeddings = [self.projector(t.mean(dim=1)) for t in tokens]
        maps = [self.maps_projector(t.flatten(0, 1)).view(*t.shape[:2], -1) for t in tokens]
        valid = [~self.encoder.patches(v).isnan().all(dim=-1) for v in views.crops]
        if self.distributed:  # batch statistics over every process's batch
            embeddings, maps = ([self.gather(x) for x in xs] for xs in (embeddings, maps))
            valid = [self.gather(v.float()) > 0 for v in valid]
        loss = vicregl_loss(embeddings, maps, len(views.global_views), self.alpha, *self.weights, self.matches, valid)
        return loss, {}
