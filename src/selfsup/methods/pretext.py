"""What the classic pretext tasks (RotNet, jigsaw puzzles, context prediction) share: each turns unlabeled images
into a classification problem with labels it makes itself, scored by cross-entropy."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..views import Views
from .base import Method, StepInfo, StepLogs, check_option, mlp
from .numerics import full_precision


@full_precision
def pretext_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the task's logits [N, classes] against its own labels [N]."""
    return F.cross_entropy(logits, labels)


def view_labels(views: int, batch: int, device: torch.device | None = None) -> torch.Tensor:
    """[views x batch]: each view's index k, for the views' batches concatenated in order (the task's labels when
    view k is the k-th transformation: a rotation, a pace, a shuffle)."""
    return torch.arange(views, device=device).repeat_interleave(batch)


def task_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How often the task is solved (a detached 0-d tensor for the step's logs)."""
    return (logits.detach().argmax(dim=1) == labels).float().mean()


class ViewClassification(Method):
    """A task whose k-th global view is the k-th of the task's transformations (a rotation, a pace, a shuffle): an
    MLP head on the pooled embedding says which, trained by cross-entropy over all the views (one forward per
    view). Subclasses set `requested_views` (its global views are the classes) and `accuracy_log`."""

    accuracy_log = "task_acc"

    def __init__(self, encoder, hidden_dim: int = 512, head_layers: int = 2) -> None:
        super().__init__(encoder)
        check_option(self.name, "head_layers", head_layers, 1, low_open=False)
        self.head = mlp(self.feature_dim, hidden_dim, self.requested_views.global_views, num_layers=head_layers)

    def loss_on_views(self, views: Views, step: StepInfo) -> tuple[torch.Tensor, StepLogs]:
        logits = self.head(torch.cat(self.encode(views.global_views)))
        labels = view_labels(len(views.global_views), views.global_views[0].shape[0], logits.device)
        return pretext_loss(logits, labels), {self.accuracy_log: task_accuracy(logits, labels)}
