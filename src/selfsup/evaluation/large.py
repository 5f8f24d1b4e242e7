"""Nearest neighbours and k-means for a million embeddings and more: faiss (the `scale` extra, faiss-cpu) when it is
installed, else the paths every size uses (exact cosine top-k by torch matrix products; scikit-learn's KMeans).

faiss's flat inner-product index is exact, so kNN gives the same neighbours either way (up to float rounding of
similarities tied at the k-th place); its k-means (Lloyd's algorithm on every row, random initial centres,
`FAISS_ITERATIONS` iterations a run, the best of `n_init` runs by objective) differs from scikit-learn's (k-means++
initialisation, up to 300 iterations to a tolerance) in how it starts and stops.
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: Embeddings from which faiss is used when it is installed: on 1M x 128 it took kNN 1.75x and k-means 1.49x faster
#: than the default paths, with the same predictions (benchmarks/results/eval_scale.json); at 100k its kNN was slower.
FAISS_MIN_ROWS = 1_000_000
FAISS_ITERATIONS = 50


def faiss_for(rows: int) -> Any | None:
    """The faiss module when `rows` embeddings call for it and the `scale` extra is installed, else None."""
    if rows < FAISS_MIN_ROWS:
        return None
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def flat_index(faiss: Any, bank: np.ndarray) -> Any:
    """An exact inner-product index of `bank`'s rows (L2-normalised already: inner product = cosine)."""
    index = faiss.IndexFlatIP(bank.shape[1])
    index.add(np.ascontiguousarray(bank, dtype=np.float32))
    return index


def kmeans(z: np.ndarray, k: int, n_init: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k-means of the rows of `z`: (labels, centres); faiss for a million rows or more when installed."""
    faiss = faiss_for(len(z))
    if faiss is not None:
        km = faiss.Kmeans(z.shape[1], k, niter=FAISS_ITERATIONS, nredo=n_init, seed=seed + 1,
                          max_points_per_centroid=len(z) // k + 1)  # every row, not faiss's 256 a centroid
        data = np.ascontiguousarray(z, dtype=np.float32)
        km.train(data)
        _, labels = km.index.search(data, 1)
        return labels[:, 0].astype(np.int64), km.centroids
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(z)
    return km.labels_.astype(np.int64), km.cluster_centers_
