"""Label-free criteria: scores of an encoder computed from its embeddings of unlabelled data alone, used to choose
between trained encoders when there are no labels (`selfsup.search`).

- RankMe (Garrido et al. 2023, `diagnostics.rankme`): the effective rank of the embeddings.
- alpha-ReQ (Agrawal et al. 2022): the decay exponent alpha of the embeddings' eigenspectrum, lambda_i ~ i^-alpha,
  fitted by least squares in log-log coordinates over the leading quarter of the spectrum (at least 8 eigenvalues:
  the tail of a spectrum estimated from a few hundred items bends down at the sample-rank limit and would inflate
  alpha); the paper reports the best representations in an interval of alpha around 1, so the score is
  -|alpha - 1|.
- LiDAR (Thilak et al. 2024): the effective rank of the linear-discriminant matrix of a surrogate classification task
  whose classes are the items and whose samples are each item's augmented views:
  Sigma_w(delta)^-1/2 Sigma_b Sigma_w(delta)^-1/2 with Sigma_w(delta) = Sigma_w + delta I (delta = 1e-4, the paper's).
  Departures: the views are those of the modality's generic instance recipe, the same for every method compared
  (the paper uses each method's own training views), and few of them (selfsup.search takes 4 an item).
- View retrieval: the share of items whose augmented view has the item's own (unaugmented) embedding as its nearest
  neighbour, by cosine, among the embeddings of all the items scored: a criterion that uses only the data and the
  augmentations, whatever the method's loss.

Every function takes float arrays (numpy or torch) and returns a float; larger is better for every score.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .diagnostics import effective_rank, rankme
from .splits import as_features, to_numpy


def _array(z: Any, name: str = "z") -> np.ndarray:
    return as_features(z, name).astype(np.float64)


def _views(views: Any) -> np.ndarray:
    zv = to_numpy(views)
    if zv.ndim != 3 or zv.shape[1] < 2:
        raise ValueError(f"views must be [items, views >= 2, dim] embeddings, got shape {zv.shape}")
    return _array(zv.reshape(-1, zv.shape[2]), "views").reshape(zv.shape)


def alpha_req(z: Any) -> float:
    """alpha of the power law fitted to the eigenvalues of the centred embeddings' covariance (those above 1e-8 of
    the largest), in log-log coordinates."""
    a = _array(z)
    a = a - a.mean(0)
    eig = np.linalg.svd(a, compute_uv=False) ** 2
    eig = eig[:max(8, min(a.shape) // 4)]
    eig = eig[eig > eig[0] * 1e-8] if eig[0] > 0 else eig[:0]
    if len(eig) < 2:
        return float("inf")  # a collapsed embedding: no decay to fit
    slope = np.polyfit(np.log(np.arange(1, len(eig) + 1)), np.log(eig), 1)[0]
    return float(-slope)


def alpha_req_score(z: Any) -> float:
    """-|alpha - 1|: 0 for the paper's best spectrum, more negative the further from it."""
    return -abs(alpha_req(z) - 1.0)


def lidar(views: Any, delta: float = 1e-4) -> float:
    """LiDAR of embeddings [n items, q views, d]: the effective rank of Sigma_w(delta)^-1/2 Sigma_b
    Sigma_w(delta)^-1/2 (between-item scatter of the view means against the within-item scatter of the views)."""
    zv = _views(views)
    n, q, d = zv.shape
    means = zv.mean(1)
    centred = means - means.mean(0)
    between = centred.T @ centred / n
    within = zv - means[:, None, :]
    within = np.einsum("nqd,nqe->de", within, within) / (n * q) + delta * np.eye(d)
    eig, vec = np.linalg.eigh(within)
    whiten = vec @ np.diag(np.maximum(eig, delta) ** -0.5) @ vec.T  # rounding can leave eig a hair below delta
    return effective_rank(np.linalg.eigvalsh(whiten @ between @ whiten))


def view_retrieval(views: Any, z: Any) -> float:
    """Share of items i whose view embedding views[i] has z[i] as its nearest neighbour (cosine) among all of z."""
    a, b = _array(views, "views"), _array(z)
    if a.shape != b.shape:
        raise ValueError(f"view and item embeddings differ in shape: {a.shape} vs {b.shape}")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float((np.argmax(a @ b.T, axis=1) == np.arange(len(a))).mean())


def label_free_scores(z: Any, views: Any) -> dict[str, float]:
    """Every criterion of one encoder: z [n, d] the items' embeddings, views [n, q, d] embeddings of q augmented
    views of the same items."""
    zv = _views(views)
    return {"rankme": rankme(z), "alpha_req": alpha_req_score(z), "lidar": lidar(zv),
            "view_retrieval": view_retrieval(zv[:, 0], z)}


#: the criteria `label_free_scores` computes, larger is better for each
CRITERIA = ("rankme", "alpha_req", "lidar", "view_retrieval")
