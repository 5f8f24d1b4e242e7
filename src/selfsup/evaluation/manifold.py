"""Clustering the local manifold of the embeddings: N2D (McConville et al. 2020, "N2D: (Not Too) Deep Clustering via
Clustering the Local Manifold of an Autoencoded Embedding", ICPR).

    u = UMAP(n_components=10, n_neighbors=20, min_dist=0)(normalise(z))   # the authors' settings (rymc/n2d run.sh)
    labels = k-means(u, K)

The paper clusters the UMAP coordinates with a Gaussian mixture; k-means here (n_init 10), which scored higher on
held-out training images of Fashion-MNIST with selfsup's embeddings in one exploratory comparison (one seed, labels
used to score only; not a committed benchmark). UMAP runs on the L2-normalised embeddings
(euclidean there is the cosine geometry every other protocol uses) with a fixed seed, so it is reproducible and
single-threaded. Needs the optional `umap-learn` package (`pip install 'selfsup[cluster]'`).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from .scan import normalise
from .spectral import squared_distances

NEIGHBOURS = 20
DIMENSIONS = 10


def manifold_coordinates(z: Any, dims: int = DIMENSIONS, neighbours: int = NEIGHBOURS, seed: int = 0) -> np.ndarray:
    """[N, dims] UMAP coordinates of the L2-normalised embeddings (min_dist 0: tight clumps, as N2D)."""
    try:
        import numba
        import umap
    except ImportError:
        from ..errors import ConfigError

        raise ConfigError("--method umap needs the umap-learn package: pip install 'selfsup[cluster]'") from None
    # numba's default OpenMP layer leaves threads that slow torch's later work in the same process 10-40x (measured:
    # a ViT training step after UMAP); its plain worker queue does not. Set before numba's first parallel launch.
    numba.config.THREADING_LAYER = "workqueue"
    zn = normalise(z)
    neighbours = max(2, min(neighbours, len(zn) - 1))
    dims = max(1, min(dims, len(zn) - 2))
    with warnings.catch_warnings():  # "n_jobs overridden by setting random_state": the price of reproducibility
        warnings.simplefilter("ignore", UserWarning)
        return umap.UMAP(n_components=dims, n_neighbors=neighbours, min_dist=0.0, metric="euclidean",
                         random_state=seed, init="spectral").fit_transform(zn).astype(np.float32)


def manifold_clusters(z: Any, k: int, seed: int = 0, neighbours: int = NEIGHBOURS, dims: int = DIMENSIONS
                      ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(labels, confidence, details): k-means on the UMAP coordinates; confidence is the softmax over clusters of
    minus the squared distance to each centre, in units of the mean squared distance to the own centre."""
    u = manifold_coordinates(z, dims, neighbours, seed)
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(u)
    d2 = squared_distances(u, km.cluster_centers_)
    scale = max(float(d2.min(axis=1).mean()), 1e-12)
    logits = -d2 / scale
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    details = {"manifold": "UMAP", "dimensions": int(u.shape[1]), "neighbours": neighbours, "min_dist": 0.0,
               "clusterer": "k-means (n_init 10)"}
    return km.labels_.astype(np.int64), p.max(axis=1), details
