"""The `prepared:DIR` data source: a cache written by `selfsup prepare` (selfsup/preparation.py describes the
format), read memory-mapped (the samples are not loaded into memory; the page cache serves them) by the modality its
manifest names."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import Dataset, SourceRequest, Split, sources
from ..errors import ConfigError, DataError
from ..storage import FileRows
from .base import get_modality

FORMAT, VERSION = "selfsup-prepared", 1
MANIFEST, PROGRESS = "manifest.json", ".progress.json"


def read_manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path}: not a selfsup prepared dataset (format {FORMAT!r} expected)")
    return manifest


def open_prepared(directory: str | Path) -> tuple[dict[str, Any], dict[str, tuple[FileRows, np.ndarray | None]]]:
    """The manifest and each split's (mapped sample rows, labels) of a finished cache; refuses an unfinished or
    truncated one in one line."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise DataError(f"{directory}: prepared dataset folder not found")
    manifest = read_manifest(directory)
    if manifest is None:
        hint = " (an interrupted preparation: run selfsup prepare again to finish it)" \
            if (directory / PROGRESS).exists() else ""
        raise DataError(f"{directory}: not a finished prepared dataset, no {MANIFEST}{hint}")
    if manifest.get("version") != VERSION:
        raise DataError(f"{directory}: prepared with format version {manifest.get('version')}, this selfsup reads "
                        f"version {VERSION}; prepare it again")
    arrays = {}
    for name, info in manifest["splits"].items():
        path = directory / info["file"]
        expected = int(np.prod(info["shape"])) * np.dtype(info["dtype"]).itemsize
        actual = path.stat().st_size if path.exists() else -1
        if actual != expected:
            raise DataError(f"{path}: {'missing' if actual < 0 else f'{actual} bytes'}, the manifest says {expected}; "
                            "the cache is damaged, prepare it again")
        x = FileRows(str(path), tuple(info["shape"]), info["dtype"])
        y = np.load(directory / info["labels"], allow_pickle=False) if info["labels"] else None
        arrays[name] = (x, y)
    return manifest, arrays


@sources.register("prepared", "a memory-mapped cache written by `selfsup prepare SOURCE --out DIR`: prepared:DIR",
                  modality="image, timeseries, tabular")
def load_prepared(req: SourceRequest) -> Dataset:
    if not req.path:
        raise ConfigError("--data prepared:DIR needs a folder")
    manifest, arrays = open_prepared(req.path)
    (rows, y), test = arrays["train"], arrays.get("test")
    modality = get_modality(manifest["spec"]["modality"])
    if "info" in manifest:  # parsed series and tables: storage as written, labels as codes, the dataset's info
        record = manifest["spec"].get("storage", {})
        def split(r: Any, labels: Any) -> Split:
            return Split(modality.storage_record.restore(torch.from_numpy(r.array), record), labels)

        ds = Dataset(req.uri, modality.name, split(rows, y), split(*test) if test else None, dict(manifest["info"]))
    else:  # decoded images: validated as arrays, labels as written
        ds = modality.dataset_from_arrays(rows.array, y, req.uri, *((test[0].array, test[1]) if test else (None, None)))
    ds.train.rows = rows  # training reads the file batch by batch (modalities.base.Modality.storage)
    ds.info["prepared"] = {"source": manifest["source"], "spec": manifest["spec"], "skipped": manifest["skipped"]}
    ds.info["data_path"] = (f"memory-mapped: {len(rows.array):,} samples prepared from {manifest['source']}, read "
                            "batch by batch")
    return ds
