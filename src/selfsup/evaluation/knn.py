"""Weighted k-nearest-neighbour evaluation on frozen embeddings."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .large import faiss_for, flat_index
from .splits import as_features, as_labels, as_tensor


def knn_predict(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    batch_size: int = 1024,
) -> np.ndarray:
    """Weighted kNN of Wu et al. 2018 (instance discrimination), as in solo-learn/lightly: cosine top-k, votes exp(sim/T)."""
    xtr = as_features(train_x, "train_x")
    xte = as_features(test_x, "test_x")
    ytr = as_labels(train_y, len(xtr), "train_y")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"feature dims differ: {xtr.shape[1]} vs {xte.shape[1]}")
    if k < 1 or temperature <= 0:
        raise ValueError("k must be >= 1 and temperature > 0")
    if num_classes is None:
        classes, yidx = np.unique(ytr, return_inverse=True)
    else:  # labels are already class indices in [0, num_classes)
        if not np.issubdtype(ytr.dtype, np.integer) or ytr.min() < 0 or ytr.max() >= num_classes:
            raise ValueError(f"train_y must be integers in [0, {num_classes})")
        classes, yidx = np.arange(num_classes), ytr
    k = min(k, len(xtr))
    faiss = faiss_for(len(xtr))
    with torch.no_grad():
        bank = torch.nn.functional.normalize(as_tensor(xtr).float(), dim=1)
        queries = torch.nn.functional.normalize(as_tensor(xte).float(), dim=1)
        labels = torch.from_numpy(np.array(yidx, dtype=np.int64))
        index = flat_index(faiss, bank.numpy()) if faiss is not None else None
        preds = []
        for start in range(0, len(queries), batch_size):
            if index is not None:  # a million embeddings or more: the same exact neighbours, found faster
                sims, idx = index.search(queries[start : start + batch_size].numpy(), k)
                top_sim, top_idx = torch.from_numpy(sims), torch.from_numpy(idx)
            else:
                top_sim, top_idx = (queries[start : start + batch_size] @ bank.T).topk(k, dim=1)
            # exp((s - s_max)/T): exp(s/T) rescaled per row (argmax unchanged) so small T cannot overflow.
            weights = ((top_sim - top_sim[:, :1]) / temperature).exp()
            scores = torch.zeros(len(top_sim), len(classes)).scatter_add_(1, labels[top_idx], weights)
            preds.append(scores.argmax(dim=1))
        pred_idx = torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)
    return classes[pred_idx]


PUBLISHED_K = 200  # Wu et al. 2018's k, on ImageNet: about 1,300 images per class
K_FRACTION = 0.15  # 200 / 1,300: the share of a class the published k covers


def data_k(train_y: Any, minimum: int = 5) -> int:
    """The kNN protocol's k for these labels: the published 200 where the smallest class has at least ~1,333 training
    examples (Fashion-MNIST, CIFAR), else the same share (15%) of the smallest class, at least `minimum`. With
    k=200 on digits (about 135 images per class) every vote would mix classes by construction."""
    counts = np.bincount(as_labels(train_y).astype(np.int64))
    smallest = int(counts[counts > 0].min())
    return int(min(PUBLISHED_K, max(minimum, round(K_FRACTION * smallest))))


def knn_accuracy(
    train_x: Any, train_y: Any, test_x: Any, test_y: Any, k: int = 200, temperature: float = 0.1
) -> float:
    """Top-1 accuracy of the weighted kNN classifier of Wu et al. 2018 (no hyper-parameters are tuned)."""
    pred = knn_predict(train_x, train_y, test_x, k=k, temperature=temperature)
    return float(np.mean(pred == as_labels(test_y, len(pred), "test_y")))
