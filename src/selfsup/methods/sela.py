"""SeLa: Asano, Rupprecht and Vedaldi 2020, "Self-labelling via simultaneous clustering and representation
learning" (ICLR, arXiv:1911.05371), in the form Caron et al. 2020 (arXiv:2006.09882, appendix) call SeLa-v2:
SwAV's projection head, multi-crop and a memory bank instead of SeLa's separate forward passes.

Every head h has K = 3000 trainable prototypes, L2-normalised after every step as SwAV's (by default at most a
tenth of the training samples: pseudo_labels.default_prototypes). At the start of every
epoch the whole training set is self-labelled: the logits z . w_k / 0.1 of the memory bank (every sample's
projection: methods/pseudo_labels.py) are turned into hard labels by SeLa's optimal transport with the
equipartition constraint (every cluster gets N/K samples; Sinkhorn-Knopp on P^lambda, lambda = 25). Every crop
of a sample is then trained to predict its sample's labels: cross-entropy averaged over heads and crops
(multi-crop: 2 global + 6 local crops). LARS, lr 0.3 x batch/256, weight decay 1e-6; SimCLR's augmentations.

Departures: labels are recomputed at every epoch start (SeLa: 80 times in 400 epochs, about every fifth epoch);
3 heads (SeLa's best ImageNet model used 10; each head costs a Sinkhorn over N x K per epoch); head h is
labelled from global crop h mod 2's bank; the bank is filled by one pass over the training set at epoch 0, in
eval mode. A `num_prototypes` given larger than the training set is refused with the value to pass.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import StepInfo, check_option, register_method
from .pseudo_labels import ASSIGN_CHUNK, PseudoLabelMethod, equipartition_labels


@register_method("sela", "Self-labelling: every epoch, optimal transport with equal cluster sizes labels the whole "
                 "training set; every crop predicts the labels (multi-crop).", "Asano et al. 2020, arXiv:1911.05371")
class SeLa(PseudoLabelMethod):
    def __init__(self, encoder, num_prototypes: int | None = None, heads: int = 3, proj_hidden_dim: int = 2048,
                 proj_dim: int = 128, temperature: float = 0.1, lam: float = 25.0, local_crops: int = 6) -> None:
        super().__init__(encoder, num_prototypes, heads, proj_hidden_dim, proj_dim, temperature, local_crops)
        check_option("sela", "lam", lam, 0.0)
        self.lam = lam
        self.build_prototypes(self.num_prototypes)

    def build_prototypes(self, k: int) -> None:
        self.prototypes = nn.ModuleList(nn.Linear(self.proj_dim, k, bias=False) for _ in range(self.heads))
        self.normalise_prototypes()

    @torch.no_grad()
    def normalise_prototypes(self) -> None:
        for layer in self.prototypes:
            layer.weight.copy_(F.normalize(layer.weight, dim=1))

    def head_scores(self, z: torch.Tensor, head: int) -> torch.Tensor:
        return self.prototypes[head](z)

    def label_bank(self, epoch: int) -> None:
        for head in range(self.heads):
            bank = self.bank_crop(head)
            weight = self.prototypes[head].weight.float()
            logits = torch.cat([bank[i:i + ASSIGN_CHUNK] @ weight.T for i in range(0, len(bank), ASSIGN_CHUNK)])
            self.labels[head] = equipartition_labels(logits / self.temperature, 1.0 / self.lam)

    @torch.no_grad()
    def after_optimizer_step(self, step: StepInfo) -> None:
        self.normalise_prototypes()
        super().after_optimizer_step(step)
