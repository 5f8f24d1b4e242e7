"""Image sources whose samples are encoded files or cells (folder:, tar:, parquet: with an image column, hf:), and the
choice of how training reads them:

- in memory: when the decoded pixels fit the memory budget (`--memory-budget GB`; default half the memory available
  at start), every image is decoded once, in parallel on every core, into memory;
- workers: otherwise training streams the split (items.ItemStorage: shards dealt to the processes, worker processes
  decoding ahead of the loop), and the split's `x` holds EVALUATION_SAMPLES evenly spaced images, decoded, for the
  input statistics and the evaluation after training;
- memory-mapped: `selfsup prepare` (or `train --cache DIR`) decodes once into a cache that `prepared:DIR` maps.
The choice and its reason are in `Dataset.info["data_path"]`, which the run summary shows.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...data import Dataset, SourceRequest
from ...errors import ConfigError, DataError
from ...items import DEFAULT_BUFFER, ItemStorage, Items, available_memory, cpu_count, decode_all, evenly_spaced
from .decode import decode, default_size_and_mode, read_header

EVALUATION_SAMPLES = 10_000  # images of a streamed split decoded for statistics and evaluation
HEADER_SAMPLES = 2_000  # headers read to choose the default size and mode
HEADER_RUNS = 20  # ... in this many evenly spaced runs of consecutive items (a remote shard read in order costs one
                  # request a run, where scattered headers cost one a header)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}  # folder: files
IMAGE_KINDS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "ppm", "pgm")  # tar members, in order
COMMON_OPTIONS = {"size", "mode", "max_pixels", "buffer"}


@dataclass
class EncodedSplit:
    """One split's encoded images and their raw labels (None: unlabelled)."""

    items: Items
    labels: np.ndarray | None


def default_budget() -> int:
    """Half the memory available now."""
    return available_memory() // 2


def decode_item(data: bytes, where: str, size: int, mode: str, max_pixels: int | None) -> np.ndarray:
    return decode(data, size, mode, max_pixels, where)


def image_decoder(size: int, mode: str, max_pixels: int | None):
    """A picklable decoder (items.Decoder) to uint8 [C, size, size]."""
    return functools.partial(decode_item, size=size, mode=mode, max_pixels=max_pixels)


def header_positions(n: int) -> np.ndarray:
    """The items of n whose headers choose the default size and mode: all up to HEADER_SAMPLES, else HEADER_RUNS
    evenly spaced runs of HEADER_SAMPLES // HEADER_RUNS consecutive items."""
    if n <= HEADER_SAMPLES:
        return np.arange(n)
    run = HEADER_SAMPLES // HEADER_RUNS
    return (evenly_spaced(n - run + 1, HEADER_RUNS)[:, None] + np.arange(run)).ravel()


def size_and_mode(items: Items, size: int | None, mode: str | None, max_pixels: int | None) -> tuple[int, str]:
    """The given size and mode, or folder:'s defaults from the headers of the items at header_positions."""
    if size is not None and mode is not None:
        return size, mode
    headers = [read_header(items.read(i), max_pixels, items.where(i)) for i in header_positions(len(items)).tolist()]
    auto_size, auto_mode = default_size_and_mode(headers)
    return size or auto_size, mode or auto_mode


def gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def encoded_image_dataset(req: SourceRequest, splits: dict[str, EncodedSplit], size: int | None, mode: str | None,
                          max_pixels: int | None, buffer: int = DEFAULT_BUFFER, **info: Any) -> Dataset:
    """A Dataset from encoded train (and test) images, decoded in memory or streamed as the memory budget says."""
    from .modality import ImageModality

    size, mode = size_and_mode(splits["train"].items, size, mode, max_pixels)
    decoder = image_decoder(size, mode, max_pixels)
    shape = (1 if mode == "L" else 3, size, size)
    row = int(np.prod(shape))
    total = sum(len(s.items) for s in splits.values()) * row
    budget = req.memory_budget if req.memory_budget is not None else default_budget()
    budget_words = f"--memory-budget {gb(budget)}" if req.memory_budget is not None else \
        f"memory budget {gb(budget)}, half the memory available"
    workers = cpu_count()
    arrays, streams = {}, {}
    for name, split in splits.items():  # train fits when all does; the test split when it does on its own
        if (total if name == "train" else len(split.items) * row) <= budget:
            arrays[name] = (decode_all(split.items, decoder, shape, "uint8", workers=workers), split.labels)
        else:
            keep = evenly_spaced(len(split.items), EVALUATION_SAMPLES)
            arrays[name] = (decode_all(split.items, decoder, shape, "uint8", keep, workers),
                            None if split.labels is None else split.labels[keep])
            streams[name] = ItemStorage(split.items, decoder, shape, "uint8", workers, buffer)
    (x, y), test = arrays["train"], arrays.get("test")
    ds = ImageModality().dataset_from_arrays(x, y, req.uri, *(test if test else (None, None)), **info)
    n = len(splits["train"].items)
    if streams:
        ds.train.stream = streams.get("train")
        if ds.test is not None and "test" in streams:
            ds.test.stream = streams["test"]
        shards = len(np.unique(splits["train"].items.shards))
        ds.info["data_path"] = (f"workers: {n:,} images ({shards:,} shard{'s' * (shards != 1)}) decoded by {workers} "
                                f"worker processes while training ({gb(total)} decoded > {budget_words}); statistics "
                                f"and evaluation use {len(x):,} evenly spaced images")
    else:
        ds.info["data_path"] = (f"memory: {n:,} images decoded in {workers} processes ({gb(total)} <= "
                                f"{budget_words})")
    return ds


def list_images(root: Path) -> list[str]:
    """Image files under `root` (paths as text), sorted by their path components. Regular files only (a FIFO,
    socket or device named like an image would block or fail the decoder), told by the directory entries' types
    (os.scandir: no stat per file except for symbolic links; no Path objects, which cost seconds per million
    files)."""
    found, folders = [], [os.fspath(root)]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):  # as os.walk: linked folders are not entered
                    folders.append(entry.path)
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
                    found.append(entry.path)
    return sorted(found, key=lambda path: path.split(os.sep))


def folder_labels(root: Path, files: list[str]) -> np.ndarray | None:
    """First-level sub-folder names as labels when every image has one, else None."""
    prefix = len(os.path.join(str(root), ""))
    parts = [path[prefix:].split(os.sep, 1) for path in files]
    return np.array([p[0] for p in parts]) if all(len(p) > 1 for p in parts) else None


def positive_int_option(req: SourceRequest, name: str, low: int, high: int) -> int | None:
    """The integer option `name` of a data URI (None when absent), in [low, high], or a one-line ConfigError."""
    if name not in req.options:
        return None
    text = req.options[name]
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"--data {req.uri}: {name}={text!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"--data {req.uri}: {name}={value} must lie between {low} and {high}")
    return value


def common_options(req: SourceRequest, allowed: set[str]) -> tuple[int | None, str | None, int | None, int]:
    """size, mode, max_pixels and buffer of an encoded-image URI, checked; other options must be in `allowed`."""
    req.check_options(COMMON_OPTIONS | allowed)
    mode = req.options.get("mode")
    if mode is not None and mode not in ("L", "RGB"):
        raise ConfigError(f"--data {req.uri}: mode={mode!r}; use mode=L (grayscale) or mode=RGB")
    buffer = positive_int_option(req, "buffer", 1, 2**31) or DEFAULT_BUFFER
    return (positive_int_option(req, "size", 4, 4096), mode, positive_int_option(req, "max_pixels", 1, 2**40),
            buffer)


def tar_splits(req: SourceRequest) -> dict[str, EncodedSplit]:
    """tar:PATTERN[?test=PATTERN&label=EXT]: WebDataset-style shards (a file, folder, glob or {000..009} range); a
    folder with train/ and test/ sub-folders of shards gives both splits."""
    from ...shard_readers import expand_shards, index_tar_shards

    if not req.path:
        raise ConfigError("--data tar:PATTERN needs shards (a .tar file, a folder of them, a glob or a {000..009} range)")
    root = Path(req.path).expanduser()
    patterns = {"train": req.path}
    if root.is_dir() and (root / "train").is_dir() and (root / "test").is_dir():
        patterns = {"train": str(root / "train"), "test": str(root / "test")}
    if "test" in req.options:
        patterns["test"] = req.options["test"]
    label = req.options.get("label")
    splits = {}
    for name, pattern in patterns.items():
        items, labels = index_tar_shards(expand_shards(pattern, (".tar",), "tar shards"), IMAGE_KINDS, label)
        splits[name] = EncodedSplit(items, None if labels is None else np.array(labels))
    return splits


def parquet_modality(req: SourceRequest) -> str:
    """What parquet:PATH reads as, from the first file's schema alone: 'image' when it holds (or `?image=` names) a
    column of encoded images, else 'tabular'."""
    from ...shard_readers import encoded_column, expand_shards, file_schema

    first = expand_shards(req.path, (".parquet",), "Parquet files")[0]
    return "image" if encoded_column(file_schema(first, "parquet"), req.options.get("image"), str(first)) else "tabular"


def column_splits(req: SourceRequest, files: dict[str, list[Path]], kind: str, label_default: str | None
                  ) -> dict[str, EncodedSplit] | None:
    """Image columns of Parquet or Arrow files (None when the train files have no encoded column and none was
    named: not image data)."""
    from ...shard_readers import encoded_column, file_schema, index_columns

    schema = file_schema(files["train"][0], kind)
    column = encoded_column(schema, req.options.get("image"), str(files["train"][0]))
    if column is None:
        return None
    label = req.options.get("label", label_default if label_default in schema.names else None)
    splits = {}
    for name, paths in files.items():
        items, labels = index_columns(paths, kind, column, label)
        splits[name] = EncodedSplit(items, labels)
    return splits


def check_encoded(splits: dict[str, EncodedSplit], what: str) -> None:
    for name, split in splits.items():
        if len(split.items) == 0:
            raise DataError(f"{what}: the {name} split has no samples")


def folder_splits(req: SourceRequest) -> dict[str, EncodedSplit]:
    """folder:PATH: image files under PATH (PATH/train and PATH/test become splits), labelled by first-level
    sub-folder when every image has one."""
    from ...shard_readers import FileItems

    if not req.path:
        raise ConfigError("--data folder:PATH needs a path")
    root = Path(req.path).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    roots = {"train": root / "train", "test": root / "test"} \
        if (root / "train").is_dir() and (root / "test").is_dir() else {"train": root}
    splits = {}
    for name, where in roots.items():
        files = list_images(where)
        if not files:
            raise DataError(f"{where}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        splits[name] = EncodedSplit(FileItems(files), folder_labels(where, files))
    return splits


def parquet_splits(req: SourceRequest) -> dict[str, EncodedSplit] | None:
    """parquet:PATH[?image=COL&label=COL&test=PATH]: PATH a file, folder, glob or range of Parquet files; None when
    they hold no encoded column and none is named (a table)."""
    from ...shard_readers import expand_shards

    if not req.path:
        raise ConfigError("--data parquet:PATH needs a file")
    files = {"train": expand_shards(req.path, (".parquet",), "Parquet files")}
    if "test" in req.options:
        files["test"] = expand_shards(req.options["test"], (".parquet",), "Parquet files")
    return column_splits(req, files, "parquet", "label")


def hf_splits(req: SourceRequest, files: dict[str, tuple[list[Path], dict[str, Any]]] | None = None
              ) -> dict[str, EncodedSplit] | None:
    """hf:DIR: a `datasets` folder written by save_to_disk (train: the `train` split or the only one; test: `test`,
    else `validation`; `files` when hf_files already read them); None when it holds no encoded column (a table)."""
    files = files if files is not None else hf_files(req)
    return column_splits(req, {name: paths for name, (paths, _) in files.items()}, "arrow", "label")


def hf_files(req: SourceRequest) -> dict[str, tuple[list[Path], dict[str, Any]]]:
    """The train (and test) split's Arrow files and features of an hf:DIR source."""
    from ...shard_readers import saved_dataset_train_test

    if not req.path:
        raise ConfigError("--data hf:DIR needs a folder written by datasets' save_to_disk")
    root = Path(req.path).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    return saved_dataset_train_test(root)


ENCODED_SOURCES = {"folder": folder_splits, "tar": tar_splits, "parquet": parquet_splits, "hf": hf_splits}
SOURCE_OPTIONS = {"folder": set(), "tar": {"test", "label"}, "parquet": {"test", "label", "image"},
                  "hf": {"label", "image"}}


def encoded_splits(req: SourceRequest) -> dict[str, EncodedSplit]:
    """The encoded image splits of a folder:, tar:, parquet: or hf: source (what `selfsup prepare` reads)."""
    if req.scheme not in ENCODED_SOURCES:
        raise ConfigError(f"selfsup prepare reads encoded images: {', '.join(s + ':' for s in ENCODED_SOURCES)}; "
                          f"got {req.uri!r}")
    common_options(req, SOURCE_OPTIONS[req.scheme])
    splits = ENCODED_SOURCES[req.scheme](req)
    if splits is None:
        raise DataError(f"{req.path}: no column of encoded images (binary, or a struct with bytes); name one with "
                        "?image=COL")
    return splits


def load_encoded(req: SourceRequest, splits: dict[str, EncodedSplit] | None = None, **info: Any) -> Dataset:
    """The dataset of an encoded image source (`splits` when already indexed)."""
    size, mode, max_pixels, buffer = common_options(req, SOURCE_OPTIONS[req.scheme])
    splits = splits if splits is not None else encoded_splits(req)
    check_encoded(splits, req.uri)
    return encoded_image_dataset(req, splits, size, mode, max_pixels, buffer, **info)
