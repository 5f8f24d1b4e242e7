"""Spectral clustering of the embeddings' neighbour graph, with groups of equal size as the prior.

    G = the symmetrised graph of each sample's `neighbours` nearest samples, itself included (cosine, unweighted)
    e = the K eigenvectors of G's normalised Laplacian with the smallest eigenvalues, each row L2-normalised
        (Ng, Jordan & Weiss 2002), on scikit-learn's SpectralEmbedding recipe (the trivial eigenvector dropped, the
        others divided by sqrt(degree)), found by Lanczos
    c = k-means centres of e
    30 times:                                     # k-means whose assignment step is an optimal transport
        q = sinkhorn(-||e_i - c_j||^2 / (softness * mean distance)), every group given the mass 1/K
        c_j = sum_i q_ij e_i / sum_i q_ij
    labels = argmax_j q_ij; of `restarts` such runs, the one with the lowest within-group distance is kept

The equal-mass assignment is SeLa's equipartition (Asano et al. 2020) and the Sinkhorn-Knopp iterations of
Cuturi 2013, as SwAV computes its codes (collectives.sinkhorn); it plays the part of SCAN's entropy term: groups of
comparable size are preferred, so a group that the graph leaves far larger than the others is split and a small
one spread over several clusters is merged. On data whose groups differ much in size this prior is wrong (two blobs
of 800 and 200 points come out as two groups of about 500: tests/test_cluster.py); `--method umap` or `kmeans` then
suit better. `softness` (a fraction of the mean squared distance) sets how hard the sizes are held. A group that the
graph does not divide can take two coinciding centres, which share its mass equally, so one of them ends with no
sample: the sizes the command prints show it (pullover, coat and shirt of held-out Fashion-MNIST images, in an
exploratory look at one seed's confusion matrix). Exact duplicates are each other's nearest neighbours: where every
distinct row occurs `neighbours` times or more, the graph falls apart into the copies; the details count the graph's
connected parts and the command warns when they outnumber the clusters.

The defaults (5 neighbours, softness 0.1, 8 restarts) were chosen on the 10,000 Fashion-MNIST training images held
out from pre-training (benchmarks/clustering.py --validate --runs, clustering_search.json: neighbours 5, 10, 20 x
softness 0.05, 0.1, 0.2, two seeds; K eigenvectors, as Ng, Jordan & Weiss, matched or beat 9, 12 and 15 in an
exploratory comparison not committed). On digits' 450 test images the sparse 5-neighbour graph scores below SCAN
and UMAP (the clustering table of docs/benchmarks.md).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..collectives import sinkhorn
from .scan import normalise

NEIGHBOURS = 5
SOFTNESS = 0.1
RESTARTS = 8
UPDATES = 30  # centre updates of each restart
SINKHORN_ITERATIONS = 50


def spectral_coordinates(z: Any, dims: int, neighbours: int = NEIGHBOURS, seed: int = 0) -> tuple[np.ndarray, int]:
    """([N, dims] L2-normalised spectral coordinates of the cosine kNN graph, its number of connected parts).

    The eigenvectors of the normalised Laplacian I - D^-1/2 A D^-1/2 with the smallest eigenvalues are those of
    D^-1/2 A D^-1/2 with the largest, which Lanczos (scipy's eigsh) finds without factorising the graph (the
    shift-invert of scikit-learn's SpectralEmbedding took minutes on 60,000 samples); the leading, trivial one is
    dropped and the rest divided by sqrt(degree), as SpectralEmbedding does."""
    from scipy.sparse import diags
    from scipy.sparse.csgraph import connected_components
    from scipy.sparse.linalg import eigsh
    from sklearn.neighbors import kneighbors_graph

    zn = normalise(z)
    n = len(zn)
    neighbours = max(2, min(neighbours, n))
    # the sample itself counts among its neighbours, as SpectralEmbedding(affinity="nearest_neighbors") builds it
    graph = kneighbors_graph(zn, neighbours, include_self=True)
    graph = 0.5 * (graph + graph.T)
    parts = int(connected_components(graph, directed=False)[0])
    scale = diags(1.0 / np.sqrt(np.asarray(graph.sum(axis=1)).ravel()))
    adjacency = (scale @ graph @ scale).tocsr()
    dims = max(1, min(dims, n - 2))
    if n <= 1000:  # small: all eigenvectors, densely (eigsh needs fewer wanted than samples)
        _, vectors = np.linalg.eigh(adjacency.toarray())
        vectors = vectors[:, -(dims + 1):]
    else:
        v0 = np.random.default_rng(seed).uniform(-1.0, 1.0, n)
        # to machine precision (ARPACK's default, as SpectralEmbedding asks): the eigenvalues of a graph of groups lie
        # close together below 1, and with a looser tolerance (1e-6) Fashion-MNIST's clusters moved visibly
        _, vectors = eigsh(adjacency, k=dims + 1, which="LA", v0=v0)  # eigenvalues ascending
    return normalise(scale @ vectors[:, :-1]), parts


def squared_distances(u: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """[N, K] squared Euclidean distances, without an [N, K, dims] temporary."""
    return np.maximum((u * u).sum(1)[:, None] + (centres * centres).sum(1)[None] - 2.0 * u @ centres.T, 0.0)


def equal_size_kmeans(u: np.ndarray, k: int, seed: int, softness: float = SOFTNESS
                      ) -> tuple[np.ndarray, np.ndarray, float]:
    """(labels, confidence, within-group mean squared distance) of one restart of k-means with equal-mass
    (Sinkhorn) assignments, started from the centres of plain k-means."""
    from sklearn.cluster import KMeans

    centres = KMeans(k, n_init=1, random_state=seed).fit(u).cluster_centers_
    for _ in range(UPDATES):
        d2 = squared_distances(u, centres)
        # a row's constant leaves the converged transport plan unchanged: each row's nearest centre scores 0
        scores = -(d2 - d2.min(axis=1, keepdims=True)) / max(float(d2.mean()), 1e-12)
        q = sinkhorn(torch.from_numpy(scores.astype(np.float32)), softness, SINKHORN_ITERATIONS).double().numpy()
        centres = (q.T @ u) / np.maximum(q.sum(axis=0), 1e-12)[:, None]
    labels = q.argmax(axis=1)  # rows of q sum to 1
    cost = float(squared_distances(u, centres)[np.arange(len(u)), labels].mean())
    return labels.astype(np.int64), q.max(axis=1), cost


def spectral_clusters(z: Any, k: int, seed: int = 0, neighbours: int = NEIGHBOURS, softness: float = SOFTNESS,
                      restarts: int = RESTARTS) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(labels, confidence, details) of equal-size spectral clustering into `k` groups (module docstring)."""
    u, parts = spectral_coordinates(z, k, neighbours, seed)  # K eigenvectors (fewer on fewer than K + 2 samples)
    runs = [equal_size_kmeans(u, k, seed * 1000 + r, softness) for r in range(restarts)]
    labels, confidence, cost = min(runs, key=lambda run: run[2])
    details = {"graph": f"{neighbours} nearest neighbours (cosine), {parts} connected part(s)", "graph_parts": parts,
               "dimensions": int(u.shape[1]), "clusterer": f"k-means with equal-size Sinkhorn assignments "
               f"(softness {softness}), best of {restarts} restarts", "within_cost": round(cost, 6)}
    return labels, confidence, details
