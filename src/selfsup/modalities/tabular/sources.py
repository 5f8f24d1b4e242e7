"""Tabular data sources: CSV and Parquet files, scikit-learn's bundled tables, R's mlbench tables.

Options travel in the data URI, so every command (train, eval, embed) takes them unchanged:
``csv:data.csv?label=target&categorical=colour,city&drop=id&test=test.csv``.

- label: the label column (kept for evaluation, never used for pre-training);
- categorical / numeric: comma-separated column names (or positions) forcing a column's kind;
  by default a column is numeric when all its non-missing cells are numbers, categorical otherwise;
- drop: columns to ignore; test: a second file with the same columns, the test split;
- sep (CSV only; default ',' or tab for .tsv, ';' when the header has no ','), header=no for a
  headerless CSV (columns x0, x1, ...); scaling: quantile (default), robust or standard.
Missing cells: empty, NA, NaN, N/A, null, None or '?'.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...data import Dataset, SourceRequest, Split, encode_labels, existing_file, sources
from ...errors import ConfigError, DataError
from ...remote import is_remote
from .table import (CATEGORICAL, array_columns, build_storage, canonical_text, column_names,
                    frame_columns, resolve_columns, schema_of)

SKLEARN_TABLES = {"breast_cancer": "load_breast_cancer", "wine": "load_wine", "digits": "load_digits",
                  "iris": "load_iris"}
MLBENCH_DIRS = ("/usr/lib/R/site-library/mlbench/data", "/usr/local/lib/R/site-library/mlbench/data",
                "/usr/lib/R/library/mlbench/data", "~/.cache/selfsup/mlbench")
# label column and the classic train/test split (first n_train rows train, the rest test) of known tables
MLBENCH_TABLES = {
    "LetterRecognition": ("lettr", 16000, "first 16,000 rows train / last 4,000 test (the UCI split)"),
    "Satellite": ("classes", 4435, "first 4,435 rows train / last 2,000 test (UCI Statlog sat.trn / sat.tst)"),
}
FIXED_SPLIT = "fixed stratified 70/30 train/test split (seed 0)"
URI_OPTIONS = {"label", "categorical", "numeric", "drop", "test", "sep", "header", "scaling", "dir"}


@dataclass
class RawTable:
    """Columns as read, before kinds are decided; `rows[i]` names row i in error messages."""

    names: list[str]
    columns: list[np.ndarray]
    kinds: list[str | None]
    rows: Sequence[Any] | None
    where: str

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def take(self, idx: np.ndarray) -> "RawTable":
        rows = None if self.rows is None else [self.rows[i] for i in idx]
        return RawTable(self.names, [c[idx] for c in self.columns], self.kinds, rows, self.where)

    def pop(self, name: str) -> np.ndarray:
        """Remove and return a column by name."""
        if name not in self.names:
            raise ConfigError(f"{self.where}: column {name!r} not found; columns: {', '.join(self.names)}")
        j = self.names.index(name)
        self.names = self.names[:j] + self.names[j + 1:]
        self.kinds = self.kinds[:j] + self.kinds[j + 1:]
        col = self.columns[j]
        self.columns = self.columns[:j] + self.columns[j + 1:]
        return col

    def select(self, names: list[str]) -> "RawTable":
        """The columns `names`, in that order (another file's column order)."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise DataError(f"{self.where}: missing column(s) {', '.join(missing)}")
        idx = [self.names.index(n) for n in names]
        return RawTable(list(names), [self.columns[j] for j in idx], [self.kinds[j] for j in idx], self.rows,
                        self.where)


def read_csv(path: str, sep: str | None = None, header: bool = True) -> RawTable:
    """A CSV file as string columns; a row with the wrong number of fields is an error naming its line."""
    p = existing_file(path, "CSV file")
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            first = f.readline()
            if sep is None:
                sep = "\t" if p.suffix.lower() in (".tsv", ".tab") else ","
                if sep == "," and "," not in first:
                    sep = next((s for s in (";", "\t", "|") if s in first), ",")
            f.seek(0)
            reader = csv.reader(f, delimiter=sep, strict=True)
            records, lines = [], []
            names: list[str] | None = None
            try:
                for row in reader:
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue  # blank line
                    if names is None:
                        if header:
                            names = [c.strip() or f"x{i}" for i, c in enumerate(row)]
                            continue
                        names = column_names(None, len(row))
                    if len(row) != len(names):
                        raise DataError(f"{p}: line {reader.line_num}: {len(row)} fields, expected {len(names)} "
                                        f"(the header has {len(names)} columns; separator {sep!r})")
                    records.append(row)
                    lines.append(f"line {reader.line_num}")
            except csv.Error as exc:
                raise DataError(f"{p}: line {reader.line_num}: malformed CSV ({exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    if names is None:
        raise DataError(f"{p}: no header row")
    if not records:
        raise DataError(f"{p}: no data rows below the header")
    cells = np.array(records, dtype=object)
    return RawTable(names, [cells[:, j] for j in range(len(names))], [None] * len(names), lines, str(p))


def frame_table(df: Any, where: str) -> RawTable:
    """A pandas DataFrame as a RawTable (dtypes give kinds: 'category' columns are categorical)."""
    try:
        names, cols, kinds = frame_columns(df)
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    return RawTable(names, cols, kinds, [f"row {i!r}" for i in df.index], where)


def array_table(x: np.ndarray, where: str, names: Sequence[str] | None = None) -> RawTable:
    cols = array_columns(x, where)
    return RawTable(column_names(names, len(cols)), cols, [None] * len(cols), None, where)


def read_parquet(path: str) -> RawTable:
    """A Parquet file via pyarrow (the optional extra 'tabular'), local or remote (a URL: remote.py); dictionary
    columns are categorical."""
    from ...shard_readers import open_shard

    p = path if is_remote(path) else existing_file(path, "Parquet file")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(f"{p}: reading Parquet needs pyarrow: pip install 'selfsup[tabular]'") from None
    try:
        with open_shard(p) as source:
            table = pq.read_table(source)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{p}: cannot read Parquet file ({type(exc).__name__}: {exc})") from None
    return arrow_raw_table(table, str(p))


def arrow_raw_table(table: Any, where: str) -> RawTable:
    """A pyarrow Table as a RawTable: dictionary columns categorical, numbers and booleans as floats."""
    import pyarrow as pa

    names, cols, kinds = [], [], []
    for name, col in zip(table.column_names, table.columns):
        t = col.type
        if pa.types.is_dictionary(t):
            cols.append(np.array(col.to_pylist(), dtype=object))
            kinds.append(CATEGORICAL)
        elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            cols.append(np.array([np.nan if v is None else float(v) for v in col.to_pylist()], dtype=np.float64))
            kinds.append(None)
        elif pa.types.is_temporal(t):
            raise DataError(f"{where}: column {name!r} has type {t}; convert dates/times to numbers or strings first")
        else:
            cols.append(np.array(col.to_pylist(), dtype=object))
            kinds.append(None)
        names.append(str(name))
    if not names or table.num_rows == 0:
        raise DataError(f"{where}: empty table")
    return RawTable(names, cols, kinds, None, where)


def arrow_table_dataset(req: SourceRequest, files: dict[str, list[Path]]) -> Dataset:
    """hf:DIR without an image column: its train (and test) split as a table."""
    import pyarrow as pa

    from ...shard_readers import open_arrow

    check_options(req, {"label", "categorical", "numeric", "drop", "scaling"})
    tables = {name: arrow_raw_table(pa.concat_tables([open_arrow(str(f)) for f in paths]), str(paths[0].parent))
              for name, paths in files.items()}
    label = req.options.get("label") or ("label" if "label" in tables["train"].names else None)
    return table_dataset(req.uri, tables["train"], tables.get("test"), label, req.options)


def label_values(col: np.ndarray, table: RawTable, name: str) -> np.ndarray:
    """A label column as numbers when every label is a number (so classes sort numerically), else text."""
    texts = [canonical_text(v) for v in col]
    for i, t in enumerate(texts):
        if t is None:
            row = table.rows[i] if table.rows is not None else f"row {i}"
            raise DataError(f"{table.where}: {row}, label column {name!r} is empty")
    try:
        nums = np.array([float(t) for t in texts])
    except ValueError:
        return np.array(texts, dtype=object).astype(str)
    return nums.astype(np.int64) if np.all(nums == np.round(nums)) else nums


def check_options(req: SourceRequest, allowed: set[str]) -> None:
    """Unknown URI options and a --modality other than tabular are errors naming them."""
    if req.modality not in (None, "tabular"):
        raise ConfigError(f"--data {req.uri!r} is a table; it cannot be read as {req.modality} data")
    req.check_options(allowed)


def table_dataset(name: str, train: RawTable, test: RawTable | None = None, label: str | None = None,
                  options: dict[str, str] | None = None, **info: Any) -> Dataset:
    """Validate raw tables and assemble a tabular Dataset; the test table takes the training table's kinds."""
    opts = options or {}
    drop = opts.get("drop")
    for t in (train, test):
        if t is None:
            continue
        for j in sorted(resolve_columns(drop, t.names, "drop", t.where), reverse=True):
            t.pop(t.names[j])
    y_train = y_test = None
    if label:
        y_train = label_values(train.pop(label), train, label)
        if test is not None:
            y_test = label_values(test.pop(label), test, label)
    scaling = opts.get("scaling")
    x_train = build_storage(train.names, train.columns, train.where, categorical=opts.get("categorical"),
                            numeric=opts.get("numeric"), kinds=train.kinds, rows=train.rows, scaling=scaling)
    schema = schema_of(x_train)
    x_test = None
    if test is not None:
        test = test.select(train.names)
        x_test = build_storage(test.names, test.columns, test.where, kinds=schema["kinds"], rows=test.rows,
                               scaling=scaling)
    (y_train, y_test), classes = encode_labels(y_train, y_test)
    info = {"classes": classes, "columns": schema["names"], "kinds": schema["kinds"], "label": label, **info}
    return Dataset(name, "tabular", Split(x_train, y_train), Split(x_test, y_test) if x_test is not None else None,
                   info)


def file_dataset(req: SourceRequest, reader) -> Dataset:
    if not req.path:
        raise ConfigError(f"--data {req.scheme}:PATH needs a path")
    check_options(req, URI_OPTIONS - {"dir"} - ({"sep", "header"} if req.scheme == "parquet" else set()))
    train = reader(req.path)
    test = reader(req.options["test"]) if req.options.get("test") else None
    return table_dataset(req.uri, train, test, req.options.get("label") or None, req.options,
                         test_source="test file" if test is not None else None)


def _csv_reader(req: SourceRequest):
    header = req.options.get("header", "yes").lower() not in ("no", "none", "false", "0")
    sep = req.options.get("sep") or None
    if sep in ("tab", "\\t"):
        sep = "\t"
    return lambda path: read_csv(path, sep, header)


@sources.register("csv", "a CSV table: csv:PATH[?label=COL&categorical=A,B&numeric=C&drop=ID&test=TEST.csv"
                  "&sep=;&header=no&scaling=robust]; kinds auto-detected", modality="tabular")
def load_csv(req: SourceRequest) -> Dataset:
    return file_dataset(req, _csv_reader(req))


def fixed_split(y: np.ndarray, test_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The fixed stratified train/test split used for tables that ship without one."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=y)
    return np.sort(tr), np.sort(te)


@sources.register("sklearn", "scikit-learn's bundled tables: sklearn:breast_cancer | wine | digits | iris "
                  f"(all numeric; {FIXED_SPLIT})", modality="tabular")
def load_sklearn(req: SourceRequest) -> Dataset:
    import sklearn.datasets as skd

    if req.path not in SKLEARN_TABLES:
        raise ConfigError(f"--data sklearn:{req.path}: unknown table; known: {', '.join(sorted(SKLEARN_TABLES))}")
    check_options(req, {"scaling", "categorical", "numeric", "drop"})
    d = getattr(skd, SKLEARN_TABLES[req.path])()
    table = array_table(d.data, req.uri, [str(n) for n in d.feature_names])
    table.columns.append(np.asarray(d.target))
    table.names.append("target")
    table.kinds.append(None)
    tr, te = fixed_split(np.asarray(d.target))
    return table_dataset(req.uri, table.take(tr), table.take(te), "target", req.options, test_source=FIXED_SPLIT,
                         class_names=[str(c) for c in getattr(d, "target_names", [])])


def find_mlbench(name: str, data_dir: str | None) -> Path:
    """The .rda file of an mlbench table: in `data_dir` (the data folder itself or any folder holding an
    extracted r-cran-mlbench .deb), $SELFSUP_DATA_DIR, or R's library folders."""
    roots = [data_dir] if data_dir else [os.environ.get("SELFSUP_DATA_DIR", ""), *MLBENCH_DIRS]
    tried = []
    for root in filter(None, roots):
        base = Path(root).expanduser()
        for cand in (base, base / "usr/lib/R/site-library/mlbench/data", base / "mlbench/data", base / "data"):
            tried.append(str(cand))
            if (cand / f"{name}.rda").is_file():
                return cand / f"{name}.rda"
        if base.is_dir():
            hits = sorted(base.glob(f"**/mlbench/data/{name}.rda"))
            if hits:
                return hits[0]
    raise DataError(f"mlbench table {name!r} not found (looked in {', '.join(dict.fromkeys(tried))}). Get it without "
                    "installing R: 'cd /tmp && apt-get download r-cran-mlbench && dpkg -x r-cran-mlbench_*.deb "
                    "/tmp/mlbench' and pass --data-dir /tmp/mlbench (or 'apt-get install r-cran-mlbench')")


@sources.register("mlbench", "a table of R's mlbench package read with pyreadr (no R needed): mlbench:LetterRecognition "
                  "(UCI split 16k/4k), mlbench:Satellite (UCI split 4,435/2,000), others with ?label=COL; "
                  "Debian r-cran-mlbench or --data-dir DIR", modality="tabular")
def load_mlbench(req: SourceRequest) -> Dataset:
    if not req.path:
        raise ConfigError("--data mlbench:NAME needs a table name, e.g. mlbench:LetterRecognition")
    check_options(req, {"label", "scaling", "categorical", "numeric", "drop", "dir"})
    path = find_mlbench(req.path, req.options.get("dir") or req.data_dir)
    try:
        import pyreadr
    except ImportError:
        raise ConfigError("reading mlbench tables needs pyreadr: pip install pyreadr (or 'selfsup[bench]')") from None
    try:
        frames = pyreadr.read_r(str(path))
    except Exception as exc:
        raise DataError(f"{path}: cannot read R data ({type(exc).__name__}: {exc})") from None
    df = frames.get(req.path) if req.path in frames else next(iter(frames.values()), None)
    if df is None:
        raise DataError(f"{path}: holds no data frame")
    table = frame_table(df.reset_index(drop=True), str(path))
    known_label, n_train, split_note = MLBENCH_TABLES.get(req.path, (None, None, None))
    label = req.options.get("label") or known_label
    if label is None:
        factors = [n for n, k in zip(table.names, table.kinds) if k == CATEGORICAL]
        label = next((n for n in ("Class", "class", "classes", "Type", "type") if n in factors), None)
        if label is None:
            raise ConfigError(f"--data {req.uri}: which column is the label? add ?label=COL; columns: "
                              f"{', '.join(table.names)}")
    if n_train is not None:
        tr, te = np.arange(n_train), np.arange(n_train, len(table))
    else:
        y = np.array([canonical_text(v) for v in table.columns[table.names.index(label)]], dtype=object).astype(str)
        tr, te = fixed_split(y)
        split_note = FIXED_SPLIT
    return table_dataset(req.uri, table.take(tr), table.take(te), label, req.options, test_source=split_note)

