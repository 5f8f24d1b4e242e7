"""BGRL: Thakoor et al. 2022, "Large-Scale Representation Learning on Graphs via Bootstrapping".

    h1, h2 = f(G1), f(G2) per node                     # node_aligned views: edges dropped, feature columns masked
    y1, y2 = f_t(G1), f_t(G2)                         # the EMA target encoder, no gradient
    loss = 2 - cos(p(h1), y2).mean() - cos(p(h2), y1).mean()     # p: Linear(d, 512)-PReLU-Linear(512, d)

No projector (the official code predicts the target encoder's node outputs directly); target momentum from 0.99 to 1
on a cosine over training; AdamW at lr 5e-4, weight decay 1e-5; views with the Amazon-Computers rates (edge dropping
0.5 / 0.4, feature masking 0.2 / 0.1). Departures: the target starts as a copy of the online encoder (the code
re-initialises it); no 1000-epoch warm-up of the learning rate; a batch holds many graphs or node neighbourhoods
(the paper trains on whole graphs).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders import GraphEncoder
from ..views import ViewRequest
from .base import OptimizerDefaults, register_method
from .momentum import TargetEncoderMethod
from .numerics import full_precision
from ..schedules import Schedule

BGRL_RATES = {"edge_drop_0": 0.5, "feature_mask_0": 0.2, "edge_drop_1": 0.4, "feature_mask_1": 0.1}


@full_precision
def bgrl_loss(p1: torch.Tensor, p2: torch.Tensor, y1: torch.Tensor, y2: torch.Tensor) -> torch.Tensor:
    """2 - mean cos(p1, y2) - mean cos(p2, y1); the targets are detached."""
    return 2 - F.cosine_similarity(p1, y2.detach(), dim=1).mean() - F.cosine_similarity(p2, y1.detach(), dim=1).mean()


@register_method("bgrl", "Bootstrapped node representations: predict an EMA target encoder's nodes in the other view "
                 "(no negatives).", "Thakoor et al. 2022, arXiv:2102.06514")
class BGRL(TargetEncoderMethod):
    encoder_kind = GraphEncoder
    optimizer = OptimizerDefaults("adamw", lr=5e-4, weight_decay=1e-5, lr_scaling="none")
    requested_views = ViewRequest("node_aligned", options=BGRL_RATES)

    def __init__(self, encoder, pred_hidden_dim: int = 512, base_momentum: float = 0.99) -> None:
        super().__init__(encoder, base_momentum)
        self.momentum = Schedule(base_momentum, 1.0)  # cosine, as BGRL's code
        d = encoder.node_dim
        self.predictor = nn.Sequential(nn.Linear(d, pred_hidden_dim), nn.PReLU(1), nn.Linear(pred_hidden_dim, d))

    def target_momentum(self, progress: float) -> float:
        return self.momentum(progress)

    def loss_on_views(self, views, step):
        h1, h2 = (self.encoder.node_outputs(v).features for v in views.global_views)
        with torch.no_grad():
            y1, y2 = (self.target_encoder.node_outputs(v).features for v in views.global_views)
        return bgrl_loss(self.predictor(h1), self.predictor(h2), y1, y2), {}
