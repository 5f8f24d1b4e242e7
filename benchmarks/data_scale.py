#!/usr/bin/env python
"""Data at scale: decoding a folder of JPEGs once (`selfsup prepare`) and training from the memory-mapped cache.

Generates its own data (no download): COUNT JPEG files of varied sizes (side 64-160 px, tinted RGB) made from
Fashion-MNIST's 70k images (mirrored copies beyond 70k), in one folder per class. Then measures, in one run:
  - the baseline: single-process Pillow decoding (open, convert to RGB, bilinear resize to SIZE) of a sample of the
    files, and selfsup's decoder in one process on the same files (JPEG draft mode: what draft alone gives);
  - `selfsup prepare` on every core: images/s over the whole folder, and its ratio to the baseline;
  - training for SECONDS from the cache (prepared:DIR, read batch by batch) and from the same pixels held in
    memory (same model, same seconds, each in its own process): images/s and peak RSS;
  - a 2-process torchrun (gloo) training run from the cache: peak RSS of each process;
  - the same images written as WebDataset-style tar shards (SHARD_SIZE per shard): training streamed from them
    (--memory-budget 0: worker processes decode each batch while the model trains), images/s and peak RSS beside
    the in-memory run, and the path the default memory budget picks for them.
Targets: prepare >= 1.8x the baseline on 2 cores; cache >= 0.95x the in-memory images/s; training's
peak RSS from the cache under 25% of the cache's size and not growing with the number of processes.

    python benchmarks/data_scale.py --count 100000 --json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, publish  # noqa: E402

TRAIN = {"method": "simclr", "encoder": "convnet4", "encoder_options": {"widths": [32, 64, 128, 256]},
         "batch_size": 256, "augmentation": {"size": 64}, "monitor": False, "threads": None}


def write_images(task: tuple) -> None:
    """Worker: write a slice of the generated JPEGs."""
    folder, start, images, labels, seed = task
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i, (image, label) in enumerate(zip(images, labels)):
        side = int(rng.integers(64, 161))
        tint = rng.uniform(0.5, 1.0, 3)
        rgb = (image[..., None].astype(np.float32) * tint).astype(np.uint8)
        picture = Image.fromarray(rgb).resize((side, int(side * rng.uniform(0.8, 1.25))), Image.BICUBIC)
        picture.save(Path(folder) / str(label) / f"{start + i:06d}.jpg", quality=int(rng.integers(80, 96)))


def generate(folder: Path, count: int, workers: int) -> float:
    from selfsup.loading import load_dataset

    start = time.perf_counter()
    ds = load_dataset("fashion-mnist")
    x = np.concatenate([ds.train.x.numpy()[:, 0], ds.test.x.numpy()[:, 0]])
    y = np.concatenate([ds.train.y, ds.test.y])
    reps = -(-count // len(x))
    x = np.concatenate([x if r % 2 == 0 else x[:, :, ::-1] for r in range(reps)])[:count]
    y = np.tile(y, reps)[:count]
    for label in np.unique(y):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
    chunk = 2000
    tasks = [(str(folder), s, x[s:s + chunk], y[s:s + chunk], s) for s in range(0, count, chunk)]
    with Pool(workers) as pool:
        pool.map(write_images, tasks)
    return time.perf_counter() - start


SHARD_SIZE = 1000  # images per tar shard


def write_shards(files: list[Path], folder: Path) -> int:
    """The files as tar shards of SHARD_SIZE samples (KEY.jpg and KEY.cls, WebDataset's layout), in a shuffled
    order (as shards are written for streaming); the number of shards."""
    import io
    import tarfile

    folder.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(1).permutation(len(files))
    for shard, start in enumerate(range(0, len(files), SHARD_SIZE)):
        with tarfile.open(folder / f"shard-{shard:05d}.tar", "w") as tar:
            for i in order[start:start + SHARD_SIZE]:
                tar.add(files[i], arcname=f"{i:06d}.jpg")
                label = files[i].parent.name.encode()
                info = tarfile.TarInfo(f"{i:06d}.cls")
                info.size = len(label)

                tar.addfile(info, io.BytesIO(label))
    return -(-len(files) // SHARD_SIZE)


def baseline_rates(files: list[Path], size: int) -> dict:
    """Images/s of plain Pillow (no draft mode) and of selfsup's decoder, each in this one process."""
    from PIL import Image

    from selfsup.modalities.image.decode import decode

    start = time.perf_counter()
    for path in files:
        with Image.open(path) as im:
            np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))
    pil = len(files) / (time.perf_counter() - start)
    start = time.perf_counter()
    for path in files:
        decode(path, size, "RGB")
    ours = len(files) / (time.perf_counter() - start)
    return {"files": len(files), "pil_single_process_img_per_s": round(pil, 1),
            "selfsup_decode_single_process_img_per_s": round(ours, 1)}


def worker(args: argparse.Namespace) -> None:
    """One training run (also one torchrun process): prints a JSON line with images/s and this process's peak RSS."""
    import torch

    import selfsup
    from selfsup.data import Dataset, Split

    options = {k: v for k, v in TRAIN.items() if v is not None}
    if args.in_memory:  # the same pixels as the cache (the first --limit of them), copied into memory
        cached = selfsup.load_dataset(args.data)
        n = args.limit or len(cached.train)
        data = Dataset("in-memory", "image", Split(cached.train.x[:n].clone(), cached.train.y[:n]))
        del cached
    else:
        data = args.data
    if args.budget is not None:
        options["memory_budget"] = args.budget
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run = selfsup.train(data, minutes=args.seconds / 60, out=args.out, **options)
    rank = int(os.environ.get("RANK", 0))
    Path(f"{args.out}.rank{rank}.json").write_text(json.dumps({"rank": rank, "img_per_s": run.summary["samples_per_s"],
                      "steps": run.summary["steps"], "train_seconds": run.summary["train_seconds"],
                      "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
                      "rss_before_training_gib": round(rss_before / 2**20, 3),
                      "peak_rss_of_a_child_process_gib": round(  # decoding workers (DataLoader) and forked decoders
                          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 3),
                      "torch_threads": torch.get_num_threads(), "samples": len(data.train) if args.in_memory
                      else None, "data_path": run.summary["data_path"]}))


def training_run(data: str, seconds: float, out: Path, in_memory: bool = False, processes: int = 1,
                 limit: int | None = None, budget: float | None = None) -> list[dict]:
    cmd = [sys.executable, __file__, "--worker", "--data", data, "--seconds", str(seconds), "--out", str(out)]
    if budget is not None:
        cmd += ["--budget", str(budget)]
    if in_memory:
        cmd.append("--in-memory")
    if limit:
        cmd += ["--limit", str(limit)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if processes > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_addr", "127.0.0.1", "--master_port", "29577", *cmd[1:]]
        env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"training run failed: {proc.stderr[-3000:]}")
    return [json.loads(Path(f"{out}.rank{rank}.json").read_text()) for rank in range(processes)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--seconds", type=float, default=60.0, help="training time of each training run")
    p.add_argument("--baseline-files", type=int, default=20000, help="files in the single-process baselines (3,000 "
                   "took ~1 s and varied by 30%% between runs)")
    p.add_argument("--work", help="working folder (default: a temporary one, removed at the end)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    p.add_argument("--budget", type=float, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    import selfsup

    work = Path(args.work or tempfile.mkdtemp(prefix="selfsup-data-scale-"))
    cores = os.cpu_count() or 1
    try:
        folder, cache = work / "images", work / "cache"
        generated_s = generate(folder, args.count, cores) if not folder.exists() else None
        files = sorted(folder.rglob("*.jpg"))
        sample = [files[i] for i in np.random.default_rng(0).permutation(len(files))[:args.baseline_files]]
        base = baseline_rates(sample, args.size)
        from selfsup.preparation import image_plan, inputs_checksum

        start = time.perf_counter()  # the part of prepare before any decoding: listing, labels, checksum
        inputs_checksum(image_plan(f"folder:{folder}", args.size, "RGB"))
        setup_s = time.perf_counter() - start
        shutil.rmtree(cache, ignore_errors=True)
        for old_run in work.glob("run-*"):
            shutil.rmtree(old_run, ignore_errors=True) if old_run.is_dir() else old_run.unlink()
        start = time.perf_counter()
        manifest = selfsup.prepare(f"folder:{folder}", cache, size=args.size, mode="RGB", progress=False)
        prepare_s = time.perf_counter() - start
        cache_bytes = sum(f.stat().st_size for f in cache.iterdir())
        data = f"prepared:{cache}"
        from_cache = training_run(data, args.seconds, work / "run-cache")[0]
        in_memory = training_run(data, args.seconds, work / "run-memory", in_memory=True)[0]
        torchrun = training_run(data, args.seconds, work / "run-ddp", processes=2)
        model_only = training_run(data, args.seconds, work / "run-small", in_memory=True, limit=2000)[0]
        shards = work / "shards"
        shard_count = write_shards(files, shards) if not shards.exists() else len(list(shards.glob("*.tar")))
        tar_uri = f"tar:{shards}?size={args.size}&mode=RGB"
        streamed = training_run(tar_uri, args.seconds, work / "run-stream", budget=0)[0]
        start = time.perf_counter()
        default_path = selfsup.load_dataset(tar_uri).info["data_path"]  # what the default budget picks
        default_load_s = time.perf_counter() - start
        prepare_rate = len(files) / prepare_s
        doc = {
            "benchmark": "data at scale: selfsup prepare, training from the memory-mapped cache and streamed from tar "
                         "shards",
            "command": "python benchmarks/data_scale.py " + " ".join(sys.argv[1:]),
            "data": {"images": len(files), "generated_from": "Fashion-MNIST (70k, mirrored beyond), tinted RGB, "
                     "JPEG quality 80-95, sides 64-160 px", "generation_seconds": generated_s,
                     "cache_size": args.size, "cache_gib": round(cache_bytes / 2**30, 3)},
            "decode": {**base, "prepare_workers": cores, "prepare_seconds": round(prepare_s, 1),
                       "prepare_img_per_s": round(prepare_rate, 1),
                       "prepare_setup_seconds": round(setup_s, 1),
                       "decoding_phase_img_per_s": round(len(files) / max(prepare_s - setup_s, 1e-9), 1),
                       "prepare_vs_pil_baseline": round(prepare_rate / base["pil_single_process_img_per_s"], 2),
                       "draft_vs_pil_single_process": round(base["selfsup_decode_single_process_img_per_s"]
                                                            / base["pil_single_process_img_per_s"], 2),
                       "skipped": manifest["skipped"]},
            "training": {"configuration": TRAIN, "seconds": args.seconds, "from_cache": from_cache,
                         "in_memory": in_memory,
                         "model_only": {"what": "the same training on 2,000 images in memory: the model's own memory "
                                        "(activations of a batch, weights, optimiser, torch)", **model_only},
                         "peak_rss_from_cache_above_model_only_gib": round(from_cache["peak_rss_gib"]
                                                                           - model_only["peak_rss_gib"], 3),
                         "cache_vs_memory_img_per_s": round(from_cache["img_per_s"] / in_memory["img_per_s"], 3),
                         "peak_rss_from_cache_vs_cache_size": round(from_cache["peak_rss_gib"] * 2**30 / cache_bytes, 3),
                         "torchrun_2_processes_from_cache": torchrun,
                         "streamed_from_tar_shards": {"shards": shard_count, "images_per_shard": SHARD_SIZE,
                                                      **streamed},
                         "streamed_vs_memory_img_per_s": round(streamed["img_per_s"] / in_memory["img_per_s"], 3),
                         "default_budget_path_for_the_shards": default_path,
                         "default_budget_load_seconds": round(default_load_s, 1)},
            "targets": {"prepare_vs_pil_baseline": 1.8, "cache_vs_memory_img_per_s": 0.95,
                        "peak_rss_from_cache_vs_cache_size": 0.25},
            "machine": machine(),
        }
        summary = (f"prepare {doc['decode']['prepare_img_per_s']} img/s ({doc['decode']['prepare_vs_pil_baseline']}x "
                   f"PIL); training from cache {doc['training']['cache_vs_memory_img_per_s']}x in memory, RSS "
                   f"{doc['training']['peak_rss_from_cache_vs_cache_size']} of the cache; streamed from tar shards "
                   f"{doc['training']['streamed_vs_memory_img_per_s']}x in memory")
        publish("data_scale", doc, args.json, summary)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
