"""Label-free diagnostics of embedding quality and collapse."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .splits import as_features, as_tensor


def _tensor(z: Any, name: str = "z", min_rows: int = 1) -> torch.Tensor:
    t = as_tensor(as_features(z, name))
    if len(t) < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {len(t)}")
    return t


def _normalise(z: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(z.float(), dim=1)


def rankme(z: Any, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al. 2023): exp(entropy(p)), p_k = s_k / sum(s) + eps over the singular values s of z."""
    s = torch.linalg.svdvals(_tensor(z).double())
    if s.sum() <= 0:
        raise ValueError("rankme is undefined for an all-zero matrix")
    return effective_rank(s.numpy(), eps)


def effective_rank(values: Any, eps: float = 1e-7) -> float:
    """exp(entropy(p)), p = values / sum(values) + eps (RankMe's and LiDAR's smoothing); 1 for no mass at all."""
    values = np.clip(np.asarray(values, dtype=np.float64), 0.0, None)
    if values.sum() <= 0:
        return 1.0
    p = values / values.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def alignment(z1: Any, z2: Any, alpha: float = 2) -> float:
    """Alignment (Wang & Isola 2020): mean ||f(x) - f(y)||^alpha over positive pairs of L2-normalised embeddings."""
    a, b = _normalise(_tensor(z1, "z1")), _normalise(_tensor(z2, "z2"))
    if a.shape != b.shape:
        raise ValueError(f"z1 and z2 must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return float((a - b).norm(dim=1).pow(alpha).mean())


def uniformity(z: Any, t: float = 2) -> float:
    """Uniformity (Wang & Isola 2020): log mean exp(-t ||x - y||^2) over distinct pairs of L2-normalised embeddings."""
    sq = torch.pdist(_normalise(_tensor(z, min_rows=2))).pow(2)  # O(n^2) memory: n=10k is 50M pairs (200 MB)
    return float(torch.logsumexp(-t * sq, dim=0) - math.log(sq.numel()))


def dimension_std(z: Any, reference: float | None = None) -> dict:
    """Per-dimension std of L2-normalised embeddings (SimSiam, Chen & He 2021): ~1/sqrt(d) when spread, 0 when
    collapsed.

    Collapsed: the mean std below a tenth of an isotropic spread's and, given a `reference` (the mean std of the same
    inputs through the encoder before training), below a tenth of it too. Some architectures start below the first:
    pooled ReLU features share one large direction (an untrained GIN on MUTAG, PointNet on `shapes`), and the first
    epoch of runs that go on to beat their untrained encoder may halve it (SimCLR on `shapes` or `sprites`); a
    collapsed encoder's spread goes to zero. A reference of zero leaves the first test alone."""
    zn = _normalise(_tensor(z, min_rows=2))
    std = zn.std(dim=0)
    mean_std = float(std.mean())
    collapsed = mean_std < 0.1 / math.sqrt(zn.shape[1]) and (not reference or mean_std < 0.1 * reference)
    return {"mean_std": mean_std, "min_std": float(std.min()), "collapsed": bool(collapsed)}


def embedding_diagnostics(z1: Any, z2: Any = None) -> dict:
    """RankMe, alignment (None without a second view), uniformity and per-dimension std of embeddings z1 (views z1/z2)."""
    return {
        "rankme": rankme(z1),
        "alignment": alignment(z1, z2) if z2 is not None else None,
        "uniformity": uniformity(z1),
        **dimension_std(z1),
    }
