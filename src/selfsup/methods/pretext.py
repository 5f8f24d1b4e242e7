"""What the classic pretext tasks (RotNet, jigsaw puzzles, context prediction) share: each turns unlabeled images
into a classification problem with labels it makes itself, scored by cross-entropy."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .numerics import full_precision


@full_precision
def pretext_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the task's logits [N, classes] against its own labels [N]."""
    return F.cross_entropy(logits, labels)


def task_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How often the task is solved (a detached 0-d tensor for the step's logs)."""
    return (logits.detach().argmax(dim=1) == labels).float().mean()
