"""The SVC protocols' search on kernels computed once (selfsup.evaluation.svc_search) makes scikit-learn's choices:
the same validation accuracies, C and predictions as GridSearchCV over SVC(kernel=..., gamma="scale")."""
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import SVC

from selfsup.evaluation.svc_search import Kernel, fit_svc, search_c
from selfsup.evaluation.svm import C_GRID


def overlapping_classes(n=240, d=24, seed=0):
    """Three classes whose means differ little next to their spread (not separable), on features of unequal scale."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    x = rng.standard_normal((n, d)) * rng.uniform(0.2, 3.0, d) + 1.2 * np.eye(3, d)[y]
    return x.astype(np.float32), y


@pytest.mark.parametrize("kind", ["rbf", "linear"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_search_equals_gridsearchcv(kind, shuffle):
    x, y = overlapping_classes()
    train, test = np.arange(0, 240, 2)[:100], np.arange(1, 240, 2)
    splitter = StratifiedKFold(5, shuffle=shuffle, random_state=0 if shuffle else None)
    cs = (1e-2, 1e-1, 1.0, 10.0, 100.0)
    reference = GridSearchCV(SVC(kernel=kind, gamma="scale"), {"C": list(cs)}, cv=splitter).fit(x[train], y[train])
    kernel = Kernel(x, kind)
    ours = search_c(kernel, train, y, cs, splitter)
    np.testing.assert_allclose(ours.scores, reference.cv_results_["mean_test_score"], atol=1e-12)
    assert ours.c == reference.best_params_["C"] and ours.score == pytest.approx(reference.best_score_)
    assert len(set(ours.scores)) > 2  # the grid's accuracies differ: the choice is not a tie broken by order
    model = fit_svc(kernel.block(train, train), y[train], ours.c)
    predicted = model.predict(kernel.block(test, train))
    np.testing.assert_array_equal(predicted, reference.predict(x[test]))
    np.testing.assert_array_equal(predicted, model.predict(kernel.against(x[test], train)))


def test_ties_go_to_the_first_c_of_the_grid_and_a_precomputed_kernel_is_sliced():
    x, y = overlapping_classes()
    rows = np.arange(120)
    gram = Kernel(x @ x.T, "precomputed")
    linear = Kernel(x, "linear")
    splitter = StratifiedKFold(5)
    a, b = search_c(gram, rows, y, C_GRID[:6], splitter), search_c(linear, rows, y, C_GRID[:6], splitter)
    assert a.scores == pytest.approx(b.scores) and a.c == b.c
    assert a.scores[0] == a.scores[1] and search_c(linear, rows, y, (1e-4, 1e-3), splitter).c == 1e-4
    np.testing.assert_array_equal(gram.block(rows[:5], rows[5:9]), (x @ x.T)[:5, 5:9])
    with pytest.raises(ValueError, match="kernel must be one of"):
        Kernel(x, "poly")


def test_a_constant_feature_matrix_takes_gamma_one_as_scikit_learn_does():
    """Variance 0: scikit-learn's gamma='scale' falls back to 1; every sample equals every other, kernel 1."""
    x = np.ones((60, 3))
    k = Kernel(x).block(np.arange(3), np.arange(60))
    assert k.shape == (3, 60) and np.all(k == 1.0)
    with pytest.raises(ValueError, match="no features"):
        Kernel(x @ x.T, "precomputed").against(x[:2], np.arange(60))


def test_a_large_offset_common_to_every_feature_changes_nothing():
    """The RBF kernel depends on differences only: features shifted by 1e8 give the kernel and the validation
    accuracies of the unshifted ones (without centring, |a|^2 + |b|^2 - 2ab cancels every digit of the differences
    away: kernel entries off by up to 0.97)."""
    x, y = overlapping_classes()
    rows, test = np.arange(0, 240, 2), np.arange(1, 240, 2)
    plain, shifted = Kernel(x), Kernel(x.astype(np.float64) + 1e8)
    np.testing.assert_allclose(shifted.block(test, rows), plain.block(test, rows), atol=1e-6)
    splitter = StratifiedKFold(5)
    assert search_c(shifted, rows, y, C_GRID, splitter).scores == search_c(plain, rows, y, C_GRID, splitter).scores
