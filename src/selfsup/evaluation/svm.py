"""SVM evaluation protocol of T-Loss / TS2Vec for frozen (time-series) representations."""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.svm import SVC

from .splits import as_features, as_labels
from .svc_search import Kernel, search_c

C_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, float("inf"))
MAX_ITER = 10_000_000


def svm_protocol(
    train_x: Any, train_y: Any, test_x: Any, test_y: Any, seed: int = 0, max_samples: int = 10000
) -> dict:
    """RBF-SVC protocol of TS2Vec (Yue et al. 2022, tasks/_eval_protocols.fit_svm): gamma 'scale', C by 5-fold CV on
    train (GridSearchCV's unshuffled stratified folds; each fold's kernel computed once, svc_search), C=inf on tiny
    data. The final model is fitted by libsvm on the features, as GridSearchCV refits it: no n x n kernel held."""
    xtr, xte = as_features(train_x, "train_x"), as_features(test_x, "test_x")
    ytr = as_labels(train_y, len(xtr), "train_y")
    _, counts = np.unique(ytr, return_counts=True)
    # TS2Vec tests n_train // n_classes < 5; we require 5 per class, which stratified 5-fold CV needs.
    if counts.min() < 5 or len(xtr) < 50:  # too small for 5-fold CV: hard-margin SVM, as TS2Vec
        best_c = float("inf")
    else:
        if len(xtr) > max_samples:  # TS2Vec searches (and refits) on a stratified subsample
            xtr, _, ytr, _ = train_test_split(xtr, ytr, train_size=max_samples, random_state=seed, stratify=ytr)
        best_c = search_c(Kernel(xtr), np.arange(len(xtr)), ytr, C_GRID, StratifiedKFold(5), MAX_ITER).c
    model = SVC(C=best_c, kernel="rbf", gamma="scale", max_iter=MAX_ITER).fit(xtr, ytr)
    pred = model.predict(xte)
    return {"acc": float(np.mean(pred == as_labels(test_y, len(pred), "test_y"))), "C": best_c, "predictions": pred}
