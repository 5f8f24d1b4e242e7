"""C of an SVC chosen by cross-validation, on kernel blocks computed from the features with one matrix product each.

scikit-learn's GridSearchCV over SVC(kernel="rbf") lets libsvm compute every kernel entry it needs again in every
fit, each a dot product over the features in a scalar loop; its cache lasts one fit. With TS2Vec's grid (10 C x 5
folds) on 512-d embeddings that is most of the protocol's time. Here each fold's kernel is computed once, by BLAS,
and the fits of every C read it (SVC(kernel="precomputed")). The choices are GridSearchCV's: gamma is scikit-learn's
'scale' (1 / (n_features * Var(X)), X the fit's own training rows), the folds and the choice of C (the first of the
best mean validation accuracies) are its. Kernel entries differ from libsvm's by float64 rounding: the RBF's squared
distances are taken after centring on the training rows' mean (the kernel does not change), so a large offset
common to every feature does not cancel digits away.

Memory: a fold holds its kernel against its training rows, 8 n (n + m) bytes for n training and m validation rows
(640 MB for the 8,000 + 2,000 rows of a fold at the 10,000 rows TS2Vec's protocol subsamples to), where libsvm's
own cache holds 200 MB.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from sklearn.svm import SVC

KERNELS = ("rbf", "linear", "precomputed")


@dataclass(frozen=True, eq=False)
class Kernel:
    """The kernel of the samples `x` [N, D] (or, with kind="precomputed", the given kernel matrix [N, N]) block by
    block: rows against the training rows of a fit, which also set the RBF's gamma."""

    x: np.ndarray
    kind: str = "rbf"

    def __post_init__(self) -> None:
        if self.kind not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {self.kind!r}")
        object.__setattr__(self, "x", np.asarray(self.x, dtype=np.float64))

    def block(self, rows: np.ndarray, train: np.ndarray) -> np.ndarray:
        """Kernel of samples `rows` against the training samples `train` (indices into x)."""
        if self.kind == "precomputed":
            return self.x[np.ix_(rows, train)]
        return self.against(self.x[rows], train)

    def against(self, new: Any, train: np.ndarray) -> np.ndarray:
        """Kernel of new samples [M, D] against the training samples `train` (of features, not of a given kernel)."""
        if self.kind == "precomputed":
            raise ValueError("a precomputed kernel has no features to compare new samples with")
        a, b = np.asarray(new, dtype=np.float64), self.x[train]
        if self.kind == "linear":
            return a @ b.T
        variance = b.var()
        gamma = 1.0 / (b.shape[1] * variance) if variance != 0 else 1.0  # scikit-learn's gamma="scale"
        centre = b.mean(axis=0)
        a, b = a - centre, b - centre
        out = a @ b.T  # in place from here: one [M, N] array
        out *= -2.0
        out += np.einsum("ij,ij->i", a, a)[:, None]
        out += np.einsum("ij,ij->i", b, b)[None, :]
        np.maximum(out, 0.0, out=out)
        out *= -gamma
        return np.exp(out, out=out)


def fit_svc(gram: np.ndarray, labels: np.ndarray, c: float, max_iter: int = -1) -> SVC:
    """An SVC with C=c fitted on a kernel block of training samples against themselves and their labels."""
    return SVC(C=c, kernel="precomputed", max_iter=max_iter).fit(gram, labels)


@dataclass(frozen=True)
class Search:
    """The outcome of `search_c`."""

    c: float  # the chosen C
    score: float  # its mean validation accuracy
    scores: list[float]  # every C's, in the grid's order


def search_c(kernel: Kernel, train: np.ndarray, y: np.ndarray, cs: Sequence[float], splitter: Any,
             max_iter: int = -1) -> Search:
    """C by `splitter`'s folds of the samples `train`, as GridSearchCV(SVC(...), {"C": cs}, cv=splitter) chooses
    it: the highest mean validation accuracy, the first in `cs` among equals."""
    folds = list(splitter.split(np.zeros(len(train)), y[train]))
    accuracy = np.zeros((len(cs), len(folds)))
    for j, (fit_part, held_out) in enumerate(folds):
        fit_rows, val_rows = train[fit_part], train[held_out]
        gram, val = kernel.block(fit_rows, fit_rows), kernel.block(val_rows, fit_rows)
        for i, c in enumerate(cs):
            model = fit_svc(gram, y[fit_rows], c, max_iter)
            accuracy[i, j] = np.mean(model.predict(val) == y[val_rows])
    means = accuracy.mean(axis=1)
    best = int(np.argmax(means))
    return Search(float(cs[best]), float(means[best]), [float(m) for m in means])
