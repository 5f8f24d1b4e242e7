"""Whitening (BERT-whitening) as post-processing of any run's embeddings: the transform by its definition, stored in
the run and reused by `embed` and `eval`."""
import shutil

import numpy as np
import pytest

import selfsup
from selfsup.errors import ConfigError
from selfsup.loading import load_dataset
from selfsup.whitening import fit_whitening, load_whitening, whitening_path

from conftest import run_cli


def correlated(n=500, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + rng.standard_normal(d) * 5


def test_whitened_embeddings_have_zero_mean_and_identity_covariance():
    z = correlated()
    w = fit_whitening(z)
    white = w.transform(z).astype(np.float64)
    np.testing.assert_allclose(white.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(np.cov(white, rowvar=False, bias=True), np.eye(6), atol=1e-4)


def test_whitening_whitened_data_is_a_rotation():
    white = fit_whitening(correlated()).transform(correlated()).astype(np.float64)
    again = fit_whitening(white)
    np.testing.assert_allclose(again.matrix @ again.matrix.T, np.eye(6), atol=1e-4)  # orthogonal: nothing rescaled
    np.testing.assert_allclose(np.linalg.norm(again.transform(white), axis=1),
                               np.linalg.norm(white - white.mean(0), axis=1), rtol=1e-4)


def test_reduced_whitening_keeps_the_largest_variance_directions():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((400, 4)) * np.array([10.0, 5.0, 1.0, 0.1])
    w = fit_whitening(z, dim=2)
    assert w.matrix.shape == (4, 2)
    assert np.abs(w.matrix[2:]).max() < 0.05 * np.abs(w.matrix[:2]).max()  # the two wide axes, not the narrow ones
    with pytest.raises(ConfigError, match="choose a dimension from 1 to 4"):
        fit_whitening(z, dim=5)


def test_cli_whitening_is_stored_in_the_run_and_reused(digits_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(digits_run, run_dir)
    proc = run_cli("embed", run_dir, "--split", "test", "--whiten", "8", "--out", tmp_path / "e.npy")
    assert proc.returncode == 0, proc.stderr
    stored = whitening_path(run_dir, 8)
    w = load_whitening(stored)
    assert w.dim == 8 and "training data" in w.fitted_on
    first = np.load(tmp_path / "e.npy")
    assert first.shape[1] == 8
    mtime = stored.stat().st_mtime_ns
    proc = run_cli("embed", run_dir, "--split", "test", "--whiten", "8", "--out", tmp_path / "f.npy")
    assert proc.returncode == 0 and stored.stat().st_mtime_ns == mtime  # read back, not fitted again
    np.testing.assert_array_equal(first, np.load(tmp_path / "f.npy"))
    run = selfsup.load(run_dir)
    train = run.embed(load_dataset("digits").train.x)
    np.testing.assert_allclose(np.cov(w.transform(train), rowvar=False, bias=True), np.eye(8), atol=1e-3)
    proc = run_cli("eval", run_dir, "--protocols", "knn", "--whiten", "--no-baselines", "--json")
    assert proc.returncode == 0, proc.stderr
    assert whitening_path(run_dir, None).exists()
