"""COLA: Saeed, Grangier and Zeghidour 2021, "Contrastive Learning of General-Purpose Audio Representations".

    a, p = segment(x), segment(x)           # two random segments of the same clip (instance_light: crop and gain)
    g(v) = tanh(LayerNorm(Dense_512(f(v)))) # the projection head
    s(a, p') = g(a)^T W g(p')               # a bilinear similarity (W learned)
    loss = cross-entropy of each anchor's own positive among the positives of every clip of the batch

The anchors' candidates are the positives of the (global, under torchrun) batch; there is no temperature (the
bilinear W sets the scale). Under torchrun the positives are gathered with their gradients flowing back to each
process's own part (`Method.gather`, proved in collectives.py): a process's loss is the mean over its own anchors of
the global batch's terms, so the average of the processes' losses and DDP's averaged gradients are those of one
process on the global batch (tests/test_distributed.py, with a negative control without the gather). Paper defaults: 512-unit head with layer norm and tanh, Adam lr 1e-4, batch 1024 (256
here, the trainer's default, for a CPU), segments of 960 ms of the clip (here 80% of the stored clip, `--augment
crop=...`). The paper uses no augmentation beyond the choice of segments; the audio `instance_light` views also
change the gain by up to 6 dB (a shift that the log-mel normalisation leaves nearly invisible).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..views import ViewRequest
from .base import Method, OptimizerDefaults, register_method
from .numerics import full_precision


@full_precision
def bilinear_contrastive_loss(anchors: torch.Tensor, positives: torch.Tensor, weight: torch.Tensor,
                              offset: int = 0) -> torch.Tensor:
    """Cross-entropy of logits[i, j] = anchors[i]^T W positives[j] with target j = i + `offset` (`positives` may be
    the global batch's, this process's anchors starting at `offset`)."""
    logits = anchors @ weight @ positives.T
    targets = torch.arange(anchors.shape[0], device=anchors.device) + offset
    return F.cross_entropy(logits, targets)


@register_method("cola", "Contrastive: two segments of the same clip are positives, the other clips' segments "
                 "negatives, scored by a bilinear similarity.", "Saeed et al. 2021, arXiv:2010.10915")
class COLA(Method):
    requested_views = ViewRequest("instance_light")
    optimizer = OptimizerDefaults("adamw", lr=1e-4, weight_decay=0.0, lr_scaling="none")

    def __init__(self, encoder, proj_dim: int = 512) -> None:
        super().__init__(encoder)
        self.projector = nn.Sequential(nn.Linear(self.feature_dim, proj_dim), nn.LayerNorm(proj_dim), nn.Tanh())
        self.similarity = nn.Parameter(nn.init.xavier_uniform_(torch.empty(proj_dim, proj_dim)))  # Keras' default

    def loss_on_views(self, views, step):
        anchors, positives = (self.projector(h) for h in self.encode(views.global_views))
        loss = bilinear_contrastive_loss(anchors, self.gather(positives), self.similarity,
                                         self.rank * anchors.shape[0])
        return loss, {}
