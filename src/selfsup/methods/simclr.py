"""SimCLR: Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations".

NT-Xent between two views; projection head 2048-128 (Linear-BN-ReLU-Linear); LARS with
lr = 0.3 x batch/256 and weight decay 1e-6. Temperature 0.5, the paper's best for small
images and batches (Appendix B.9, CIFAR-10); 0.1 is its ImageNet value at batch 4096.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Method, check_option, OptimizerDefaults, mlp, register_method
from .numerics import full_precision


@full_precision
def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5,
                 all_z1: torch.Tensor | None = None, all_z2: torch.Tensor | None = None,
                 offset: int = 0) -> torch.Tensor:
    """Normalised-temperature cross entropy: each sample's positive is its other view, the 2B-2 others are negatives.

    Across processes, pass the global batch's projections `all_z1`, `all_z2` (gathered in rank order) and
    `offset`, the position of this process's z1[0] in them: the local anchors are then scored against all
    2B candidates, and the mean of this loss over processes equals the loss on the concatenated batch.
    """
    if all_z1 is not None and all_z2 is not None:
        return _nt_xent_local_anchors(z1, z2, all_z1, all_z2, offset, temperature)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


@full_precision
def _nt_xent_local_anchors(z1: torch.Tensor, z2: torch.Tensor, all_z1: torch.Tensor, all_z2: torch.Tensor,
                           offset: int, temperature: float) -> torch.Tensor:
    """NT-Xent of the 2b local anchors against the 2B global candidates (positives offset by this process's rank)."""
    anchors = F.normalize(torch.cat([z1, z2]), dim=1)
    candidates = F.normalize(torch.cat([all_z1, all_z2]), dim=1)
    b, big_b = z1.shape[0], all_z1.shape[0]
    logits = anchors @ candidates.T / temperature
    idx = torch.arange(b, device=logits.device) + offset
    rows = torch.arange(2 * b, device=logits.device)
    self_cols = torch.cat([idx, idx + big_b])
    logits = logits.index_put((rows, self_cols), logits.new_full((), float("-inf")))  # logits' own dtype
    targets = torch.cat([idx + big_b, idx])
    return F.cross_entropy(logits, targets)


@register_method("simclr", "Contrastive: NT-Xent between two augmented views (in-batch negatives).",
                 "Chen et al. 2020, arXiv:2002.05709")
class SimCLR(Method):
    optimizer = OptimizerDefaults("lars", lr=0.3, weight_decay=1e-6)

    def __init__(self, encoder, temperature: float = 0.5, proj_hidden_dim: int = 2048,
                 proj_dim: int = 128) -> None:
        super().__init__(encoder)
        check_option("simclr", "temperature", temperature, 0.0)
        self.temperature = temperature
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim)

    def loss_on_views(self, views, step):
        z1, z2 = (self.projector(h) for h in self.encode(views.global_views))
        if self.distributed:  # negatives from every process's batch
            loss = nt_xent_loss(z1, z2, self.temperature, self.gather(z1), self.gather(z2), self.rank * len(z1))
        else:
            loss = nt_xent_loss(z1, z2, self.temperature)
        return loss, {}
