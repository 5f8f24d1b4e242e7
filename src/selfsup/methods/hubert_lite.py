"""HuBERT-lite: Hsu et al. 2021, "HuBERT: Self-Supervised Speech Representation Learning by Masked Prediction of
Hidden Units", at a size that trains on a CPU.

    targets = k-means(frames of the input)          # iteration 1: acoustic units of the clean input steps
    h = f(x with spans of steps hidden)             # the encoder sees masked steps as missing (step_mask)
    logits(t, c) = cos(P h_t, e_c) / 0.1            # every unit c has a learned embedding e_c
    loss = cross-entropy of the target unit at the masked, non-padded steps
    iteration 2 (from `second_iteration` of training): targets = k-means(frozen copy of f's per-step outputs)

Targets: HuBERT clusters 39-d MFCC frames (13 coefficients with deltas) into 100 units for its first iteration and a
middle Transformer layer's outputs into 500 for the next. This method knows nothing of audio: its first units are
k-means clusters of the input steps as the modality prepares them (for audio the z-scored log-mel frames: the same
distances as MFCCs with all 64 coefficients kept, since the DCT is orthonormal, rather than 13 and deltas), its second
of the encoder's own per-step outputs, frozen when the iteration starts (HuBERT retrains from scratch; here training
goes on, the prediction head re-initialised). Both k-means use 100 units (HuBERT: 100 then 500), fitted on up to
`kmeans_frames` steps drawn from a pass over the training set (scikit-learn's KMeans, k-means++, one run).

Masking: each step starts a span of `mask_length` steps with probability `mask_prob` (HuBERT: 8% of 20 ms frames
and spans of 10, about half the steps hidden; here 6.5% of 10 ms steps and spans of 10, also about half), drawn from
torch's global generator (checkpointed) as MAE's masks. The loss is on masked steps only (HuBERT's alpha = 1).
Optimiser: AdamW at 5e-4 (HuBERT: Adam 5e-4 with warm-up), the trainer's warm-up and cosine. The encoder must give
one output per input step (`SequenceEncoder` whose steps are the input's: the audio `transformer`, `dilated_cnn`,
`spectrogram_cnn`; the waveform CNN's input steps are samples, which is refused in one line). Without a planned
number of steps (a time budget) the second iteration never starts.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..encoders import SequenceEncoder
from ..errors import ConfigError
from ..views import DatasetPass, ViewRequest
from .base import Method, OptimizerDefaults, TrainingContext, check_option, make_target, register_method
from .numerics import full_precision


@full_precision
def masked_unit_loss(scores: torch.Tensor, units: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of `scores` [B, T, K] against the target units [B, T] at the steps where `masked` [B, T]."""
    losses = F.cross_entropy(scores.reshape(-1, scores.shape[-1]), units.reshape(-1), reduction="none")
    weights = masked.reshape(-1).to(losses.dtype)
    return (losses * weights).sum() / weights.sum().clamp(min=1)


def span_mask(batch: int, steps: int, prob: float, length: int, device: torch.device) -> torch.Tensor:
    """bool [batch, steps], True = hidden: each step starts a hidden span of `length` steps with probability `prob`."""
    starts = torch.rand(batch, steps, device=device) < prob
    hidden = F.max_pool1d(F.pad(starts.float(), (length - 1, 0)).unsqueeze(1), length, stride=1).squeeze(1)
    return hidden > 0


def nearest_unit(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """The index of the nearest centroid [K, D] (Euclidean) of every row of x [..., D]."""
    flat = x.reshape(-1, x.shape[-1]).float()
    distances = (flat.square().sum(1, keepdim=True) - 2 * flat @ centroids.T + centroids.square().sum(1)[None])
    return distances.argmin(dim=1).view(x.shape[:-1])


def steps_of(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The input's steps as vectors [B, T, C] (NaN -> 0) and which are observed [B, T]."""
    valid = ~torch.isnan(x).all(dim=1)
    return torch.nan_to_num(x.float(), nan=0.0).transpose(1, 2), valid


@register_method("hubert_lite", "Masked prediction of hidden units: k-means units of the input steps, then of the "
                 "model's own features, predicted at masked steps.", "Hsu et al. 2021, arXiv:2106.07447")
class HuBERTLite(Method):
    encoder_kind = SequenceEncoder
    requested_views = ViewRequest("geometric", global_views=1)
    optimizer = OptimizerDefaults("adamw", lr=5e-4, weight_decay=0.01, lr_scaling="none")

    def __init__(self, encoder, units: int = 100, mask_prob: float = 0.065, mask_length: int = 10,
                 second_iteration: float = 0.5, proj_dim: int = 256, temperature: float = 0.1,
                 kmeans_frames: int = 50_000) -> None:
        super().__init__(encoder)
        check_option("hubert_lite", "units", units, 1)
        check_option("hubert_lite", "mask_prob", mask_prob, 0.0, 1.0)
        check_option("hubert_lite", "mask_length", mask_length, 0)
        check_option("hubert_lite", "second_iteration", second_iteration, 0.0, 1.0, low_open=False)
        check_option("hubert_lite", "temperature", temperature, 0.0)
        self.units, self.mask_prob, self.mask_length = int(units), float(mask_prob), int(mask_length)
        self.second_iteration, self.temperature, self.kmeans_frames = second_iteration, temperature, kmeans_frames
        width = encoder.input_width
        if width is None:
            raise ConfigError("hubert_lite needs an encoder over vectors per step (input_width)")
        self.projection = nn.Linear(self.feature_dim, proj_dim)
        self.unit_embeddings = nn.Parameter(torch.randn(self.units, proj_dim) * 0.02)
        self.teacher = make_target(encoder)  # the frozen encoder whose outputs are the second iteration's units
        self.register_buffer("input_centroids", torch.zeros(self.units, width))
        self.register_buffer("feature_centroids", torch.zeros(self.units, self.feature_dim))
        self.iteration = 1
        self.second_epoch: int | None = None

    def setup(self, context: TrainingContext) -> None:
        if context.total_steps is None:
            return
        steps_per_epoch = max(1, context.num_samples // context.global_batch_size)
        epochs = max(1, -(-context.total_steps // steps_per_epoch))
        self.second_epoch = round(self.second_iteration * epochs) if self.second_iteration < 1 else None

    @torch.no_grad()
    def before_epoch(self, epoch: int, data: DatasetPass) -> None:
        if epoch == 0 and self.iteration == 1 and not bool(self.input_centroids.any()):
            self.input_centroids.copy_(self._kmeans(data, lambda x: steps_of(x)))
        elif self.second_epoch is not None and epoch >= self.second_epoch and self.iteration == 1 and epoch > 0:
            self.teacher.load_state_dict(self.encoder.state_dict())
            self.teacher.eval()
            self.feature_centroids.copy_(self._kmeans(data, self._teacher_steps))
            nn.init.normal_(self.unit_embeddings, std=0.02)
            self.projection.reset_parameters()
            self.iteration = 2

    def train(self, mode: bool = True) -> HuBERTLite:
        """The teacher stays in eval mode (no dropout, running statistics): its units are fixed targets."""
        super().train(mode)
        self.teacher.eval()
        return self

    def _teacher_steps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.teacher.forward_sequence(x).float(), ~torch.isnan(x).all(dim=1)

    def _kmeans(self, data: DatasetPass, features) -> torch.Tensor:
        from sklearn.cluster import KMeans

        rows, total = [], 0
        per_batch = None
        for views in data:
            feats, valid = features(views.global_views[0])
            picked = feats[valid]
            if per_batch is None:  # spread the draw over the whole pass
                batches = max(1, -(-data.num_samples // len(views.global_views[0])))
                per_batch = max(1, self.kmeans_frames // batches)
            keep = torch.randperm(len(picked), device=picked.device)[:per_batch]
            rows.append(picked[keep].cpu())
            total += len(keep)
        frames = torch.cat(rows).double().numpy()
        if len(frames) < self.units:
            raise ConfigError(f"hubert_lite: {len(frames)} steps in the training set, fewer than units={self.units}")
        km = KMeans(self.units, n_init=1, max_iter=100, random_state=0).fit(frames)
        return torch.from_numpy(np.asarray(km.cluster_centers_, dtype=np.float32)).to(self.input_centroids.device)

    def loss_on_views(self, views, step):
        x = views.global_views[0]
        inputs, valid = steps_of(x)
        hidden = span_mask(x.shape[0], x.shape[-1], self.mask_prob, self.mask_length, x.device) & valid
        with torch.no_grad():
            if self.iteration == 1:
                units = nearest_unit(inputs, self.input_centroids)
            else:
                units = nearest_unit(self.teacher.forward_sequence(x), self.feature_centroids)
        h = self.encoder.forward_sequence(x, step_mask=~hidden)
        if h.shape[1] != x.shape[-1]:
            raise ConfigError(f"hubert_lite needs an encoder with one output per input step; {type(self.encoder).__name__} "
                              f"gives {h.shape[1]} for {x.shape[-1]} (a spectrogram encoder does)")
        scores = F.normalize(self.projection(h), dim=-1) @ F.normalize(self.unit_embeddings, dim=-1).T
        loss = masked_unit_loss(scores / self.temperature, units, hidden)
        return loss, {"hidden_fraction": hidden.float().mean().detach()}

    def extra_state(self) -> dict[str, float]:
        return {"iteration": self.iteration}

    def load_extra_state(self, state: dict[str, float]) -> None:
        self.iteration = int(state["iteration"])
