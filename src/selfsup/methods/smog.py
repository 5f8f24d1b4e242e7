"""SMoG: Pang et al. 2022, "Unsupervised Visual Representation Learning by Synchronous Momentum Grouping" (ECCV,
arXiv:2207.06167).

Contrastive learning whose unit is a group, not an instance:

    z_i = projector(encoder(x_i)), p_i = predictor(z_i)          # online networks, views i = 1, 2
    t_i = target_projector(target_encoder(x_i))                  # EMA networks, no gradient
    a_i = argmax_g cos(t_i, G_g)                                 # the group of each target
    loss = mean over (i, j != i) of CE(cos(p_i, G) / 0.1, a_j)   # each prediction against all groups
    after the optimiser step, for every group g (synchronous momentum grouping):
        G_g <- beta G_g + (1 - beta) mean of the z_i whose nearest group (by cosine) is g     # beta = 0.99
    every 300 steps: G <- k-means of a bank of recent z; target networks <- online networks

The projector is 2 layers (2048 hidden, BatchNorm and ReLU, 128 out, a BatchNorm without affine parameters at the
output), the predictor 2 layers (2048 hidden, BatchNorm and ReLU, 128 out), as LightlySSL's SMoG heads. The groups
are a buffer (never optimised): they move towards the mean of the raw projections assigned to them, as LightlySSL's
`SMoGPrototypes` updates them, and are compared by cosine everywhere. Under torchrun the group sums and counts are
all-reduced and the bank is filled with every process's projections, so all processes keep the same groups. The
target networks' momentum rises from 0.99 to 1 on BYOL's cosine.

Defaults and departures, stated: 300 groups (the paper's ImageNet setting is 3,000; the datasets here are small), two
`instance` views with the loss symmetrised over both directions (the paper trains with multi-crop; LightlySSL's
example uses one direction per step and swaps the views' roles every other step), groups initialised at random
directions, the loss scored against the groups before this step's update, which happens after the optimiser step
with the step's projections detached (LightlySSL scores against the groups already moved by the batch and
back-propagates through that move). The reset clusters the bank by spherical k-means (10 iterations, DeepCluster-v2's)
rather than scikit-learn's k-means, and is skipped while the bank holds fewer projections than groups; the bank holds
`reset_interval` steps of projections of the first view, capped below the training set's size. Optimiser: LARS, lr
0.3 x batch/256, weight decay 1e-6 (SwAV's recipe; LightlySSL's CIFAR-10 benchmark uses SGD, lr 0.01, weight decay
1e-6).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..collectives import all_reduce_sum
from ..views import Views
from .base import OptimizerDefaults, StepInfo, StepLogs, TrainingContext, check_option, mlp, register_method
from .momentum import OnlineTargetMethod
from .numerics import full_precision
from .pseudo_labels import spherical_kmeans
from .queues import capped_queue, enqueue

KMEANS_SEED = 27_183


@torch.no_grad()
def assign_groups(x: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """int64 [B]: the group of largest cosine similarity with each row of `x` [B, D]; `groups` [K, D] (in float32)."""
    return (F.normalize(x.float(), dim=1) @ F.normalize(groups.float(), dim=1).T).argmax(dim=1)


@torch.no_grad()
def momentum_grouping(groups: torch.Tensor, x: torch.Tensor, beta: float, distributed: bool = False) -> torch.Tensor:
    """The groups [K, D] after one synchronous momentum step on features `x` [B, D]: every group with assigned rows
    becomes beta g + (1 - beta) (their mean), the others stay. With `distributed` the sums and counts run over every
    process's rows. No host synchronisation: the per-group means come from one scatter-add."""
    a = assign_groups(x, groups)
    rows = torch.cat([x.to(groups.dtype), x.new_ones(x.shape[0], 1, dtype=groups.dtype)], dim=1)
    stats = groups.new_zeros(groups.shape[0], groups.shape[1] + 1).index_add_(0, a, rows)
    if distributed:
        stats = all_reduce_sum(stats)
    sums, counts = stats[:, :-1], stats[:, -1:]
    return torch.where(counts > 0, beta * groups + (1 - beta) * sums / counts.clamp(min=1), groups)


@full_precision
def smog_loss(predictions: list[torch.Tensor], targets: list[torch.Tensor], groups: torch.Tensor,
              temperature: float = 0.1) -> torch.Tensor:
    """Mean over ordered pairs of views (i, j != i) of the cross-entropy of softmax(cos(p_i, groups) / temperature)
    against the group of target t_j (its most similar group); predictions and targets [B, D], groups [K, D]."""
    g = F.normalize(groups, dim=1)
    total, pairs = predictions[0].new_zeros(()), 0
    for i, p in enumerate(predictions):
        logits = F.normalize(p, dim=1) @ g.T / temperature
        for j, t in enumerate(targets):
            if j != i:
                total = total + F.cross_entropy(logits, assign_groups(t, groups))
                pairs += 1
    return total / pairs


@register_method("smog", "Synchronous momentum grouping: predictions contrast against group features that move by "
                 "momentum every step, each target's group is the positive.", "Pang et al. 2022, arXiv:2207.06167")
class SMoG(OnlineTargetMethod):
    optimizer = OptimizerDefaults("lars", lr=0.3, weight_decay=1e-6)

    def __init__(self, encoder, num_groups: int = 300, hidden_dim: int = 2048, proj_dim: int = 128,
                 temperature: float = 0.1, beta: float = 0.99, reset_interval: int = 300, kmeans_iterations: int = 10,
                 base_momentum: float = 0.99) -> None:
        super().__init__(encoder, base_momentum)
        check_option("smog", "num_groups", num_groups, 1, low_open=False)
        check_option("smog", "temperature", temperature, 0.0)
        check_option("smog", "beta", beta, 0.0, 1.0, low_open=False)
        check_option("smog", "reset_interval", reset_interval, 0, low_open=False)
        check_option("smog", "kmeans_iterations", kmeans_iterations, 0, low_open=False)
        self.temperature, self.beta = float(temperature), float(beta)
        self.reset_interval, self.kmeans_iterations = int(reset_interval), int(kmeans_iterations)
        self.make_targets(mlp(self.feature_dim, hidden_dim, proj_dim, last_bn=True, last_bn_affine=False),
                          mlp(proj_dim, hidden_dim, proj_dim))
        self.register_buffer("groups", F.normalize(torch.randn(num_groups, proj_dim), dim=1))
        self.register_buffer("bank", F.normalize(torch.randn(max(1, reset_interval), proj_dim), dim=1))
        self.register_buffer("bank_ptr", torch.zeros((), dtype=torch.long))
        self.bank_filled = 0
        self.pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def setup(self, context: TrainingContext) -> None:
        """The bank: `reset_interval` steps of one view's projections (every process's), below the training set's
        size by one global batch."""
        batch = context.global_batch_size
        self.bank = capped_queue(self.bank, max(1, self.reset_interval) * batch, context.num_samples, batch, batch)

    def loss_on_views(self, views: Views, step: StepInfo) -> tuple[torch.Tensor, StepLogs]:
        z = [self.projector(h) for h in self.encode(views.global_views)]
        p = self.predictor(torch.cat(z)).chunk(len(z))
        with torch.no_grad():
            t = [self.target_projector(h) for h in self.encode(views.global_views, self.target_encoder)]
        loss = smog_loss(list(p), t, self.groups, self.temperature)
        with torch.no_grad():  # the groups move and the bank fills after the optimiser step
            self.pending = (torch.cat(z).detach().float(), self.gather(z[0].detach().float()))
            used = torch.bincount(assign_groups(torch.cat(t), self.groups), minlength=len(self.groups)) > 0
        return loss, {"groups_used": used.sum()}

    @torch.no_grad()
    def after_optimizer_step(self, step: StepInfo) -> None:
        if self.pending is not None:
            z, bank_rows = self.pending
            self.groups.copy_(momentum_grouping(self.groups, z, self.beta, self.distributed))
            enqueue(self.bank, self.bank_ptr, bank_rows)
            self.bank_filled = min(len(self.bank), self.bank_filled + len(bank_rows))
            self.pending = None
        done = step.step + 1  # optimiser steps taken
        if self.reset_interval and done % self.reset_interval == 0 and self.bank_filled >= len(self.groups):
            self.reset(done)

    @torch.no_grad()
    def reset(self, steps_done: int) -> None:
        """Groups <- spherical k-means of the bank's projections (seeded by the steps taken); target networks <-
        online networks."""
        generator = torch.Generator(self.bank.device).manual_seed(KMEANS_SEED + steps_done)
        centroids, _ = spherical_kmeans(self.bank[:self.bank_filled], len(self.groups), self.kmeans_iterations,
                                        generator)
        self.groups.copy_(centroids)
        for online, target in self.momentum_pairs():
            target.load_state_dict(online.state_dict())

    def extra_state(self) -> dict[str, float]:
        return {"bank_filled": self.bank_filled}

    def load_extra_state(self, state: dict[str, float]) -> None:
        self.bank_filled = int(state["bank_filled"])
