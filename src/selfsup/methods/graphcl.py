"""GraphCL: You et al. 2020, "Graph Contrastive Learning with Augmentations" (unsupervised graph classification).

    z  = g(f(G))                     # the graph as it is (the official unsupervised code augments one view only)
    z' = g(f(aug(G)))                # aug: node dropping or subgraph, drawn per graph ("random2", its MUTAG setting)
    loss_i = -log( exp(cos(z_i, z'_i)/t) / sum_{j != i} exp(cos(z_i, z'_j)/t) )    # t = 0.2

The loss is the official `loss_cal`: one direction, negatives the other view's graphs only, the positive left out of
the denominator (PyGCL's InfoNCE keeps it; its GraphCL also averages both directions). Projection head
Linear(d, d)-ReLU-Linear(d, d); GIN of 3 layers of 32 (the `gin` encoder's default, the paper's script for MUTAG),
Adam at lr 0.01, batch 128, 20 epochs. Departure: the augmentation ratio is the paper's 0.2 for both augmentations
(the code drops 10% of the nodes and grows subgraphs from the start node's neighbours only, its issues 6 and 7);
across processes the negatives are the global batch's augmented graphs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders import GraphEncoder
from ..views import ViewRequest
from .base import Method, OptimizerDefaults, check_option, register_method
from .numerics import full_precision


@full_precision
def graphcl_loss(z: torch.Tensor, z_aug: torch.Tensor, temperature: float = 0.2, offset: int = 0) -> torch.Tensor:
    """Mean over rows i of z of -log(exp(s_ii / t) / sum_{j != i} exp(s_ij / t)), s_ij = cos(z_i, z_aug_j); z_aug may
    be the global batch's (its rows of this process start at `offset`)."""
    sim = F.normalize(z, dim=1) @ F.normalize(z_aug, dim=1).T / temperature
    own = torch.arange(len(z), device=z.device) + offset
    positive = sim[torch.arange(len(z), device=z.device), own]
    negatives = sim.index_put((torch.arange(len(z), device=z.device), own), sim.new_full((), float("-inf")))
    return (torch.logsumexp(negatives, dim=1) - positive).mean()


@register_method("graphcl", "Graph contrastive: the graph against its node-dropped or subgraph view, cross-view "
                 "negatives at temperature 0.2.", "You et al. 2020, arXiv:2010.13902")
class GraphCL(Method):
    encoder_kind = GraphEncoder
    optimizer = OptimizerDefaults("adamw", lr=0.01, weight_decay=0.0, lr_scaling="none")
    requested_views = ViewRequest("instance", options={"first_unchanged": 1.0, "edge_perturbation": 0.0,
                                                        "attribute_masking": 0.0})

    def __init__(self, encoder, temperature: float = 0.2, ratio: float = 0.2) -> None:
        super().__init__(encoder)
        check_option("graphcl", "temperature", temperature, 0.0)
        check_option("graphcl", "ratio", ratio, 0.0, 0.95, low_open=False)
        self.temperature, self.ratio = temperature, ratio
        d = self.feature_dim
        self.projector = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, d))

    def view_request(self) -> ViewRequest:
        return ViewRequest("instance", options={**self.requested_views.options, "ratio": self.ratio})

    def loss_on_views(self, views, step):
        z, z_aug = (self.projector(h) for h in self.encode(views.global_views))
        if self.distributed:
            return graphcl_loss(z, self.gather(z_aug), self.temperature, self.rank * len(z)), {}
        return graphcl_loss(z, z_aug, self.temperature), {}
