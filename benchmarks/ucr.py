#!/usr/bin/env python
"""UCR/UEA benchmark against published tables (TS2Vec / T-Loss protocol).

For each data set and seed: pre-train selfsup's default time-series configuration on the training
split without labels, embed train and test (one max-pooled vector per series), and score the RBF-SVC
protocol of TS2Vec / T-Loss (`selfsup.evaluation.svm_protocol`: C by 5-fold CV on train over
{1e-4..1e4, inf}, C=inf when a class has < 5 examples or train has < 50) on the default test split.
Prints a table beside the published TS2Vec and T-Loss figures (reference/anchors.md) with mean and
std over seeds and the wall time per data set; writes JSON (default benchmarks/results/ucr.json).

    python benchmarks/ucr.py --datasets GunPoint,ArrowHead,ItalyPowerDemand,BasicMotions,JapaneseVowels --seeds 3 --json

Any problem bundled with aeon works by name (`ucr:NAME`), or a path to X_TRAIN.ts (X_TEST.ts beside it).

A whole archive: `--archive DIR` runs every problem of a UCR (128) or UEA (30) archive folder in the official layout
(DIR/NAME/NAME_TRAIN.ts and NAME_TEST.ts, or the UCR 2018 DIR/NAME/NAME_TRAIN.tsv and NAME_TEST.tsv with the label
first), appending each finished run to `--results` (JSON lines, default benchmarks/results/archive-DIRNAME.jsonl), so
an interrupted archive resumes where it stopped; `--published CSV` (a column `problem`, one column of accuracies per
method, e.g. TS2Vec,T-Loss) adds the papers' summary: mean accuracy, average rank and wins/ties/losses against each.

    python benchmarks/ucr.py --archive ~/Univariate_ts --published ts2vec_ucr128.csv --seeds 1
Runs go `--jobs` at a time (default 2), each with `--threads` PyTorch threads (default 1): on a small
shared CPU, two single-threaded processes use two cores far better than one two-threaded one.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import quote

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "ucr.json"
DEFAULT_DATASETS = "GunPoint,ArrowHead,ItalyPowerDemand,BasicMotions,JapaneseVowels"

# Published accuracies (reference/anchors.md): T-Loss official results CSVs (K=10); TS2Vec and TNC as
# tabulated in Sun et al., ICLR 2024, Table 14; 1-NN DTW; ROCKET is supervised.
PUBLISHED: dict[str, dict[str, float]] = {
    "ArrowHead": {"T-Loss": 0.766, "TS2Vec": 0.817, "TNC": 0.703, "DTW": 0.703, "ROCKET": 0.814},
    "GunPoint": {"T-Loss": 0.980, "TS2Vec": 0.987, "TNC": 0.967, "DTW": 0.907, "ROCKET": 1.000},
    "ItalyPowerDemand": {"T-Loss": 0.954, "TS2Vec": 0.960, "TNC": 0.928, "DTW": 0.950, "ROCKET": 0.970},
    "BasicMotions": {"T-Loss": 1.000, "DTW": 0.975},
    "JapaneseVowels": {"T-Loss": 0.986, "DTW": 0.949},
}


def data_uri(name: str) -> tuple[str, str]:
    """(display name, data URI) for a bundled problem name or a path to a .ts training file."""
    if name.endswith(".ts") or os.sep in name:
        stem = Path(name).name.rsplit(".", 1)[0]
        for tag in ("_TRAIN", "_train"):
            stem = stem.replace(tag, "")
        return stem, f"ts:{name}"
    return name, f"ucr:{name}"


def warm_imports() -> None:
    """Import once, before any clock starts, what the first training of a process would otherwise import inside it
    (torch's optimisers pull in torch._dynamo, the evaluation scikit-learn): with --jobs 1 the first run of the
    process, whichever implementation it is, would pay a few seconds the others do not."""
    import scipy.stats  # noqa: F401
    import sklearn.svm  # noqa: F401
    import torch._dynamo  # noqa: F401

    import selfsup.api  # noqa: F401


def pretrain(ds, seed: int, threads: int, iters: int | None, variant: dict | None = None):
    """selfsup's default time-series configuration (with `variant`'s overrides: encoder_options, method_options,
    batch_size, iters_scale, other TrainConfig fields) trained on `ds.train` without labels; (run, seconds)."""
    import selfsup
    from selfsup.modalities.timeseries.modality import DEFAULT_CONFIG, ts2vec_schedule
    from selfsup.config import merge_options

    variant = dict(variant or {})
    scale = variant.pop("iters_scale", 1.0)
    cfg = merge_options(DEFAULT_CONFIG, variant)
    sched = ts2vec_schedule(len(ds.train), int(np.prod(ds.train.x.shape)), cfg.pop("batch_size"))
    steps_per_epoch = max(1, len(ds.train) // sched["batch_size"])
    if iters is not None or scale != 1.0:  # shorter schedules for smoke tests, longer ones for ablations
        sched["epochs"] = max(1, round((iters or sched["iterations"]) * scale / steps_per_epoch))
    start = time.perf_counter()
    run = selfsup.train(ds, epochs=sched["epochs"], batch_size=sched["batch_size"], seed=seed, monitor=False,
                        threads=threads, **cfg)
    return run, time.perf_counter() - start


def one_run(name: str, uri: str, seed: int, threads: int, iters: int | None, variant: dict | None = None) -> dict:
    """Pre-train + SVM protocol for one data set and seed; timings in seconds (train_seconds: the training alone)."""
    import torch

    torch.set_num_threads(threads)
    from selfsup.loading import load_dataset
    from selfsup.evaluation import svm_protocol

    warm_imports()
    start = time.perf_counter()
    ds = load_dataset(uri)
    if ds.test is None or ds.train.y is None or ds.test.y is None:
        raise SystemExit(f"{name}: needs labelled train and test splits")
    run, train_s = pretrain(ds, seed, threads, iters, variant)
    z_train, z_test = run.embed(ds.train.x), run.embed(ds.test.x)
    res = svm_protocol(z_train, ds.train.y, z_test, ds.test.y, seed=seed)
    return {"dataset": name, "seed": seed, "acc": res["acc"], "C": res["C"], "steps": run.summary["steps"],
            "train_seconds": round(train_s, 2), "seconds": round(time.perf_counter() - start, 2),
            "n_train": len(ds.train), "n_test": len(ds.test), "shape": list(ds.train.x.shape[1:]),
            "final_loss": run.summary["final_loss"], "precision": run.resolved.precision, "iters": iters,
            "hidden": (variant or {}).get("encoder_options", {}).get("hidden"), "device": run.summary["device"]}


def official_inputs(train, test) -> tuple[np.ndarray, np.ndarray]:
    """Train and test series as the official TS2Vec loaders hand them to its model: [N, T, C] float32, NaN where
    nothing was observed. Multivariate (UEA): each channel standardised with the training split's statistics
    (sklearn's StandardScaler, NaN ignored). Univariate (UCR): left as they are when the archive already z-normalised
    every series, else one z-score with the training split's mean and std (the official loader keeps a list of
    the UCR 2018 problems that are not z-normalised; here the same fact is read from the data)."""
    def steps_last(split) -> np.ndarray:
        x = split.x.numpy().astype(np.float32).transpose(0, 2, 1).copy()
        if split.mask is not None:  # a step marked unobserved is NaN in every channel
            x[~split.mask.numpy().astype(bool)] = np.nan
        return x

    def own_length(x: np.ndarray) -> np.ndarray:
        """Trailing steps no series observes removed (selfsup pads train and test to one length; the official
        loaders keep each split's own)."""
        seen = ~np.isnan(x).all(axis=(0, 2))
        return x[:, : int(np.nonzero(seen)[0].max()) + 1] if seen.any() else x

    xtr, xte = own_length(steps_last(train)), own_length(steps_last(test))
    if xtr.shape[-1] > 1:
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(xtr.reshape(-1, xtr.shape[-1]))
        return tuple(scaler.transform(x.reshape(-1, x.shape[-1])).reshape(x.shape).astype(np.float32)
                     for x in (xtr, xte))
    with np.errstate(all="ignore"):
        means = np.nanmean(xtr[..., 0], axis=1)
        stds = [np.nanstd(xtr[..., 0], axis=1, ddof=ddof) for ddof in (0, 1)]  # the archive used either
    if np.allclose(means, 0, atol=1e-2) and any(np.allclose(sd, 1, atol=1e-2) for sd in stds):
        return xtr, xte
    mean, std = np.nanmean(xtr), np.nanstd(xtr)
    return (xtr - mean) / std, (xte - mean) / std


def official_run(name: str, uri: str, seed: int, threads: int, iters: int | None) -> dict:
    """The same problem and seed with the authors' TS2Vec code (PyPI `ts2vec` 0.1, a copy of zhihanyue/ts2vec run
    unmodified on the CPU): its defaults of train.py (batch 8, lr 1e-3, 320-d, width 64, depth 10, max_train_length
    3000, 200 or 600 iterations), its seeding (init_dl_program's), its max-pooled full-series encoding, and the
    same SVM protocol as selfsup's runs, on the device selfsup's 'auto' picks. train_seconds: the model built and
    fitted, as train.py's "Training time" (less its final save)."""
    import random

    import torch

    torch.set_num_threads(threads)
    try:
        from ts2vec import TS2Vec
    except ImportError:
        raise SystemExit("--peer official needs the authors' code: pip install ts2vec==0.1") from None
    from selfsup.evaluation import svm_protocol
    from selfsup.loading import load_dataset

    warm_imports()
    start = time.perf_counter()
    ds = load_dataset(uri)
    xtr, xte = official_inputs(ds.train, ds.test)
    random.seed(seed)  # as train.py's init_dl_program: random, numpy and torch from seed, seed + 1, seed + 2
    np.random.seed(seed + 1)
    torch.manual_seed(seed + 2)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # where selfsup's device='auto' trains
    t0 = time.perf_counter()  # train.py's "Training time": the model built, then fit
    model = TS2Vec(input_dims=xtr.shape[-1], device=device, batch_size=8, lr=0.001, output_dims=320,
                   max_train_length=3000)
    model.fit(xtr, n_iters=iters)
    train_s = time.perf_counter() - t0
    z_train, z_test = (np.asarray(model.encode(x, encoding_window="full_series")).reshape(len(x), -1)
                       for x in (xtr, xte))
    res = svm_protocol(z_train, ds.train.y, z_test, ds.test.y, seed=seed)
    return {"dataset": name, "seed": seed, "acc": res["acc"], "C": res["C"], "steps": model.n_iters,
            "train_seconds": round(train_s, 2), "seconds": round(time.perf_counter() - start, 2), "iters": iters,
            "peer": "official", "hidden": 64, "device": device}


def effective_options(cfg: dict, hidden: int | None = None) -> dict:
    """The method's and encoder's hyper-parameters as the default configuration resolves them."""
    import inspect

    from selfsup.methods import methods
    from selfsup.modalities.timeseries import encoders

    opts = {"method_options": {**methods.get(cfg["method"]).hyperparameters(), **cfg.get("method_options", {})}}
    if cfg.get("encoder") == "dilated_cnn":
        sig = inspect.signature(encoders.DilatedConvEncoder.__init__)
        opts["encoder_options"] = {k: p.default for k, p in sig.parameters.items()
                                   if p.default is not inspect.Parameter.empty}
        opts["encoder_options"]["hidden"] = hidden or encoders.DEFAULT_HIDDEN
    return opts


def machine() -> dict:
    """_common.machine() (CPU flags, native bf16, versions) and the CPUs this process may use."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import machine as common_machine

    return {**common_machine(), "numpy": np.__version__,
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}


def archive_problems(folder: str) -> list[tuple[str, str]]:
    """(name, data URI) of every problem in an archive folder: DIR/NAME/NAME_TRAIN.ts (+ NAME_TEST.ts), or the UCR 2018
    DIR/NAME/NAME_TRAIN.tsv (+ NAME_TEST.tsv, label first); sorted by name. A folder with neither is skipped."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise SystemExit(f"--archive {folder}: not a folder")
    found = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        name = sub.name
        for suffix in (".ts", ".tsv"):
            train, test = sub / f"{name}_TRAIN{suffix}", sub / f"{name}_TEST{suffix}"
            if train.is_file() and test.is_file():
                quoted = quote(str(test), safe="/")  # option values are URL-decoded: '&', '+' survive
                uri = f"ts:{train}?test={quoted}" if suffix == ".ts" else \
                    f"tscsv:{train}?label=first&header=no&test={quoted}"
                found.append((name, uri))
                break
    if not found:
        raise SystemExit(f"--archive {folder}: no problem folders (NAME/NAME_TRAIN.ts or NAME/NAME_TRAIN.tsv)")
    return found


def read_results(path: Path) -> list[dict]:
    """The runs already appended to a results file (JSON lines). A torn last line (a write interrupted) is dropped
    and the file rewritten without it (atomically), so the next run appends after a whole line."""
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.splitlines()
    rows = []
    for i, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines):
                raise SystemExit(f"--results {path}:{i}: not a JSON line (only the last line may be torn)") from None
    if len(rows) < len(lines) or (rows and not text.endswith("\n")):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        os.replace(tmp, path)
    return rows


def append_result(path: Path, row: dict) -> None:
    """One finished run appended as a JSON line, flushed to disk before the next run starts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_published(path: str) -> dict[str, dict[str, float]]:
    """Per-problem published accuracies from a CSV: a `problem` column, then one column per method (empty: none)."""
    import csv

    try:
        with open(Path(path).expanduser(), newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SystemExit(f"--published {path}: cannot read it ({exc})") from None
    if not rows or "problem" not in rows[0]:
        raise SystemExit(f"--published {path}: needs a header with a 'problem' column and one column per method")
    table: dict[str, dict[str, float]] = {}
    for i, row in enumerate(rows, 2):
        scores = {}
        for method, cell in row.items():
            if method is None or not isinstance(cell, str):
                raise SystemExit(f"--published {path}:{i}: more or fewer cells than the header has")
            if method == "problem" or not cell.strip():
                continue
            try:
                scores[method] = float(cell)
            except ValueError:
                scores[method] = float("nan")
            if not 0 <= scores[method] <= 1:
                raise SystemExit(f"--published {path}:{i}: {method}={cell!r} is not an accuracy in [0, 1]")
        table[row["problem"].strip()] = scores
    return table


def archive_summary(per: dict[str, dict], published: dict[str, dict[str, float]]) -> dict:
    """The papers' summary of an archive: selfsup's mean accuracy, and against each published method on the problems
    both have: the two means, wins/ties/losses (compared at the published 3 decimals) and the average rank among all
    methods on the problems every one of them has (rank 1 best, ties share the mean rank)."""
    ours = {name: round(e["acc_mean"], 3) for name, e in per.items()}
    out: dict = {"problems": len(ours), "mean_acc": round(float(np.mean(list(ours.values()))), 4) if ours else None}
    methods = sorted({m for scores in published.values() for m in scores})
    versus = {}
    for m in methods:
        common = [n for n in ours if m in published.get(n, {})]
        if not common:
            continue
        a = np.array([ours[n] for n in common])
        b = np.array([round(published[n][m], 3) for n in common])  # both sides at the published 3 decimals
        versus[m] = {"problems": len(common), "selfsup_mean": round(float(a.mean()), 4),
                     "published_mean": round(float(b.mean()), 4), "wins": int((a > b).sum()),
                     "ties": int((a == b).sum()), "losses": int((a < b).sum())}
    out["versus"] = versus
    everyone = [n for n in ours if all(m in published.get(n, {}) for m in methods)] if methods else []
    if everyone:
        from scipy.stats import rankdata

        names = ["selfsup", *methods]
        ranks = np.array([rankdata([-ours[n], *(-round(published[n][m], 3) for m in methods)]) for n in everyone])
        out["average_rank"] = {"problems": len(everyone),
                               **{k: round(float(v), 3) for k, v in zip(names, ranks.mean(axis=0))}}
    return out


def seed_summary(rows: list[dict]) -> dict:
    """One implementation's runs of one problem over its seeds: accuracies (mean, population std), C, seconds."""
    accs = np.array([r["acc"] for r in rows])
    return {"acc_mean": round(float(accs.mean()), 4), "acc_std": round(float(accs.std()), 4),
            "accs": [round(float(a), 4) for a in accs], "C": [r["C"] for r in rows],
            "seconds": round(sum(r["seconds"] for r in rows), 1),
            "train_seconds": round(sum(r["train_seconds"] for r in rows), 1), "steps": rows[0]["steps"]}


def comparison_table(shipped: dict, wider: dict) -> str:
    """docs/benchmarks.md's table: selfsup at its shipped width and the official code, measured in one run, the
    papers' figures, the training-time ratios at both widths and selfsup at the official width; per problem the better
    of selfsup and the official code in bold."""
    lines = ["| problem | selfsup (shipped, width {}) | official code | TS2Vec (paper) | T-Loss | training time vs "
             "official: width {} / width {} | selfsup at width {} |".format(
                 shipped["config"]["encoder_options"]["hidden"], shipped["config"]["encoder_options"]["hidden"],
                 wider["config"]["encoder_options"]["hidden"], wider["config"]["encoder_options"]["hidden"]),
             "|---|---|---|---|---|---|---|"]
    for name, d in shipped["datasets"].items():
        ours, official, w = d, d["official"], wider["datasets"][name]
        top = max(ours["acc_mean"], official["acc_mean"])
        cell = lambda r: (f"**{r['acc_mean']:.3f}**" if round(r["acc_mean"], 3) == round(top, 3)  # noqa: E731
                          else f"{r['acc_mean']:.3f}") + f" ± {r['acc_std']:.3f}"
        paper = lambda key: f"{d['published'][key]:.3f}" if key in d["published"] else "-"  # noqa: E731
        channels = f" ({d['shape'][0]} channels)" if d["shape"][0] > 1 else ""
        lines.append(f"| {name}{channels} | {cell(ours)} | "
                     f"{cell(official)} | {paper('TS2Vec')} | {paper('T-Loss')} | "
                     f"{d['versus_official']['train_time_ratio']:.2f} / {w['versus_official']['train_time_ratio']:.2f} "
                     f"| {w['acc_mean']:.3f} ± {w['acc_std']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=DEFAULT_DATASETS, help="comma-separated problem names or X_TRAIN.ts paths")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1), default 3")
    p.add_argument("--json", action="store_true", help="print the JSON document on stdout instead of the table")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="where to write the JSON (default %(default)s)")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel (default 2)")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads per run (default 1)")
    p.add_argument("--iters", type=int, help="override the pre-training iterations (smoke tests only)")
    p.add_argument("--archive", help="a UCR/UEA archive folder: every problem in it (instead of --datasets)")
    p.add_argument("--results", help="JSON-lines file each finished run is appended to; runs already in it are not "
                                     "run again (default with --archive: benchmarks/results/archive-DIRNAME.jsonl)")
    p.add_argument("--published", help="CSV of published per-problem accuracies: problem,METHOD1,METHOD2,...")
    p.add_argument("--peer", choices=["official"], help="also run the authors' TS2Vec code (pip install ts2vec==0.1) "
                                                        "on the same problems and seeds, same protocol, same machine")
    p.add_argument("--hidden", type=int, help="the dilated CNN's width for selfsup's runs (default: the shipped "
                                              "DEFAULT_HIDDEN)")
    args = p.parse_args(argv)

    from selfsup.modalities.timeseries.modality import DEFAULT_CONFIG

    if args.archive:
        pairs = archive_problems(args.archive)
        results_path = Path(args.results) if args.results else \
            DEFAULT_OUT.parent / f"archive-{Path(args.archive).expanduser().resolve().name}.jsonl"
        if args.out == str(DEFAULT_OUT):  # the archive's summary does not replace the five-problem benchmark's
            args.out = str(results_path.with_suffix(".json"))
    else:
        pairs = [data_uri(d.strip()) for d in args.datasets.split(",") if d.strip()]
        results_path = Path(args.results) if args.results else None
    seeds = list(range(args.seeds))
    published = read_published(args.published) if args.published else {}
    # a run counts as done for the same problem, seed and schedule (a smoke run with --iters is not the real one)
    from selfsup.modalities.timeseries.encoders import DEFAULT_HIDDEN

    hidden = args.hidden or DEFAULT_HIDDEN
    # the official code always runs at its width; selfsup's runs count only at the width asked for
    done = [r for r in (read_results(results_path) if results_path else []) if r.get("iters") == args.iters
            and (r.get("peer") or r.get("hidden", DEFAULT_HIDDEN) == hidden)]
    finished = {(r["dataset"], r["seed"], r.get("peer")) for r in done}
    variant = {"encoder_options": {"hidden": hidden}}
    jobs = [(one_run, (name, uri, s, args.threads, args.iters, variant)) for name, uri in pairs for s in seeds
            if (name, s, None) not in finished]
    if args.peer:
        jobs += [(official_run, (name, uri, s, args.threads, args.iters)) for name, uri in pairs for s in seeds
                 if (name, s, args.peer) not in finished]
    if args.jobs > 1 and jobs:  # longest first (cost grows with series length at a fixed number of iterations)
        from selfsup.loading import load_dataset

        length = {name: load_dataset(uri).train.x.shape[-1] for name, uri in pairs}
        jobs.sort(key=lambda j: -length[j[1][0]])
    start = time.perf_counter()
    results: list[dict] = [r for r in done if (r["dataset"], r["seed"]) in {(n, s) for n, _ in pairs for s in seeds}]

    def finish(row: dict) -> None:
        results.append(row)
        if results_path:
            append_result(results_path, row)

    if args.jobs <= 1:
        for fn, job in jobs:
            finish(fn(*job))
    else:
        from concurrent.futures import as_completed

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=ctx) as ex:
            try:
                for future in as_completed([ex.submit(fn, *job) for fn, job in jobs]):
                    finish(future.result())
            except BaseException:  # a failed run or Ctrl-C: the queued runs do not start (finished ones are kept)
                ex.shutdown(wait=False, cancel_futures=True)
                raise
    total = time.perf_counter() - start

    per: dict[str, dict] = {}
    for name, _ in pairs:
        rows = sorted((r for r in results if r["dataset"] == name and not r.get("peer")), key=lambda r: r["seed"])
        accs = np.array([r["acc"] for r in rows])
        pub = {**PUBLISHED.get(name, {}), **published.get(name, {})}
        target_name = "TS2Vec" if "TS2Vec" in pub else ("T-Loss" if "T-Loss" in pub else None)
        entry = {**seed_summary(rows), "n_train": rows[0]["n_train"], "n_test": rows[0]["n_test"],
                 "shape": rows[0]["shape"], "precision": sorted({r["precision"] for r in rows}), "published": pub}
        if target_name:
            # published figures are rounded to 3 decimals (GunPoint's 0.987 is 148/150): compare at that precision
            entry["target"] = {"name": target_name, "acc": pub[target_name],
                               "met": bool(round(float(accs.mean()), 3) >= pub[target_name])}
        peer_rows = sorted((r for r in results if r["dataset"] == name and r.get("peer")), key=lambda r: r["seed"])
        if peer_rows:
            paccs = np.array([r["acc"] for r in peer_rows])
            entry["official"] = seed_summary(peer_rows)
            entry["versus_official"] = {"acc_delta": round(float(accs.mean() - paccs.mean()), 4),
                                        "train_time_ratio": round(sum(r["train_seconds"] for r in rows)
                                                                  / sum(r["train_seconds"] for r in peer_rows), 3)}
        per[name] = entry
    doc = {
        "benchmark": "UCR/UEA classification, TS2Vec/T-Loss protocol (frozen encoder, max-pooled series vector, "
                     "RBF SVC with C by 5-fold CV on train; C=inf if a class has < 5 examples or n_train < 50)",
        "command": "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT),
                                                                  *(argv if argv is not None else sys.argv[1:])]),
        "seeds": seeds, "config": {**DEFAULT_CONFIG, "iterations": "200 (600 beyond 100,000 values; TS2Vec)"
                                   if args.iters is None else args.iters, **effective_options(DEFAULT_CONFIG, args.hidden)},
        "parallel": {"jobs": args.jobs, "threads_per_job": args.threads},
        "machine": machine(), "total_seconds": round(total, 1),
        "seconds_note": "per data set: wall time of pre-training + evaluation summed over its seeds ("
                        + ("in --jobs worker processes, one run at a time in each" if args.jobs > 1 else
                           "the runs one after another in this process") + ")",
        "std_note": "population standard deviation over seeds (ddof=0)",
        "target_note": "target: TS2Vec's published figure where there is one, else T-Loss's; met when the mean "
                       "rounded to the published 3 decimals is at least the figure",
        "datasets": per,
    }
    if args.peer:
        doc["peer"] = {"official": "the authors' TS2Vec code (PyPI ts2vec 0.1, a copy of zhihanyue/ts2vec), run "
                                   "unmodified on the CPU with train.py's defaults (batch 8, lr 1e-3, width 64, depth "
                                   "10, 320-d, 200/600 iterations), inputs as its UCR/UEA loaders give them, scored by "
                                   "the same SVM protocol; train_seconds = its fit() alone",
                       "train_time_ratio_note": "selfsup's training seconds / the official code's, summed over the "
                                                "seeds, in this run on this machine"}
    if args.archive:
        doc["archive"] = {"folder": str(Path(args.archive).expanduser()), "results": str(results_path),
                          "resumed_runs": len(done), **archive_summary(per, published)}
    if args.out:
        from _common import write_result

        write_result(Path(args.out), doc)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"{'dataset':<20}{'selfsup (mean±std)':>20}{'TS2Vec':>9}{'T-Loss':>9}{'target':>9}{'seconds':>10}")
        for name, e in per.items():
            pub = e["published"]
            cell = lambda k: f"{pub[k]:>9.3f}" if k in pub else f"{'-':>9}"  # noqa: E731
            met = "" if "target" not in e else ("  ok" if e["target"]["met"] else "  below")
            print(f"{name:<20}{e['acc_mean']:>13.3f} ± {e['acc_std']:.3f}{cell('TS2Vec')}{cell('T-Loss')}"
                  f"{(e['target']['acc'] if 'target' in e else float('nan')):>9.3f}{e['seconds']:>10.1f}{met}")
            if "official" in e:
                o, v = e["official"], e["versus_official"]
                print(f"{'  official code':<20}{o['acc_mean']:>13.3f} ± {o['acc_std']:.3f}   train "
                      f"{o['train_seconds']:.1f} s vs selfsup {e['train_seconds']:.1f} s: ratio {v['train_time_ratio']}")
        print(f"total {total:.1f} s ({len(seeds)} seeds, {args.jobs} jobs x {args.threads} thread(s)); "
              f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
