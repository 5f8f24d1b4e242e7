"""EMA targets. The bootstrap structure BYOL and MoCo v3 share: an online encoder + projector + predictor, and an EMA
target of the encoder and projector whose momentum rises from `base_momentum` to 1 on a cosine. And the target
encoder of the masked predictive methods (I-JEPA, data2vec 2.0), whose momentum rises linearly."""
from __future__ import annotations

import torch
from torch import nn

from ..schedules import Schedule
from ..views import Views
from .base import Method, check_option, make_target


class OnlineTargetMethod(Method):
    """Subclasses build `projector` and `predictor`, then call `make_targets`; `predictions_and_targets` encodes
    the two global views with both networks."""

    def __init__(self, encoder, base_momentum: float) -> None:
        super().__init__(encoder)
        check_option(self.name, "base_momentum", base_momentum, 0.0, 1.0, low_open=False)
        self.momentum = Schedule(base_momentum, 1.0)  # cosine from base_momentum to 1

    def make_targets(self, projector: nn.Module, predictor: nn.Module) -> None:
        self.projector, self.predictor = projector, predictor
        self.target_encoder = make_target(self.encoder)
        self.target_projector = make_target(self.projector)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoder, self.target_encoder), (self.projector, self.target_projector)]

    def target_momentum(self, progress: float) -> float:
        return self.momentum(progress)

    def predictions_and_targets(self, views: Views) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(p1, p2, t1, t2): the online predictions of both views and the (gradient-free) target projections."""
        z1, z2 = (self.projector(h) for h in self.encode(views.global_views))
        p1, p2 = self.predictor(torch.cat([z1, z2])).chunk(2)
        with torch.no_grad():
            t1, t2 = (self.target_projector(h) for h in self.encode(views.global_views, self.target_encoder))
        return p1, p2, t1, t2


class TargetEncoderMethod(Method):
    """A method with an EMA copy of its encoder (`target_encoder`) whose momentum rises linearly from `base_momentum`
    to 1 over training (I-JEPA, data2vec 2.0)."""

    def __init__(self, encoder, base_momentum: float) -> None:
        super().__init__(encoder)
        check_option(self.name, "base_momentum", base_momentum, 0.0, 1.0, low_open=False)
        self.base_momentum = float(base_momentum)
        self.target_encoder = make_target(encoder)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoder, self.target_encoder)]

    def target_momentum(self, progress: float) -> float:
        return self.base_momentum + (1.0 - self.base_momentum) * progress
