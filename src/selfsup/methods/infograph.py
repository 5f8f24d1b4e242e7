"""InfoGraph: Sun et al. 2020, "InfoGraph: Unsupervised and Semi-supervised Graph-Level Representation Learning via
Mutual Information Maximization".

    h_v = f(G) per node (every GIN layer's output concatenated),  g = sum_v h_v     # the graph's vector
    s   = T_local(h_v) . T_global(g_G') for every node v and graph G' of the batch
    loss = E_neg[softplus(-s) + s - log 2] - E_pos[log 2 - softplus(-s)]          # Jensen-Shannon MI estimator

Positive pairs are a node and its own graph, negatives a node and every other graph of the batch (expectations over
the M node-graph positives and the M(B-1) negatives, as the official `local_global_loss_`). T_local and T_global are
the official `FF` discriminators: three Linear-ReLU layers plus a linear shortcut, width d. Views: the graphs as they
are. Adam at lr 1e-3, the lower of the paper's search {0.01, 0.001}: on the generated `motifs` the inner CV of
benchmarks/graphs.py chose it (with the GIN without BatchNorm) over 0.01 in all 50 folds (graphs.json, 08c2ebb).
On a GIN the BatchNorm is therefore off by default (`gin: norm=none`; `--encoder-option norm=batch` restores it).
Batch 128, 20 epochs; the prior term is off (the official default). Across processes the negatives include every
process's graphs.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders import GraphEncoder
from ..views import ViewRequest
from .base import Method, OptimizerDefaults, register_method
from .numerics import full_precision

LOG2 = math.log(2.0)


@full_precision
def jsd_local_global_loss(local: torch.Tensor, global_: torch.Tensor, owner: torch.Tensor,
                          offset: int = 0) -> torch.Tensor:
    """InfoGraph's JSD loss between node vectors `local` [M, d] and graph vectors `global_` [G, d]; node m's own graph
    is row owner[m] + offset of `global_`."""
    scores = local @ global_.T
    positive = F.one_hot(owner + offset, num_classes=global_.shape[0]).to(scores.dtype)
    e_pos = ((LOG2 - F.softplus(-scores)) * positive).sum() / len(local)
    e_neg = ((F.softplus(-scores) + scores - LOG2) * (1 - positive)).sum() / (len(local) * max(global_.shape[0] - 1, 1))
    return e_neg - e_pos


class FeedForward(nn.Module):
    """InfoGraph's FF discriminator: three Linear-ReLU layers plus a linear shortcut."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Linear(in_dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(),
                                   nn.Linear(dim, dim), nn.ReLU())
        self.shortcut = nn.Linear(in_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + self.shortcut(x)


@register_method("infograph", "Graph mutual information: every node against its own graph's vector and the batch's "
                 "other graphs (Jensen-Shannon estimator).", "Sun et al. 2020, arXiv:1908.01000")
class InfoGraph(Method):
    encoder_kind = GraphEncoder
    optimizer = OptimizerDefaults("adamw", lr=1e-3, weight_decay=0.0, lr_scaling="none")
    encoder_defaults = {"gin": {"norm": "none"}}
    requested_views = ViewRequest("unchanged", global_views=1)

    def __init__(self, encoder) -> None:
        super().__init__(encoder)
        self.local_d = FeedForward(encoder.node_dim, encoder.node_dim)
        self.global_d = FeedForward(self.feature_dim, encoder.node_dim)

    def loss_on_views(self, views, step):
        nodes = self.encoder.node_outputs(views.global_views[0])
        local = self.local_d(nodes.features)
        global_ = self.global_d(self.encoder.readout(nodes))
        if self.distributed:
            return jsd_local_global_loss(local, self.gather(global_), nodes.owner, self.rank * nodes.count), {}
        return jsd_local_global_loss(local, global_, nodes.owner), {}
