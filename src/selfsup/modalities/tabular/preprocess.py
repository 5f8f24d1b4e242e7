"""Preprocessing learned on the training table and stored in the run (`resolved.data_spec`).

`fit_spec` turns training storage (see table.py) into a plain, YAML-serialisable dict:

- numeric columns: median (the imputed value), mean/std, quartiles and up to `n_quantiles`
  quantiles; `missing: true` when the training column had missing cells, which adds a 0/1
  missing-indicator input;
- categorical columns: the known category keys (most frequent first, at most `max_categories`)
  with their readable values.

`Preprocessor(spec)` applies it to storage batches on any device, in torch, without Python loops
over rows. The encoder input ("prepared" table) is a float32 ``[B, D]`` tensor laid out column by
column: a numeric column gives its scaled value (missing -> the scaled median) and, if it had
missing training cells, an indicator; a categorical column gives a one-hot block of
``2 + K`` slots: 0 = missing, 1 = unknown (a category not seen in training), 2.. = known categories.
Encoders turn each one-hot block into an embedding (a lookup of the hot slot).

Scaling of numeric columns (`scaling` in the spec): 'quantile' maps each value through the
training column's empirical CDF to a standard normal (as scikit-learn's QuantileTransformer with
normal output: ties get the middle of their CDF step, tails clip at about +-5.2); 'robust' is
(x - median) / IQR clipped to +-10; 'standard' is the z-score.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...errors import ConfigError, DataError
from .table import CATEGORICAL, NUMERIC, schema_of

SCALINGS = ("quantile", "robust", "standard")
DEFAULT_SCALING = "quantile"
N_QUANTILES = 64
MAX_CATEGORIES = 256
MISSING_SLOT, UNKNOWN_SLOT = 0, 1
_CLIP_P = 1e-7  # quantile output clipped to the normal's [1e-7, 1 - 1e-7] quantiles (+-5.2)
_ROBUST_CLIP = 10.0


def _sig(v: float) -> float:
    """A float with 7 significant digits (float32 precision), so config.yaml stays readable."""
    return float(f"{float(v):.7g}")


def fit_spec(x: torch.Tensor, scaling: str | None = None, n_quantiles: int = N_QUANTILES,
             max_categories: int = MAX_CATEGORIES) -> dict[str, Any]:
    """Learn the preprocessing from training storage [N, F] (float64, NaN = missing) and its schema."""
    schema = schema_of(x)
    scaling = scaling or schema.get("scaling") or DEFAULT_SCALING
    if scaling not in SCALINGS:
        raise ConfigError(f"scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")
    data = x.detach().cpu().double().numpy()
    columns = []
    for j, (name, kind) in enumerate(zip(schema["names"], schema["kinds"])):
        col = data[:, j]
        present = col[~np.isnan(col)]
        if kind == NUMERIC:
            if len(present) == 0:
                present = np.zeros(1)
            q = np.quantile(present, np.linspace(0, 1, max(2, min(n_quantiles, len(present)))))
            q = np.maximum.accumulate(np.array([_sig(v) for v in q]))
            columns.append({
                "name": name, "kind": NUMERIC, "missing": bool(len(present) < len(col)),
                "median": _sig(np.median(present)), "mean": _sig(present.mean()),
                "std": _sig(present.std()), "q25": _sig(np.quantile(present, 0.25)),
                "q75": _sig(np.quantile(present, 0.75)), "quantiles": q.tolist(),
            })
        else:
            keys, counts = np.unique(present.astype(np.int64), return_counts=True)
            order = np.lexsort((keys, -counts))[:max_categories]  # most frequent first, ties by key
            readable = schema.get("values", {}).get(name, {})
            kept = [int(k) for k in keys[order]]
            columns.append({
                "name": name, "kind": CATEGORICAL, "keys": kept,
                "values": [readable.get(str(k), str(k)) for k in kept],
            })
    spec = {"scaling": scaling, "n_columns": len(columns), "columns": columns}
    spec["input_dim"] = Layout.from_spec(spec).dim
    return spec


@dataclass
class Layout:
    """Where each column's inputs sit in the prepared [B, D] tensor."""

    dim: int
    col_of_dim: list[int]  # column index of every input dim
    value_dims: list[int]  # dims holding a scaled numeric value (the ones Gaussian noise may touch)
    indicator_dims: list[int]  # missing indicators of numeric columns
    cat_blocks: list[tuple[int, int]]  # (start, size) of each categorical one-hot block
    numeric_columns: list[int]
    categorical_columns: list[int]

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Layout":
        col_of_dim: list[int] = []
        value_dims, indicator_dims, blocks, num_cols, cat_cols = [], [], [], [], []
        for j, c in enumerate(spec["columns"]):
            if c["kind"] == NUMERIC:
                value_dims.append(len(col_of_dim))
                col_of_dim.append(j)
                num_cols.append(j)
                if c["missing"]:
                    indicator_dims.append(len(col_of_dim))
                    col_of_dim.append(j)
            else:
                size = 2 + len(c["keys"])
                blocks.append((len(col_of_dim), size))
                col_of_dim.extend([j] * size)
                cat_cols.append(j)
        return cls(len(col_of_dim), col_of_dim, value_dims, indicator_dims, blocks, num_cols, cat_cols)


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor, right: bool) -> torch.Tensor:
    """Row-wise linear interpolation: x [n, B] through increasing knots xp/fp [n, Q]; on ties the last
    (right=True) or first (right=False) knot of the run of equal xp wins, as np.interp from either side."""
    q = xp.shape[1]
    i = torch.searchsorted(xp, x, right=right) - (1 if right else 0)
    i = i.clamp(0, q - 2) if right else (i - 1).clamp(0, q - 2)
    x0, x1 = xp.gather(1, i), xp.gather(1, i + 1)
    f0, f1 = fp.gather(1, i), fp.gather(1, i + 1)
    span = x1 - x0
    t = torch.where(span > 0, (x - x0) / torch.where(span > 0, span, torch.ones_like(span)),
                    (x >= x1).to(x.dtype) if right else (x > x0).to(x.dtype))
    return f0 + t.clamp(0, 1) * (f1 - f0)


class Preprocessor:
    """A fitted spec as tensors: storage batch [B, F] -> prepared float32 [B, D] (and raw features)."""

    def __init__(self, spec: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.spec = spec
        self.layout = Layout.from_spec(spec)
        cols = spec["columns"]
        lay = self.layout
        dev = torch.device(device)
        f64 = dict(dtype=torch.float64, device=dev)
        num = [cols[j] for j in lay.numeric_columns]
        self.num_idx = torch.tensor(lay.numeric_columns, dtype=torch.long, device=dev)
        self.median = torch.tensor([c["median"] for c in num], **f64)
        self.mean = torch.tensor([c["mean"] for c in num], **f64)
        self.std = torch.tensor([c["std"] if c["std"] > 0 else 1.0 for c in num], **f64)
        iqr = [c["q75"] - c["q25"] for c in num]
        self.iqr = torch.tensor([i if i > 0 else (c["std"] if c["std"] > 0 else 1.0) for i, c in zip(iqr, num)], **f64)
        qmax = max([len(c["quantiles"]) for c in num], default=2)
        # Pad every column's knots to qmax by repeating the last knot (CDF 1): interpolation is unchanged.
        self.knots = torch.tensor([c["quantiles"] + [c["quantiles"][-1]] * (qmax - len(c["quantiles"])) for c in num],
                                  **f64).reshape(len(num), qmax)
        self.levels = torch.tensor([np.linspace(0, 1, len(c["quantiles"])).tolist() + [1.0] * (qmax - len(c["quantiles"]))
                                    for c in num], **f64).reshape(len(num), qmax)
        value_pos = torch.tensor(lay.value_dims, dtype=torch.long, device=dev)
        self.value_pos = value_pos
        has_ind = [k for k, j in enumerate(lay.numeric_columns) if cols[j]["missing"]]
        self.ind_src = torch.tensor(has_ind, dtype=torch.long, device=dev)  # positions within numeric columns
        self.ind_pos = torch.tensor(lay.indicator_dims, dtype=torch.long, device=dev)
        cat = [cols[j] for j in lay.categorical_columns]
        self.cat_idx = torch.tensor(lay.categorical_columns, dtype=torch.long, device=dev)
        kmax = max([len(c["keys"]) for c in cat], default=0) + 1
        # Sorted keys per column, padded with +inf; `slot_of` maps a sorted position to the one-hot slot.
        sorted_keys, slot_of = [], []
        for c in cat:
            order = np.argsort(np.array(c["keys"], dtype=np.float64), kind="stable")
            keys = [float(c["keys"][i]) for i in order]
            sorted_keys.append(keys + [math.inf] * (kmax - len(keys)))
            slot_of.append([2 + int(i) for i in order] + [UNKNOWN_SLOT] * (kmax - len(keys)))
        self.sorted_keys = torch.tensor(sorted_keys, **f64).reshape(len(cat), kmax)
        self.slot_of = torch.tensor(slot_of, dtype=torch.long, device=dev).reshape(len(cat), kmax)
        self.block_start = torch.tensor([s for s, _ in lay.cat_blocks], dtype=torch.long, device=dev)
        self.device = dev

    def to(self, device: torch.device | str) -> "Preprocessor":
        return self if torch.device(device) == self.device else Preprocessor(self.spec, device)

    def scale(self, v: torch.Tensor, scaling: str | None = None) -> torch.Tensor:
        """Numeric values [B, n_num] (float64, no NaN) -> scaled values."""
        scaling = scaling or self.spec["scaling"]
        if scaling == "standard":
            return (v - self.mean) / self.std
        if scaling == "robust":
            return ((v - self.median) / self.iqr).clamp(-_ROBUST_CLIP, _ROBUST_CLIP)
        vt = v.T.contiguous()
        fwd = _interp(vt, self.knots, self.levels, right=True)
        bwd = _interp(vt, self.knots, self.levels, right=False)
        u = (0.5 * (fwd + bwd)).T.clamp(_CLIP_P, 1 - _CLIP_P)
        return math.sqrt(2.0) * torch.erfinv(2 * u - 1)

    def slots(self, x: torch.Tensor) -> torch.Tensor:
        """Categorical storage keys [B, n_cat] -> one-hot slot per cell (missing 0, unknown 1, known 2..)."""
        keys = x.T.contiguous()  # [n_cat, B]
        missing = torch.isnan(keys)
        filled = torch.where(missing, torch.full_like(keys, -1.0), keys)
        pos = torch.searchsorted(self.sorted_keys, filled).clamp(max=self.sorted_keys.shape[1] - 1)
        found = self.sorted_keys.gather(1, pos) == filled
        slot = torch.where(found, self.slot_of.gather(1, pos), torch.full_like(pos, UNKNOWN_SLOT))
        return torch.where(missing, torch.full_like(slot, MISSING_SLOT), slot).T

    def __call__(self, x: torch.Tensor, scaling: str | None = None) -> torch.Tensor:
        """Storage batch [B, F] -> prepared float32 [B, D] (layout in the module docstring)."""
        if x.ndim != 2 or x.shape[1] != self.spec["n_columns"]:
            raise DataError(f"expected table rows with {self.spec['n_columns']} columns, got shape {tuple(x.shape)}")
        x = x.to(self.device, torch.float64)
        b = x.shape[0]
        out = torch.zeros(b, self.layout.dim, dtype=torch.float32, device=self.device)
        if len(self.num_idx):
            v = x.index_select(1, self.num_idx)
            miss = torch.isnan(v)
            v = torch.where(miss, self.median.expand_as(v), v)
            out[:, self.value_pos] = self.scale(v, scaling).float()
            if len(self.ind_pos):
                out[:, self.ind_pos] = miss[:, self.ind_src].float()
        if len(self.cat_idx):
            slot = self.slots(x.index_select(1, self.cat_idx))
            out.scatter_(1, self.block_start + slot, 1.0)
        return out


_CACHE: dict[int, tuple[dict, dict[str, Preprocessor]]] = {}


def preprocessor(spec: dict[str, Any], device: torch.device | str = "cpu") -> Preprocessor:
    """A cached Preprocessor for this spec object and device (prepare is called once per batch)."""
    dev = str(torch.device(device))
    hit = _CACHE.get(id(spec))
    if hit is None or hit[0] is not spec:
        if len(_CACHE) > 16:
            _CACHE.clear()
        hit = _CACHE[id(spec)] = (spec, {})
    if dev not in hit[1]:
        hit[1][dev] = Preprocessor(spec, device)
    return hit[1][dev]
