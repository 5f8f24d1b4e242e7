"""`selfsup prepare SOURCE --out DIR`: decode a folder of images once, in parallel, into a memory-mapped cache that
training, embedding and evaluation read as `--data prepared:DIR` (or `selfsup train --cache DIR`).

The cache (format "selfsup-prepared", version 1):
  DIR/SPLIT.x.u8      the samples, uint8, C-order [N, C, S, S] (mapped in place, never unpickled)
  DIR/SPLIT.y.npy     labels (sub-folder names; numpy .npy of strings, read with allow_pickle=False)
  DIR/manifest.json   shapes, dtype, source, size and mode, resize filter, the inputs' list checksum, skipped files
The manifest is written last and atomically: a folder without one is an unfinished preparation, which `prepared:`
refuses and `selfsup prepare` resumes. Work goes in chunks of 512 files; each chunk is decoded by a worker process
straight into its rows of the (pre-allocated) array file, and the chunks done are recorded (atomically, at most
every second and when the run stops) in DIR/.progress.json, so an interrupted run continues where it stopped. A
file that cannot be decoded stops the run with its name, or with `skip_bad` is left out (the arrays are compacted
at the end) and listed in the manifest.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .artifacts import exclusive_lock, write_json
from .data import parse_uri
from .errors import ConfigError, DataError
from .modalities.prepared import FORMAT, MANIFEST, PROGRESS, VERSION, read_manifest

CHUNK = 512  # files per unit of work (and of resumption)
STATE_EVERY_S = 10.0  # the array files are synced and the chunks done recorded at most this often (and at the end)
WRITE_ROWS = 64  # rows per positioned write (a chunk's rows are written in pieces while the next ones decode)


@dataclass
class PreparePlan:
    """What to decode: splits of encoded items with their labels, the sample shape and dtype, and a picklable
    decoder (items.Decoder) that raises DataError on a bad item."""

    source: str
    splits: dict[str, Any]  # name -> modalities.image.encoded.EncodedSplit (items and labels)
    sample_shape: tuple[int, ...]
    dtype: str
    decoder: Callable[[bytes, str], np.ndarray]
    spec: dict[str, Any]  # recorded in the manifest (size, mode, resize filter)


def inputs_checksum(plan: PreparePlan) -> str:
    """SHA-256 over every split's items (names and sizes) and the decoding settings."""
    h = hashlib.sha256(json.dumps({"spec": plan.spec, "shape": plan.sample_shape}, sort_keys=True).encode())
    for name, split in plan.splits.items():
        h.update(f"{name}\0{split.items.fingerprint()}\n".encode())
    return h.hexdigest()


def image_plan(source: str, size: int | None = None, mode: str | None = None, skip_bad: bool = False) -> PreparePlan:
    """The plan for an encoded image source (folder:, tar:, parquet:, hf:), with folder:'s size and mode defaults."""
    from .modalities.image.decode import JPEG_DECODER, RESIZE_FILTER, default_size_and_mode, read_header
    from .modalities.image.encoded import common_options, encoded_splits, header_positions, image_decoder

    req = parse_uri(source)
    splits = encoded_splits(req)  # checks the URI's own options as the source does
    uri_size, uri_mode, max_pixels, _ = common_options(req, set(req.options))
    size, mode = uri_size if size is None else size, mode or uri_mode
    if mode not in (None, "L", "RGB"):
        raise ConfigError(f"--mode {mode!r}: use L (grayscale) or RGB")
    if size is not None and not 4 <= size <= 4096:
        raise ConfigError(f"--size {size}: must lie between 4 and 4096 pixels")
    if size is None or mode is None:  # headers only (no pixels): the same defaults as the source
        items, headers = splits["train"].items, []
        for i in header_positions(len(items)).tolist():
            try:
                headers.append(read_header(items.read(i), max_pixels, items.where(i)))
            except DataError:
                if not skip_bad:
                    raise
        if not headers:
            raise DataError(f"{req.path}: no readable image")
        auto_size, auto_mode = default_size_and_mode(headers)
        size, mode = size or auto_size, mode or auto_mode
    channels = 1 if mode == "L" else 3
    return PreparePlan(req.uri, splits, (channels, size, size), "uint8", image_decoder(size, mode, max_pixels),
                       {"modality": "image", "size": size, "mode": mode, "resize_filter": RESIZE_FILTER,
                        "jpeg_decoder": JPEG_DECODER, "exif_orientation": True})


_PLAN: dict[str, Any] = {}  # a worker's plan and settings, set once when it starts (not sent with every chunk)


def start_worker(plan: PreparePlan, out: Path, skip_bad: bool) -> None:
    from .items import one_thread

    one_thread()
    _PLAN.update(plan=plan, out=out, skip_bad=skip_bad)


def decode_chunk(task: tuple[str, int, int]) -> tuple[str, int, list[tuple[int, str]]]:
    """Worker: decode items [start, end) of a split and write them to their rows of the split's array file with
    positioned writes, WRITE_ROWS rows at a time from a thread of this worker, so that the next rows decode while
    the kernel holds a write back (it throttles writers to the disk's pace). A skipped item's row stays zero until
    compaction. Returns once every row is written; nothing is synced here: the main process syncs the file before it
    records chunks as done."""
    from concurrent.futures import ThreadPoolExecutor

    split, start, end = task
    plan, out_dir, skip_bad = _PLAN["plan"], _PLAN["out"], _PLAN["skip_bad"]
    items = plan.splits[split].items
    rows = np.zeros((end - start, *plan.sample_shape), dtype=plan.dtype)
    bad: list[tuple[int, str]] = []
    fd = os.open(out_dir / f"{split}.x.u8.partial", os.O_WRONLY)
    try:
        with ThreadPoolExecutor(1) as writer:
            pending = []
            for first in range(0, end - start, WRITE_ROWS):
                last = min(first + WRITE_ROWS, end - start)
                for i in range(start + first, start + last):
                    try:
                        rows[i - start] = plan.decoder(items.read(i), items.where(i))
                    except DataError as exc:
                        if not skip_bad:
                            raise
                        bad.append((i, str(exc)))
                pending.append(writer.submit(write_rows, fd, rows[first:last], start + first))
            for done in pending:
                done.result()  # (a failed write raises here)
    finally:
        os.close(fd)
    return split, start, bad


def write_rows(fd: int, rows: np.ndarray, first_row: int) -> None:
    """rows -> their place in the array file (pwrite may write less than asked)."""
    data, offset = memoryview(np.ascontiguousarray(rows)).cast("B"), first_row * rows[0].nbytes
    while data:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


def sync_arrays(out: Path, names) -> None:
    """fsync the splits' array files: chunks are recorded as done only once their rows are on disk."""
    for name in names:
        fd = os.open(out / f"{name}.x.u8.partial", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class PrepareProgress:
    """Items/s and ETA on stderr: a line rewritten in place on a terminal, else a line every 30 s."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, done, enabled
        self.start, self.start_done, self.last = time.perf_counter(), done, 0.0
        self.tty = sys.stderr.isatty()

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if not self.enabled or (now - self.last < (0.5 if self.tty else 30.0) and self.done < self.total):
            return
        self.last = now
        rate = (self.done - self.start_done) / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        line = f"prepare: {self.done}/{self.total} images, {rate:.0f} images/s, ETA {eta:.0f} s"
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)
        if self.tty and self.done >= self.total:
            print(file=sys.stderr)


def prepare(source: str, out: str | Path, size: int | None = None, mode: str | None = None,
            workers: int | None = None, skip_bad: bool = False, progress: bool = True, option: str = "--out"
            ) -> dict[str, Any]:
    """Decode `source` (folder:, tar:, parquet: or hf: images) into the cache `out`, resuming an unfinished one;
    returns the manifest.

    A finished cache of the same inputs and settings is returned as it is; one of other inputs is refused. OUT.lock
    keeps a second `prepare` of the same cache out while this one writes it (`option` names `out` in its message).
    """
    with exclusive_lock(Path(out).expanduser(), option):
        return _prepare(source, out, size, mode, workers, skip_bad, progress)


def _prepare(source: str, out: str | Path, size: int | None, mode: str | None, workers: int | None, skip_bad: bool,
             progress: bool) -> dict[str, Any]:
    from .modalities.image.encoded import ENCODED_SOURCES

    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: must be at least 1")
    if parse_uri(source).scheme not in ENCODED_SOURCES:
        if size is not None or mode is not None:
            raise ConfigError(f"--size and --mode are for images ({', '.join(s + ':' for s in ENCODED_SOURCES)}); "
                              f"{source} is parsed as it is")
        return prepare_parsed(source, Path(out).expanduser())
    plan = image_plan(source, size, mode, skip_bad)
    out = Path(out).expanduser()
    checksum = inputs_checksum(plan)
    manifest = finished_cache(out, checksum)
    if manifest is not None:
        return manifest
    state_path = out / PROGRESS
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    if state is not None and state.get("inputs_sha256") != checksum:
        raise ConfigError(f"--out {out}: holds an unfinished preparation of other inputs or settings; remove it or "
                          "choose another folder")
    if state is None and out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: exists and is not empty; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    if state is None:
        state = {"inputs_sha256": checksum, "done": {name: [] for name in plan.splits},
                 "bad": {name: [] for name in plan.splits}}
        for name, split in plan.splits.items():  # the array files at full size (sparse until written)
            with open(out / f"{name}.x.u8.partial", "wb") as f:
                f.truncate(len(split.items) * int(np.prod(plan.sample_shape)) * np.dtype(plan.dtype).itemsize)
        write_json(state_path, state)
    tasks = [(name, start, min(start + CHUNK, len(split.items)))
             for name, split in plan.splits.items() for start in range(0, len(split.items), CHUNK)
             if start not in state["done"][name]]
    total = sum(len(s.items) for s in plan.splits.values())
    state["resumed_with"] = total - sum(end - start for _, start, end in tasks)  # inputs done before this run
    bar = PrepareProgress(total, state["resumed_with"], progress)
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks) or 1))
    if tasks:
        # fork where there is one: the workers only run Pillow and numpy, and start without re-importing anything
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with context.Pool(workers, initializer=start_worker, initargs=(plan, out, skip_bad)) as pool:
            saved = time.perf_counter()
            try:
                for split, start, bad in pool.imap_unordered(decode_chunk, tasks):
                    state["done"][split].append(start)
                    state["bad"][split].extend(bad)
                    if time.perf_counter() - saved >= STATE_EVERY_S:  # a crash loses at most STATE_EVERY_S of work
                        sync_arrays(out, plan.splits)
                        write_json(state_path, state)
                        saved = time.perf_counter()
                    bar.update(min(CHUNK, len(plan.splits[split].items) - start))
            finally:  # also when a file stops the run or Ctrl-C does: the chunks finished so far are kept
                sync_arrays(out, plan.splits)
                write_json(state_path, state)
    return finish(plan, out, state, checksum)


def finished_cache(out: Path, checksum: str) -> dict[str, Any] | None:
    """The manifest of a finished cache of the same inputs in `out` (None when there is none); a ConfigError when it
    holds other inputs."""
    manifest = read_manifest(out) if out.is_dir() else None
    if manifest is not None and manifest["inputs_sha256"] != checksum:
        raise ConfigError(f"--out {out}: holds a prepared dataset of other inputs or settings ({manifest['source']}, "
                          f"{json.dumps(manifest['spec'])[:120]}); choose another folder")
    return manifest


def write_manifest(out: Path, source: str, spec: dict[str, Any], splits: dict[str, Any], inputs: int, checksum: str,
                   resumed_with: int = 0, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest, written last and atomically (a cache without one is unfinished)."""
    manifest = {"format": FORMAT, "version": VERSION, "source": source, "spec": spec, "splits": splits,
                "inputs": inputs, "inputs_sha256": checksum,
                "skipped": sum(len(s["skipped"]) for s in splits.values()), "resumed_with": resumed_with,
                "created": time.strftime("%Y-%m-%d %H:%M:%S"), **({"info": info} if info is not None else {})}
    write_json(out / MANIFEST, manifest)
    (out / PROGRESS).unlink(missing_ok=True)
    return manifest


def json_safe(info: dict[str, Any]) -> dict[str, Any]:
    """The entries of a dataset's info that JSON can hold."""
    safe = {}
    for key, value in info.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        safe[key] = value
    return safe


def prepare_parsed(source: str, out: Path) -> dict[str, Any]:
    """Series and tables: the source is read (parsed) once by its own reader, and each split's storage array written
    as it is (float32 series with NaN padding, float64 tables) with the modality's record of what the array does not
    hold (a table's schema), labels as codes and the dataset's classes and columns in the manifest."""
    from .loading import load_dataset
    from .modalities import get_modality
    from .storage import TensorStorage

    ds = load_dataset(source)
    modality = get_modality(ds.modality)
    splits = {"train": ds.train, **({"test": ds.test} if ds.test is not None else {})}
    h = hashlib.sha256(json.dumps({"source": source, "modality": ds.modality}).encode())
    for name, split in splits.items():
        if split.mask is not None:
            raise ConfigError(f"{source}: the {name} split carries a validity mask, which a prepared cache cannot hold")
        h.update(json.dumps([name, TensorStorage(split.x).describe(), modality.storage_record.of(split.x)]).encode())
        h.update(b"" if split.y is None else np.ascontiguousarray(split.y).tobytes())
    checksum = h.hexdigest()
    manifest = finished_cache(out, checksum)
    if manifest is not None:
        return manifest
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: exists and is not empty; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    records = {}
    for name, split in splits.items():
        array = np.ascontiguousarray(split.x.numpy())
        final = out / f"{name}.x.{array.dtype.str.lstrip('<>|=')}"
        with open(str(final) + ".partial", "wb") as f:
            for start in range(0, len(array), 4096):
                f.write(array[start:start + 4096].tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(str(final) + ".partial", final)
        labels = None
        if split.y is not None:
            labels = f"{name}.y.npy"
            np.save(out / labels, np.asarray(split.y, dtype=np.int64))
        records[name] = {"file": final.name, "count": len(array), "shape": list(array.shape), "dtype": str(array.dtype),
                         "labels": labels, "skipped": []}
    spec = {"modality": ds.modality, "storage": modality.storage_record.of(ds.train.x)}
    return write_manifest(out, source, spec, records, sum(len(s) for s in splits.values()), checksum,
                          info=json_safe(ds.info))


def finish(plan: PreparePlan, out: Path, state: dict[str, Any], checksum: str) -> dict[str, Any]:
    """Compact away skipped files, write labels, then the manifest (last, atomically)."""
    splits = {}
    row_bytes = int(np.prod(plan.sample_shape)) * np.dtype(plan.dtype).itemsize
    for name, split in plan.splits.items():
        bad_rows = sorted(row for row, _ in state["bad"][name])
        keep = np.setdiff1d(np.arange(len(split.items)), np.array(bad_rows, dtype=np.int64))
        if len(keep) == 0:
            raise DataError(f"{plan.source}: no image of the {name} split could be read")
        partial, final = out / f"{name}.x.u8.partial", out / f"{name}.x.u8"
        # (no partial file: an interrupted earlier finish already compacted and renamed it)
        if bad_rows and partial.exists():  # stream the good rows into a new file
            src = np.memmap(partial, dtype=np.uint8, mode="r", shape=(len(split.items), row_bytes))
            dst = np.memmap(str(partial) + ".compact", dtype=np.uint8, mode="w+", shape=(len(keep), row_bytes))
            for i in range(0, len(keep), 4096):
                dst[i:i + 4096] = src[keep[i:i + 4096]]
            dst.flush()
            del src, dst
            os.replace(str(partial) + ".compact", partial)
        if partial.exists():
            with open(partial, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(partial, final)
        labels = None
        if split.labels is not None:
            labels = f"{name}.y.npy"
            np.save(out / labels, split.labels[keep])
        splits[name] = {"file": final.name, "count": int(len(keep)), "shape": [int(len(keep)), *plan.sample_shape],
                        "dtype": plan.dtype, "labels": labels,
                        "skipped": [{"file": split.items.where(row), "error": error}
                                    for row, error in sorted(state["bad"][name])]}
    return write_manifest(out, plan.source, plan.spec, splits, sum(len(s.items) for s in plan.splits.values()),
                          checksum, state.get("resumed_with", 0))
