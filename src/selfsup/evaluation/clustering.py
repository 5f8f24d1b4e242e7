"""Clustering evaluation of frozen embeddings: k-means, NMI, ARI and Hungarian-matched accuracy."""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from .large import kmeans
from .splits import as_features, as_labels


def hungarian_accuracy(y_true: Any, y_pred: Any) -> float:
    """Unsupervised clustering accuracy (Xie et al. 2016, DEC): best one-to-one cluster-to-class map via linear_sum_assignment."""
    y_true = as_labels(y_true, name="y_true")
    y_pred = as_labels(y_pred, len(y_true), "y_pred")
    if len(y_true) == 0:
        raise ValueError("empty labelling")
    _, t = np.unique(y_true, return_inverse=True)
    _, p = np.unique(y_pred, return_inverse=True)
    counts = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(counts, (p, t), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(y_true))


def kmeans_clustering(x: Any, y: Any, n_clusters: int | None = None, seed: int = 0, n_init: int = 10) -> dict:
    """k-means (evaluation.large.kmeans: scikit-learn's k-means++ with n_init restarts, or faiss from a million
    rows) on L2-normalised embeddings (cosine geometry); NMI/ARI/Hungarian acc vs y."""
    x = as_features(x)
    y = as_labels(y, len(x))
    k = int(n_clusters) if n_clusters is not None else len(np.unique(y))
    z = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    pred, _ = kmeans(z, k, n_init, seed)
    return {
        "nmi": float(normalized_mutual_info_score(y, pred)),
        "ari": float(adjusted_rand_score(y, pred)),
        "acc": hungarian_accuracy(y, pred),
        "n_clusters": k,
    }
