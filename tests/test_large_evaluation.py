"""kNN and k-means from a million embeddings go through faiss when it is installed: the same exact neighbours as
the default path, and k-means that finds separated groups (the threshold lowered to run it on small data)."""
import numpy as np
import pytest

from selfsup.evaluation import knn_predict, kmeans_clustering
from selfsup.evaluation import large

pytest.importorskip("faiss")  # the `scale` extra; installed with the test extra


def blobs(n, d=16, k=5, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 4
    y = rng.integers(0, k, n)
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


def test_faiss_knn_finds_the_same_neighbours_as_the_default_path(monkeypatch):
    x, y = blobs(3000)
    q, _ = blobs(500, seed=1)
    default = knn_predict(x, y, q, k=20)
    assert large.faiss_for(len(x)) is None  # below the threshold: the default path ran
    monkeypatch.setattr(large, "FAISS_MIN_ROWS", 1000)
    assert large.faiss_for(len(x)) is not None
    assert np.array_equal(knn_predict(x, y, q, k=20), default)


def test_faiss_kmeans_finds_separated_groups(monkeypatch):
    x, y = blobs(4000)
    monkeypatch.setattr(large, "FAISS_MIN_ROWS", 1000)
    result = kmeans_clustering(x, y, seed=0)
    assert result["nmi"] > 0.95 and result["n_clusters"] == 5
    labels, centres = large.kmeans(x, 5, n_init=2, seed=3)
    assert labels.shape == (4000,) and centres.shape == (5, 16)
    assert np.array_equal(labels, large.kmeans(x, 5, n_init=2, seed=3)[0])  # seeded: the same run again


def test_without_faiss_the_default_paths_run(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("no faiss")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_faiss)
    monkeypatch.setattr(large, "FAISS_MIN_ROWS", 10)
    assert large.faiss_for(100) is None
    x, y = blobs(300)
    assert kmeans_clustering(x, y)["nmi"] > 0.95
