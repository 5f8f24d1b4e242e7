"""Unsupervised SimCSE: Gao, Yao & Chen 2021, "SimCSE: Simple Contrastive Learning of Sentence Embeddings".

Each sentence goes through the encoder twice; the two embeddings differ only by dropout (the views are identical:
the `instance` recipe of text), and each first embedding must pick its own second one among the batch's:

    h1, h2 = f(x), f(x)                      # two dropout masks
    z1, z2 = mlp(h1), mlp(h2)                # Linear + Tanh, used in training only
    loss = CE(cos(z1_i, z2_j) / tau, j = i)  # in-batch negatives, tau = 0.05

Paper defaults kept: temperature 0.05, the MLP head over the pooled embedding during training only (evaluation uses
the encoder's embedding), one direction of the loss (z1 against all z2: sentence-transformers'
MultipleNegativesRankingLoss at its default scale 20, not its symmetric form). Departures: the optimiser is AdamW at
lr 5e-4 x batch/256 with no weight decay, for an encoder trained from scratch (the paper fine-tunes a pretrained
BERT at 3e-5 with batch 64: pass `--lr 3e-5` for a pretrained `hf:` encoder); across processes the negatives are the
global batch's second views. From a randomly initialised text encoder the two views differ only by dropout, which
teaches it little (benchmarks/results/text.json: below its untrained encoder on STS-B), so such a run warns in one
line with the encoder's ways out (training/plan.py, `warn_on_identical_views`). On the other modalities the
`instance` views are augmented, so the two inputs differ by augmentation as well as by dropout (an encoder without
dropout still sees two different views): SimCLR's task with SimCSE's head, temperature and one-direction loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..views import ViewRequest
from .base import Method, OptimizerDefaults, check_option, register_method
from .numerics import full_precision


@full_precision
def simcse_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.05, offset: int = 0) -> torch.Tensor:
    """Cross entropy of each z1[i] picking z2[offset + i] among all rows of z2 by cosine similarity / temperature
    (z2 may be the global batch's, gathered in rank order, with this process's rows starting at `offset`)."""
    logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / temperature
    targets = torch.arange(len(z1), device=z1.device) + offset
    return F.cross_entropy(logits, targets)


@register_method("simcse", "Contrastive: each input twice, in-batch negatives at temperature 0.05 (text: views differ "
                 "only by dropout).",
                 "Gao et al. 2021, arXiv:2104.08821")
class SimCSE(Method):
    optimizer = OptimizerDefaults("adamw", lr=5e-4, weight_decay=0.0)
    requested_views = ViewRequest("instance")

    def __init__(self, encoder, temperature: float = 0.05) -> None:
        super().__init__(encoder)
        check_option("simcse", "temperature", temperature, 0.0)
        self.temperature = temperature
        self.head = nn.Sequential(nn.Linear(self.feature_dim, self.feature_dim), nn.Tanh())

    def loss_on_views(self, views, step):
        z1, z2 = (self.head(h) for h in self.encode(views.global_views))
        if self.distributed:
            return simcse_loss(z1, self.gather(z2), self.temperature, self.rank * len(z1)), {}
        return simcse_loss(z1, z2, self.temperature), {}
