"""DCL and DCLW: Yeh et al. 2022, "Decoupled Contrastive Learning".

SimCLR with the positive pair removed from the denominator of its contrastive loss (the paper's Eq. 6): for an
anchor z_i^(k), the loss is -<z_i^(1), z_i^(2)>/tau + log sum_{l, j != i} exp(<z_i^(k), z_j^(l)>/tau), averaged
over the 2N anchors. DCLW multiplies the positive term by the negative von Mises-Fisher weight
w_i = 2 - exp(<z_i^(1), z_i^(2)>/sigma) / mean_j exp(<z_j^(1), z_j^(2)>/sigma), i.e. 2 - N softmax_i, computed
without gradient.

Defaults: temperature 0.1 and sigma 0.5, the paper's; SimCLR's projection head (selfsup's: 2048-128,
Linear-BN-ReLU-Linear) and optimiser (LARS, lr 0.3 x batch/256, weight decay 1e-6), as the paper trains DCL
inside SimCLR. Across processes the negatives are the whole global batch (as in selfsup's SimCLR) and DCLW's
softmax runs over the global batch, so the mean of the per-process losses equals the loss on the concatenated
batch; LightlySSL's DCLWLoss normalises the weights over each process's own batch instead (the same in one process).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Method, OptimizerDefaults, check_option, mlp, register_method
from .numerics import full_precision


def von_mises_fisher_weights(z1: torch.Tensor, z2: torch.Tensor, sigma: float) -> torch.Tensor:
    """DCLW's weight of each positive pair, 2 - N softmax_i(<z_i^(1), z_i^(2)> / sigma) (unit-norm rows, no gradient)."""
    cos = (z1.detach() * z2.detach()).sum(dim=1)
    return 2 - z1.shape[0] * torch.softmax(cos / sigma, dim=0)


@full_precision
def dcl_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1, sigma: float | None = None,
             all_z1: torch.Tensor | None = None, all_z2: torch.Tensor | None = None,
             offset: int = 0) -> torch.Tensor:
    """Decoupled contrastive loss of both views' anchors (DCLW's weighting with `sigma`, plain DCL without).

    Across processes, pass the global batch's projections `all_z1`, `all_z2` (gathered in rank order) and `offset`,
    the position of this process's z1[0] in them: every local anchor meets the 2B - 2 global negatives.
    """
    if all_z1 is None or all_z2 is None:
        all_z1, all_z2 = z1, z2
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    all_z1, all_z2 = F.normalize(all_z1, dim=1), F.normalize(all_z2, dim=1)
    own = torch.arange(z1.shape[0], device=z1.device) + offset  # each anchor's column in the global batch
    weight = von_mises_fisher_weights(all_z1, all_z2, sigma)[own] if sigma is not None else 1.0
    return 0.5 * (_decoupled(z1, z2, all_z1, all_z2, own, temperature, weight)
                  + _decoupled(z2, z1, all_z2, all_z1, own, temperature, weight))


def _decoupled(anchor: torch.Tensor, positive: torch.Tensor, same_view: torch.Tensor, other_view: torch.Tensor,
               own: torch.Tensor, temperature: float, weight: torch.Tensor | float) -> torch.Tensor:
    """Mean over anchors of -w <anchor, positive>/tau + log sum over the negatives (neither itself nor its positive)."""
    positive_term = (anchor * positive).sum(dim=1) / temperature
    logits = torch.cat([anchor @ same_view.T, anchor @ other_view.T], dim=1) / temperature
    rows = torch.arange(anchor.shape[0], device=anchor.device)
    excluded = logits.new_full((), float("-inf"))
    logits = logits.index_put((rows, own), excluded).index_put((rows, own + same_view.shape[0]), excluded)
    return (-weight * positive_term + torch.logsumexp(logits, dim=1)).mean()


@register_method("dcl", "Contrastive without the positive in the denominator (decoupled NT-Xent).",
                 "Yeh et al. 2022, arXiv:2110.06848")
class DCL(Method):
    optimizer = OptimizerDefaults("lars", lr=0.3, weight_decay=1e-6)

    def __init__(self, encoder, temperature: float = 0.1, proj_hidden_dim: int = 2048, proj_dim: int = 128) -> None:
        super().__init__(encoder)
        check_option(self.name, "temperature", temperature, 0.0)
        self.temperature = temperature
        self.sigma: float | None = None  # no weighting of the positives
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim)

    def loss_on_views(self, views, step):
        z1, z2 = (self.projector(h) for h in self.encode(views.global_views))
        if self.distributed:  # negatives (and DCLW's softmax) over every process's batch
            loss = dcl_loss(z1, z2, self.temperature, self.sigma, self.gather(z1), self.gather(z2),
                            self.rank * len(z1))
        else:
            loss = dcl_loss(z1, z2, self.temperature, self.sigma)
        return loss, {}


@register_method("dclw", "DCL with positives weighted by a negative von Mises-Fisher weight (harder pairs count more).",
                 "Yeh et al. 2022, arXiv:2110.06848")
class DCLW(DCL):
    def __init__(self, encoder, temperature: float = 0.1, sigma: float = 0.5, proj_hidden_dim: int = 2048,
                 proj_dim: int = 128) -> None:
        super().__init__(encoder, temperature, proj_hidden_dim, proj_dim)
        check_option(self.name, "sigma", sigma, 0.0)
        self.sigma = sigma
