"""GRACE: Zhu et al. 2020, "Deep Graph Contrastive Representation Learning" (node-level contrast).

    u = g(f(G1)), v = g(f(G2)) per node       # two views: edges dropped, feature columns masked; nodes kept in place
    l(u_i) = -log( e^{cos(u_i,v_i)/t} / ( sum_k e^{cos(u_i,v_k)/t} + sum_{k != i} e^{cos(u_i,u_k)/t} ) )
    loss = mean_i (l(u_i) + l(v_i)) / 2      # inter-view and intra-view negatives, t = 0.5

An anchor's similarity to itself is no negative (as GRACE's code; PyGCL's DualBranchContrast puts e^(1/t) into
every denominator).

Projection head fc2(ELU(fc1(h))) of width 128 (the official code's); views with the Cora rates (edge dropping 0.2 /
0.4, feature masking 0.3 / 0.4); Adam at lr 5e-4, weight decay 1e-5 (Cora). Departures: the paper trains on one
whole graph; here a batch holds many graphs, every node of it an anchor, or node neighbourhoods of one large graph,
each sample's own node an anchor (its neighbours are copies of other samples' nodes, which must not be negatives
of themselves; the encoder marks them, `NodeOutputs.anchors`), so the negatives are the batch's other nodes; when more
than `max_nodes` rows take part, a random subset of that many (the same in both views) does, which bounds the O(M^2)
similarity matrix; across processes each process contrasts its own nodes. On a GIN the BatchNorm is off by default
(`gin: norm=none`), as the paper's GCN has none.
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
def grace_loss(u: torch.Tensor, v: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """GRACE's symmetric loss for aligned node projections u, v [M, d] (row i of both is node i)."""
    def one_side(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
        between = a @ b.T / temperature
        within = (a @ a.T / temperature).fill_diagonal_(float("-inf"))
        return torch.logsumexp(torch.cat([between, within], dim=1), dim=1) - between.diagonal()
    return 0.5 * (one_side(u, v) + one_side(v, u)).mean()


@register_method("grace", "Node contrastive: each node against itself in another view, with inter- and intra-view "
                 "negatives.", "Zhu et al. 2020, arXiv:2006.04131")
class GRACE(Method):
    encoder_kind = GraphEncoder
    optimizer = OptimizerDefaults("adamw", lr=5e-4, weight_decay=1e-5, lr_scaling="none")
    encoder_defaults = {"gin": {"norm": "none"}}
    requested_views = ViewRequest("node_aligned")

    def __init__(self, encoder, temperature: float = 0.5, proj_dim: int = 128, max_nodes: int = 4096) -> None:
        super().__init__(encoder)
        check_option("grace", "temperature", temperature, 0.0)
        check_option("grace", "max_nodes", max_nodes, 1)
        self.temperature, self.max_nodes = temperature, int(max_nodes)
        self.projector = nn.Sequential(nn.Linear(encoder.node_dim, proj_dim), nn.ELU(), nn.Linear(proj_dim, proj_dim))

    def loss_on_views(self, views, step):
        first, second = (self.encoder.node_outputs(v) for v in views.global_views)
        u, v = first.features, second.features
        if first.anchors is not None:  # node-level samples: each node once, not its copies in other neighbourhoods
            u, v = u[first.anchors], v[second.anchors]
        if len(u) > self.max_nodes:
            chosen = torch.randperm(len(u), device=u.device)[:self.max_nodes]
            u, v = u[chosen], v[chosen]
        return grace_loss(self.projector(u), self.projector(v), self.temperature), {}
