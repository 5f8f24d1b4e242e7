"""Tests for selfsup.evaluation protocols: known answers, chance levels and no test-label leakage."""
import json

import numpy as np
import pytest
import torch

from selfsup.evaluation import (
    few_label_linear,
    few_label_splits,
    hungarian_accuracy,
    kmeans_clustering,
    knn_accuracy,
    knn_predict,
    linear_probe,
    stratified_validation_split,
    svm_protocol,
)
from selfsup.evaluation import fewshot
from selfsup.evaluation.linear import fit_softmax


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny problems run faster (and far more predictably on shared CPUs) on one intra-op thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def separable(n_per_class, n_classes=10, d=16, noise=0.01, seed=0):
    """One-hot class centres plus tiny noise, rows shuffled."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(n_classes), n_per_class))
    x = np.zeros((len(y), d), dtype=np.float32)
    x[np.arange(len(y)), y] = 1.0
    return x + noise * rng.standard_normal(x.shape).astype(np.float32), y


def random_data(n, n_classes=10, d=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.integers(0, n_classes, n)


@pytest.fixture(scope="module")
def sep():
    xtr, ytr = separable(30, seed=0)
    xte, yte = separable(10, seed=1)
    return xtr, ytr, xte, yte


@pytest.fixture(scope="module")
def rnd():
    xtr, ytr = random_data(1000, seed=0)
    xte, yte = random_data(1000, seed=1)
    return xtr, ytr, xte, yte


# ----------------------------------------------------------------------------- known answers


def test_separable_known_answers(sep):
    xtr, ytr, xte, yte = sep
    assert knn_accuracy(xtr, ytr, xte, yte) == 1.0
    assert linear_probe(xtr, ytr, xte, yte)["acc"] == 1.0
    km = kmeans_clustering(xte, yte)
    assert km == {"nmi": pytest.approx(1.0), "ari": pytest.approx(1.0), "acc": 1.0, "n_clusters": 10}
    assert svm_protocol(xtr, ytr, xte, yte)["acc"] == 1.0
    few = few_label_linear(xtr, ytr, xte, yte, fractions=(0.1, 0.5), seeds=(0, 1))
    assert few["0.1"]["accs"] == [1.0, 1.0] and few["0.5"]["mean"] == 1.0


def test_random_labels_near_chance(rnd):
    xtr, ytr, xte, yte = rnd
    assert abs(knn_accuracy(xtr, ytr, xte, yte) - 0.1) < 0.06
    assert abs(linear_probe(xtr, ytr, xte, yte)["acc"] - 0.1) < 0.06
    km = kmeans_clustering(xte, yte)
    assert km["nmi"] < 0.05 and abs(km["ari"]) < 0.02 and km["acc"] < 0.2
    few = few_label_linear(xtr, ytr, xte, yte, fractions=(0.3,), seeds=(0, 1))
    assert abs(few["0.3"]["mean"] - 0.1) < 0.06
    assert abs(svm_protocol(xtr[:300], ytr[:300], xte, yte)["acc"] - 0.1) < 0.06


def test_torch_inputs_and_json(sep):
    xtr, ytr, xte, yte = sep
    t = [torch.from_numpy(a) for a in (xtr, ytr, xte, yte)]
    assert knn_accuracy(*t) == 1.0
    out = linear_probe(*t)
    assert out["acc"] == 1.0
    json.dumps({k: v for k, v in out.items() if k != "predictions"})
    json.dumps(kmeans_clustering(t[2], t[3]))
    json.dumps(few_label_linear(*t, fractions=(0.2,), seeds=(0,)))
    json.dumps({k: v for k, v in svm_protocol(*t).items() if k != "predictions"})


# ----------------------------------------------------------------------------- clustering


def test_hungarian_accuracy():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    perm = np.array([2, 0, 1])
    assert hungarian_accuracy(y, perm[y]) == 1.0
    assert hungarian_accuracy(y, perm[y] + 10) == 1.0  # arbitrary cluster ids
    assert hungarian_accuracy([0, 0, 1, 1], [1, 1, 1, 0]) == 0.75
    assert hungarian_accuracy([0, 1, 2, 3], [0, 0, 0, 0]) == 0.25  # fewer clusters than classes


# ----------------------------------------------------------------------------- kNN


def brute_force_knn(xtr, ytr, xte, k, T):
    a = xtr / np.linalg.norm(xtr, axis=1, keepdims=True)
    b = xte / np.linalg.norm(xte, axis=1, keepdims=True)
    classes, yi = np.unique(ytr, return_inverse=True)
    preds = []
    for s in b @ a.T:
        top = np.argsort(-s)[: min(k, len(a))]
        scores = np.zeros(len(classes))
        np.add.at(scores, yi[top], np.exp(s[top] / T))
        preds.append(classes[np.argmax(scores)])
    return np.array(preds)


@pytest.mark.parametrize("k", [1, 5, 20, 500])
def test_knn_matches_brute_force(k):
    rng = np.random.default_rng(k)
    xtr, xte = rng.standard_normal((60, 8)), rng.standard_normal((40, 8))
    ytr = rng.choice([3, 7, 9], 60)  # non-contiguous labels
    expected = brute_force_knn(xtr, ytr, xte, k, 0.1)
    np.testing.assert_array_equal(knn_predict(xtr, ytr, xte, k=k, temperature=0.1), expected)
    np.testing.assert_array_equal(knn_predict(xtr, ytr, xte, k=k, batch_size=7), expected)
    # num_classes path: labels used directly as indices
    yidx = np.searchsorted([3, 7, 9], ytr)
    np.testing.assert_array_equal(knn_predict(xtr, yidx, xte, k=k, num_classes=3), np.searchsorted([3, 7, 9], expected))


def test_knn_rejects_bad_labels():
    with pytest.raises(ValueError):
        knn_predict(np.ones((4, 2)), [0, 1, 2, 5], np.ones((1, 2)), num_classes=3)


# ----------------------------------------------------------------------------- linear


def testfit_softmax_matches_sklearn_objective():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 5))
    y = (x[:, 0] + 0.5 * x[:, 1] + 0.5 * rng.standard_normal(200) > 0).astype(int) + (x[:, 2] > 1)
    for C in (0.05, 1.0):
        ref = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(x, y)
        w, b = fit_softmax(torch.from_numpy(x), torch.from_numpy(y), 3, C, tol=1e-10, max_iter=2000)
        np.testing.assert_allclose(w.numpy(), ref.coef_, atol=1e-4)
        np.testing.assert_allclose(b.numpy() - b.numpy().mean(), ref.intercept_ - ref.intercept_.mean(), atol=1e-4)


def test_linear_probe_output(rnd):
    xtr, ytr, xte, yte = rnd
    out = linear_probe(xtr, ytr, xte, yte, Cs=(1.0, 0.01))
    assert set(out) == {"acc", "C", "val_acc", "val_scores", "predictions"}
    assert list(out["val_scores"]) == [0.01, 1.0] and out["C"] in (0.01, 1.0)
    assert out["val_acc"] == max(out["val_scores"].values())
    assert out["acc"] == np.mean(out["predictions"] == yte)
    single = linear_probe(xtr, ytr, xte, yte, Cs=(0.5,))
    assert single["C"] == 0.5 and single["val_acc"] is None and single["val_scores"] == {}


# ----------------------------------------------------------------------------- no test-label leakage


def test_linear_probe_ignores_test_labels(rnd):
    xtr, ytr, xte, yte = rnd
    a = linear_probe(xtr, ytr, xte, yte, seed=3)
    b = linear_probe(xtr, ytr, xte, np.random.default_rng(0).permutation(yte), seed=3)
    c = linear_probe(xtr, ytr, xte, np.full_like(yte, -1), seed=3)
    for other in (b, c):
        assert other["C"] == a["C"] and other["val_scores"] == a["val_scores"]
        np.testing.assert_array_equal(other["predictions"], a["predictions"])
    assert c["acc"] == 0.0


def test_few_label_linear_ignores_test_labels(rnd, monkeypatch):
    xtr, ytr, xte, yte = rnd
    calls, real_probe = [], fewshot.linear_probe

    def spy(*args, **kwargs):  # record what each draw chose and predicted
        out = real_probe(*args, **kwargs)
        calls.append((out["C"], out["val_scores"], out["predictions"]))
        return out

    monkeypatch.setattr(fewshot, "linear_probe", spy)
    kw = dict(fractions=(0.02, 0.3), seeds=(0, 1))
    a = few_label_linear(xtr, ytr, xte, yte, **kw)
    first, calls[:] = list(calls), []
    b = few_label_linear(xtr, ytr, xte, np.random.default_rng(0).permutation(yte), **kw)
    assert len(first) == len(calls) == 4
    for (c1, v1, p1), (c2, v2, p2) in zip(first, calls):
        assert c1 == c2 and v1 == v2
        np.testing.assert_array_equal(p1, p2)
    assert [a[f]["C"] for f in a] == [b[f]["C"] for f in b]


def test_svm_ignores_test_labels(rnd):
    xtr, ytr, xte, yte = rnd
    a = svm_protocol(xtr[:300], ytr[:300], xte[:200], yte[:200])
    b = svm_protocol(xtr[:300], ytr[:300], xte[:200], np.random.default_rng(0).permutation(yte[:200]))
    assert a["C"] == b["C"]
    np.testing.assert_array_equal(a["predictions"], b["predictions"])


# ----------------------------------------------------------------------------- SVM small-data rule


def test_svm_small_data_uses_hard_margin():
    xtr, ytr = separable(4, n_classes=3, d=4)  # 12 samples, 4 per class -> no search
    out = svm_protocol(xtr, ytr, xtr, ytr)
    assert out["C"] == float("inf") and out["acc"] == 1.0


def test_svm_subsamples_large_train(sep):
    xtr, ytr, xte, yte = sep
    out = svm_protocol(xtr, ytr, xte, yte, max_samples=100)
    assert out["acc"] == 1.0 and out["C"] > 0


# ----------------------------------------------------------------------------- splits


def test_stratified_validation_split():
    y = np.repeat(np.arange(4), [40, 20, 20, 20])
    fit, val = stratified_validation_split(y, 0.25, seed=0)
    assert len(val) == 25 and len(fit) == 75
    assert np.array_equal(np.sort(np.concatenate([fit, val])), np.arange(100))
    assert np.bincount(y[val]).tolist() == [10, 5, 5, 5]
    again = stratified_validation_split(y, 0.25, seed=0)
    assert np.array_equal(again[1], val)
    assert not np.array_equal(stratified_validation_split(y, 0.25, seed=1)[1], val)


def test_validation_split_fallback_and_errors():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 2])  # class 2 has a single member -> non-stratified
    fit, val = stratified_validation_split(y, 0.25, seed=0)
    assert len(val) == 2 and len(set(fit) | set(val)) == 8
    with pytest.raises(ValueError):
        stratified_validation_split([0], 0.2, seed=0)
    with pytest.raises(ValueError):
        stratified_validation_split(y, 1.5, seed=0)


# ----------------------------------------------------------------------------- few-label


def test_few_label_splits():
    y = np.repeat(np.arange(5), [100, 200, 50, 30, 20])
    subsets = few_label_splits(y, 0.1, seeds=(0, 1, 2))
    for idx in subsets:
        assert len(idx) == len(np.unique(idx)) == 40
        assert np.bincount(y[idx], minlength=5).tolist() == [10, 20, 5, 3, 2]
    assert all(np.array_equal(a, b) for a, b in zip(subsets, few_label_splits(y, 0.1, seeds=(0, 1, 2))))
    assert not np.array_equal(subsets[0], subsets[1]) and not np.array_equal(subsets[1], subsets[2])
    tiny = few_label_splits(y, 0.001, seeds=(0,))[0]  # at least one per class
    assert np.bincount(y[tiny]).tolist() == [1, 1, 1, 1, 1]


def test_few_label_linear_fixed_C_fallback(sep):
    xtr, ytr, xte, yte = sep  # 30 per class: 1/30 -> 1 label per class, no validation split possible
    out = few_label_linear(xtr, ytr, xte, yte, fractions=(1 / 30, 0.5), seeds=(0, 1, 2))
    low = out[str(1 / 30)]
    assert low["C"] == ["fixed"] * 3 and low["n_labels"] == 10 and len(low["accs"]) == 3
    high = out["0.5"]
    assert all(c != "fixed" for c in high["C"]) and high["n_labels"] == 150
    assert high["std"] == pytest.approx(np.std(high["accs"], ddof=1))


def test_knn_k_follows_the_data():
    """k = 200 (Wu et al.) where the smallest class has >= ~1,333 examples, else 15% of it (at least 5)."""
    import numpy as np

    from selfsup.evaluation import data_k

    assert data_k(np.repeat(np.arange(10), 6000)) == 200  # Fashion-MNIST
    assert data_k(np.repeat(np.arange(10), 135)) == 20  # digits: round(0.15 * 135)
    assert data_k(np.array([0] * 500 + [1] * 12)) == 5


def test_gradient_boosting_known_answers_leaf_choice_and_categories(sep, rnd):
    from selfsup.evaluation import gradient_boosting

    res = gradient_boosting(*sep)
    assert res["acc"] >= 0.98 and res["min_samples_leaf"] in (5, 20)  # chosen on a validation fifth
    xtr, ytr, xte, yte = rnd
    assert abs(gradient_boosting(xtr[:200], ytr[:200], xte, yte)["acc"] - 0.1) < 0.05  # random labels: chance
    xtr, ytr, xte, yte = sep
    few = gradient_boosting(xtr[:20], ytr[:20], xte, yte)  # < 2 validation rows a class: the fallback leaf
    assert few["min_samples_leaf"] == 2
    # a categorical column is split by category, not by order: classes 0 and 2 against 1 in one split
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 3, 400).astype(np.float64)
    y = (codes == 1).astype(int)
    x = np.stack([codes, rng.normal(size=400)], 1)
    assert gradient_boosting(x[:300], y[:300], x[300:], y[300:], categorical=[True, False])["acc"] == 1.0


def test_choose_features_prefers_the_set_that_holds_the_signal():
    from selfsup.evaluation.trees import choose_features

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    signal = (y[:, None] + 0.1 * rng.normal(size=(60, 2)))
    noise = rng.normal(size=(60, 2))
    name, scores = choose_features({"noise": (noise, None), "signal": (signal, None)}, y)
    assert name == "signal" and scores["signal"] > 0.9 > scores["noise"]
    name, _ = choose_features({"signal": (signal, None), "noise": (noise, None)}, y)
    assert name == "signal"  # the order does not decide when the scores differ
    assert choose_features({"a": (signal[:3], None), "b": (noise[:3], None)}, y[[0, 20, 40]]) == ("b", {})
