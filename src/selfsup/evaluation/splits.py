"""Input conversion and the stratified validation split shared by every evaluation protocol."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split


def to_numpy(x: Any) -> np.ndarray:
    """Convert a numpy array, torch tensor or sequence to a numpy array (no copy when possible)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.is_floating_point() and x.element_size() < 4:  # bfloat16/float16 have no numpy view
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def as_features(x: Any, name: str = "x") -> np.ndarray:
    """Return frozen embeddings as a finite 2-D float array [n, d]."""
    x = to_numpy(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n, d], got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def as_tensor(x: np.ndarray) -> torch.Tensor:
    """Wrap a float array as a torch tensor (copying only if it is read-only or non-contiguous)."""
    x = np.ascontiguousarray(x)
    return torch.from_numpy(x if x.flags.writeable else x.copy())


def as_labels(y: Any, n: int | None = None, name: str = "y") -> np.ndarray:
    """Return labels as a 1-D array, optionally checking its length."""
    y = to_numpy(y).reshape(-1)
    if n is not None and len(y) != n:
        raise ValueError(f"{name} has {len(y)} labels for {n} samples")
    return y


def stratified_validation_split(y: Any, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (fit_idx, val_idx) split of training labels, as sklearn's train_test_split(stratify=y)."""
    y = as_labels(y)
    n = len(y)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = int(np.ceil(val_fraction * n))
    if n_val < 1 or n - n_val < 1:
        raise ValueError(f"need at least 2 training samples for a validation split, got {n}")
    _, counts = np.unique(y, return_counts=True)
    # Stratify only when possible: every class needs 2 members and each side room for every class.
    can_stratify = counts.min() >= 2 and min(n_val, n - n_val) >= len(counts)
    fit_idx, val_idx = train_test_split(
        np.arange(n), test_size=n_val, random_state=seed, stratify=y if can_stratify else None
    )
    return np.sort(fit_idx), np.sort(val_idx)
