"""Text data sources. Options travel in the URI, so train, eval and embed take them unchanged:

- ``text:PATH``: a plain text file, one item a line (``.txt`` or any other suffix); a CSV/TSV, JSON Lines or
  Parquet file (by suffix) with the items in ``column`` (default ``text``) and, optionally, labels in ``label``
  (kept for evaluation, never used for pre-training); ``test=PATH``: a second file of the same kind, the test split;
  ``max_bytes``: longer items are cut (default 2048 bytes of UTF-8).
- ``text:FOLDER``: a Hugging Face `datasets` folder written by ``save_to_disk`` (a Dataset, or a DatasetDict whose
  ``train`` split is read for training and its ``test`` (else ``validation``) split as the test split), with the
  same ``column``/``label`` options (a ClassLabel's codes become its names). Its Arrow files are read with pyarrow
  (shard_readers); the `datasets` package is not needed.
- ``sts:PATH``: sentence pairs with gold similarity scores for the STS protocol, the 7-column tab-separated format
  of the SentEval/STS benchmark files (genre, file, year, id, score, sentence 1, sentence 2); the training split
  holds every sentence once (for embedding and whitening), `info["pairs"]` the pairs and scores.

Policy, counted in the dataset's info (`text_policy`): empty or white-space lines are left out, bytes that are not
UTF-8 become U+FFFD, items over max_bytes are cut; a file with a NUL byte is refused as binary, a missing column or
an empty file is a one-line error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...data import Dataset, SourceRequest, Split, encode_labels, existing_file, sources
from ...errors import ConfigError, DataError
from ...shard_readers import class_names, open_arrow, saved_dataset_train_test
from .codec import DEFAULT_MAX_BYTES, TextPolicy, cell_strings, read_lines, to_storage

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".json": None, ".parquet": None}
URI_OPTIONS = {"column", "label", "test", "max_bytes"}


def _read_table(path: Path, column: str, label: str | None) -> tuple[list[Any], list[Any] | None, list[str]]:
    try:
        import pandas as pd
    except ImportError:
        raise ConfigError(f"{path}: reading {path.suffix} files needs pandas: pip install 'selfsup[tabular]'") from None
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif suffix in (".jsonl", ".json"):
        frame = pd.read_json(path, lines=True, dtype=False)
    else:
        frame = pd.read_csv(path, sep=TABLE_SUFFIXES[suffix], dtype=str, keep_default_na=False, na_values=[""])
    for name in [column] + ([label] if label else []):
        if name not in frame.columns:
            raise DataError(f"{path}: no column {name!r}; columns: {', '.join(map(str, frame.columns))}")
    header = 1 if suffix in (".csv", ".tsv") else 0
    rows = [f"at line {i + 1 + header}" for i in range(len(frame))]  # file lines (CSV: after the header), 1-based
    return list(frame[column]), (list(frame[label]) if label else None), rows


def _read_saved_dataset(files: list[Path], features: dict[str, Any], column: str, label: str | None
                        ) -> tuple[list[Any], list[Any] | None, list[str]]:
    """One split of a save_to_disk folder (its Arrow files, read with pyarrow): the column's values, the labels
    (a ClassLabel's codes as their names) and "at row i" for each row."""
    import pyarrow as pa

    table = pa.concat_tables([open_arrow(str(f)) for f in files])
    for name in [column] + ([label] if label else []):
        if name not in table.column_names:
            raise DataError(f"{files[0].parent}: no column {name!r}; columns: {', '.join(table.column_names)}")
    values = table.column(column).to_pylist()
    labels = table.column(label).to_pylist() if label else None
    names = class_names(features, label) if label else None
    if labels is not None and names is not None:
        labels = [names[int(v)] for v in labels]
    return values, labels, [f"at row {i}" for i in range(len(values))]


def read_text_file(source: str | tuple[list[Path], dict[str, Any]], options: dict[str, str], policy: TextPolicy
                   ) -> tuple[Any, np.ndarray | None]:
    """One split's storage and raw labels (None without a label column): a file's path, or one split of a saved
    dataset (its Arrow files and features)."""
    column, label = options.get("column", "text"), options.get("label")
    if isinstance(source, tuple):
        path = source[0][0].parent
        values, labels, rows = _read_saved_dataset(*source, column, label)
    else:
        path = existing_file(source, "text file")
        if path.suffix.lower() not in TABLE_SUFFIXES:
            if label or "column" in options:
                raise ConfigError(f"{path}: a plain text file has no columns; column= and label= need a .csv, .tsv, "
                                  ".jsonl or .parquet file")
            texts, lines = read_lines(path.read_bytes(), str(path), policy)
            return to_storage(texts, str(path), policy, [f"at line {r}" for r in lines]), None
        values, labels, rows = _read_table(path, column, label)
    texts = cell_strings(values)
    keep = [i for i, t in enumerate(texts) if t.strip()]
    policy.skipped_empty += len(texts) - len(keep)
    if not keep:
        raise DataError(f"{path}: no text in column {column!r} (every cell is empty)")
    texts, rows = [texts[i].strip() for i in keep], [rows[i] for i in keep]
    y = None if labels is None else np.asarray([labels[i] for i in keep])
    return to_storage(texts, str(path), policy, rows), y


@sources.register("text", "text, one item a line (text:PATH), or a column of a CSV/TSV/JSONL/Parquet file or of a "
                          "datasets save_to_disk folder (text:PATH?column=text&label=y&test=TEST)", modality="text")
def load_text(req: SourceRequest) -> Dataset:
    req.check_options(URI_OPTIONS)
    if not req.path:
        raise ConfigError("text: needs a file, e.g. text:sentences.txt")
    try:
        max_bytes = int(req.options.get("max_bytes", DEFAULT_MAX_BYTES))
    except ValueError:
        raise ConfigError(f"--data {req.uri}: max_bytes must be a whole number") from None
    if max_bytes < 16:
        raise ConfigError(f"--data {req.uri}: max_bytes must be at least 16, got {max_bytes}")
    policy = TextPolicy(max_bytes=max_bytes)
    train: str | tuple[list[Path], dict[str, Any]] = req.path
    test_source: str | tuple[list[Path], dict[str, Any]] | None = req.options.get("test")
    if Path(req.path).expanduser().is_dir():  # a datasets save_to_disk folder: its train and test splits
        splits = saved_dataset_train_test(Path(req.path).expanduser())
        train = splits["train"]
        test_source = test_source if test_source is not None else splits.get("test")
    x, y = read_text_file(train, req.options, policy)
    test = None
    yt = None
    if test_source is not None:
        test_policy = TextPolicy(max_bytes=max_bytes)
        xt, yt = read_text_file(test_source, req.options, test_policy)
        test = Split(xt)
    (y, yt), classes = encode_labels(y, yt)
    if test is not None:
        test = Split(test.x, yt)
    return Dataset(Path(req.path).name, "text", Split(x, y), test,
                   {"classes": classes, "text_policy": policy.to_dict()})


def read_sts(path_text: str) -> tuple[list[str], list[str], np.ndarray]:
    """(first sentences, second sentences, gold scores) of a 7-column STS file; a bad row is a one-line error."""
    path = existing_file(path_text, "STS file")
    first, second, gold = [], [], []
    for number, line in enumerate(path.read_bytes().decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) < 7:
            raise DataError(f"{path}: line {number} has {len(cells)} tab-separated fields, an STS row needs 7 "
                            "(genre, file, year, id, score, sentence 1, sentence 2)")
        try:
            score = float(cells[4])
        except ValueError:
            raise DataError(f"{path}: line {number}: the score {cells[4]!r} is not a number") from None
        if not np.isfinite(score):
            raise DataError(f"{path}: line {number}: the score {cells[4]!r} is not a finite number")
        a, b = cells[5].strip(), "\t".join(cells[6:]).strip()
        if not a or not b:
            raise DataError(f"{path}: line {number} has an empty sentence")
        first.append(a)
        second.append(b)
        gold.append(score)
    if not gold:
        raise DataError(f"{path}: no sentence pairs")
    if len(set(gold)) < 2:
        raise DataError(f"{path}: every gold score is {gold[0]:g}; a rank correlation needs scores that differ")
    return first, second, np.asarray(gold, dtype=np.float64)


@sources.register("sts", "sentence pairs with gold similarity (sts:PATH, the 7-column STS benchmark format) for the "
                         "STS protocol", modality="text")
def load_sts(req: SourceRequest) -> Dataset:
    if not req.path:
        raise ConfigError("sts: needs a file, e.g. sts:sts-b-test.tsv")
    first, second, gold = read_sts(req.path)
    sentences = list(dict.fromkeys(first + second))
    index = {s: i for i, s in enumerate(sentences)}
    pairs = {"first": [index[s] for s in first], "second": [index[s] for s in second], "gold": gold.tolist()}
    policy = TextPolicy()
    x = to_storage(sentences, req.path, policy)
    return Dataset(Path(req.path).name, "text", Split(x), None, {"pairs": pairs, "text_policy": policy.to_dict()})
