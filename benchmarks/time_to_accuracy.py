#!/usr/bin/env python
"""Time to accuracy on Fashion-MNIST: how many minutes selfsup's preset needs to reach what LightlySSL 1.6.0
reaches in 10, both measured in this one run on this machine.

Legs, one at a time (no two timed legs overlap), for every seed of --seeds:
  - LightlySSL: benchmarks/lightly_simclr.py in the reference environment (scripts/reference_env.sh), SimCLR as
    the protocol sets it, --lightly-minutes of training; the backbone embeds the training images after every
    --every minutes of training (its clock stops meanwhile);
  - selfsup: `selfsup.train("fashion-mnist", minutes=M, seed=S)` (the preset, nothing else) as a complete run for
    every budget M of --budgets, each with the schedule a user gets from --minutes M.
Every encoder is scored on the validation split of the training images (10k held out, stratified, seed 0; the
50k others fit the probes): weighted kNN (k=200, cosine, T=0.1) and the linear probe (C chosen inside the 50k).
LightlySSL's linear probe runs every --linear-every minutes (a minute of CPU each), its kNN at every embedding. The
test set is never touched. Pre-training sees the 60k training images without labels in both legs.
Result: per leg, mean and std over seeds at every minute; LightlySSL's figures at its last minute are the bar;
selfsup's time to each bar is the smallest budget whose mean reaches it.

    python benchmarks/time_to_accuracy.py --seeds 0,1,2 --budgets 2,4 --lightly-minutes 10 --json
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import lightly_simclr, machine, publish, reference_python  # noqa: E402
from fmnist_budget import score_on_validation, validation_split  # noqa: E402

import selfsup  # noqa: E402
from selfsup.evaluation import knn_accuracy, linear_probe  # noqa: E402
from selfsup.loading import load_dataset  # noqa: E402
from selfsup.presets import PRESETS  # noqa: E402

TARGET_MINUTES = 4.0  # selfsup should reach LightlySSL's 10-minute figures within this many minutes
METRICS = ("val_knn", "val_linear")


def scores(features: np.ndarray, fit_idx: np.ndarray, val_idx: np.ndarray, y: np.ndarray, linear: bool
           ) -> dict[str, Any]:
    """kNN (and with `linear` the linear probe) of fixed features: fit on the fit rows, scored on the validation
    rows."""
    a, b = features[fit_idx], features[val_idx]
    out = {"val_knn": round(knn_accuracy(a, y[fit_idx], b, y[val_idx], k=200, temperature=0.1), 4)}
    if linear:
        lin = linear_probe(a, y[fit_idx], b, y[val_idx])
        out.update(val_linear=round(lin["acc"], 4), linear_C=lin["C"])
    return out


def lightly_leg(python: str, seed: int, minutes: float, every: float, linear_every: float, split: tuple,
                y: np.ndarray, work: Path) -> dict[str, Any]:
    """One LightlySSL run, its backbone embedded every `every` minutes; the embeddings scored (kNN each time, the
    linear probe, a minute of CPU each, every `linear_every` minutes and at the end), each file removed once
    scored."""
    out = work / f"lightly-seed{seed}"
    run = lightly_simclr(python, minutes, seed, out, every=every)
    curve = []
    for mark in run["marks"]:
        path = out / f"minute{mark['minute']:g}.npy"
        linear = mark["minute"] % linear_every == 0 or mark["minute"] == minutes
        curve.append({**mark, **scores(np.load(path), *split, y, linear)})
        path.unlink()
    return {**run, "curve": curve}


def selfsup_leg(seed: int, budget: float, ds, fit, val) -> dict[str, Any]:
    """One complete run of the preset at `budget` minutes, scored on the validation split."""
    run = selfsup.train(ds, minutes=budget, seed=seed)
    return {"minute": budget, "train_seconds": run.summary["train_seconds"], "steps": run.summary["steps"],
            "img_per_s": run.summary["samples_per_s"], "precision": run.resolved.precision,
            **score_on_validation(run, fit, val)}


def mean_std(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in (k for k in METRICS if all(k in r for r in rows)):
        vals = [r[k] for r in rows]
        out[k] = round(float(np.mean(vals)), 4)
        out[f"{k}_std"] = round(float(np.std(vals, ddof=1)), 4) if len(vals) > 1 else 0.0
    return out


def curve_summary(curves: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Mean and std over seeds at every minute that every seed has."""
    minutes = sorted(set.intersection(*({r["minute"] for r in c} for c in curves)))
    return [{"minute": m, **mean_std([next(r for r in c if r["minute"] == m) for c in curves])} for m in minutes]


def time_to(curve: list[dict[str, Any]], bar: dict[str, Any]) -> dict[str, Any]:
    """Per metric, the first minute whose mean reaches the bar (None: not within the budgets measured)."""
    return {k: next((r["minute"] for r in curve if r.get(k, -1) >= bar[k]), None) for k in METRICS}


def markdown(doc: dict[str, Any]) -> str:
    """The two curves side by side (mean +- std over seeds, validation split) and the minutes selfsup needed."""
    lightly = {r["minute"]: r for r in doc["lightly"]["curve"]}
    ours = {r["minute"]: r for r in doc["selfsup"]["curve"]}

    def cell(row: dict[str, Any] | None, key: str) -> str:
        return f"{row[key]:.3f} ± {row[key + '_std']:.3f}" if row and key in row else ""

    lines = ["| minutes of training | LightlySSL 1.6.0 kNN | LightlySSL linear | selfsup kNN | selfsup linear |",
             "|---|---|---|---|---|"]
    for m in sorted(set(lightly) | set(ours)):
        lines.append(f"| {m:g} | {cell(lightly.get(m), 'val_knn')} | {cell(lightly.get(m), 'val_linear')} | "
                     f"{cell(ours.get(m), 'val_knn')} | {cell(ours.get(m), 'val_linear')} |")
    reached, bar = doc["selfsup_minutes_to_bar"], doc["bar"]
    said = {k: "not within the budgets measured" if v is None else f"{v:g} minutes" for k, v in reached.items()}
    rate = np.mean([r["img_per_s"] for r in doc["lightly"]["runs"]])
    every = doc["lightly"]["every"]
    lines += ["", f"LightlySSL: one {doc['lightly']['minutes']:g}-minute run per seed, embedded every {every:g} "
              f"minute{'s' if every != 1 else ''} of training ({rate:.0f} images/s); selfsup: a complete run of the "
              f"preset ({doc['selfsup']['preset']['method']}) "
              f"at each budget. selfsup reaches LightlySSL's {doc['lightly']['minutes']:g}-minute kNN "
              f"({bar['val_knn']:.3f}) in {said['val_knn']} and its linear probe ({bar['val_linear']:.3f}) in "
              f"{said['val_linear']} (target: {doc['target_minutes']:g} minutes or less; mean of seeds "
              f"{', '.join(map(str, doc['seeds']))})."]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--budgets", default="2,4", help="selfsup's --minutes, one complete run each")
    p.add_argument("--lightly-minutes", type=float, default=10.0)
    p.add_argument("--every", type=float, default=2.0, help="minutes of LightlySSL's training between embeddings "
                   "(each embeds the 60k training images: about 50 s on 2 cores, outside its clock)")
    p.add_argument("--linear-every", type=float, default=10.0, help="minutes between LightlySSL's linear probes")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    budgets = [float(b) for b in args.budgets.split(",")]
    python = reference_python()
    ds = load_dataset("fashion-mnist")
    fit, val = validation_split(ds)
    y = np.asarray(ds.train.y)
    from selfsup.evaluation import stratified_validation_split

    split = stratified_validation_split(y, 10000 / len(ds.train), 0)  # the rows of `fit` and `val`
    from lightly_simclr import FMNIST, training_images

    if not np.array_equal(training_images(FMNIST), ds.train.x.numpy()[:, 0]):  # both legs' rows are the same images
        raise SystemExit(f"{FMNIST}: not the images of selfsup's fashion-mnist, in the same order")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="selfsup-tta-") as work:
        lightly = [lightly_leg(python, s, args.lightly_minutes, args.every, args.linear_every, split, y, Path(work))
                   for s in seeds]
    ours = [[selfsup_leg(s, b, ds, fit, val) for b in budgets] for s in seeds]
    lightly_curve = curve_summary([r["curve"] for r in lightly])
    selfsup_curve = curve_summary(ours)
    bar = {k: lightly_curve[-1][k] for k in METRICS}
    reached = time_to(selfsup_curve, bar)
    doc = {
        "benchmark": "time to accuracy, Fashion-MNIST (validation split of the training images)",
        "command": "python benchmarks/time_to_accuracy.py " + " ".join(sys.argv[1:]),
        "protocol": __doc__.split("\n\n")[1].replace("\n", " "),
        "seeds": seeds,
        "lightly": {"script": "benchmarks/lightly_simclr.py", "minutes": args.lightly_minutes, "every": args.every,
                    "linear_every": args.linear_every,
                    "curve": lightly_curve, "runs": lightly},
        "selfsup": {"preset": PRESETS["fashion-mnist"].options, "budgets": budgets, "curve": selfsup_curve,
                    "runs": {str(s): runs for s, runs in zip(seeds, ours)}},
        "bar": {"what": f"LightlySSL's mean at minute {lightly_curve[-1]['minute']:g}", **bar},
        "selfsup_minutes_to_bar": reached,
        "target_minutes": TARGET_MINUTES,
        "meets_target": all(m is not None and m <= TARGET_MINUTES for m in reached.values()),
        "total_seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    summary = (f"LightlySSL {args.lightly_minutes:g} min: kNN {bar['val_knn']}, linear {bar['val_linear']}; selfsup "
               f"reaches them at {reached['val_knn']} / {reached['val_linear']} min")
    publish("time_to_accuracy", doc, args.json, summary)


if __name__ == "__main__":
    main()
