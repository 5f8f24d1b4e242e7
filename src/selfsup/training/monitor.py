"""Per-epoch monitoring: label-free diagnostics (RankMe, alignment, uniformity, std) and online kNN.

Labels, when the source has them, are used only to report a cheap kNN accuracy on a held-out part
of a fixed monitoring subset; they never reach the loss.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ..data import Dataset
from ..evaluation.diagnostics import alignment, dimension_std, rankme, uniformity
from ..evaluation.knn import knn_accuracy
from ..modalities import get_modality
from ..run import encode_storage


class EpochMonitor:
    """Computes diagnostics on a fixed subset each epoch; optionally keeps the best-RankMe encoder."""

    def __init__(self, dataset: Dataset, resolved: dict[str, Any], device: torch.device, seed: int = 0,
                 subset: int = 2048, keep_best_rankme: bool = False) -> None:
        rng = np.random.default_rng(seed)
        n = len(dataset.train)
        idx = np.sort(rng.choice(n, size=min(subset, n), replace=False))
        self.x = dataset.train.x[idx]
        self.mask = dataset.train.mask[idx] if dataset.train.mask is not None else None
        self.y = dataset.train.y[idx] if dataset.train.y is not None else None
        self.modality = get_modality(dataset.modality)
        self.spec = resolved["data_spec"]
        self.view_maker = self.modality.view_maker(resolved["view_style"], self.spec)
        self.device = device
        self.seed = seed
        self.keep_best = keep_best_rankme
        self.best_rankme = -1.0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = -1

    @torch.no_grad()
    def __call__(self, epoch: int, method) -> dict[str, Any]:
        encoder = method.encoder
        z = encode_storage(encoder, self.modality, self.spec, self.x, device=str(self.device), mask=self.mask)
        gen = torch.Generator().manual_seed(self.seed + 1)
        n_pairs = min(512, len(self.x))
        kwargs = {"mask": self.mask[:n_pairs].to(self.device)} if self.mask is not None else {}
        v1, v2 = self.view_maker(self.x[:n_pairs].to(self.device), gen if self.device.type == "cpu" else None,
                                 **kwargs)[:2]
        encoder.eval()
        z1, z2 = encoder(v1, **kwargs).float().cpu(), encoder(v2, **kwargs).float().cpu()
        std = dimension_std(z)
        record: dict[str, Any] = {
            "rankme": rankme(z), "alignment": alignment(z1, z2), "uniformity": uniformity(z1),
            "embedding_std": std["mean_std"], "collapsed": std["collapsed"],
        }
        if self.y is not None:
            cut = int(0.8 * len(z))
            record["online_knn_acc"] = knn_accuracy(z[:cut], self.y[:cut], z[cut:], self.y[cut:], k=20)
        if self.keep_best and record["rankme"] > self.best_rankme:
            self.best_rankme, self.best_epoch = record["rankme"], epoch
            self.best_state = copy.deepcopy(encoder.state_dict())
        return record
