"""SwAV: Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments"
(NeurIPS, arXiv:2006.09882).

Online clustering with swapped prediction. Every crop is projected (2-layer MLP 2048-128, L2-normalised) and
scored against K = 3000 prototypes (a linear layer whose weight rows are kept L2-normalised). For each
global crop, the codes q are computed without gradient by Sinkhorn-Knopp (3 iterations, epsilon 0.05) so
that the batch is split equally among the prototypes; under torchrun the sums run over every process's
batch (all-reduced), as in the paper. Each other crop must predict those codes from its own scores:
loss = mean over (code crop i, crop v != i) of -sum q_i log softmax(scores_v / 0.1). Multi-crop: 2 global +
6 local crops. The prototypes are frozen during the first epoch (the paper's `freeze_prototypes_niters`,
313 iterations = 1 ImageNet epoch at batch 4096). LARS, lr 0.3 x batch/256 (the paper's 4.8 at 4096),
weight decay 1e-6; SimCLR's augmentations.

Small batches: the paper adds a queue of past projections (3840 with batch 256, from epoch 15) so
Sinkhorn sees enough samples; `queue_length` (0 = off, the default here) and `queue_start` (the fraction of
training after which the queue is used) switch it on. Departures: `queue_start` is a fraction of training
rather than an epoch number, and the queue is filled from the first step (the paper's code starts filling it at
the queue's epoch), so it is full when it starts to be used.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..collectives import sinkhorn
from ..views import ViewRequest
from .base import OptimizerDefaults, StepInfo, check_option, register_method
from .multicrop import MultiCropMethod, cross_view_cross_entropy
from .numerics import full_precision


@full_precision
def swapped_prediction_loss(scores: list[torch.Tensor], codes: list[torch.Tensor], temperature: float = 0.1
                            ) -> torch.Tensor:
    """Mean over (code crop i, scored crop v != i) of -sum_k q_i[k] log softmax(scores_v / T)[k]."""
    return cross_view_cross_entropy(codes, [F.log_softmax(s / temperature, dim=1) for s in scores])


@register_method("swav", "Online clustering: Sinkhorn-balanced prototype codes of one crop are predicted from the "
                 "other crops (multi-crop).", "Caron et al. 2020, arXiv:2006.09882")
class SwAV(MultiCropMethod):
    requested_views = ViewRequest("instance", global_views=2, local_views=6, local_size=96 / 224)
    optimizer = OptimizerDefaults("lars", lr=0.3, weight_decay=1e-6)

    def __init__(self, encoder, num_prototypes: int = 3000, proj_hidden_dim: int = 2048, proj_dim: int = 128,
                 temperature: float = 0.1, epsilon: float = 0.05, sinkhorn_iterations: int = 3, local_crops: int = 6,
                 freeze_prototypes_epochs: int = 1, queue_length: int = 0, queue_start: float = 0.15) -> None:
        super().__init__(encoder, local_crops, freeze_prototypes_epochs)
        check_option("swav", "temperature", temperature, 0.0)
        check_option("swav", "epsilon", epsilon, 0.0)
        check_option("swav", "num_prototypes", num_prototypes, 1, low_open=False)
        check_option("swav", "queue_length", queue_length, 0, low_open=False)
        self.temperature, self.epsilon, self.iterations = temperature, epsilon, sinkhorn_iterations
        self.queue_start = queue_start
        self.projector = nn.Sequential(nn.Linear(self.feature_dim, proj_hidden_dim), nn.BatchNorm1d(proj_hidden_dim),
                                       nn.ReLU(inplace=True), nn.Linear(proj_hidden_dim, proj_dim))
        self.prototypes = nn.Linear(proj_dim, num_prototypes, bias=False)
        self.normalise_prototypes()
        self.register_buffer("queue", torch.zeros(2, queue_length, proj_dim))  # projections of the global crops
        self.queue_filled = 0  # projections written into the queue so far
        self.pending: torch.Tensor | None = None

    @torch.no_grad()
    def normalise_prototypes(self) -> None:
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def loss_on_views(self, views, step):
        z = [F.normalize(self.projector(h), dim=1) for h in self.encode(views.crops)]
        scores = [self.prototypes(zi) for zi in z]
        n_global = len(views.global_views)
        use_queue = 0 < self.queue.shape[1] <= self.queue_filled and step.progress >= self.queue_start
        codes = []
        with torch.no_grad():
            for i in range(n_global):
                out = scores[i].detach()
                if use_queue:  # the queue's scores join the batch in Sinkhorn; their codes are dropped
                    out = torch.cat([self.prototypes(self.queue[i]), out])
                codes.append(sinkhorn(out, self.epsilon, self.iterations, self.distributed)[-len(scores[i]):])
            self.pending = torch.stack([zi.detach() for zi in z[:n_global]]) if self.queue.shape[1] else None
        loss = swapped_prediction_loss(scores, codes, self.temperature)
        return loss, {}

    def before_optimizer_step(self, step: StepInfo) -> None:
        if self.frozen_at(step):  # prototypes frozen during the first epoch
            self.prototypes.weight.grad = None

    @torch.no_grad()
    def after_optimizer_step(self, step: StepInfo) -> None:
        self.normalise_prototypes()
        if self.pending is not None:  # newest projections in front, the oldest dropped
            b = min(self.pending.shape[1], self.queue.shape[1])
            self.queue.copy_(torch.cat([self.pending[:, :b].to(self.queue.dtype), self.queue[:, :-b]], dim=1))
            self.queue_filled += b
            self.pending = None
        super().after_optimizer_step(step)

    def extra_state(self) -> dict[str, float]:
        return {**super().extra_state(), "queue_filled": self.queue_filled}

    def load_extra_state(self, state: dict[str, float]) -> None:
        super().load_extra_state(state)
        self.queue_filled = int(state["queue_filled"])
