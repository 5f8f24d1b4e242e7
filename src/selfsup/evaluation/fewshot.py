"""Few-label linear evaluation on class-balanced labelled subsets (SimCLRv2 / semi-supervised protocol)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .linear import DEFAULT_CS, linear_probe
from .splits import as_features, as_labels


def few_label_splits(y: Any, fraction: float, seeds: Sequence[int]) -> list[np.ndarray]:
    """Stratified labelled subsets as in SimCLRv2 (Chen et al. 2020b): round(fraction*n_c) (>= 1) indices per class, one per seed."""
    y = as_labels(y)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    classes = np.unique(y)
    subsets = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        parts = []
        for c in classes:
            members = np.flatnonzero(y == c)
            m = max(1, int(np.floor(fraction * len(members) + 0.5)))
            parts.append(rng.choice(members, size=m, replace=False))
        subsets.append(np.sort(np.concatenate(parts)))
    return subsets


def few_label_linear(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    fractions: Sequence[float] = (0.01, 0.1),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    *,
    Cs: tuple[float, ...] = DEFAULT_CS,
    val_fraction: float = 0.2,
) -> dict:
    """Few-label linear evaluation (SimCLRv2, Chen et al. 2020b): linear_probe on each labelled subset only, C validated within it."""
    xtr = as_features(train_x, "train_x")
    ytr = as_labels(train_y, len(xtr), "train_y")
    results: dict[str, dict] = {}
    for fraction in fractions:
        accs, chosen = [], []
        subsets = few_label_splits(ytr, fraction, seeds)
        for seed, idx in zip(seeds, subsets):
            _, counts = np.unique(ytr[idx], return_counts=True)
            # A validation split needs >= 2 examples of every class; otherwise fall back to C = 1.0.
            fixed = int(np.floor(val_fraction * counts.min())) < 2
            out = linear_probe(
                xtr[idx], ytr[idx], test_x, test_y,
                Cs=(1.0,) if fixed else Cs, val_fraction=val_fraction, seed=int(seed),
            )
            accs.append(out["acc"])
            chosen.append("fixed" if fixed else out["C"])
        results[str(fraction)] = {
            "mean": float(np.mean(accs)),
            "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
            "accs": [float(a) for a in accs],
            "n_labels": int(len(subsets[0])) if subsets else 0,
            "C": chosen,
        }
    return results
