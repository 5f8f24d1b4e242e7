"""MoCo v2: Chen et al. 2020, "Improved Baselines with Momentum Contrastive Learning" (He et al. 2020).

A momentum (EMA) key encoder and a queue of past keys supply negatives; MLP head 2048-128,
temperature 0.2, queue 65536 (capped below the dataset size so a queue never holds the same
image twice), momentum 0.99 (the paper's 0.999 suits 800-epoch ImageNet runs; solo-learn uses
0.99 on small data), SGD lr 0.03 x batch/256, weight decay 1e-4. The loss is symmetrised over the
two views (as in solo-learn's MoCo v2+): both terms score against the queue as it was before the step, and the
keys of both views (the first view's, then the second's) are enqueued after the optimiser step; shuffle-BN is
unnecessary as the key encoder runs its own forward. Under torchrun the keys of all
processes are gathered before they are enqueued (as the paper's `concat_all_gather`), so every process
holds the same queue, the one a single process would hold on the concatenated batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..views import ViewRequest
from .base import Method, OptimizerDefaults, StepInfo, TrainingContext, check_option, make_target, register_method
from .numerics import full_precision
from .queues import capped_queue, enqueue


@full_precision
def moco_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """InfoNCE with the key of the same image as positive and the queue (K x D, normalised) as negatives."""
    q = F.normalize(q, dim=1)
    k = F.normalize(k, dim=1)
    pos = (q * k).sum(dim=1, keepdim=True)
    neg = q @ queue.T
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


@register_method("moco", "Contrastive with a momentum key encoder and a queue of negatives (MoCo v2).",
                 "Chen et al. 2020, arXiv:2003.04297")
class MoCo(Method):
    optimizer = OptimizerDefaults("sgd", lr=0.03, weight_decay=1e-4)
    requested_views = ViewRequest("instance_light")

    def __init__(self, encoder, temperature: float = 0.2, queue_size: int = 65536,
                 momentum: float = 0.99, proj_hidden_dim: int = 2048, proj_dim: int = 128) -> None:
        super().__init__(encoder)
        check_option("moco", "temperature", temperature, 0.0)
        check_option("moco", "momentum", momentum, 0.0, 1.0, low_open=False)
        check_option("moco", "queue_size", queue_size, 0)
        self.temperature = temperature
        self.base_momentum = momentum
        self.projector = nn.Sequential(nn.Linear(self.feature_dim, proj_hidden_dim), nn.ReLU(inplace=True),
                                       nn.Linear(proj_hidden_dim, proj_dim))
        self.target_encoder = make_target(self.encoder)
        self.target_projector = make_target(self.projector)
        self.requested_queue_size = queue_size
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.pending_keys: torch.Tensor | None = None  # this step's keys, enqueued after the optimiser step

    def setup(self, context: TrainingContext) -> None:
        """Cap the queue below the number of training samples, in whole global batches of keys (2 per image; every
        process enqueues the keys of all processes)."""
        batch = context.global_batch_size
        self.queue = capped_queue(self.queue, self.requested_queue_size, context.num_samples, batch, 2 * batch)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoder, self.target_encoder), (self.projector, self.target_projector)]

    def target_momentum(self, progress: float) -> float:
        return self.base_momentum  # constant, as in MoCo v2

    def loss_on_views(self, views, step):
        q1, q2 = (self.projector(h) for h in self.encode(views.global_views))
        with torch.no_grad():
            k1, k2 = (self.target_projector(h) for h in self.encode(views.global_views, self.target_encoder))
        loss = 0.5 * (moco_loss(q1, k2, self.queue, self.temperature) + moco_loss(q2, k1, self.queue, self.temperature))
        # enqueued after the optimiser step (the graph uses the queue); under torchrun the keys of every process,
        # in the order one process would hold them on the concatenated batch, so all queues stay identical
        with torch.no_grad():
            self.pending_keys = torch.cat([self.gather(k1), self.gather(k2)])
        return loss, {}

    def after_optimizer_step(self, step: StepInfo) -> None:
        if self.pending_keys is not None:
            enqueue(self.queue, self.queue_ptr, self.pending_keys)
            self.pending_keys = None
