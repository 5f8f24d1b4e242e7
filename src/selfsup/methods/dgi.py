"""DGI: Velickovic et al. 2019, "Deep Graph Infomax".

    H  = f(X, A), H~ = f(shuffle_rows(X), A)        # corruption: node features permuted, structure kept
    s  = sigmoid(mean_v H_v)                        # the graph's summary
    loss = BCE(D(H_v, s), 1) + BCE(D(H~_v, s), 0)   # D(h, s) = h^T W s + b, a bilinear discriminator

Views: `unchanged`; the corruption permutes the encoder's input rows across all nodes of the batch (as the paper
permutes the whole graph's), after the encoder has computed the inputs it derives from the structure: a graph without
node features (random-walk encodings its only inputs) is corrupted too. Adam at lr 0.001 (the official code's), no
weight decay; Xavier-initialised bilinear weights. Departure: a batch holds several graphs (or node neighbourhoods, as
the paper's Reddit and PPI runs sample), each with its own summary, every node scored against its own graph's; the mean
of the positive and the negative terms each over their nodes. The loss is half of PyTorch Geometric's
DeepGraphInfomax.loss (which sums the two terms; DGI's code averages its 2N logits, as here), and the discriminator has
DGI's bias (PyG's has none). On a GIN the BatchNorm is off by default (`gin: norm=none`), as the paper's GCN has none.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders import GraphEncoder
from ..views import ViewRequest
from .base import Method, OptimizerDefaults, register_method
from .numerics import full_precision


@full_precision
def dgi_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Binary cross entropy of discriminator logits: `positive` (real nodes) labelled 1, `negative` (corrupted) 0."""
    return 0.5 * (F.binary_cross_entropy_with_logits(positive, torch.ones_like(positive))
                  + F.binary_cross_entropy_with_logits(negative, torch.zeros_like(negative)))


def mean_by_owner(features: torch.Tensor, owner: torch.Tensor, count: int) -> torch.Tensor:
    """[count, d]: the mean of each sample's rows (zero for a sample with none)."""
    total = features.new_zeros(count, features.shape[1]).index_add(0, owner, features)
    return total / torch.bincount(owner, minlength=count).clamp(min=1)[:, None].to(features.dtype)


class BilinearScore(nn.Module):
    """D(h_v, s) = h_v^T W s + b for every node v with its own sample's summary s (nn.Bilinear's function, computed
    as one matrix product per sample: W s once per graph, not per node; Xavier-initialised W as DGI's code)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, dim))
        nn.init.xavier_uniform_(self.weight)
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, nodes: torch.Tensor, summaries: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        projected = summaries @ self.weight.T.to(summaries.dtype)  # [B, d]: W s
        return (nodes * projected[owner].to(nodes.dtype)).sum(dim=1) + self.bias


@register_method("dgi", "Graph infomax: real nodes against feature-shuffled ones, scored with their graph's summary "
                 "by a bilinear discriminator.", "Velickovic et al. 2019, arXiv:1809.10341")
class DGI(Method):
    encoder_kind = GraphEncoder
    optimizer = OptimizerDefaults("adamw", lr=0.001, weight_decay=0.0, lr_scaling="none")
    encoder_defaults = {"gin": {"norm": "none"}}
    requested_views = ViewRequest("unchanged", global_views=1)

    def __init__(self, encoder) -> None:
        super().__init__(encoder)
        self.discriminator = BilinearScore(encoder.node_dim)

    def loss_on_views(self, views, step):
        x = views.global_views[0]
        real = self.encoder.node_outputs(x)
        corrupted = self.encoder.node_outputs(x, shuffle=torch.randperm(len(real.features), device=x.device))
        summary = torch.sigmoid(mean_by_owner(real.features, real.owner, real.count))
        positive = self.discriminator(real.features, summary, real.owner)
        negative = self.discriminator(corrupted.features, summary, corrupted.owner)
        return dgi_loss(positive, negative), {}
