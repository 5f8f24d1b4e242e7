"""NPID: Wu, Xiong, Yu & Lin 2018, "Unsupervised Feature Learning via Non-Parametric Instance Discrimination".

    v = normalise(W encoder(x))                               # 128-d, one view per sample
    P(i | v) = exp(v . m_i / tau) / sum_j exp(v . m_j / tau)  # m: a memory bank of every training sample, tau 0.07
    loss = -log P(own index | v)
    after the step: m_i <- normalise(0.5 m_i + 0.5 v_i)       # the bank's proximal update, momentum 0.5

The paper's SGD (momentum 0.9, weight decay 5e-4, lr 0.03 at batch 256) and `instance`
views (random resized crop, colour jitter, grayscale, flip). Departures: the softmax runs over the whole bank (exact;
the paper approximates it with NCE and 4,096 noise samples because ImageNet's bank has 1.28M rows, and reports the
exact softmax as better where it is affordable); the bank starts from random unit vectors drawn from a fixed seed.
The bank is a buffer (checkpointed); under torchrun every step's indices and features are gathered from all
processes, so every process applies the same update and keeps the same bank.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..views import ViewRequest, Views
from .base import Method, OptimizerDefaults, StepInfo, StepLogs, TrainingContext, check_option, register_method
from .numerics import full_precision

BANK_SEED = 20180  # the bank's initial random unit vectors (the same on every process)


@full_precision
def instance_discrimination_loss(v: torch.Tensor, memory: torch.Tensor, indices: torch.Tensor,
                                 temperature: float) -> torch.Tensor:
    """Cross-entropy of the non-parametric softmax: logits v . memory^T / tau, target each sample's own row."""
    return F.cross_entropy(v @ memory.t() / temperature, indices)


def updated_bank_rows(rows: torch.Tensor, v: torch.Tensor, momentum: float) -> torch.Tensor:
    """The bank's proximal update: normalise(momentum x rows + (1 - momentum) x v)."""
    return F.normalize(momentum * rows + (1 - momentum) * v, dim=1)


@register_method("npid", "Non-parametric instance discrimination: each sample is its own class, scored against a "
                 "memory bank of every sample.", "Wu et al. 2018, arXiv:1805.01978")
class NPID(Method):
    requested_views = ViewRequest("instance", global_views=1, indices=True)
    optimizer = OptimizerDefaults("sgd", lr=0.03, weight_decay=5e-4)

    def __init__(self, encoder, proj_dim: int = 128, temperature: float = 0.07, bank_momentum: float = 0.5) -> None:
        super().__init__(encoder)
        check_option("npid", "temperature", temperature, 0.0)
        check_option("npid", "bank_momentum", bank_momentum, 0.0, 1.0, low_open=False)
        self.temperature, self.bank_momentum = float(temperature), float(bank_momentum)
        self.head = nn.Linear(self.feature_dim, proj_dim)
        self.register_buffer("memory", torch.zeros(0, proj_dim))  # [sample, proj_dim], unit rows
        self.pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def setup(self, context: TrainingContext) -> None:
        generator = torch.Generator().manual_seed(BANK_SEED)
        self.memory = F.normalize(torch.randn(context.num_samples, self.memory.shape[1], generator=generator),
                                  dim=1).to(self.memory.device)

    def loss_on_views(self, views: Views, step: StepInfo) -> tuple[torch.Tensor, StepLogs]:
        v = F.normalize(self.head(self.encode(views.global_views)[0]), dim=1)
        loss = instance_discrimination_loss(v, self.memory, views.indices, self.temperature)
        with torch.no_grad():  # the bank moves after the step, by every process's samples
            self.pending = (self.gather(views.indices), self.gather(v.detach().float()))
        return loss, {}

    @torch.no_grad()
    def after_optimizer_step(self, step: StepInfo) -> None:
        if self.pending is not None:
            indices, v = self.pending
            self.memory[indices] = updated_bank_rows(self.memory[indices], v, self.bank_momentum)
            self.pending = None
