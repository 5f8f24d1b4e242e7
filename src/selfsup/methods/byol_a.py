"""BYOL-A: Niizumi et al. 2021, "BYOL for Audio: Self-Supervised Learning for General-Purpose Audio Representation".

BYOL (Grill et al. 2020) on two augmentations of one segment of a clip:

    v1, v2 = aug(x), aug(x)                 # mixup with other clips, random resized crop of the log-mel
    p1, p2 = q(g(f(v1))), q(g(f(v2)))       # online: encoder, projector, predictor
    t1, t2 = g'(f'(v1)), g'(f'(v2))         # target: EMA copies, no gradient
    loss = (2 - 2 cos(p1, t2) + 2 - 2 cos(p2, t1)) / 2     # the mean of the two directions

What makes it BYOL-A rather than BYOL on audio views is the paper's recipe: the audio `instance` views (its mixup of
a clip with others and its random resized crop), projector and predictor MLPs of 4096 hidden
units to 256, Adam at lr 3e-4 without weight decay (AdamW with no decay) and a constant target decay of 0.99 (BYOL's rises to 1).
BYOL-A's code (built on byol-pytorch) sums the two directions: twice this loss, the same Adam steps.
Departures: mixup partners are other clips of the batch rather than a memory of past batches, and the waveform is
mixed rather than exp(log-mel) (the same in expectation over phases); the views also carry SpecAugment's masks
(BYOL-A v2 and ATST add them; `--augment freq_masks=0 time_masks=0` removes them). Its encoder is `spectrogram_cnn`,
the audio modality's default (BYOL-A's 2048-d version: `--encoder-option out_dim=2048`).
"""
from __future__ import annotations

from ..views import ViewRequest
from .base import OptimizerDefaults, check_option, mlp, register_method
from .byol import byol_loss
from .momentum import OnlineTargetMethod


@register_method("byol_a", "BYOL with BYOL-A's audio recipe: mixup + random resized crop views, Adam 3e-4, constant "
                 "EMA 0.99.", "Niizumi et al. 2021, arXiv:2103.06695")
class BYOLA(OnlineTargetMethod):
    optimizer = OptimizerDefaults("adamw", lr=3e-4, weight_decay=0.0, lr_scaling="none")
    requested_views = ViewRequest("instance")

    def __init__(self, encoder, proj_hidden_dim: int = 4096, proj_dim: int = 256, pred_hidden_dim: int = 4096,
                 target_decay: float = 0.99) -> None:
        super().__init__(encoder, target_decay)
        check_option("byol_a", "target_decay", target_decay, 0.0, 1.0, low_open=False)
        self.target_decay = float(target_decay)
        self.make_targets(mlp(self.feature_dim, proj_hidden_dim, proj_dim), mlp(proj_dim, pred_hidden_dim, proj_dim))

    def target_momentum(self, progress: float) -> float:
        return self.target_decay  # constant, as BYOL-A's

    def loss_on_views(self, views, step):
        p1, p2, t1, t2 = self.predictions_and_targets(views)
        return 0.5 * (byol_loss(p1, t2) + byol_loss(p2, t1)), {}
