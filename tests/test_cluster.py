"""`selfsup cluster`: groups in a trained run's embeddings (spherical k-means, SCAN), K chosen without labels,
scored against labels beside k-means on raw input; file outputs; bad input in one line."""
import json
import math

import pandas as pd
import pytest
import torch

import selfsup
from selfsup.evaluation.scan import scan_loss
from test_bad_input_corpus import assert_error
from test_bad_inputs import cli


def test_scan_loss_by_hand():
    p = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    q = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    # consistency: -(log 0.5 + log 0.5) / 2 = log 2; mean p = (0.75, 0.25), entropy H = -(.75 ln .75 + .25 ln .25)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert scan_loss(p, q, entropy_weight=2.0).item() == pytest.approx(math.log(2) - 2 * h, rel=1e-6)


def test_cluster_cli_writes_assignments_and_scores(digits_run, tmp_path):
    out = tmp_path / "clusters.csv"
    proc = cli("cluster", digits_run, "--k", "10", "--out", out)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out)
    assert list(table.columns) == ["index", "cluster", "confidence"] and len(table) == 1347
    assert table["cluster"].between(0, 9).all() and table["confidence"].between(0, 1).all()
    info = json.loads(out.with_suffix(".json").read_text())
    s = info["scores"]
    assert set(s) == {"kmeans_raw_input", "kmeans_embeddings", "scan"} and info["k"] == 10
    assert s["scan"]["acc"] > s["kmeans_raw_input"]["acc"], s  # the encoder's groups beat pixels'
    assert "scan" in proc.stdout and "kmeans raw input" in proc.stdout


def test_cluster_k_auto_says_why_and_python_api(digits_run, tmp_path):
    result = selfsup.cluster_run(digits_run, split="test", k="auto", method="kmeans")
    choice = result.info["k_choice"]
    assert "silhouette" in choice["rule"] and len(choice["silhouette"]) >= 5
    assert str(result.info["k"]) == max(choice["silhouette"], key=choice["silhouette"].get)
    assert len(result.labels) == 450 and set(result.info["scores"]) == {"kmeans_raw_input", "kmeans_embeddings"}
    out = tmp_path / "c.parquet"
    assert cli("cluster", digits_run, "--method", "kmeans", "--k", "4", "--out", out).returncode == 0
    assert len(pd.read_parquet(out)) == 1347


def test_cluster_bad_input(digits_run, tmp_path):
    out = tmp_path / "c.csv"
    assert_error(cli("cluster", digits_run, "--k", "5000", "--out", out), "--k 5000", "1347")
    assert_error(cli("cluster", digits_run, "--k", "abc", "--out", out), "--k", "'abc'")
    assert_error(cli("cluster", digits_run, "--data", "ucr:GunPoint", "--out", out), "timeseries data", "image data")
    assert_error(cli("cluster", tmp_path / "nothing", "--out", out), "nothing", "no such run")
    assert_error(cli("cluster", digits_run, "--out", tmp_path / "c.txt"), ".csv or .parquet")
    assert not out.exists()


def test_train_then_cluster_in_one_command(tmp_path):
    """`selfsup train --cluster K`: training, evaluation, then SCAN on the training data, kept in the run and its
    report; a bad K is refused before any training."""
    run = tmp_path / "run"
    proc = cli("train", "--data", "digits", "--epochs", "2", "--threads", "1", "--encoder-option",
               "widths=[16,32,32,32]", "--cluster", "10", "--out", run)
    assert proc.returncode == 0, proc.stderr
    assert "into K = 10 with scan" in proc.stdout and f"clusters: {run / 'clusters.csv'}" in proc.stdout
    assert len(pd.read_csv(run / "clusters.csv")) == 1347
    assert json.loads((run / "clusters.json").read_text())["k"] == 10
    assert "Clusters" in (run / "report.html").read_text()
    assert_error(cli("train", "--data", "digits", "--cluster", "ten", "--out", tmp_path / "bad"), "--cluster", "'ten'")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad.partial").exists()


def moons(n=900, seed=0):
    """Two interleaved half circles (scikit-learn's moons) in the plane z = 4: connected, curved groups that k-means
    splits across (they stay apart after L2 normalisation)."""
    import numpy as np
    from sklearn.datasets import make_moons

    x, y = make_moons(n, noise=0.05, random_state=seed)
    return np.concatenate([x, np.full((n, 1), 4.0)], 1).astype(np.float32), y


def test_manifold_clustering_finds_connected_groups_that_kmeans_splits():
    pytest.importorskip("umap")
    from sklearn.metrics import adjusted_rand_score

    from selfsup.evaluation.manifold import manifold_clusters
    from selfsup.evaluation.scan import spherical_kmeans

    z, y = moons(300)
    labels, conf, details = manifold_clusters(z, 2, seed=0)
    km, _ = spherical_kmeans(z, 2, 0)
    assert adjusted_rand_score(y, labels) > 0.95, details
    assert adjusted_rand_score(y, km) < 0.5  # negative control: the moons defeat k-means
    assert conf.shape == (300,) and ((conf > 0) & (conf <= 1)).all()
    again, _, _ = manifold_clusters(z, 2, seed=0)
    assert (again == labels).all()  # seeded: the same clusters every time
    import numba

    # numba's OpenMP layer would leave threads that slow every later torch step in this process many times over
    assert numba.threading_layer() == "workqueue"


def test_cluster_with_umap_from_the_cli(digits_run, tmp_path):
    pytest.importorskip("umap")
    out = tmp_path / "u.csv"
    proc = cli("cluster", digits_run, "--k", "10", "--method", "umap", "--out", out)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(out.with_suffix(".json").read_text())
    assert set(info["scores"]) == {"kmeans_raw_input", "kmeans_embeddings", "umap"} and info["umap"]["dimensions"] == 10
    assert info["scores"]["umap"]["acc"] > info["scores"]["kmeans_raw_input"]["acc"]


def test_spectral_clustering_follows_the_graph_and_holds_the_sizes_equal():
    """Equal-size spectral clustering: the moons (connected, curved) are found where k-means splits them; the same
    clusters every time; and the equal-size prior acts: two blobs of 800 and 200 points come out as two groups of
    about 500 (the failure it is documented to have on groups of unequal size), where plain k-means keeps 800/200."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from selfsup.evaluation.scan import spherical_kmeans
    from selfsup.evaluation.spectral import equal_size_kmeans, spectral_clusters

    z, y = moons()
    labels, conf, details = spectral_clusters(z, 2, seed=0)
    assert adjusted_rand_score(y, labels) > 0.95, details
    assert adjusted_rand_score(y, spherical_kmeans(z, 2, 0)[0]) < 0.5  # negative control: the moons defeat k-means
    assert conf.shape == (900,) and ((conf > 0) & (conf <= 1 + 1e-6)).all()
    assert "nearest neighbours" in details["graph"] and "connected part" in details["graph"]
    assert details["dimensions"] == 2
    assert (spectral_clusters(z, 2, seed=0)[0] == labels).all()

    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(0, 1, (800, 2)), rng.normal(8, 1, (200, 2))])
    balanced, _, _ = equal_size_kmeans(blobs, 2, seed=0)
    assert sorted(np.bincount(balanced)) == pytest.approx([500, 500], abs=25)
    from sklearn.cluster import KMeans

    assert sorted(np.bincount(KMeans(2, n_init=3, random_state=0).fit_predict(blobs))) == [200, 800]


def test_cluster_spectral_from_the_cli(digits_run, tmp_path):
    out = tmp_path / "s.csv"
    proc = cli("cluster", digits_run, "--k", "10", "--method", "spectral", "--out", out)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(out.with_suffix(".json").read_text())
    assert set(info["scores"]) == {"kmeans_raw_input", "kmeans_embeddings", "spectral"}
    assert info["spectral"]["dimensions"] == 10 and "restarts" in info["spectral"]["clusterer"]
    assert info["scores"]["spectral"]["acc"] > info["scores"]["kmeans_raw_input"]["acc"]
    assert "with spectral" in proc.stdout


def test_spectral_coordinates_are_scikit_learns_spectral_embedding():
    """The Lanczos eigenvectors of the normalised adjacency (no factorisation of the graph) span, row by row, the
    coordinates scikit-learn's SpectralEmbedding computes by shift-invert on the same graph: one orthogonal map
    takes one to the other (eigenvectors are defined up to sign and rotation)."""
    import numpy as np
    from sklearn.datasets import make_blobs
    from sklearn.manifold import SpectralEmbedding
    from sklearn.neighbors import kneighbors_graph

    from selfsup.evaluation.scan import normalise
    from selfsup.evaluation.spectral import spectral_coordinates

    z, _ = make_blobs(1200, n_features=4, centers=3, cluster_std=2.0, random_state=0)  # above the dense 1,000: eigsh
    z = np.concatenate([z, np.full((1200, 1), 10.0)], 1)  # one connected graph (so the trivial eigenvector is one)
    ours, parts = spectral_coordinates(z, 3, neighbours=10, seed=0)
    graph = kneighbors_graph(normalise(z), 10, include_self=True)
    reference = normalise(SpectralEmbedding(3, affinity="precomputed", random_state=0)
                          .fit_transform(0.5 * (graph + graph.T)))
    rotation, *_ = np.linalg.lstsq(ours, reference, rcond=None)
    error = np.abs(ours @ rotation - reference)  # the solvers' tolerances: 1e-4 typical, a few rows 1e-2
    assert parts == 1 and error.mean() < 1e-3 and error.max() < 0.05
    assert np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-3)  # a signed permutation here
    shuffled = reference[np.random.default_rng(0).permutation(len(reference))]  # negative control
    assert np.abs(ours @ np.linalg.lstsq(ours, shuffled, rcond=None)[0] - shuffled).max() > 0.5


def test_spectral_warns_when_duplicates_split_the_graph(tmp_path):
    """Exact duplicates are each other's nearest neighbours: 60 distinct rows copied 6 times make a graph of 60
    parts, which the details count and the printed summary warns of (K = 4 here)."""
    import numpy as np

    from selfsup.cluster import Clustering, format_clustering
    from selfsup.evaluation.spectral import spectral_clusters

    rows = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    labels, _, details = spectral_clusters(np.repeat(rows, 6, axis=0), 4, seed=0)
    assert details["graph_parts"] == 60
    info = {"samples": 360, "data": "copies", "split": "train", "k": 4, "method": "spectral",
            "sizes": np.bincount(labels, minlength=4).tolist(), "spectral": details}
    assert "falls into 60 separate parts" in format_clustering(Clustering(labels, labels * 0.0, info))
    info["spectral"] = {**details, "graph_parts": 1}  # negative control: one part, no warning
    assert "warning" not in format_clustering(Clustering(labels, labels * 0.0, info))
