"""Semantic textual similarity (STS) protocol: Spearman's rank correlation x 100 between the cosine similarity of
each pair's embeddings and the gold scores, over all pairs at once (SimCSE's "all" setting, Gao et al. 2021,
Appendix B; the figures of ../shared/reference/anchors.md). No training, no hyper-parameter."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr


def pair_cosines(embeddings: np.ndarray, first: Sequence[int], second: Sequence[int]) -> np.ndarray:
    """Cosine similarity of embeddings[first[i]] and embeddings[second[i]] for every pair i (0 for a zero vector)."""
    e = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    e = e / np.where(norms > 0, norms, 1.0)
    return np.einsum("ij,ij->i", e[np.asarray(first)], e[np.asarray(second)])


def sts_protocol(embeddings: np.ndarray, first: Sequence[int], second: Sequence[int],
                 gold: Sequence[float]) -> dict[str, Any]:
    """Spearman (the headline) and Pearson x 100 of the pairs' cosines against the gold scores."""
    cos = pair_cosines(embeddings, first, second)
    gold_arr = np.asarray(gold, dtype=np.float64)
    return {"spearman": float(100 * spearmanr(cos, gold_arr)[0]), "pearson": float(100 * pearsonr(cos, gold_arr)[0]),
            "pairs": int(len(gold_arr))}
