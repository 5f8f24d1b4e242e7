"""DINO: Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers" (ICCV, arXiv:2104.14294).

Self-distillation without labels. A student network (encoder + head) sees every crop, a teacher (an EMA of
the student, momentum 0.996 -> 1 on a cosine) sees the global crops only. The head is a 3-layer MLP
(2048 hidden, GELU) to a 256-d bottleneck, L2-normalised, then a weight-normalised linear layer to K
prototypes. For every (teacher global crop, student crop of another view) pair the student's softmax at
temperature 0.1 is pulled towards the teacher's, which is centred (the centre is an EMA, momentum 0.9, of
the teacher's mean output over the global batch: all-reduced across processes) and sharpened (teacher
temperature 0.04 rising linearly to 0.07 during warm-up). The last layer is frozen during the first epoch
(`before_optimizer_step` drops its gradients). AdamW, lr 5e-4 x batch/256, weight decay 0.04 -> 0.4 on a
cosine (the trainer's weight-decay schedule). Views: two global views with BYOL's asymmetric recipe and
`local_crops` local views (multi-crop, DINO's 5-40% crops at 96/224 of the side).

Departures for small data, stated: K = 4096 prototypes (the paper's 65,536 is for ImageNet; solo-learn uses
4,096 on CIFAR), the teacher-temperature warm-up spans the first 30% of training instead of 30 epochs, the
last layer is frozen for the first epoch in steps (`setup` knows the steps per epoch), and gradient
clipping is left to the optimiser defaults (the paper clips at 3.0).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..collectives import all_reduce_sum
from ..schedules import Schedule
from ..views import ViewRequest
from .base import OptimizerDefaults, StepInfo, check_option, make_target, register_method
from .multicrop import MultiCropMethod, cross_view_cross_entropy
from .numerics import full_precision


class DINOHead(nn.Module):
    """MLP (Linear-GELU x 2, Linear to the bottleneck), L2 normalisation, weight-normalised prototypes layer."""

    def __init__(self, in_dim: int, out_dim: int = 4096, hidden_dim: int = 2048, bottleneck_dim: int = 256) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim),
                                 nn.GELU(), nn.Linear(hidden_dim, bottleneck_dim))
        self.last_layer = nn.utils.parametrizations.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.parametrizations.weight.original0.data.fill_(1.0)  # the norm g, fixed at 1 as in the paper
        self.last_layer.parametrizations.weight.original0.requires_grad_(False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.last_layer(F.normalize(self.mlp(h), dim=-1))


@full_precision
def dino_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], center: torch.Tensor,
              student_temp: float = 0.1, teacher_temp: float = 0.04) -> torch.Tensor:
    """Mean over pairs (teacher crop t, student crop s, s != t) of H(softmax((t - c) / T_t), softmax(s / T_s)).

    `teacher` holds the teacher outputs of the global crops (the first len(teacher) student crops are the same
    global views), `student` the student outputs of every crop; all [B, K].
    """
    targets = [F.softmax((t - center) / teacher_temp, dim=-1).detach() for t in teacher]
    return cross_view_cross_entropy(targets, [F.log_softmax(s / student_temp, dim=-1) for s in student])


@register_method("dino", "Self-distillation: a student's softmax over prototypes matches an EMA teacher's centred, "
                 "sharpened one across multi-crop views.", "Caron et al. 2021, arXiv:2104.14294")
class DINO(MultiCropMethod):
    requested_views = ViewRequest("asymmetric", global_views=2, local_views=6, local_size=96 / 224)
    optimizer = OptimizerDefaults("adamw", lr=5e-4, weight_decay=0.04, weight_decay_end=0.4)

    def __init__(self, encoder, out_dim: int = 4096, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 local_crops: int = 6, student_temp: float = 0.1, teacher_temp: float = 0.07,
                 warmup_teacher_temp: float = 0.04, teacher_temp_warmup: float = 0.3, center_momentum: float = 0.9,
                 base_momentum: float = 0.996, freeze_last_layer_epochs: int = 1) -> None:
        super().__init__(encoder, local_crops, freeze_last_layer_epochs)
        for name, value in (("student_temp", student_temp), ("teacher_temp", teacher_temp),
                            ("warmup_teacher_temp", warmup_teacher_temp)):
            check_option("dino", name, value, 0.0)
        check_option("dino", "center_momentum", center_momentum, 0.0, 1.0, low_open=False)
        check_option("dino", "base_momentum", base_momentum, 0.0, 1.0, low_open=False)
        check_option("dino", "teacher_temp_warmup", teacher_temp_warmup, 0.0, 1.0, low_open=False)
        self.student_temp = student_temp
        self.teacher_temp = Schedule(teacher_temp, teacher_temp, warmup=teacher_temp_warmup,
                                     warmup_start=warmup_teacher_temp)
        self.center_momentum = center_momentum
        self.momentum = Schedule(base_momentum, 1.0)
        self.head = DINOHead(self.feature_dim, out_dim, hidden_dim, bottleneck_dim)
        self.teacher_encoder = make_target(self.encoder)
        self.teacher_head = make_target(self.head)
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.pending_teacher: torch.Tensor | None = None

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoder, self.teacher_encoder), (self.head, self.teacher_head)]

    def target_momentum(self, progress: float) -> float:
        return self.momentum(progress)

    def loss_on_views(self, views, step):
        crops = views.crops
        student = [self.head(h) for h in self.encode(crops)]
        with torch.no_grad():
            teacher = [self.teacher_head(h) for h in self.encode(views.global_views, self.teacher_encoder)]
        loss = dino_loss(student, teacher, self.center, self.student_temp, self.teacher_temp(step.progress))
        with torch.no_grad():  # the batch's teacher mean, for the centre update after the step
            self.pending_teacher = torch.cat(teacher).float()
        return loss, {"teacher_temp": torch.tensor(self.teacher_temp(step.progress))}

    def before_optimizer_step(self, step: StepInfo) -> None:
        if self.frozen_at(step):  # the paper freezes the prototypes' layer during the first epoch
            for p in self.head.last_layer.parameters():
                p.grad = None

    @torch.no_grad()
    def after_optimizer_step(self, step: StepInfo) -> None:
        if self.pending_teacher is not None:
            t = self.pending_teacher
            stats = torch.cat([t.sum(dim=0), t.new_tensor([float(t.shape[0])])])
            if self.distributed:  # the mean over the global batch, as the paper's all-reduce
                stats = all_reduce_sum(stats)
            mean = (stats[:-1] / stats[-1]).unsqueeze(0)
            self.center.mul_(self.center_momentum).add_(mean.to(self.center.dtype), alpha=1 - self.center_momentum)
            self.pending_teacher = None
        super().after_optimizer_step(step)
