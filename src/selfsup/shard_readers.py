"""Readers of encoded samples (`items.Items`) in files, WebDataset-style tar shards, Parquet files and Arrow files
(a Hugging Face `datasets` folder written by `save_to_disk`), with pyarrow and the standard library's tarfile.

- Tar shards (WebDataset's convention): a sample is the members sharing a key, the member path up to the first dot
  of its base name; the extension after it says what the member is (`jpg`, `png`, `cls`, `json`, ...). The index
  holds each chosen member's offset and size (tarfile reads the headers only), and a read is one positioned read.
  Compressed tars cannot be read by position and are refused (JPEG and PNG shards gain nothing from compression).
- Parquet: the cells of one column, read a row group at a time (the last two row groups read stay in memory);
  row groups are the shards.
- Arrow IPC files (`save_to_disk` writes the streaming format, `data-00000-of-00002.arrow`): memory-mapped, so a
  read copies one cell; record batches are the shards.
A column holds the encoded bytes (binary) or a struct with a `bytes` field (and a `path` field used when `bytes` is
empty), as `datasets`' Image and Audio features store them.
"""
from __future__ import annotations

import json
import os
import re
import tarfile
from collections import OrderedDict
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .errors import DataError
from .items import item_fingerprint
from .remote import READ_AHEAD, ReadAhead, is_remote, list_files, local_path, open_remote
from .remote import size as remote_size
from .storage import LazyFiles


def expand_braces(pattern: str) -> list[str]:
    """A pattern with brace ranges `shard-{000..099}.tar` (as WebDataset writes them) as the patterns it stands for."""
    patterns = [pattern]
    while any(re.search(r"\{(\d+)\.\.(\d+)\}", p) for p in patterns):
        expanded = []
        for p in patterns:
            m = re.search(r"\{(\d+)\.\.(\d+)\}", p)
            if m is None:
                expanded.append(p)
                continue
            lo, hi = m.group(1), m.group(2)
            expanded += [p[:m.start()] + str(k).zfill(len(lo)) + p[m.end():] for k in range(int(lo), int(hi) + 1)]
        patterns = expanded
    return patterns


def expand_shards(pattern: str, suffixes: tuple[str, ...], what: str) -> list[Path] | list[str]:
    """The files a shard pattern names: a file, a folder (its files with `suffixes`), a glob, or a brace range
    `shard-{000..099}.tar`; sorted, at least one. Remote patterns (URLs, pipe: commands) give URLs (remote.py)."""
    if is_remote(pattern):
        urls = [url for p in expand_braces(pattern) for url in list_files(p, suffixes)]
        if not urls:
            raise DataError(f"{pattern}: no {what} match")
        return urls
    path = Path(pattern).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(suffixes))
        if not files:
            raise DataError(f"{path}: no {what} found (looked for {', '.join('*' + s for s in suffixes)})")
        return files
    files = []
    for p in expand_braces(str(path)):
        matches = sorted(glob(p)) if any(c in p for c in "*?[") else [p]
        for m in matches:
            if not Path(m).is_file():
                raise DataError(f"{m}: {what[:-1] if what.endswith('s') else what} not found")
            files.append(Path(m))
    if not files:
        raise DataError(f"{pattern}: no {what} match")
    return files


def open_shard(location: str | Path) -> BinaryIO:
    """A shard (a local file, a pipe: command's local copy, or a URL read by byte range: remote.py) as a seekable
    binary file."""
    local = local_path(str(location))
    return open(local, "rb") if local is not None else open_remote(str(location))


def shard_size(location: str | Path) -> int:
    local = local_path(str(location))
    return os.path.getsize(local) if local is not None else remote_size(str(location))


@dataclass
class FileItems:
    """One file per sample (a folder of images)."""

    paths: list[str]
    shards: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.shards is None:
            self.shards = np.zeros(len(self.paths), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> bytes:
        try:
            with open(self.paths[i], "rb") as f:
                return f.read()
        except OSError as exc:
            raise DataError(f"{self.paths[i]}: cannot read ({exc.strerror or exc})") from None

    def where(self, i: int) -> str:
        return self.paths[i]

    def fingerprint(self) -> str:
        return item_fingerprint(self.paths, [os.stat(p).st_size for p in self.paths])


@dataclass
class TarItems:
    """Members of WebDataset-style tar shards, one per sample, read by offset."""

    shard_paths: list[str]
    shards: np.ndarray   # int64 [N]: shard of each sample
    offsets: np.ndarray  # int64 [N]: the member's data offset in its shard
    sizes: np.ndarray    # int64 [N]
    keys: list[str]      # the samples' keys (for messages)
    files: LazyFiles = field(default_factory=LazyFiles)
    remote: ReadAhead = field(default_factory=ReadAhead)

    def __len__(self) -> int:
        return len(self.keys)

    def read(self, i: int) -> bytes:
        shard, size, offset = int(self.shards[i]), int(self.sizes[i]), int(self.offsets[i])
        local = local_path(self.shard_paths[shard])
        if local is None:
            return self.remote.read(self.shard_paths[shard], offset, size, i, lambda: self.ahead(i))
        data = os.pread(self.files.fd(shard, local), size, offset)
        if len(data) != int(self.sizes[i]):
            raise DataError(f"{self.where(i)}: truncated (the shard changed since it was indexed?)")
        return data

    def ahead(self, i: int) -> int:
        """Where the items from i on that lie in i's shard, in order, within READ_AHEAD bytes of its start end (the
        end of a remote read of items in order)."""
        last = min(int(np.searchsorted(self.shards, self.shards[i], side="right")), i + 4096)
        starts = self.offsets[i:last]
        ends = starts + self.sizes[i:last]
        within = (ends <= starts[0] + READ_AHEAD) & (starts >= np.maximum.accumulate(starts))
        k = len(within) if within.all() else int(np.argmin(within))
        return int(ends[:max(k, 1)].max())

    def where(self, i: int) -> str:
        return f"{self.shard_paths[int(self.shards[i])]}:{self.keys[i]}"

    def fingerprint(self) -> str:
        return item_fingerprint(self.shard_paths, [shard_size(p) for p in self.shard_paths])


def split_key(name: str) -> tuple[str, str]:
    """WebDataset's (key, extension) of a member path: the extension starts at the first dot of the base name."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower() if dot else ""


def tar_members(source: BinaryIO, where: str, label_ext: str
                ) -> tuple[dict[str, dict[str, tarfile.TarInfo]], dict[str, str]]:
    """A tar shard's regular members by sample key and extension (headers only: tarfile seeks past the data), and
    the text of each sample's `label_ext` member."""
    try:
        archive = tarfile.open(fileobj=source, mode="r:")  # plain tar only: compressed members cannot be sought
    except tarfile.ReadError as exc:
        raise DataError(f"{where}: not a plain tar file ({exc}); shards must be uncompressed .tar (WebDataset's "
                        "default), which can be read by position") from None
    samples: dict[str, dict[str, tarfile.TarInfo]] = OrderedDict()
    with archive:
        for member in archive:
            if member.isfile():
                key, ext = split_key(member.name)
                samples.setdefault(key, {})[ext] = member
        labels = {key: archive.extractfile(members[label_ext]).read().decode("utf-8").strip()
                  for key, members in samples.items() if label_ext in members}
    return samples, labels


def index_tar_shards(paths: list[Path] | list[str], kinds: tuple[str, ...], label_ext: str | None
                     ) -> tuple[TarItems, list[str] | None]:
    """Index the samples of tar shards: each sample's first member with an extension in `kinds` (in that order of
    preference), and its label member's text when `label_ext` is given (None: `cls` when every sample has one)."""
    shards, offsets, sizes, keys, labels = [], [], [], [], []
    for shard, path in enumerate(paths):
        with open_shard(path) as source:
            samples, label_texts = tar_members(source, str(path), label_ext if label_ext is not None else "cls")
        for key, members in samples.items():
            chosen = next((members[k] for k in kinds if k in members), None)
            if chosen is None:
                raise DataError(f"{path}: sample {key!r} has no member of a known kind (looked for "
                                f"{', '.join('.' + k for k in kinds)}; it has {', '.join(sorted(members)) or 'none'})")
            if label_ext is not None and key not in label_texts:
                raise DataError(f"{path}: sample {key!r} has no .{label_ext} label member")
            shards.append(shard)
            offsets.append(chosen.offset_data)
            sizes.append(chosen.size)
            keys.append(key)
            labels.append(label_texts.get(key))
        if not samples:
            raise DataError(f"{path}: no samples in this shard")
    items = TarItems([str(p) for p in paths], np.array(shards, dtype=np.int64), np.array(offsets, dtype=np.int64),
                     np.array(sizes, dtype=np.int64), keys)
    return items, (labels if all(v is not None for v in labels) else None)


class ChunkCache:
    """The last few chunks (row groups, record batches) read, as Python lists of cells; per process."""

    def __init__(self, keep: int = 2) -> None:
        self.keep, self.chunks, self._pid = keep, OrderedDict(), -1

    def get(self, key: Any, load) -> list:
        if self._pid != os.getpid():
            self.chunks, self._pid = OrderedDict(), os.getpid()
        if key not in self.chunks:
            self.chunks[key] = load()
            while len(self.chunks) > self.keep:
                self.chunks.popitem(last=False)
        return self.chunks[key]

    def __getstate__(self) -> dict[str, Any]:
        return {"keep": self.keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["keep"])


def cell_bytes(value: Any, where: str) -> bytes:
    """A binary cell, or a `datasets` Image/Audio struct {bytes, path}, as bytes."""
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return value["bytes"]
        if value.get("path"):
            try:
                return Path(value["path"]).read_bytes()
            except OSError as exc:
                raise DataError(f"{where}: cannot read {value['path']} ({exc.strerror or exc})") from None
    elif isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise DataError(f"{where}: empty cell (no bytes)")


@dataclass
class ColumnItems:
    """The cells of one column of Parquet files (shards: row groups) or Arrow IPC stream files (shards: record
    batches)."""

    paths: list[str]
    kind: str            # "parquet" or "arrow"
    column: str
    chunks: list[tuple[int, int, int]]  # per shard: (file, chunk within the file, first row of the shard overall)
    shards: np.ndarray   # int64 [N]
    cache: ChunkCache = field(default_factory=ChunkCache)

    def __len__(self) -> int:
        return len(self.shards)

    def _load(self, shard: int) -> list:
        file, chunk, _ = self.chunks[shard]
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            with open_shard(self.paths[file]) as source:
                values = pq.ParquetFile(source).read_row_group(chunk, columns=[self.column]).column(0)
        else:
            values = open_arrow(self.paths[file]).column(self.column).chunk(chunk)
        return values.to_pylist()

    def read(self, i: int) -> bytes:
        shard = int(self.shards[i])
        cells = self.cache.get(shard, lambda: self._load(shard))
        return cell_bytes(cells[i - self.chunks[shard][2]], self.where(i))

    def where(self, i: int) -> str:
        file = self.chunks[int(self.shards[i])][0]
        return f"{self.paths[file]}: row {i - self.file_first_row(file)} of column {self.column!r}"

    def file_first_row(self, file: int) -> int:
        return next(first for f, _, first in self.chunks if f == file)

    def fingerprint(self) -> str:
        return item_fingerprint([f"{p}:{self.column}" for p in self.paths], [shard_size(p) for p in self.paths])


_ARROW_TABLES: dict[tuple[int, str], Any] = {}


def open_arrow(path: str):
    """An Arrow IPC file (stream or file format) as a table over a memory map (zero-copy), once per process."""
    import pyarrow as pa

    key = (os.getpid(), path)
    if key not in _ARROW_TABLES:
        source = pa.memory_map(path)
        try:
            table = pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            table = pa.ipc.open_file(pa.memory_map(path)).read_all()
        _ARROW_TABLES[key] = table
    return _ARROW_TABLES[key]


def file_schema(path: Path | str, kind: str):
    import pyarrow.parquet as pq

    if kind != "parquet":
        return open_arrow(str(path)).schema
    with open_shard(path) as source:
        return pq.read_schema(source)


def encoded_column(schema, wanted: str | None, where: str) -> str | None:
    """The column holding encoded samples: `wanted`, or the first binary column or struct with a binary `bytes`
    field (None when there is none and none was asked for)."""
    import pyarrow as pa

    def encoded(t) -> bool:
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            return True
        return pa.types.is_struct(t) and any(t.field(k).name == "bytes" and
                                             (pa.types.is_binary(t.field(k).type) or
                                              pa.types.is_large_binary(t.field(k).type))
                                             for k in range(t.num_fields))
    if wanted is not None:
        if wanted not in schema.names:
            raise DataError(f"{where}: no column {wanted!r}; columns: {', '.join(schema.names)}")
        if not encoded(schema.field(wanted).type):
            raise DataError(f"{where}: column {wanted!r} is {schema.field(wanted).type}, not encoded bytes (binary, "
                            "or a struct with a bytes field)")
        return wanted
    return next((f.name for f in schema if encoded(f.type)), None)


def index_columns(paths: list[Path] | list[str], kind: str, column: str, label: str | None
                  ) -> tuple[ColumnItems, np.ndarray | None]:
    """Index the cells of `column` in Parquet or Arrow files, with the `label` column's values when given."""
    import pyarrow.parquet as pq

    chunks, shards, labels, total = [], [], [], 0
    for file, path in enumerate(paths):
        schema = file_schema(path, kind)
        if column not in schema.names:
            raise DataError(f"{path}: no column {column!r}; columns: {', '.join(schema.names)}")
        if label is not None and label not in schema.names:
            raise DataError(f"{path}: no label column {label!r}; columns: {', '.join(schema.names)}")
        if kind == "parquet":
            with open_shard(path) as source:
                parquet = pq.ParquetFile(source)
                counts = [parquet.metadata.row_group(g).num_rows for g in range(parquet.metadata.num_row_groups)]
                if label is not None:
                    labels.append(parquet.read(columns=[label]).column(0).to_numpy(zero_copy_only=False))
        else:
            table = open_arrow(str(path))
            counts = [len(c) for c in table.column(column).chunks]
            if label is not None:
                labels.append(table.column(label).to_numpy())
        for chunk, rows in enumerate(counts):
            if rows:
                shards.append(np.full(rows, len(chunks), dtype=np.int64))
                chunks.append((file, chunk, total))
                total += rows
    if total == 0:
        raise DataError(f"{paths[0]}: no rows")
    items = ColumnItems([str(p) for p in paths], kind, column, chunks, np.concatenate(shards))
    if label is None:
        return items, None
    values = np.concatenate(labels)
    return items, values.astype(str) if values.dtype == object else values


def saved_dataset_splits(root: Path) -> dict[str, Path]:
    """The split folders of a `datasets` save_to_disk folder: a DatasetDict (dataset_dict.json) or one Dataset."""
    if (root / "dataset_dict.json").exists():
        try:
            names = json.loads((root / "dataset_dict.json").read_text())["splits"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{root / 'dataset_dict.json'}: unreadable ({exc})") from None
        return {name: root / name for name in names}
    if (root / "state.json").exists():
        return {"train": root}
    raise DataError(f"{root}: not a Hugging Face datasets folder written by save_to_disk (no dataset_dict.json or "
                    "state.json)")


def saved_dataset_files(folder: Path) -> tuple[list[Path], dict[str, Any]]:
    """The Arrow files of one saved split (state.json's order) and its features (dataset_info.json)."""
    try:
        state = json.loads((folder / "state.json").read_text())
        files = [folder / f["filename"] for f in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{folder / 'state.json'}: unreadable ({exc})") from None
    info_path = folder / "dataset_info.json"
    features = json.loads(info_path.read_text()).get("features", {}) if info_path.exists() else {}
    for f in files:
        if not f.is_file():
            raise DataError(f"{f}: missing (listed in {folder / 'state.json'})")
    return files, features or {}


def saved_dataset_train_test(root: Path) -> dict[str, tuple[list[Path], dict[str, Any]]]:
    """The Arrow files and features of a save_to_disk folder's train split (`train`, else the first) and, when it
    has one, its test split (`test`, else `validation`)."""
    found = saved_dataset_splits(root)
    train = "train" if "train" in found else next(iter(found))
    test = next((name for name in ("test", "validation") if name in found and name != train), None)
    return {"train": saved_dataset_files(found[train]), **({"test": saved_dataset_files(found[test])} if test else {})}


def class_names(features: dict[str, Any], label: str | None) -> list[str] | None:
    """A `datasets` ClassLabel's names for the label column, if it is one."""
    feature = features.get(label or "label") if isinstance(features, dict) else None
    return feature.get("names") if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" else None
