"""NNCLR: Dwibedi et al. 2021, "With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning of
Visual Representations" (ICCV, arXiv:2104.14548).

The positive of a view is not its other view but the other view's nearest neighbour in a support queue of
past embeddings. Projector 3-layer 2048-256 with BatchNorm, predictor 4096-256; the loss is InfoNCE between
NN(z1) and the prediction p2 (anchor NN(z1)_i, candidates the batch's predictions p2_j: the other rows' are the
negatives, as the paper's equation 2), symmetrised, temperature 0.1; the support set is a FIFO queue of
projections (98,304 in the paper), filled after each step with the batch's first-view projections (every
process's, so all queues stay identical). LARS, lr 0.3 x batch/256,
weight decay 1e-6; BYOL's asymmetric augmentation.

Departure for small data: the queue is capped below the number of training samples (whole global batches),
as for MoCo, so it never holds the same sample twice; until it has been filled once, its random initial rows
act as (meaningless) neighbours, as in the paper's implementation. (LightlySSL's NNCLR uses NT-Xent between
NN(z) and p instead, which adds the predictions as anchors and same-side negatives; this loss follows the paper.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..views import ViewRequest
from .base import Method, OptimizerDefaults, StepInfo, TrainingContext, check_option, mlp, register_method
from .numerics import full_precision
from .queues import capped_queue, enqueue


def nearest_neighbours(z: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """For each row of z, the row of `support` with the highest cosine similarity (support is L2-normalised)."""
    idx = (F.normalize(z, dim=1) @ support.T).argmax(dim=1)
    return support[idx]


@full_precision
def nnclr_loss(nn_z: torch.Tensor, p: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE: row i of the neighbours must pick row i of the predictions among the batch (cosine / T)."""
    logits = F.normalize(nn_z, dim=1) @ F.normalize(p, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(nn_z), device=nn_z.device))


@register_method("nnclr", "Contrastive with nearest-neighbour positives from a support queue of past embeddings.",
                 "Dwibedi et al. 2021, arXiv:2104.14548")
class NNCLR(Method):
    requested_views = ViewRequest("asymmetric")
    optimizer = OptimizerDefaults("lars", lr=0.3, weight_decay=1e-6)

    def __init__(self, encoder, temperature: float = 0.1, queue_size: int = 98304, proj_hidden_dim: int = 2048,
                 proj_dim: int = 256, pred_hidden_dim: int = 4096) -> None:
        super().__init__(encoder)
        check_option("nnclr", "temperature", temperature, 0.0)
        check_option("nnclr", "queue_size", queue_size, 0)
        self.temperature = temperature
        self.requested_queue_size = queue_size
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, num_layers=3, last_bn=True)
        self.predictor = mlp(proj_dim, pred_hidden_dim, proj_dim)
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.pending: torch.Tensor | None = None

    def setup(self, context: TrainingContext) -> None:
        """Cap the support queue below the number of training samples, in whole global batches."""
        batch = context.global_batch_size
        self.queue = capped_queue(self.queue, self.requested_queue_size, context.num_samples, batch, batch)

    def loss_on_views(self, views, step):
        z1, z2 = (self.projector(h) for h in self.encode(views.global_views))
        p1, p2 = self.predictor(torch.cat([z1, z2])).chunk(2)
        with torch.no_grad():
            nn1, nn2 = nearest_neighbours(z1, self.queue), nearest_neighbours(z2, self.queue)
            self.pending = self.gather(z1.detach())
        loss = 0.5 * (nnclr_loss(nn1, p2, self.temperature) + nnclr_loss(nn2, p1, self.temperature))
        return loss, {}

    @torch.no_grad()
    def after_optimizer_step(self, step: StepInfo) -> None:
        if self.pending is not None:
            enqueue(self.queue, self.queue_ptr, self.pending)
            self.pending = None
