"""Datasets named by URI-like strings (`digits`, `fashion-mnist`, `folder:PATH`, `npy:PATH?labels=Y.npy`).

A source reads raw arrays; the modality validates them and turns them into its storage tensor
(uint8 images, float series, ...). Labels are kept for evaluation and never used for pre-training.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl

import numpy as np
import torch

from .errors import ConfigError, DataError
from .registry import Registry


@dataclass
class Split:
    """One split of a dataset: storage tensor `x` (modality format) and optional integer labels."""

    x: torch.Tensor
    y: np.ndarray | None = None
    mask: torch.Tensor | None = None  # optional validity mask (padded series, missing cells)
    rows: Any = None  # storage.FileRows that `x` maps (prepared:DIR): training reads it batch by batch
    # items.ItemStorage of the whole split when it is too large for memory: training streams it (decoding in worker
    # processes) and `x`, `y` hold an evenly spaced sample of it, decoded, for statistics and evaluation
    stream: Any = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Dataset:
    """A named dataset of one modality, with a training split and an optional test split."""

    name: str
    modality: str
    train: Split
    test: Split | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def split(self, which: str) -> Split:
        """The split by name ('train' or 'test')."""
        if which == "train":
            return self.train
        if which == "test":
            if self.test is None:
                raise ConfigError(f"dataset {self.name!r} has no test split; use --split train")
            return self.test
        raise ConfigError(f"--split must be 'train' or 'test', got {which!r}")


@dataclass(frozen=True)
class SourceRequest:
    """A parsed data URI: scheme, path part, options from `?k=v&...`, plus CLI-level options."""

    uri: str
    scheme: str
    path: str
    options: dict[str, str]
    data_dir: str | None = None
    modality: str | None = None
    memory_budget: int | None = None  # bytes of decoded data a source may hold in memory (None: items.default_budget)

    def check_options(self, known: set[str] | frozenset[str]) -> None:
        """A one-line error naming the URI's options that are not in `known`, and the known ones."""
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise ConfigError(f"--data {self.uri}: unknown option(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")

    def whole(self, key: str, default: int, low: int, high: int) -> int:
        """The option `key` as a whole number in [low, high] (`default` when absent); else a one-line error."""
        text = self.options.get(key, str(default))
        if not text.isdigit() or not low <= int(text) <= high:
            raise ConfigError(f"--data {self.uri}: {key}={text!r} is not a whole number between {low} and {high}")
        return int(text)


SourceLoader = Callable[[SourceRequest], Dataset]
sources: Registry[SourceLoader] = Registry("data source")


def parse_uri(uri: str, data_dir: str | None = None, modality: str | None = None,
              memory_budget: int | None = None) -> SourceRequest:
    """Split 'scheme:path?k=v' (or a bare name like 'digits') into its parts."""
    if not uri or not isinstance(uri, str):
        raise ConfigError("--data must be a non-empty string such as 'digits' or 'folder:PATH'")
    head, _, query = uri.partition("?")
    scheme, sep, path = head.partition(":")
    if not sep:
        scheme, path = head, ""
    options = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    return SourceRequest(uri, scheme, path, options, data_dir, modality, memory_budget)


def existing_file(path: str, what: str = "file") -> Path:
    """A Path that exists and is a file, else a DataError naming it."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: {what} not found")
    if not p.is_file():
        raise DataError(f"{p}: not a file")
    if p.stat().st_size == 0:
        raise DataError(f"{p}: empty file (0 bytes)")
    return p


def labelled_files(path_text: str, suffixes: frozenset[str] | set[str], what: str
                   ) -> tuple[list[Path], list[str] | None]:
    """The files under a folder with one of `suffixes` (sorted), and their labels: the name of each file's
    sub-folder when every file lies in one, else None. `what` names the files in errors ("audio files")."""
    root = Path(path_text).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise DataError(f"{root}: no {what} ({', '.join(sorted(suffixes))})")
    parents = [p.parent for p in files]
    labels = [p.relative_to(root).parts[0] for p in parents] if all(p != root for p in parents) else None
    return files, labels


def finite_float32(x: np.ndarray, where: str, expected: str, item: str, values: str) -> np.ndarray:
    """`x` as float32, after checking that its dtype holds numbers ("expected {expected}, got dtype ...") and that
    every row is finite ("{item} i has NaN or infinite {values}"): one-line DataErrors naming `where`."""
    if x.dtype.kind not in "fiu" or x.dtype == np.bool_:
        raise DataError(f"{where}: expected {expected}, got dtype {x.dtype}")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x).reshape(len(x), -1).all(axis=1)
    if bad.any():
        raise DataError(f"{where}: {item} {int(np.argmax(bad))} has NaN or infinite {values}")
    return x


def uint8_pixels(x: np.ndarray, where: str, item: str) -> np.ndarray:
    """Pixels as uint8: uint8 as they are, floats in [0, 1] scaled by 255, floats in [0, 255] rounded; one-line
    DataErrors naming `where` for other dtypes, NaN or infinite pixels (in `item` i) and floats out of range."""
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    x = finite_float32(x, where, "uint8 or float pixels", item, "pixels")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255:
        raise DataError(f"{where}: float pixels must lie in [0, 1] or [0, 255], found [{lo:g}, {hi:g}]")
    return np.round(x * (255.0 if hi <= 1.0 else 1.0)).astype(np.uint8)


def load_npy(path: str, what: str = "array") -> np.ndarray:
    """Load a .npy/.npz array without ever unpickling objects."""
    p = existing_file(path, what)
    with open(p, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK\x03\x04"):
        raise DataError(f"{p}: not a .npy/.npz file (no NumPy header); save the {what} with numpy.save")
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"{p}: cannot read {what} safely: it holds Python objects, which selfsup never "
                            f"unpickles; save a numeric or string array") from None
        raise DataError(f"{p}: not a valid .npy file ({exc})") from None
    except Exception as exc:  # corrupt header, truncated file, ...
        raise DataError(f"{p}: not a valid .npy file ({type(exc).__name__}: {exc})") from None
    if isinstance(arr, np.lib.npyio.NpzFile):
        keys = list(arr.keys())
        if len(keys) != 1:
            raise DataError(f"{p}: .npz must hold exactly one array, found {keys}")
        arr = arr[keys[0]]
    return arr


def load_labels(path: str, n: int) -> np.ndarray:
    """Raw labels from a .npy file, checked to be 1-D with one label per sample."""
    y = load_npy(path, "labels file")
    if y.ndim != 1:
        raise DataError(f"{path}: labels must be a 1-D array, got shape {tuple(y.shape)}")
    if len(y) != n:
        raise DataError(f"{path}: {len(y)} labels for {n} samples")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise DataError(f"{path}: labels contain NaN or infinity")
    return y


@dataclass
class NpyArrays:
    """What an `npy:X.npy?labels=Y.npy&test=XT.npy&test_labels=YT.npy` source names, read and checked."""

    x: np.ndarray
    y: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None


def load_npy_arrays(req: "SourceRequest", what: str) -> NpyArrays:
    """The arrays of an npy: source (every modality reads them alike); `what` names the data in errors."""
    if "test_labels" in req.options and "test" not in req.options:
        raise ConfigError(f"--data {req.uri}: test_labels= needs test= (the test array)")
    x = load_npy(req.path, what)
    y = load_labels(req.options["labels"], len(x)) if "labels" in req.options else None
    x_test = y_test = None
    if "test" in req.options:
        x_test = load_npy(req.options["test"], f"test {what}")
        y_test = load_labels(req.options["test_labels"], len(x_test)) if "test_labels" in req.options else None
    return NpyArrays(x, y, x_test, y_test)


def encode_labels(*ys: np.ndarray | None) -> tuple[list[np.ndarray | None], list[Any]]:
    """Map label values (ints or strings) of several splits to shared codes 0..K-1 (sorted values)."""
    present = [y for y in ys if y is not None]
    if not present:
        return list(ys), []
    classes = np.unique(np.concatenate([np.asarray(y) for y in present]))
    codes = [None if y is None else np.searchsorted(classes, y).astype(np.int64) for y in ys]
    return codes, classes.tolist()
