"""Raw tables (columns of strings, numbers or mixed values) -> the tabular storage tensor.

Storage is a float64 tensor ``[N, F]``, one column per input column, in the table's column order:

- numeric columns hold their raw values, missing cells as NaN;
- categorical columns hold a *stable key* per category: a 52-bit hash of the value's canonical
  text (``"red"``, ``"3"`` for 3, 3.0 and "3.0"), exactly representable in float64, NaN when missing.

Keys do not depend on which categories a file happens to contain, so a table read from another
file (a test CSV, a DataFrame passed to ``Run.embed``) lands on the same keys as the training data,
and the run's spec (``preprocess.fit_spec``) maps keys to embedding indices, unseen keys to "unknown".

Which columns are categorical, their names and readable values (the *schema*) travel with the
storage tensor as the attribute ``table_schema`` until ``fit_spec`` records them in the run.
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Sequence

import numpy as np
import torch

from ...errors import ConfigError, DataError

NUMERIC, CATEGORICAL = "numeric", "categorical"
MISSING_TOKENS = frozenset({"", "na", "nan", "n/a", "null", "none", "?"})
KEY_BITS = 52  # keys < 2**52 are exact in float64
SCHEMA_ATTR = "table_schema"


def canonical_text(value: Any) -> str | None:
    """The category text a value stands for (None when missing): numbers by value, strings stripped of nothing."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isnan(f):
            return None
        return str(int(f)) if f.is_integer() and abs(f) < 2**63 else repr(f)
    text = str(value)
    if text.strip().lower() in MISSING_TOKENS:
        return None
    try:
        f = float(text)
    except ValueError:
        return text
    return canonical_text(f) if math.isfinite(f) else text


def category_key(text: str) -> int:
    """Stable 52-bit key of a category's canonical text (blake2b), the same on every machine and run."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << KEY_BITS) - 1)


def parse_number(value: Any) -> float | None:
    """A cell as a float: NaN for missing tokens, None when it is not a number."""
    if value is None:
        return math.nan
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    text = str(value).strip()
    if text.lower() in MISSING_TOKENS:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


def column_names(names: Sequence[Any] | None, n: int) -> list[str]:
    """Column names as strings; generated 'x0', 'x1', ... when absent."""
    if names is None:
        return [f"x{i}" for i in range(n)]
    return [str(c) for c in names]


def resolve_columns(spec: str | Sequence[Any] | None, names: list[str], what: str, where: str) -> set[int]:
    """Column positions from 'a,b' / ['a', 'b'] / [0, 3] (names or positions); errors name unknown columns."""
    if spec is None or spec == "" or spec == []:
        return set()
    items = [s.strip() for s in spec.split(",") if s.strip()] if isinstance(spec, str) else list(spec)
    out = set()
    for item in items:
        if isinstance(item, str) and item in names:
            out.add(names.index(item))
        elif isinstance(item, (int, np.integer)) or (isinstance(item, str) and item.isdigit()):
            i = int(item)
            if not 0 <= i < len(names):
                raise ConfigError(f"{where}: {what} column {i} is out of range (the table has {len(names)} columns)")
            out.add(i)
        else:
            raise ConfigError(f"{where}: {what} column {item!r} not found; columns: {', '.join(names)}")
    return out


def _numeric_column(values: np.ndarray) -> tuple[np.ndarray, int | None]:
    """(floats, index of the first non-numeric cell or None) for one column."""
    if values.dtype.kind in "fiub":
        return values.astype(np.float64), None
    try:  # fast path: every cell a number (numpy calls float() per cell in C)
        out = values.astype(np.float64)
        if not np.isinf(out).any():
            return out, None
    except (ValueError, TypeError):
        pass
    out = np.empty(len(values), np.float64)
    for i, v in enumerate(values):
        f = parse_number(v)
        if f is None:
            return out, i
        out[i] = f
    return out, None


def _row_label(rows: Sequence[Any] | None, i: int) -> str:
    """How an error names row i: the file line, the DataFrame index label or the array row."""
    return f"row {i}" if rows is None else str(rows[i])


def build_storage(names: list[str], columns: list[np.ndarray], where: str, *, categorical: Any = None,
                  numeric: Any = None, kinds: Sequence[str | None] | None = None,
                  rows: Sequence[Any] | None = None, scaling: str | None = None) -> torch.Tensor:
    """Columns -> float64 storage [N, F] with its schema attached (see module docstring).

    Kinds: named in `categorical` / `numeric` (names or positions), else `kinds[j]` (from a typed
    source such as a pandas 'category' column), else detected: a column whose every non-missing
    cell is a number is numeric; one where most cells are numbers but some are not is an error
    (naming the row and column) rather than a guess; anything else is categorical.
    `rows[i]` names row i in errors (e.g. 'line 7' for a CSV).
    """
    if len(names) != len(columns):
        raise DataError(f"{where}: {len(names)} column names for {len(columns)} columns")
    if not columns:
        raise DataError(f"{where}: the table has no feature columns")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"{where}: duplicate column name(s) {', '.join(dup)}")
    n = len(columns[0])
    if n == 0:
        raise DataError(f"{where}: the table has no rows")
    cat = resolve_columns(categorical, names, "categorical", where)
    num = resolve_columns(numeric, names, "numeric", where)
    if cat & num:
        both = ", ".join(names[j] for j in sorted(cat & num))
        raise ConfigError(f"{where}: column(s) {both} declared both categorical and numeric")
    storage = np.empty((n, len(columns)), np.float64)
    col_kinds: list[str] = []
    values: dict[str, dict[str, str]] = {}
    for j, (name, col) in enumerate(zip(names, columns)):
        col = np.asarray(col)
        hint = kinds[j] if kinds is not None else None
        kind = CATEGORICAL if j in cat else NUMERIC if j in num else hint
        if kind != CATEGORICAL:
            floats, bad = _numeric_column(col)
            if bad is None:
                if not np.isfinite(floats[~np.isnan(floats)]).all():
                    i = int(np.flatnonzero(np.isinf(floats))[0])
                    raise DataError(f"{where}: {_row_label(rows, i)}, column {name!r}: infinite value")
                storage[:, j] = floats
                col_kinds.append(NUMERIC)
                continue
            how = "declared numeric" if j in num else "numeric"
            if kind is None:  # detection: mostly numbers with a stray string is an error, not a category
                parsed = sum(parse_number(v) is not None for v in col)
                kind = NUMERIC if parsed >= 0.5 * n else CATEGORICAL
                how = f"numeric: {parsed} of its {n} cells are numbers"
            if kind == NUMERIC:
                raise DataError(f"{where}: {_row_label(rows, bad)}, column {name!r}: {col[bad]!r} is not a number "
                                f"(the column is {how}); fix the cell, leave it empty for a missing value, "
                                f"or declare the column categorical (categorical={name})")
        keys = np.empty(n, np.float64)
        cache: dict[Any, tuple[float, str | None]] = {}
        readable: dict[str, str] = {}
        for i, v in enumerate(col):
            hashable = v if not isinstance(v, float) or not math.isnan(v) else None
            hit = cache.get(hashable)
            if hit is None:
                text = canonical_text(v)
                hit = cache[hashable] = (math.nan, None) if text is None else (float(category_key(text)), text)
                if text is not None:
                    readable.setdefault(str(int(hit[0])), text)
            keys[i] = hit[0]
        storage[:, j] = keys
        col_kinds.append(CATEGORICAL)
        values[name] = readable
    x = torch.from_numpy(storage)
    attach_schema(x, {"names": list(names), "kinds": col_kinds, "values": values, "scaling": scaling})
    return x


def attach_schema(x: torch.Tensor, schema: dict[str, Any]) -> torch.Tensor:
    """Attach a schema (names, kinds, readable category values, scaling) to a storage tensor."""
    setattr(x, SCHEMA_ATTR, schema)
    return x


def schema_of(x: torch.Tensor) -> dict[str, Any]:
    """The storage tensor's schema; a bare float tensor is a numeric table with columns x0, x1, ..."""
    schema = getattr(x, SCHEMA_ATTR, None)
    if schema is not None:
        return schema
    f = int(x.shape[1])
    return {"names": column_names(None, f), "kinds": [NUMERIC] * f, "values": {}, "scaling": None}


def frame_columns(df: Any) -> tuple[list[str], list[np.ndarray], list[str | None]]:
    """A pandas DataFrame's columns as arrays, with kinds from dtypes ('category' -> categorical)."""
    names = column_names(list(df.columns), df.shape[1])
    cols, kinds = [], []
    for name in df.columns:
        s = df[name]
        dtype = s.dtype
        kind_name = getattr(dtype, "kind", "O")
        if str(dtype) == "category":
            cols.append(s.astype(object).to_numpy())
            kinds.append(CATEGORICAL)
        elif kind_name in "Mm":
            raise DataError(f"column {name!r} has dtype {dtype}; convert dates/times to numbers or strings first")
        elif kind_name in "fiub" and not str(dtype).startswith(("Int", "UInt", "Float", "boolean")):
            cols.append(s.to_numpy().astype(np.float64))
            kinds.append(None)
        else:  # object, string, nullable extension dtypes: cell by cell (pd.NA -> missing)
            arr = s.astype(object).to_numpy()
            arr = np.array([None if _is_na(v) else v for v in arr], dtype=object)
            kinds.append(None)
            cols.append(arr)
    return names, cols, kinds


def _is_na(v: Any) -> bool:
    if v is None:
        return True
    try:
        import pandas as pd
        return v is pd.NA or v is pd.NaT
    except ImportError:  # pragma: no cover
        return False


def is_frame(x: Any) -> bool:
    """True for a pandas DataFrame (without importing pandas)."""
    return hasattr(x, "columns") and hasattr(x, "iloc") and getattr(x, "ndim", 0) == 2


def array_columns(x: np.ndarray, where: str) -> list[np.ndarray]:
    """A 2-D array's columns (object arrays keep their cells)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataError(f"{where}: a table must be 2-D (rows x columns), got shape {tuple(x.shape)}")
    if x.dtype.kind not in "fiubOUS":
        raise DataError(f"{where}: unsupported dtype {x.dtype} for a table")
    if x.dtype.kind in "US":
        x = x.astype(object)
    return [x[:, j] for j in range(x.shape[1])]
