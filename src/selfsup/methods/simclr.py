"""SimCLR: Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations".

NT-Xent between two views; projection head 2048-128 (Linear-BN-ReLU-Linear); LARS with
lr = 0.3 x batch/256 and weight decay 1e-6. Temperature 0.5, the paper's best for small
images and batches (Appendix B.9, CIFAR-10); 0.1 is its ImageNet value at batch 4096.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Method, OptimizerDefaults, mlp, register_method


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Normalised-temperature cross entropy: each sample's positive is its other view, the 2B-2 others are negatives."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


@register_method("simclr", "Contrastive: NT-Xent between two augmented views (in-batch negatives).",
                 "Chen et al. 2020, arXiv:2002.05709")
class SimCLR(Method):
    view_style = "simclr"
    optimizer = OptimizerDefaults("lars", lr=0.3, weight_decay=1e-6)

    def __init__(self, encoder, temperature: float = 0.5, proj_hidden_dim: int = 2048,
                 proj_dim: int = 128) -> None:
        super().__init__(encoder)
        self.temperature = temperature
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim)

    def loss_on_views(self, views):
        z1, z2 = (self.projector(h) for h in self.encode(views))
        loss = nt_xent_loss(z1, z2, self.temperature)
        return loss, {"loss": loss.item()}
