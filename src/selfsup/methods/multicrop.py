"""What DINO and SwAV share: `local_crops` multi-crop views, and a layer frozen during the first epochs (by the
step's index, from the `StepInfo` the trainer passes; schedules read inside the loss take its progress)."""
from __future__ import annotations

from dataclasses import replace

import torch

from ..views import ViewRequest
from .base import Method, StepInfo, TrainingContext, check_option


class MultiCropMethod(Method):
    def __init__(self, encoder, local_crops: int, frozen_epochs: int) -> None:
        super().__init__(encoder)
        check_option(self.name, "local_crops", local_crops, 0, low_open=False)
        self.local_crops, self.frozen_epochs = local_crops, frozen_epochs
        self.frozen_steps = 0

    def view_request(self) -> ViewRequest:
        return replace(self.requested_views, local_views=self.local_crops)

    def setup(self, context: TrainingContext) -> None:
        self.frozen_steps = self.frozen_epochs * max(1, context.num_samples // context.global_batch_size)

    def frozen_at(self, step: StepInfo) -> bool:
        """Whether `step` lies in the first `frozen_epochs` epochs."""
        return step.step < self.frozen_steps


def cross_view_cross_entropy(targets: list[torch.Tensor], log_probs: list[torch.Tensor]) -> torch.Tensor:
    """Mean over pairs (target view i, predicting view v, v != i) of -sum_k targets[i][k] log_probs[v][k], each pair
    averaged over the batch; target view i is crop i (the global crops come first). DINO and SwAV's loss."""
    total, pairs = log_probs[0].new_zeros(()), 0
    for i, q in enumerate(targets):
        for v, log_p in enumerate(log_probs):
            if v != i:
                total = total - (q * log_p).sum(dim=-1).mean()
                pairs += 1
    return total / pairs
