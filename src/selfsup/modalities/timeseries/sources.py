"""Time-series sources: UCR/UEA problems by name (bundled in the aeon wheel), .ts files, CSV files.

`npy:PATH --modality timeseries` is served by the `npy:` source, which hands over to the reader this modality
registers in `modalities.npy.npy_readers`. All sources keep NaN for padding and missing values.
"""
from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

import numpy as np

from ...data import Dataset, SourceRequest, existing_file, sources
from ...errors import ConfigError, DataError
from .ts_format import read_ts

UCR_ENV = "SELFSUP_UCR_DIR"


def aeon_data_dir() -> Path | None:
    """The folder of problems bundled in the installed aeon wheel (found without importing aeon)."""
    try:
        spec = importlib.util.find_spec("aeon")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return path if path.is_dir() else None


def problems_in(folder: Path) -> list[str]:
    """Names NAME with NAME/NAME_TRAIN.ts and NAME/NAME_TEST.ts inside folder."""
    if not folder.is_dir():
        return []
    return sorted(d.name for d in folder.iterdir()
                  if (d / f"{d.name}_TRAIN.ts").is_file() and (d / f"{d.name}_TEST.ts").is_file())


def bundled_problems() -> list[str]:
    """Classification problems shipped inside the aeon wheel (train/test .ts pairs)."""
    folder = aeon_data_dir()
    return problems_in(folder) if folder is not None else []


def ts_dataset(name: str, train_path: Path, test_path: Path | None, **info) -> Dataset:
    """Read a .ts train file (and test file) into a Dataset of the time-series modality."""
    from .modality import TimeSeriesModality

    tr = read_ts(train_path)
    te = read_ts(test_path) if test_path is not None else None
    if te is not None and te.x.shape[1] != tr.x.shape[1]:
        raise DataError(f"{test_path}: {te.x.shape[1]} dimensions but {train_path} has {tr.x.shape[1]}")
    info.update(files=[str(train_path)] + ([str(test_path)] if test_path else []),
                problem=tr.header.get("problemname", name), equal_length=bool(
                    (tr.lengths == tr.lengths[0]).all() and (te is None or (te.lengths == tr.lengths[0]).all())))
    return TimeSeriesModality().dataset_from_arrays(tr.x, tr.labels, name, te.x if te else None,
                                                    te.labels if te else None, **info)


def sibling_test(train: Path) -> Path | None:
    """X_TRAIN.ts -> X_TEST.ts when it exists."""
    stem = train.name
    for a, b in (("_TRAIN", "_TEST"), ("_train", "_test"), ("TRAIN", "TEST")):
        if a in stem:
            cand = train.with_name(stem[::-1].replace(a[::-1], b[::-1], 1)[::-1])
            if cand.is_file():
                return cand
    return None


@sources.register("ucr", "a UCR/UEA classification problem by name, e.g. ucr:GunPoint, ucr:BasicMotions, "
                  "ucr:JapaneseVowels: bundled in the aeon wheel (no download; pip install 'selfsup[timeseries]'), "
                  "or from an archive folder: ucr:NAME?dir=PATH (PATH/NAME/NAME_TRAIN.ts, also "
                  f"--data-dir or ${UCR_ENV})", modality="timeseries")
def load_ucr(req: SourceRequest) -> Dataset:
    name = req.path.strip()
    if not name:
        raise ConfigError(f"--data {req.scheme}:NAME needs a problem name, e.g. {req.scheme}:GunPoint")
    if name.endswith(".ts"):
        return load_ts(req)
    folders = [Path(d).expanduser() for d in (req.options.get("dir"), req.data_dir, os.environ.get(UCR_ENV)) if d]
    bundled = aeon_data_dir()
    if bundled is not None:
        folders.append(bundled)
    for folder in folders:
        train, test = folder / name / f"{name}_TRAIN.ts", folder / name / f"{name}_TEST.ts"
        if train.is_file() and test.is_file():
            return ts_dataset(name, train, test, source=str(folder))
    if bundled is None and not folders:
        raise ConfigError(f"--data {req.uri}: UCR/UEA problems by name need aeon's bundled data: "
                          "pip install 'selfsup[timeseries]' (or pass ?dir=PATH to an archive folder)")
    known = ", ".join(problems_in(bundled)) if bundled is not None else "none (aeon not installed)"
    looked = ", ".join(str(f) for f in folders)
    raise DataError(f"--data {req.uri}: no {name}/{name}_TRAIN.ts and _TEST.ts in {looked}; "
                    f"bundled with aeon: {known}")


sources.add("uea", load_ucr, "alias of ucr: (UEA multivariate problems, e.g. uea:BasicMotions)", modality="timeseries")


@sources.register("ts", "a UCR/UEA .ts file: ts:PATH[?test=TEST.ts]; a sibling X_TEST.ts of X_TRAIN.ts becomes "
                  "the test split", modality="timeseries")
def load_ts(req: SourceRequest) -> Dataset:
    if not req.path:
        raise ConfigError("--data ts:PATH needs a path to a .ts file")
    train = existing_file(req.path, ".ts file")
    test = existing_file(req.options["test"], "test .ts file") if "test" in req.options else sibling_test(train)
    return ts_dataset(req.uri, train, test)


def _read_csv_series(path: Path, label: str, header: str, sep: str | None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows of a CSV as NaN-padded series [N, 1, L] and the label column (strings) if asked for."""
    delimiter = sep or ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [(i, r) for i, r in enumerate(csv.reader(f, delimiter=delimiter), 1) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from None
    if not rows:
        raise DataError(f"{path}: no rows")

    def numeric(cell: str) -> bool:
        try:
            float(cell)
            return True
        except ValueError:
            return cell.strip() in ("", "?")

    names: list[str] | None = None
    if header == "yes" or (header == "auto" and not all(numeric(c) for c in rows[0][1][1:-1] or rows[0][1])):
        names = [c.strip() for c in rows[0][1]]
        rows = rows[1:]
        if not rows:
            raise DataError(f"{path}: only a header row")
    col: int | None
    if label in ("none", ""):
        col = None
    elif label == "first":
        col = 0
    elif label == "last":
        col = -1
    else:
        if names is None or label not in names:
            raise ConfigError(f"{path}: label column {label!r} not found (header: {names}); use label=first, "
                              "last, none or a header name")
        col = names.index(label)
    width = max(len(r) for _, r in rows)
    n_values = width - (1 if col is not None else 0)
    x = np.full((len(rows), 1, n_values), np.nan, dtype=np.float32)
    labels = []
    for k, (lineno, r) in enumerate(rows):
        cells = list(r)
        if col is not None:
            idx = col if col >= 0 else len(cells) - 1
            if idx >= len(cells) or not cells[idx].strip():
                raise DataError(f"{path}:{lineno}: missing label in column {idx + 1}")
            labels.append(cells.pop(idx).strip())
        while cells and not cells[-1].strip():  # trailing empty cells: padding of a shorter series
            cells.pop()
        for j, c in enumerate(cells):
            c = c.strip()
            if c in ("", "?") or c.lower() == "nan":
                continue
            try:
                x[k, 0, j] = float(c)
            except ValueError:
                raise DataError(f"{path}:{lineno}: column {j + 1 + (1 if col == 0 else 0)}: cannot read {c!r} "
                                "as a number (leave missing values empty or write '?')") from None
    return x, (np.array(labels) if col is not None else None)


@sources.register("tscsv", "univariate series in a CSV/TSV, one per row: tscsv:PATH[?label=none|first|last|NAME"
                  "&header=auto|yes|no&test=TEST.csv&sep=,]; empty trailing cells pad shorter series, empty or '?' "
                  "cells are missing", modality="timeseries")
def load_series_csv(req: SourceRequest) -> Dataset:
    from .modality import TimeSeriesModality

    if not req.path:
        raise ConfigError(f"--data {req.scheme}:PATH needs a path to a CSV file")
    label = req.options.get("label", "none")
    header = req.options.get("header", "auto")
    if header not in ("auto", "yes", "no"):
        raise ConfigError(f"--data {req.uri}: header must be auto, yes or no")
    sep = req.options.get("sep")
    x, y = _read_csv_series(existing_file(req.path, "CSV file"), label, header, sep)
    x_te = y_te = None
    if "test" in req.options:
        x_te, y_te = _read_csv_series(existing_file(req.options["test"], "test CSV file"), label, header, sep)
    return TimeSeriesModality().dataset_from_arrays(x, y, req.uri, x_te, y_te)
