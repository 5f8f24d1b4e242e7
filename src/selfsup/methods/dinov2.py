"""DINOv2: Oquab et al. 2023, "DINOv2: Learning Robust Visual Features without Supervision" (arXiv:2304.07193).

DINO's image-level self-distillation, iBOT's masked-patch distillation and a KoLeo spreading term, with an EMA
teacher (momentum 0.992 -> 1 on a cosine):

    hidden = half of the global crops, each with a random U(0.1, 0.5) share of its patches hidden
    s = student.tokens(global crops with the hidden patches blanked)   # the student sees every position
    t = teacher.tokens(global crops)                                   # the teacher sees them whole
    targets = sinkhorn_knopp(teacher_dino_head(mean(t)) / T_t)         # per global crop, over the batch
    L_dino = mean over (teacher crop i, student crop v != i) of H(targets_i, softmax(dino_head(student_v) / T_s))
    patch_targets = sinkhorn_knopp(teacher_ibot_head(t[hidden]) / T_t)  # over all hidden patches
    L_ibot = mean over crops of the mean over its hidden patches of H(patch_targets, softmax(ibot_head(s[hidden]) / T_s))
    L_koleo = sum over the two global crops of -mean_i log(distance of the normalised mean(s)_i to its nearest
              neighbour in the batch)
    loss = L_dino + L_ibot + 0.1 L_koleo

The student sees the local crops too (DINO's loss only). Both heads are DINO's head (3-layer MLP, 2048 hidden,
GELU, 256-d L2-normalised bottleneck, weight-normalised prototypes layer) and are separate, as the paper finds
best (`separate_heads=False` ties them, as iBOT and the code's default configuration do). The teacher is centred
with Sinkhorn-Knopp (3 iterations; the paper's choice over DINO's centring EMA, which its code keeps as an option)
at temperature 0.04 -> 0.07 (warm-up); the student's temperature is 0.1. KoLeo is taken on each global crop's
features on its own and summed over the two crops (as the paper's code does).
The prototypes' layers are frozen during the first epoch. AdamW, lr 0.004 x sqrt(batch / 1024) (= 0.002 x
sqrt(batch / 256)), weight decay 0.04 -> 0.4 on a cosine (the code's default configuration), 2 global + 8 local
crops (multi-crop).

Departures, stated:
- no [CLS] token: the image-level feature is the mean of the tokens, as everywhere in selfsup's token encoders;
- the student's view of a hidden patch is the patch with its values set to 0 (the standardised mean; unobserved
  values stay unobserved), so its input token is the patch embedding of a blank patch plus its position, where
  the paper swaps in a learned mask token after the patch embedding (the token encoders take inputs, not
  embeddings);
- patches are hidden uniformly at random, not in BEiT's blocks, so the masks work on any token grid (a series'
  line of patches as well as an image's grid); each masked crop hides int(T x U(0.1, 0.5)) patches (at least
  one), the ratios drawn in equal strata as the paper's collator does; on a video's tubes a hidden tube is hidden
  in its own steps only (not at every time as VideoMAE's tube masks: its neighbour in time may show it);
- K = 4096 prototypes per head (the paper's 65,536 or 131,072 are for LVD-142M), the teacher-temperature warm-up
  spans 30% of training instead of 30 epochs, and the local crops are the modality's multi-crop (5-40% of the
  area at 96/224 of the side; the paper: 5-32% at 98/224);
- no layer-wise learning-rate decay, stochastic depth, gradient clipping or lowered patch-embedding learning rate
  (the trainer's AdamW treats all parameters alike);
- KoLeo runs on each process's batch (as the paper's code does), Sinkhorn-Knopp on the global batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..collectives import sinkhorn
from ..encoders import TokenEncoder
from ..schedules import Schedule
from ..views import ViewRequest, Views
from .base import OptimizerDefaults, StepInfo, StepLogs, check_option, make_target, register_method
from .dino import DINOHead
from .multicrop import MultiCropMethod
from .numerics import full_precision
from .swav import swapped_prediction_loss


@full_precision
def koleo_loss(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Kozachenko-Leonenko entropy estimate, negated: -mean_i log(||x_i - x_j(i)|| + eps) over the L2-normalised
    rows of x [N, D], j(i) the nearest other row (Sablayrolles et al. 2019)."""
    x = F.normalize(x, dim=-1, eps=eps)
    with torch.no_grad():
        similarity = x @ x.T
        similarity.fill_diagonal_(-2.0)  # below any cosine: a row is never its own neighbour
        nearest = similarity.argmax(dim=1)
    distance = ((x - x[nearest]).square().sum(dim=-1) + eps * eps).sqrt()  # finite gradient for duplicates
    return -(distance + eps).log().mean()


@full_precision
def ibot_patch_loss(student: torch.Tensor, targets: torch.Tensor, image: torch.Tensor, images: int,
                    student_temp: float = 0.1) -> torch.Tensor:
    """(1 / images) sum over images b of the mean over b's hidden patches p of H(targets_p, softmax(student_p /
    T_s)). student (logits) and targets (probabilities) [M, K] are the hidden patches' rows, `image` [M] int64 the
    image each belongs to (of `images`; an image with no hidden patch adds 0)."""
    per_patch = -(targets * F.log_softmax(student / student_temp, dim=-1)).sum(dim=-1)
    hidden = torch.zeros(images, dtype=per_patch.dtype, device=per_patch.device)
    hidden = hidden.index_add(0, image, torch.ones_like(per_patch))
    return (per_patch / hidden[image]).sum() / images


def masked_patches(rows: int, tokens: int, sample_probability: float, ratio: tuple[float, float],
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden [rows, tokens] bool, the flat indices [M] of its True entries in row-major order).

    max(1, int(rows x sample_probability)) random rows hide int(tokens x r) patches each (at least one), uniformly
    at random, r drawn from U(ratio) in equal strata (one ratio per stratum); the other rows hide none. The counts
    are drawn on the host, so M is known there and selecting the hidden patches needs no device sync."""
    masked = max(1, int(rows * sample_probability))
    bounds = torch.linspace(ratio[0], ratio[1], masked + 1)
    ratios = bounds[:-1] + (bounds[1:] - bounds[:-1]) * torch.rand(masked)
    counts = torch.zeros(rows, dtype=torch.long)
    counts[torch.randperm(rows)[:masked]] = (ratios * tokens).long().clamp(min=1, max=tokens)
    ranks = torch.rand(rows, tokens, device=device).argsort(dim=1).argsort(dim=1)
    hidden = ranks < counts.to(device)[:, None]
    where = hidden.flatten().to(torch.uint8).argsort(descending=True, stable=True)[:int(counts.sum())]
    return hidden, where


def blank_patches(encoder: TokenEncoder, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """x with the observed values of its `hidden` [B, T] patches set to 0 (unobserved values stay NaN)."""
    return x.masked_fill(encoder.covered(x, hidden) & ~x.isnan(), 0.0)


@register_method("dinov2", "DINO's image-level self-distillation plus iBOT's masked-patch distillation and a KoLeo "
                 "spreading term, Sinkhorn-Knopp-centred teacher (token encoders).",
                 "Oquab et al. 2023, arXiv:2304.07193")
class DINOv2(MultiCropMethod):
    encoder_kind = TokenEncoder
    requested_views = ViewRequest("asymmetric", global_views=2, local_views=8, local_size=96 / 224)
    optimizer = OptimizerDefaults("adamw", lr=0.002, weight_decay=0.04, weight_decay_end=0.4, lr_scaling="sqrt")

    def __init__(self, encoder: TokenEncoder, out_dim: int = 4096, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 separate_heads: bool = True, local_crops: int = 8, student_temp: float = 0.1,
                 teacher_temp: float = 0.07, warmup_teacher_temp: float = 0.04, teacher_temp_warmup: float = 0.3,
                 mask_sample_probability: float = 0.5, mask_ratio_min: float = 0.1, mask_ratio_max: float = 0.5,
                 ibot_weight: float = 1.0, koleo_weight: float = 0.1, sinkhorn_iterations: int = 3,
                 base_momentum: float = 0.992, freeze_last_layer_epochs: int = 1) -> None:
        super().__init__(encoder, local_crops, freeze_last_layer_epochs)
        for name, value in (("student_temp", student_temp), ("teacher_temp", teacher_temp),
                            ("warmup_teacher_temp", warmup_teacher_temp)):
            check_option("dinov2", name, value, 0.0)
        check_option("dinov2", "mask_sample_probability", mask_sample_probability, 0.0, 1.0)
        check_option("dinov2", "mask_ratio_min", mask_ratio_min, 0.0, mask_ratio_max)
        check_option("dinov2", "mask_ratio_max", mask_ratio_max, 0.0, 1.0)
        check_option("dinov2", "ibot_weight", ibot_weight, 0.0, low_open=False)
        check_option("dinov2", "koleo_weight", koleo_weight, 0.0, low_open=False)
        check_option("dinov2", "sinkhorn_iterations", sinkhorn_iterations, 1, low_open=False)
        check_option("dinov2", "base_momentum", base_momentum, 0.0, 1.0, low_open=False)
        check_option("dinov2", "teacher_temp_warmup", teacher_temp_warmup, 0.0, 1.0, low_open=False)
        self.student_temp, self.ibot_weight, self.koleo_weight = student_temp, ibot_weight, koleo_weight
        self.teacher_temp = Schedule(teacher_temp, teacher_temp, warmup=teacher_temp_warmup,
                                     warmup_start=warmup_teacher_temp)
        self.mask_sample_probability = float(mask_sample_probability)
        self.mask_ratio = (float(mask_ratio_min), float(mask_ratio_max))
        self.iterations = int(sinkhorn_iterations)
        self.momentum = Schedule(base_momentum, 1.0)
        self.dino_head = DINOHead(encoder.token_dim, out_dim, hidden_dim, bottleneck_dim)
        self.ibot_head = DINOHead(encoder.token_dim, out_dim, hidden_dim, bottleneck_dim) if separate_heads \
            else self.dino_head
        self.teacher_encoder = make_target(self.encoder)
        self.teacher_dino_head = make_target(self.dino_head)
        self.teacher_ibot_head = make_target(self.ibot_head) if separate_heads else self.teacher_dino_head

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        pairs = [(self.encoder, self.teacher_encoder), (self.dino_head, self.teacher_dino_head)]
        if self.ibot_head is not self.dino_head:
            pairs.append((self.ibot_head, self.teacher_ibot_head))
        return pairs

    def target_momentum(self, progress: float) -> float:
        return self.momentum(progress)

    def codes(self, scores: torch.Tensor, temperature: float) -> torch.Tensor:
        """The teacher's Sinkhorn-Knopp-centred targets for scores [N, K] (cosines), over the global batch."""
        return sinkhorn(scores, temperature, self.iterations, self.distributed)

    def loss_on_views(self, views: Views, step: StepInfo) -> tuple[torch.Tensor, StepLogs]:
        n_global, x = len(views.global_views), torch.cat(views.global_views)
        tokens = self.encoder.token_count(x)
        hidden, where = masked_patches(x.shape[0], tokens, self.mask_sample_probability, self.mask_ratio, x.device)
        temperature = self.teacher_temp(step.progress)
        with torch.no_grad():
            t = self.teacher_encoder.tokens(x)
            targets = self.codes(self.teacher_dino_head(t.mean(dim=1)), temperature).chunk(n_global)
            patch_targets = self.codes(self.teacher_ibot_head(t.flatten(0, 1)[where]), temperature)
        s = self.encoder.tokens(blank_patches(self.encoder, x, hidden))
        pooled = [*s.mean(dim=1).chunk(n_global), *(h.mean(dim=1) for h in
                                                  self.encode(views.local_views, self.encoder.tokens))]
        dino = swapped_prediction_loss([self.dino_head(h) for h in pooled], list(targets), self.student_temp)
        ibot = ibot_patch_loss(self.ibot_head(s.flatten(0, 1)[where]), patch_targets, where // tokens, x.shape[0],
                               self.student_temp)
        koleo = sum(koleo_loss(h) for h in pooled[:n_global])
        loss = dino + self.ibot_weight * ibot + self.koleo_weight * koleo
        return loss, {"dino": dino.detach(), "ibot": ibot.detach(), "koleo": koleo.detach(),
                      "teacher_temp": torch.tensor(temperature)}

    def before_optimizer_step(self, step: StepInfo) -> None:
        if self.frozen_at(step):  # the prototypes' layers stay fixed during the first epoch
            for head in {self.dino_head, self.ibot_head}:
                for p in head.last_layer.parameters():
                    p.grad = None
