"""Whitening of embeddings as a post-processing step for any modality (BERT-whitening: Su et al. 2021,
arXiv:2103.15316; WhiteningBERT: Huang et al. 2021, arXiv:2104.01767).

Fitted on the unlabeled training embeddings of a run: mu is their mean, U S U^T the SVD of their covariance, and
x -> (x - mu) U[:, :k] S[:k]^(-1/2) maps them to zero mean and identity covariance, keeping the k directions of
largest variance (k = the embedding width unless asked for fewer: the paper's dimension reduction). Stored beside the
run's weights as `whitening-K.safetensors` (mean, matrix, and what it was fitted on), so `embed` and `eval` apply the
same transform every time; written atomically, loaded without unpickling.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, safe_open

from .artifacts import save_tensors
from .errors import ConfigError, DataError

#: singular values below this fraction of the largest are treated as zero (directions without variance are dropped)
RELATIVE_FLOOR = 1e-6


@dataclass
class Whitening:
    """x -> (x - mean) @ matrix: [n, D] embeddings to [n, k] whitened ones."""

    mean: np.ndarray  # [D]
    matrix: np.ndarray  # [D, k]
    fitted_on: str  # what the statistics come from, in words

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def transform(self, z: np.ndarray) -> np.ndarray:
        if z.shape[-1] != len(self.mean):
            raise ConfigError(f"whitening fitted on {len(self.mean)}-d embeddings cannot take {z.shape[-1]}-d ones")
        return ((np.asarray(z, dtype=np.float64) - self.mean) @ self.matrix).astype(np.float32)


def fit_whitening(z: np.ndarray, dim: int | None = None, fitted_on: str = "the given embeddings") -> Whitening:
    """BERT-whitening's kernel and bias from embeddings `z` [n, D], keeping `dim` directions (None: all with
    variance)."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) < 2:
        raise DataError(f"whitening needs at least 2 embeddings of one width, got shape {z.shape}")
    mean = z.mean(axis=0)
    cov = np.cov(z - mean, rowvar=False, bias=True)
    u, s, _ = np.linalg.svd(cov)
    usable = int((s > s[0] * RELATIVE_FLOOR).sum()) if s[0] > 0 else 0
    k = usable if dim is None else dim
    if k < 1 or k > usable:
        raise ConfigError(f"--whiten {dim}: the {len(z)} training embeddings vary in {usable} of {z.shape[1]} "
                          f"directions; choose a dimension from 1 to {usable}")
    return Whitening(mean, u[:, :k] / np.sqrt(s[:k]), fitted_on)


def whitening_path(run_dir: str | Path, dim: int | None) -> Path:
    return Path(run_dir) / f"whitening-{dim or 'all'}.safetensors"


def save_whitening(path: str | Path, w: Whitening) -> None:
    save_tensors(path, {"mean": torch.from_numpy(w.mean), "matrix": torch.from_numpy(np.ascontiguousarray(w.matrix))},
                 {"fitted_on": w.fitted_on})


def load_whitening(path: str | Path) -> Whitening:
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            fitted_on = (f.metadata() or {}).get("fitted_on", "")
        return Whitening(tensors["mean"].double().numpy(), tensors["matrix"].double().numpy(), fitted_on)
    except Exception as exc:
        raise DataError(f"{path}: cannot read the whitening ({type(exc).__name__}: {exc})") from None


def run_whitening(run: Any, dim: int | None, training_embeddings: np.ndarray | None = None) -> Whitening:
    """The run's whitening keeping `dim` directions: read from the run directory when stored there, else fitted on
    the embeddings of the run's training data (or `training_embeddings`, for a run trained on in-memory data) and
    stored in the run directory."""
    path = whitening_path(run.path, dim) if run.path is not None else None
    if path is not None and path.exists() and training_embeddings is None:
        return load_whitening(path)
    if training_embeddings is None:
        from .data import Dataset
        from .loading import load_dataset
        from .run import encode_storage

        source = run.training_data("--whiten fits on them: selfsup.whitening.run_whitening(run, dim, "
                                   "run.embed(training_data))")
        try:
            ds = source if isinstance(source, Dataset) else load_dataset(source, run.config.data_dir,
                                                                         run.resolved.modality)
        except ConfigError as exc:
            raise ConfigError(f"--whiten fits on the run's training data, which cannot be read ({exc}); for a run "
                              "trained on in-memory data: selfsup.whitening.run_whitening(run, dim, "
                              "run.embed(training_data))") from None
        x, _ = run.modality.conform(ds.train.x, run.spec, f"--data {ds.name}")
        training_embeddings = encode_storage(run.encoder, run.modality, run.spec, x, mask=ds.train.mask)
        fitted_on = f"{len(training_embeddings)} embeddings of the run's training data ({run.config.data})"
    else:
        fitted_on = f"{len(training_embeddings)} embeddings given to run_whitening"
    w = fit_whitening(training_embeddings, dim, fitted_on)
    if path is not None:
        save_whitening(path, w)
    return w
