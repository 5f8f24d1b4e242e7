"""SCARF: Bahri et al. 2022, "SCARF: Self-Supervised Contrastive Learning using Random Feature Corruption"
(ICLR 2022, arXiv:2106.15147).

Views: the clean row (``views.clean``, the anchor) and one corrupted copy (``views.global_views[0]``,
recipe 'feature_corruption') in which a random subset of features (the paper's corruption rate: 60%) takes values drawn from the
features' empirical marginal distributions. Both go through the encoder f and the pre-training head
g (2 layers of 256 units); InfoNCE between g(f(x_i)) and g(f(x~_i)) with cosine similarity, the
other rows' corrupted views being the negatives. Paper: f is a 4-layer, 256-unit ReLU MLP; Adam
with lr 1e-3, batch 128; temperature 1.0 and corruption rate 0.6. The loss is the paper's InfoNCE, not SimCLR's
NT-Xent that TabularS3L's SCARF trains with (both directions, the other anchors also negatives).

selfsup's defaults differ where validation said so: temperature 0.5 here and corruption rate 0.3 in
the tabular modality's 'feature_corruption' views. Both were chosen once, for all tables, on validation splits
carved from the training rows of four tables (sklearn digits and breast_cancer, mlbench Satellite and
LetterRecognition), never on test rows; the paper's values lost on Satellite and LetterRecognition.
Pass --method-option temperature=1.0 --aug-strength 2 for the paper's setting.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..views import ViewRequest
from .base import Method, check_option, OptimizerDefaults, mlp, register_method
from .numerics import full_precision


@full_precision
def info_nce_loss(anchor: torch.Tensor, positive: torch.Tensor, temperature: float = 0.5,
                  symmetric: bool = False) -> torch.Tensor:
    """InfoNCE: row i of `anchor` must pick row i of `positive` among all rows (cosine similarity / T).

    With `symmetric`, the loss is averaged with the positives-as-anchors direction (NT-Xent-like).
    """
    a = F.normalize(anchor, dim=1)
    p = F.normalize(positive, dim=1)
    logits = a @ p.T / temperature
    targets = torch.arange(len(a), device=a.device)
    loss = F.cross_entropy(logits, targets)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.T, targets))
    return loss


@register_method("scarf", "Contrastive on tables: InfoNCE between a row and its randomly feature-corrupted copy.",
                 "Bahri et al. 2022, arXiv:2106.15147")
class SCARF(Method):
    optimizer = OptimizerDefaults("adamw", lr=1e-3, weight_decay=0.0, lr_scaling="none")
    requested_views = ViewRequest("feature_corruption", global_views=1, clean=True)

    def __init__(self, encoder, temperature: float = 0.5, head_hidden_dim: int = 256, head_dim: int = 256,
                 symmetric: bool = False) -> None:
        super().__init__(encoder)
        check_option("scarf", "temperature", temperature, 0.0)
        self.temperature = temperature
        self.symmetric = symmetric
        self.head = mlp(self.feature_dim, head_hidden_dim, head_dim, num_layers=2)

    def loss_on_views(self, views, step):
        z, z_tilde = (self.head(h) for h in self.encode([views.clean, views.global_views[0]]))
        loss = info_nce_loss(z, z_tilde, self.temperature, self.symmetric)
        return loss, {}
