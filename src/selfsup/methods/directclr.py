"""DirectCLR: Jing et al. 2022, "Understanding Dimensional Collapse in Contrastive Self-supervised Learning".

SimCLR's InfoNCE (NT-Xent) applied directly to a sub-vector of the representation, with no projector: the loss
sees only the first d0 dimensions r[:d0] of the encoder's output r, and the gradient that reaches the rest of r
comes through the encoder's shared weights. The paper shows that a projector only shapes which directions of the
representation the loss optimises, and trains with this fixed low-rank "projection" a representation that
competes with SimCLR's.

Defaults: d0 = 360 of a ResNet-50's 2048 dimensions in the paper; for another encoder width the same fraction,
d0 = round(out_dim * 360 / 2048) (at least 1; 90 of a ResNet-18's 512); `loss_dim` sets it directly. Temperature
0.5 and LARS (lr 0.3 x batch/256, weight decay 1e-6), selfsup's SimCLR settings, as the paper trains DirectCLR with
SimCLR's recipe (LightlySSL's DirectCLRLoss also defaults to 0.5, with loss_dim 64). Across processes the
negatives are the whole global batch, as in selfsup's SimCLR.
"""
from __future__ import annotations

import torch

from .base import Method, OptimizerDefaults, check_option, register_method
from .numerics import full_precision
from .simclr import nt_xent_loss

PAPER_D0, PAPER_WIDTH = 360, 2048  # the paper's sub-vector of a ResNet-50 representation


def scaled_loss_dim(out_dim: int) -> int:
    """d0 for a representation of `out_dim` dimensions: the paper's fraction 360/2048, rounded, at least 1."""
    return max(1, round(out_dim * PAPER_D0 / PAPER_WIDTH))


@full_precision
def directclr_loss(r1: torch.Tensor, r2: torch.Tensor, loss_dim: int, temperature: float = 0.5,
                   all_r1: torch.Tensor | None = None, all_r2: torch.Tensor | None = None,
                   offset: int = 0) -> torch.Tensor:
    """NT-Xent on the first `loss_dim` dimensions of two views' representations (global batch: see nt_xent_loss)."""
    sub = [None if r is None else r[:, :loss_dim] for r in (r1, r2, all_r1, all_r2)]
    return nt_xent_loss(sub[0], sub[1], temperature, sub[2], sub[3], offset)


@register_method("directclr", "Contrastive on a fixed sub-vector of the representation, without a projector.",
                 "Jing et al. 2022, arXiv:2110.09348")
class DirectCLR(Method):
    optimizer = OptimizerDefaults("lars", lr=0.3, weight_decay=1e-6)

    def __init__(self, encoder, loss_dim: int | None = None, temperature: float = 0.5) -> None:
        super().__init__(encoder)
        self.loss_dim = scaled_loss_dim(self.feature_dim) if loss_dim is None else int(loss_dim)
        check_option("directclr", "loss_dim", self.loss_dim, 1, self.feature_dim, low_open=False)
        check_option("directclr", "temperature", temperature, 0.0)
        self.temperature = temperature

    def loss_on_views(self, views, step):
        r1, r2 = self.encode(views.global_views)
        if self.distributed:  # negatives from every process's batch
            d0 = self.loss_dim
            loss = directclr_loss(r1, r2, d0, self.temperature, self.gather(r1[:, :d0]), self.gather(r2[:, :d0]),
                                  self.rank * len(r1))
        else:
            loss = directclr_loss(r1, r2, self.loss_dim, self.temperature)
        return loss, {}
