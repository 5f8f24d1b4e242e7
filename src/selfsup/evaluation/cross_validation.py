"""The graph-classification protocol of InfoGraph and GraphCL (their `evaluate_embedding.py`): frozen embeddings of
every sample, stratified 10-fold cross-validation, in each fold an SVM whose C (and, for kernels, the kernel's
parameter) is chosen by 5-fold cross-validation on the nine training folds only; the figure is the mean test
accuracy over the folds (and their standard deviation). Kernel matrices (kernel="precomputed") serve kernel baselines
(the Weisfeiler-Lehman subtree kernel), the matrix among several (its iterations) chosen by the same inner CV.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from .splits import as_features, as_labels
from .svc_search import Kernel, fit_svc, search_c

C_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3)  # GraphCL's and InfoGraph's grid
FOLDS, INNER_FOLDS = 10, 5


def _folds(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    _, counts = np.unique(y, return_counts=True)
    if counts.min() < folds:
        raise ValueError(f"{folds}-fold stratified CV needs at least {folds} samples of every class "
                         f"(the smallest class has {int(counts.min())})")
    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def _summary(accuracies: list[float], chosen: list[dict[str, Any]], folds: int, seed: int) -> dict[str, Any]:
    return {"acc": float(np.mean(accuracies)), "acc_std": float(np.std(accuracies)), "fold_acc": accuracies,
            "chosen": chosen, "folds": folds, "seed": seed}


def cross_validated_svm(features: Any, labels: Any, folds: int = FOLDS, seed: int = 0, kernel: str = "rbf",
                        cs: tuple[float, ...] = C_GRID) -> dict[str, Any]:
    """Stratified `folds`-fold accuracy of an SVC (`kernel`, gamma 'scale') on `features`, C by inner 5-fold CV on
    each fold's training part (each fit's kernel computed once: svc_search). `features` may be a dict of candidates
    (the embeddings of several pre-training settings, or kernel matrices [N, N] with kernel="precomputed"): the inner
    CV then chooses the candidate and C together, in each fold, from its training part."""
    candidates = features if isinstance(features, dict) else {None: features}
    kernels = {key: Kernel(as_features(x, "features"), kernel) for key, x in candidates.items()}
    y = as_labels(labels, len(next(iter(kernels.values())).x), "labels")
    accuracies, chosen = [], []
    for train, test in _folds(y, folds, seed):
        inner = StratifiedKFold(min(INNER_FOLDS, int(np.unique(y[train], return_counts=True)[1].min())),
                                shuffle=True, random_state=seed)
        searches = {key: search_c(k, train, y, cs, inner) for key, k in kernels.items()}
        key = max(searches, key=lambda k: searches[k].score)  # the first of equals: dicts keep their order
        model = fit_svc(kernels[key].block(train, train), y[train], searches[key].c)
        accuracies.append(float(np.mean(model.predict(kernels[key].block(test, train)) == y[test])))
        chosen.append({"C": searches[key].c, **({"features": key} if key is not None else {})})
    return _summary(accuracies, chosen, folds, seed)
