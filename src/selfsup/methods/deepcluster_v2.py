"""DeepCluster-v2: Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments"
(NeurIPS, arXiv:2006.09882, section 3.2 and appendix), the improved DeepCluster (Caron et al. 2018).

At the start of every epoch the memory bank (every training sample's L2-normalised projection, one bank per
global crop: methods/pseudo_labels.py) is clustered by spherical k-means (10 iterations) into K = 3000
clusters (by default at most a tenth of the training samples: pseudo_labels.default_prototypes), three times
(three heads, head h on global crop h mod 2, each from its own random start). The
centroids become each head's prototypes, frozen for the epoch; every crop of a sample is then trained to
predict its sample's cluster under each head: cross-entropy of softmax(z . centroids / 0.1), averaged over heads
and crops (multi-crop: 2 global + 6 local crops). Projection head 2048-128; LARS, lr 0.3 x batch/256 (the paper's
4.8 at 4096), weight decay 1e-6; SimCLR's augmentations.

Departures: the bank is filled by one pass over the training set at epoch 0, as the reference code does, in
eval mode (BatchNorm's running statistics); k-means draws its starting centroids from a generator seeded by the
epoch and head, so every process of a torchrun job gets the same clusters from the same bank. A `num_prototypes`
given larger than the training set is refused with the value to pass.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import check_option, register_method
from .pseudo_labels import PseudoLabelMethod, spherical_kmeans

KMEANS_SEED = 31_337


@register_method("deepcluster_v2", "Clustering: every epoch, k-means of a memory bank of all samples' projections "
                 "gives pseudo-labels that every crop predicts (multi-crop).", "Caron et al. 2020, arXiv:2006.09882")
class DeepClusterV2(PseudoLabelMethod):
    def __init__(self, encoder, num_prototypes: int | None = None, heads: int = 3, proj_hidden_dim: int = 2048,
                 proj_dim: int = 128, temperature: float = 0.1, kmeans_iterations: int = 10,
                 local_crops: int = 6) -> None:
        super().__init__(encoder, num_prototypes, heads, proj_hidden_dim, proj_dim, temperature, local_crops)
        check_option("deepcluster_v2", "kmeans_iterations", kmeans_iterations, 0, low_open=False)
        self.kmeans_iterations = kmeans_iterations
        self.build_prototypes(self.num_prototypes)

    def build_prototypes(self, k: int) -> None:
        # the prototypes: a buffer, set by k-means at every epoch start, never by the optimiser
        self.register_buffer("centroids", F.normalize(torch.randn(self.heads, k, self.proj_dim), dim=2))

    def head_scores(self, z: torch.Tensor, head: int) -> torch.Tensor:
        return z @ self.centroids[head].to(z.dtype).T

    def label_bank(self, epoch: int) -> None:
        for head in range(self.heads):
            generator = torch.Generator(self.memory.device).manual_seed(KMEANS_SEED + 1_000 * epoch + head)
            centroids, labels = spherical_kmeans(self.bank_crop(head), self.num_prototypes, self.kmeans_iterations,
                                                 generator)
            self.centroids[head] = centroids
            self.labels[head] = labels
