"""Tests for selfsup.evaluation.diagnostics against hand-computed values."""
import json
import math

import numpy as np
import pytest
import torch

from selfsup.evaluation import alignment, dimension_std, embedding_diagnostics, rankme, uniformity


def orthonormal(n, d, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, d)))
    return q  # [n, d] with orthonormal columns


# ----------------------------------------------------------------------------- RankMe


@pytest.mark.parametrize("d", [1, 8, 32])
def test_rankme_equal_singular_values(d):
    assert rankme(np.eye(d)) == pytest.approx(d, abs=1e-3)
    assert rankme(5.0 * orthonormal(100, d, seed=d)) == pytest.approx(d, abs=1e-3)


def test_rankme_rank_one():
    rng = np.random.default_rng(0)
    z = np.outer(rng.standard_normal(50), rng.standard_normal(10))
    assert rankme(z) == pytest.approx(1.0, abs=1e-3)


def test_rankme_known_singular_values():
    # z = U diag(3, 2, 1) V^T -> p = (1/2, 1/3, 1/6) (+ eps = 1e-7)
    z = orthonormal(6, 3, seed=1) @ np.diag([3.0, 2.0, 1.0]) @ orthonormal(3, 3, seed=2).T
    entropy = 0.5 * math.log(2) + (1 / 3) * math.log(3) + (1 / 6) * math.log(6)  # = 1.0114042647...
    assert entropy == pytest.approx(1.0114042647, abs=1e-9)
    assert rankme(z) == pytest.approx(math.exp(entropy), abs=1e-5)  # = 2.7494...
    p = np.array([1 / 2, 1 / 3, 1 / 6]) + 1e-7  # the formula with its epsilon, written out
    assert rankme(z) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-9)


def test_rankme_torch_and_zero():
    assert rankme(torch.eye(4)) == pytest.approx(4, abs=1e-3)
    with pytest.raises(ValueError):
        rankme(np.zeros((3, 3)))


# ----------------------------------------------------------------------------- alignment / uniformity


def test_alignment():
    z = np.random.default_rng(0).standard_normal((20, 5))
    assert alignment(z, z) == pytest.approx(0.0, abs=1e-6)
    assert alignment(z, 3.0 * z) == pytest.approx(0.0, abs=1e-6)  # computed on L2-normalised embeddings
    assert alignment(z, -z) == pytest.approx(4.0, abs=1e-5)  # antipodal: ||2u||^2 = 4 = 2^alpha
    assert alignment(z, -z, alpha=1) == pytest.approx(2.0, abs=1e-5)
    # orthogonal pairs: ||e1 - e2||^2 = 2
    assert alignment([[1.0, 0.0]], [[0.0, 2.0]]) == pytest.approx(2.0, abs=1e-6)
    with pytest.raises(ValueError):
        alignment(z, z[:3])


def test_uniformity_hand_computed():
    # two orthogonal unit vectors: ||x - y||^2 = 2 -> log(exp(-2 * 2)) = -4
    assert uniformity([[1.0, 0.0], [0.0, 1.0]]) == pytest.approx(-4.0, abs=1e-5)
    assert uniformity([[2.0, 0.0], [0.0, 0.5]], t=1) == pytest.approx(-2.0, abs=1e-5)
    # e1, e2, -e1: squared distances 2, 4, 2 -> log((2 e^-4 + e^-8) / 3)
    expected = math.log((2 * math.exp(-4) + math.exp(-8)) / 3)
    assert uniformity([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]) == pytest.approx(expected, abs=1e-5)


def test_uniformity_collapsed_is_zero_and_spread_is_negative():
    assert uniformity(np.ones((50, 8))) == pytest.approx(0.0, abs=1e-6)
    spread = uniformity(np.random.default_rng(0).standard_normal((500, 16)))
    assert spread < -3.0  # isotropic unit vectors in d=16: about -4 + small
    with pytest.raises(ValueError):
        uniformity(np.ones((1, 4)))


# ----------------------------------------------------------------------------- dimension std


def test_dimension_std_flags_collapse():
    out = dimension_std(np.tile(np.random.default_rng(0).standard_normal(64), (100, 1)))
    assert out["collapsed"] and out["mean_std"] == pytest.approx(0.0, abs=1e-6)


def test_dimension_std_judged_against_a_reference():
    """Below the absolute threshold, a spread is collapse only below a tenth of the reference's (none, or zero: the
    absolute test alone)."""
    torch.manual_seed(0)
    z = torch.ones(256, 16) + 1e-3 * torch.randn(256, 16)  # one shared direction, a small spread
    out = dimension_std(z)
    assert out["collapsed"]
    assert dimension_std(z, reference=2 * out["mean_std"])["collapsed"] is False
    assert dimension_std(z, reference=11 * out["mean_std"])["collapsed"] is True
    assert dimension_std(z, reference=0.0)["collapsed"] is True


def test_dimension_std_random_gaussian_not_collapsed():
    out = dimension_std(np.random.default_rng(0).standard_normal((2000, 64)))
    assert not out["collapsed"]
    assert out["mean_std"] == pytest.approx(1 / math.sqrt(64), rel=0.05)
    assert 0 < out["min_std"] <= out["mean_std"]


# ----------------------------------------------------------------------------- all together


def test_embedding_diagnostics():
    rng = np.random.default_rng(0)
    z1 = rng.standard_normal((200, 16)).astype(np.float32)
    z2 = z1 + 0.1 * rng.standard_normal(z1.shape).astype(np.float32)
    out = embedding_diagnostics(torch.from_numpy(z1), z2)
    assert set(out) == {"rankme", "alignment", "uniformity", "mean_std", "min_std", "collapsed"}
    assert out["rankme"] == pytest.approx(rankme(z1)) and out["alignment"] == pytest.approx(alignment(z1, z2))
    assert out["uniformity"] == pytest.approx(uniformity(z1)) and out["collapsed"] is False
    assert all(type(v) in (float, bool) for v in out.values())
    json.dumps(out)
    single = embedding_diagnostics(z1)
    assert single["alignment"] is None
    json.dumps(single)


def test_rejects_non_finite():
    with pytest.raises(ValueError):
        rankme(np.array([[1.0, np.nan], [0.0, 1.0]]))


def test_the_monitor_judges_collapse_against_the_untrained_encoder(tmp_path):
    """An untrained GIN's sum-pooled features on MUTAG already sit below the absolute threshold (one shared
    direction): a run that keeps that spread is not called collapsed, while the same GIN made constant is."""
    from types import SimpleNamespace

    import selfsup
    from selfsup.training.monitor import EpochMonitor

    ds = selfsup.load_dataset("tu:MUTAG")
    run = selfsup.train(ds, method="dgi", epochs=1, seed=0, out=tmp_path / "run", monitor=True, threads=1)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    record = [json.loads(line) for line in lines if '"type": "epoch"' in line][-1]
    threshold = 0.1 / math.sqrt(run.encoder.out_dim)
    assert record["embedding_std_initial"] < threshold and record["embedding_std"] < threshold  # absolute: collapse
    assert record["collapsed"] is False
    from selfsup.run import build_encoder

    monitor = EpochMonitor(ds, run.resolved, torch.device("cpu"), build_encoder(run.resolved, seed=0))  # its start
    constant = run.encoder
    with torch.no_grad():
        for p in constant.parameters():
            p.zero_()
        constant.convs[-1].nn[-1].bias.fill_(1.0)  # every node's last layer outputs 1: one direction for all graphs
    assert monitor(0, SimpleNamespace(encoder=constant))["collapsed"] is True
