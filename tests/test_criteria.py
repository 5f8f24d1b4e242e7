"""The label-free criteria against hand-built embeddings whose answers are known."""
import numpy as np
import pytest

from selfsup.evaluation.criteria import (alpha_req, alpha_req_score, effective_rank, label_free_scores, lidar,
                                         view_retrieval)


def test_effective_rank_counts_equal_directions():
    assert effective_rank(np.ones(4)) == pytest.approx(4.0, rel=1e-5)
    assert effective_rank(np.array([1.0, 0, 0])) == pytest.approx(1.0, rel=1e-5)
    assert effective_rank(np.zeros(3)) == 1.0


def spectrum(eigenvalues: np.ndarray, n: int = 64, seed: int = 0) -> np.ndarray:
    """n centred rows whose covariance eigenvalues (x n) are `eigenvalues`."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, len(eigenvalues)))
    q, _ = np.linalg.qr(a - a.mean(0))
    return q * np.sqrt(eigenvalues)


def test_alpha_req_recovers_the_decay_of_a_power_law():
    i = np.arange(1, 17)
    assert alpha_req(spectrum(i ** -2.0)) == pytest.approx(2.0, abs=1e-6)
    assert alpha_req(spectrum(i ** -1.0)) == pytest.approx(1.0, abs=1e-6)
    assert alpha_req_score(spectrum(i ** -1.0)) == pytest.approx(0.0, abs=1e-6)
    assert alpha_req_score(spectrum(i ** -3.0)) == pytest.approx(-2.0, abs=1e-6)
    assert alpha_req(np.ones((8, 4))) == float("inf")  # collapsed: every row the same


def test_lidar_is_the_effective_rank_of_the_between_item_scatter_over_the_within():
    d, c, s = 4, 3.0, 0.5
    e = np.eye(d)
    means = np.stack([c * e[0], -c * e[0], c * e[1], -c * e[1]] * 2)  # between scatter c^2/2 diag(1, 1, 0, 0)
    u = np.stack([np.sqrt(d) * e[k % d] for k in range(2 * d)])  # within scatter s^2 I
    views = np.stack([means + s * u, means - s * u], axis=1)
    assert lidar(views) == pytest.approx(effective_rank(np.array([1.0, 1.0, 0.0, 0.0])), rel=1e-4)
    assert lidar(views) == pytest.approx(2.0, rel=1e-4)
    with pytest.raises(ValueError, match="views"):
        lidar(means)


def test_view_retrieval_finds_items_from_their_views():
    z = np.random.default_rng(0).normal(size=(50, 16))
    assert view_retrieval(z + 1e-3, z) == 1.0
    assert view_retrieval(z[::-1], z) == 0.0
    scores = label_free_scores(z, np.stack([z + 1e-3, z - 1e-3], axis=1))
    assert set(scores) == {"rankme", "alpha_req", "lidar", "view_retrieval"} and scores["view_retrieval"] == 1.0
