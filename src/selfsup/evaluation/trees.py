"""Gradient-boosted trees on features: the model tabular practitioners reach for first, as an evaluation protocol.

`gradient_boosting` fits scikit-learn's HistGradientBoostingClassifier on labelled rows and scores test rows.
Defaults, except `min_samples_leaf` from {5, 20} chosen on a stratified fifth of the labelled rows (refit on all of
them); where the fifth would hold fewer than 2 rows of some class it is min(20, max(1, n // 10)), so that trees on
a handful of labels can split at all. Trees see features as they are: NaN is a missing value, and columns marked in
`categorical` are category indices. `choose_features` decides between feature sets (the raw columns alone, or beside
an embedding) by cross-validation on the labelled rows, as a user deciding what to give a tree model would.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .splits import as_features, as_labels, stratified_validation_split

LEAF_SIZES = (5, 20)


def gradient_boosting(train_x: Any, train_y: Any, test_x: Any, test_y: Any, *, categorical: Any = None,
                      seed: int = 0, min_samples_leaf: int | None = None) -> dict[str, Any]:
    """Test accuracy of HistGradientBoosting trained on (train_x, train_y); {"acc", "min_samples_leaf"}. A given
    `min_samples_leaf` is used as it is (no validation split)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    xtr, xte = as_features(train_x, "train_x"), as_features(test_x, "test_x")
    ytr, yte = as_labels(train_y, len(xtr), "train_y"), as_labels(test_y, len(xte), "test_y")
    cat = None if categorical is None or not np.asarray(categorical).any() else np.asarray(categorical, bool)

    def fit(x: np.ndarray, y: np.ndarray, leaf: int) -> Any:
        return HistGradientBoostingClassifier(min_samples_leaf=leaf, random_state=seed, categorical_features=cat
                                              ).fit(x, y)

    _, counts = np.unique(ytr, return_counts=True)
    if min_samples_leaf is not None:
        leaf = min_samples_leaf
    elif math.floor(0.2 * counts.min()) >= 2:
        fit_idx, val_idx = stratified_validation_split(ytr, 0.2, seed)
        scores = {leaf: fit(xtr[fit_idx], ytr[fit_idx], leaf).score(xtr[val_idx], ytr[val_idx]) for leaf in LEAF_SIZES}
        leaf = max(scores, key=lambda k: scores[k])  # the first of equal scores: the smaller leaf
    else:
        leaf = min(LEAF_SIZES[-1], max(1, len(ytr) // 10))
    return {"acc": float(fit(xtr, ytr, leaf).score(xte, yte)), "min_samples_leaf": leaf}


def choose_features(candidates: dict[str, tuple[np.ndarray, Any]], train_y: Any, seed: int = 0,
                    folds: int = 5) -> tuple[str, dict[str, float]]:
    """The candidate feature set ({name: (labelled rows' features, categorical mask)}) whose gradient boosting scores
    best in stratified k-fold cross-validation on the labelled rows (k = min(`folds`, the smallest class's count));
    the first candidate wins ties. With fewer than 2 rows of some class no cross-validation is possible: the last
    candidate, without scores. Used to decide whether an embedding helps trees beside the raw columns."""
    from sklearn.model_selection import StratifiedKFold

    y = as_labels(train_y)
    names = list(candidates)
    smallest = int(np.unique(y, return_counts=True)[1].min())
    if smallest < 2:
        return names[-1], {}
    leaf = min(LEAF_SIZES[-1], max(1, int(len(y) * (1 - 1 / min(folds, smallest))) // 10))
    splitter = StratifiedKFold(min(folds, smallest), shuffle=True, random_state=seed)
    scores = {}
    for name, (x, categorical) in candidates.items():
        x = as_features(x, name)
        accs = [gradient_boosting(x[fit], y[fit], x[held], y[held], categorical=categorical, seed=seed,
                                  min_samples_leaf=leaf)["acc"] for fit, held in splitter.split(x, y)]
        scores[name] = float(np.mean(accs))
    return max(names, key=lambda n: scores[n]), scores
