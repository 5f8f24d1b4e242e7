#!/usr/bin/env python
"""Ablations of selfsup's TS2Vec configuration, scored on the training splits only (no test series is embedded or
scored; the loader reads the test file, and pads the training split to its length when lengths differ).

For each variant, problem and seed: pre-train on the training split without labels (`ucr.pretrain`), embed it, and
score the RBF-SVC protocol of TS2Vec (`selfsup.evaluation.svm_protocol`) by repeated stratified k-fold
cross-validation inside the training split (k = 5, fewer when a class has fewer members; 3 repeats): the protocol
is fitted on k-1 folds (choosing its own C there) and scored on the held-out fold. Each variant changes one thing
against the base, which is the paper's configuration (width 64, SWA, timestamp mask 0.5, alpha 0.5, batch 8,
200 iterations, constant learning rate); the table reports the mean CV accuracy per problem, the mean over problems,
the average rank (1 = best) and the training seconds. The encoder is pre-trained on all training series, held-out
folds included (without their labels), so the CV accuracies are optimistic, alike for every variant.

    python benchmarks/ucr_ablation.py --seeds 3 --jobs 2
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ucr import DEFAULT_DATASETS, ROOT, data_uri, machine, pretrain  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "ucr_ablation.json"
BASE = {"encoder_options": {"hidden": 64}, "method_options": {"mask_p": 0.5, "alpha": 0.5, "average": "swa",
                                                             "lr_schedule": "constant"}}
#: one departure each from the base (the paper's configuration)
VARIANTS: dict[str, dict] = {
    "base (paper: width 64)": {},
    "width 32": {"encoder_options": {"hidden": 32}},
    "width 128": {"encoder_options": {"hidden": 128}},
    "no weight averaging": {"method_options": {"average": "none"}},
    "no timestamp mask": {"method_options": {"mask_p": 0.0}},
    "instance term only": {"method_options": {"alpha": 1.0}},
    "temporal term only": {"method_options": {"alpha": 0.0}},
    "2x iterations": {"iters_scale": 2.0},
    "batch 16": {"batch_size": 16},
    "warm-up + cosine lr": {"method_options": {"lr_schedule": "trainer"}, "warmup_fraction": 0.1},
    # combinations, after the single changes
    "no timestamp mask + width 32": {"method_options": {"mask_p": 0.0}, "encoder_options": {"hidden": 32}},
    "no timestamp mask + batch 16": {"method_options": {"mask_p": 0.0}, "batch_size": 16},
}


def merged(variant: dict) -> dict:
    """The base with one variant's overrides (option dictionaries merged key by key)."""
    from selfsup.config import merge_options

    return merge_options(BASE, variant)


def cv_accuracy(z: np.ndarray, y: np.ndarray, seed: int, repeats: int = 3) -> float:
    """Mean held-out accuracy of the SVM protocol under repeated stratified k-fold CV of (z, y)."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    from selfsup.evaluation import svm_protocol

    k = int(min(5, np.unique(y, return_counts=True)[1].min()))
    if k < 2:
        raise SystemExit("a class has a single training series: no stratified cross-validation possible")
    folds = RepeatedStratifiedKFold(n_splits=k, n_repeats=repeats, random_state=seed)
    accs = [svm_protocol(z[tr], y[tr], z[va], y[va], seed=seed)["acc"] for tr, va in folds.split(z, y)]
    return float(np.mean(accs))


def ablation_run(variant: str, name: str, uri: str, seed: int, threads: int, iters: int | None) -> dict:
    import torch

    torch.set_num_threads(threads)
    from selfsup.loading import load_dataset

    ds = load_dataset(uri)
    train = ds.train  # the test split is never embedded nor scored
    run, seconds = pretrain(ds, seed, threads, iters, merged(VARIANTS[variant]))
    z = np.asarray(run.embed(train.x))
    y = np.asarray(train.y)
    return {"variant": variant, "dataset": name, "seed": seed, "cv_acc": cv_accuracy(z, y, seed),
            "train_seconds": round(seconds, 2), "steps": run.summary["steps"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default=DEFAULT_DATASETS)
    p.add_argument("--variants", default=",".join(list(VARIANTS)[:10]),
                   help="comma-separated names of VARIANTS (default: the single changes)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first..first+N-1 (a confirmation on new seeds)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, help="override the pre-training iterations (smoke tests only)")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    args = p.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {', '.join(map(repr, unknown))}; known: {', '.join(VARIANTS)}")
    pairs = [data_uri(d.strip()) for d in args.datasets.split(",") if d.strip()]
    jobs = [(v, name, uri, s, args.threads, args.iters) for v in variants for name, uri in pairs
            for s in range(args.first_seed, args.first_seed + args.seeds)]
    start = time.perf_counter()
    rows: list[dict] = []
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as ex:
        try:
            for future in as_completed([ex.submit(ablation_run, *j) for j in jobs]):
                rows.append(future.result())
                r = rows[-1]
                print(f"{r['variant']:<26}{r['dataset']:<18}seed {r['seed']}  cv {r['cv_acc']:.4f}  "
                      f"{r['train_seconds']:.1f} s", flush=True)
        except BaseException:
            ex.shutdown(wait=False, cancel_futures=True)
            raise
    names = [n for n, _ in pairs]
    table = {v: {n: float(np.mean([r["cv_acc"] for r in rows if r["variant"] == v and r["dataset"] == n]))
                 for n in names} for v in variants}
    from scipy.stats import rankdata

    ranks = np.array([rankdata([-table[v][n] for v in variants]) for n in names])  # problems x variants
    summary = {v: {"cv_acc": {n: round(table[v][n], 4) for n in names},
                   "mean_cv_acc": round(float(np.mean(list(table[v].values()))), 4),
                   "average_rank": round(float(ranks[:, i].mean()), 2),
                   "train_seconds": round(sum(r["train_seconds"] for r in rows if r["variant"] == v), 1),
                   "config": merged(VARIANTS[v])} for i, v in enumerate(variants)}
    doc = {"benchmark": "TS2Vec ablations by cross-validation inside the training splits (test splits unused): "
                        "SVM protocol fitted on k-1 folds, accuracy on the held-out fold, stratified k=min(5, "
                        "smallest class), 3 repeats",
           "command": "python " + " ".join(shlex.quote(a) for a in ["benchmarks/ucr_ablation.py",
                                                                     *(argv if argv is not None else sys.argv[1:])]),
           "seeds": list(range(args.first_seed, args.first_seed + args.seeds)), "base": BASE, "machine": machine(),
           "parallel": {"jobs": args.jobs, "threads_per_job": args.threads},
           "total_seconds": round(time.perf_counter() - start, 1), "variants": summary, "runs": rows}
    from _common import write_result

    write_result(Path(args.out), doc)
    print(f"{'variant':<26}" + "".join(f"{n[:12]:>13}" for n in names) + f"{'mean':>8}{'rank':>7}{'train s':>9}")
    for v, e in summary.items():
        print(f"{v:<26}" + "".join(f"{e['cv_acc'][n]:>13.4f}" for n in names)
              + f"{e['mean_cv_acc']:>8.4f}{e['average_rank']:>7.2f}{e['train_seconds']:>9.1f}")
    print(json.dumps({"out": args.out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
