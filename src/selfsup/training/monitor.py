"""Per-epoch monitoring: label-free diagnostics (RankMe, alignment, uniformity, std) and online kNN.

Labels, when the source has them, are used only to report a cheap kNN accuracy on a held-out part
of a fixed monitoring subset; they never reach the loss.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ..data import Dataset, Split
from ..encoders import Encoder
from ..evaluation.diagnostics import alignment, dimension_std, rankme, uniformity
from ..evaluation.knn import knn_accuracy
from ..modalities import get_modality
from ..resolved import Resolved
from ..run import encode_storage
from ..views import ViewRequest
from .hooks import EpochHook


class EpochMonitor(EpochHook):
    """Computes diagnostics on a fixed subset each epoch; optionally keeps the best-RankMe encoder.

    Alignment is measured on two 'instance' views (the same recipe whatever the method), so it compares
    across methods; the method's own views may have one view only (masked modelling) or special ones.

    Collapse is judged against the run's encoder before training (evaluation.dimension_std with `reference`): its
    spread on the same subset, measured once when the monitor is made (untrained, or pretrained where the run starts
    from pretrained weights). A drop of less than tenfold is not reported.
    """

    def __init__(self, dataset: Dataset, resolved: Resolved, device: torch.device, initial: Encoder, seed: int = 0,
                 subset: int = 2048, keep_best_rankme: bool = False) -> None:
        rng = np.random.default_rng(seed)
        n = len(dataset.train)
        idx = np.sort(rng.choice(n, size=min(subset, n), replace=False))
        self.x = dataset.train.x[idx]
        self.mask = dataset.train.mask[idx] if dataset.train.mask is not None else None
        self.y = dataset.train.y[idx] if dataset.train.y is not None else None
        self.modality = get_modality(dataset.modality)
        self.spec = resolved.data_spec
        first = Split(self.x[:512], None, self.mask[:512] if self.mask is not None else None)
        self.pairs = self.modality.storage(first, self.spec)
        self.view_maker = self.modality.view_maker(ViewRequest("instance"), self.spec)
        self.device = device
        self.seed = seed
        self.keep_best = keep_best_rankme
        self.best_rankme = -1.0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = -1
        self.initial_std = dimension_std(encode_storage(initial, self.modality, self.spec, self.x, device=str(device),
                                                        mask=self.mask))["mean_std"]

    @torch.no_grad()
    def __call__(self, epoch: int, method) -> dict[str, Any]:
        encoder = method.encoder
        z = encode_storage(encoder, self.modality, self.spec, self.x, device=str(self.device), mask=self.mask)
        gen = torch.Generator().manual_seed(self.seed + 1)
        batch = self.pairs.to(self.device).take(torch.arange(len(self.pairs)))
        views = self.view_maker(batch, gen if self.device.type == "cpu" else None)
        encoder.eval()
        z1, z2 = (encoder(v).float().cpu() for v in views.global_views)
        std = dimension_std(z, reference=self.initial_std)
        record: dict[str, Any] = {
            "rankme": rankme(z), "alignment": alignment(z1, z2), "uniformity": uniformity(z1),
            "embedding_std": std["mean_std"], "embedding_std_initial": self.initial_std,
            "collapsed": std["collapsed"],
        }
        if self.y is not None:
            cut = int(0.8 * len(z))
            record["online_knn_acc"] = knn_accuracy(z[:cut], self.y[:cut], z[cut:], self.y[cut:], k=20)
        if self.keep_best and record["rankme"] > self.best_rankme:
            self.best_rankme, self.best_epoch = record["rankme"], epoch
            self.best_state = copy.deepcopy(encoder.state_dict())
        return record

    def state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        doc = {"best_rankme": self.best_rankme, "best_epoch": self.best_epoch,
               "has_best_state": self.best_state is not None}
        return doc, dict(self.best_state) if self.best_state is not None else {}

    def load_state(self, doc: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        self.best_rankme, self.best_epoch = float(doc["best_rankme"]), int(doc["best_epoch"])
        self.best_state = tensors if doc.get("has_best_state") else None

    def selected_encoder(self) -> tuple[dict[str, torch.Tensor], str] | None:
        if self.best_state is None:
            return None
        return self.best_state, f"rankme (epoch {self.best_epoch}, RankMe {self.best_rankme:.2f})"
