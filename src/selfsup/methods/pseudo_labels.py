"""What DeepCluster-v2 and SeLa share: a memory bank of every training sample's projection, pseudo-labels for the
whole training set recomputed at the start of every epoch (`before_epoch`) by several clustering heads, and a
cross-entropy loss of every crop's prototype scores against its sample's labels (Caron et al. 2020, section 3 and
appendix of arXiv:2006.09882, where both are re-implemented with SwAV's multi-crop and projection head).

The memory bank holds, for each global crop, the L2-normalised projection of every sample from the last step that
saw it. It is filled once by a pass over the training set at epoch 0, then refreshed by the training steps
themselves (no extra forward pass). Under torchrun every step's indices and projections are gathered from all
processes, so every process keeps the same bank and computes the same labels (no collective in the clustering).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..views import DatasetPass, ViewRequest
from .base import OptimizerDefaults, StepInfo, TrainingContext, check_option
from .multicrop import MultiCropMethod
from .numerics import full_precision

DEFAULT_PROTOTYPES = 3000  # K of both papers (ImageNet: ~430 images a cluster)
ASSIGN_CHUNK = 8192  # rows of the bank scored at once against the prototypes (bounds the N x K working memory)


def default_prototypes(num_samples: int) -> int:
    """K when none is given: the papers' 3000, at most a tenth of the training samples (at least 10 a cluster on
    average; 1,347 digits get 134), and at least 2."""
    return max(2, min(DEFAULT_PROTOTYPES, num_samples // 10))


@torch.no_grad()
def spherical_kmeans(x: torch.Tensor, k: int, iterations: int, generator: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """K-means on unit vectors `x` [N, D] by cosine, as DeepCluster-v2 runs it: the centroids start at k distinct
    random samples; each iteration assigns every sample to its most similar centroid, then moves each centroid to
    the normalised sum of its members (an empty cluster keeps its centroid). Returns (centroids [k, D], labels
    [N]), the labels being the assignment to the returned centroids."""
    n = x.shape[0]
    if n < k:
        raise ValueError(f"k-means with {k} clusters needs at least {k} samples (got {n})")
    centroids = x[torch.randperm(n, generator=generator, device=generator.device)[:k].to(x.device)].clone()
    labels = nearest_prototype(x, centroids)
    for _ in range(iterations):
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        nonempty = torch.bincount(labels, minlength=k) > 0
        centroids[nonempty] = F.normalize(sums[nonempty], dim=1)
        labels = nearest_prototype(x, centroids)
    return centroids, labels


@torch.no_grad()
def nearest_prototype(x: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Index of the prototype of largest dot product with each row of `x`, in chunks of rows."""
    return torch.cat([(x[i:i + ASSIGN_CHUNK] @ prototypes.T).argmax(dim=1) for i in range(0, len(x), ASSIGN_CHUNK)])


@torch.no_grad()
def equipartition_labels(scores: torch.Tensor, epsilon: float, tolerance: float = 0.1, max_iterations: int = 1000
                         ) -> torch.Tensor:
    """SeLa's self-labelling step: hard labels [N] that split the N samples about equally among the K classes while
    following the scores [N, K] (Asano et al. 2020, eq. 5-7).

    The transport plan Q = diag(c) exp(scores / epsilon) diag(r) with row sums 1/N and column sums 1/K is found by
    Sinkhorn-Knopp (float64; each row shifted by its maximum first, which the row scaling absorbs), until the row
    scaling changes by less than `tolerance` in total (SeLa's criterion, checked every 10 iterations); each sample
    takes the class of its largest entry in Q. SeLa transports P^lambda, P = softmax(logits): row by row that is
    proportional to exp(lambda * logits), so `scores` are the logits and epsilon = 1 / lambda.
    """
    n, k = scores.shape
    q = torch.exp((scores - scores.max(dim=1, keepdim=True).values).double() / epsilon)  # every row's max is 1
    tiny = torch.finfo(torch.float64).tiny
    c = torch.full((n,), 1.0 / n, dtype=torch.float64, device=q.device)
    r = torch.full((k,), 1.0 / k, dtype=torch.float64, device=q.device)
    for i in range(max_iterations):
        r = (1.0 / k) / (q.T @ c).clamp_min(tiny)  # every class gets mass 1/K
        c_new = (1.0 / n) / (q @ r).clamp_min(tiny)  # every sample mass 1/N
        converged = i % 10 == 0 and float((c / c_new - 1).abs().sum()) < tolerance
        c = c_new
        if converged:
            break
    return (q * r).argmax(dim=1)


@full_precision
def pseudo_label_loss(scores: list[list[torch.Tensor]], labels: list[torch.Tensor], temperature: float
                      ) -> torch.Tensor:
    """Mean over heads h and crops v of the cross-entropy of softmax(scores[h][v] / T) against labels[h]: every
    crop of a sample predicts the cluster its sample was given by each head."""
    per_head = [torch.stack([F.cross_entropy(s / temperature, y) for s in crops]).mean()
                for crops, y in zip(scores, labels)]
    return torch.stack(per_head).mean()


class PseudoLabelMethod(MultiCropMethod):
    """Projector, memory bank and per-epoch labels; subclasses define the heads (`head_scores`) and how the bank
    is labelled (`label_bank`). Views, optimiser and augmentations are SwAV's, as both papers' v2 versions use."""

    requested_views = ViewRequest("instance", global_views=2, local_views=6, local_size=96 / 224, indices=True)
    optimizer = OptimizerDefaults("lars", lr=0.3, weight_decay=1e-6)

    def __init__(self, encoder, num_prototypes: int | None, heads: int, proj_hidden_dim: int, proj_dim: int,
                 temperature: float, local_crops: int) -> None:
        super().__init__(encoder, local_crops, frozen_epochs=0)
        if num_prototypes is not None:
            check_option(self.name, "num_prototypes", num_prototypes, 2, low_open=False)
        check_option(self.name, "heads", heads, 1, low_open=False)
        check_option(self.name, "temperature", temperature, 0.0)
        self.given_prototypes = num_prototypes
        self.num_prototypes = num_prototypes or DEFAULT_PROTOTYPES
        self.heads, self.temperature, self.proj_dim = heads, temperature, proj_dim
        self.projector = nn.Sequential(nn.Linear(self.feature_dim, proj_hidden_dim), nn.BatchNorm1d(proj_hidden_dim),
                                       nn.ReLU(inplace=True), nn.Linear(proj_hidden_dim, proj_dim))
        n_global = self.requested_views.global_views
        self.register_buffer("memory", torch.zeros(n_global, 0, proj_dim))  # [global crop, sample, proj_dim]
        self.register_buffer("labels", torch.zeros(heads, 0, dtype=torch.long))  # [head, sample]
        self.pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def setup(self, context: TrainingContext) -> None:
        super().setup(context)
        if self.given_prototypes is None:
            k = default_prototypes(context.num_samples)
            if k != self.num_prototypes:
                self.num_prototypes = k
                self.build_prototypes(k)
        elif context.num_samples < self.num_prototypes:
            raise ConfigError(f"{self.name} clusters the training set into num_prototypes={self.num_prototypes} "
                              f"clusters but it has {context.num_samples} samples; pass --method-option "
                              f"num_prototypes=N with N <= {context.num_samples} (for example "
                              f"{max(2, context.num_samples // 10)})")
        self.memory = self.memory.new_zeros(self.memory.shape[0], context.num_samples, self.memory.shape[2])
        self.labels = self.labels.new_zeros(self.heads, context.num_samples)

    def build_prototypes(self, k: int) -> None:
        """(Re)create every head's `k` prototypes (called from __init__, and by `setup` when the training set
        sets K)."""
        raise NotImplementedError

    def project(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projector(h), dim=1)

    def head_scores(self, z: torch.Tensor, head: int) -> torch.Tensor:
        """Scores [B, K] of projections `z` against head `head`'s prototypes (cosines)."""
        raise NotImplementedError

    def label_bank(self, epoch: int) -> None:
        """Set `labels` (and the heads' prototypes where the method derives them) from `memory`."""
        raise NotImplementedError

    def bank_crop(self, head: int) -> torch.Tensor:
        """The bank a head is fitted on: head h uses global crop h mod (number of global crops), as DeepCluster-v2."""
        return self.memory[head % self.memory.shape[0]]

    def before_epoch(self, epoch: int, data: DatasetPass) -> None:
        if epoch == 0:  # fill the bank with a pass over the training set (later epochs: the steps refresh it)
            for views in data:
                for crop, h in enumerate(self.encode(views.global_views)):
                    self.memory[crop, views.indices] = self.project(h).float()
        with torch.autocast(device_type=self.memory.device.type, enabled=False):  # clustering in float32
            self.label_bank(epoch)

    def loss_on_views(self, views, step):
        z = [self.project(h) for h in self.encode(views.crops)]
        scores = [[self.head_scores(zi, head) for zi in z] for head in range(self.heads)]
        labels = [self.labels[head, views.indices] for head in range(self.heads)]
        loss = pseudo_label_loss(scores, labels, self.temperature)
        with torch.no_grad():  # the global crops' projections enter the bank after the step (every process's)
            n_global = len(views.global_views)
            self.pending = (self.gather(views.indices), torch.stack([self.gather(zi.detach()) for zi in z[:n_global]]))
        return loss, {}

    @torch.no_grad()
    def after_optimizer_step(self, step: StepInfo) -> None:
        if self.pending is not None:
            indices, z = self.pending
            self.memory[:, indices] = z.to(self.memory.dtype)
            self.pending = None
        super().after_optimizer_step(step)
