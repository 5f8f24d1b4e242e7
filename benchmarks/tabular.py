"""Protocol "Tabular, few labels" (../shared/reference/benchmark-protocol.md).

Pre-train one encoder per dataset on all training rows without labels; then for label fractions 1%,
10% and 100% of the training split (stratified draws, fixed seeds, 5 draws for the small fractions)
fit on the labelled rows only and report test accuracy (mean and standard deviation over draws):

- selfsup: frozen encoder features + linear probe (L-BFGS softmax regression on standardised
  features; C chosen on a stratified validation split of the labelled rows, or C = 1 when a class
  has fewer than 10 labelled rows so no validation split is possible);
- raw: the same probe on the raw features (numeric columns z-scored with training statistics, missing
  indicators, one-hot categories);
- hgb: scikit-learn's HistGradientBoostingClassifier on the raw values of the same labelled rows
  (NaN kept, categorical columns native); min_samples_leaf chosen from {5, 20} on the same kind of
  validation split, or min(20, max(1, n // 10)) when none is possible so trees can split at all.

Label draws come from selfsup.evaluation.few_label_splits: round(fraction * n_c) rows of every class c,
at least one. Test splits: LetterRecognition and Satellite keep their UCI splits; scikit-learn's tables
have none, so a fixed stratified 70/30 split (seed 0) is used. Nothing is tuned on test data; the
pre-training configuration was chosen once, for all datasets, on validation splits of training data.

Usage:  python benchmarks/tabular.py [--datasets sklearn:digits mlbench:Satellite ...] [--json]
The mlbench tables come from Debian's r-cran-mlbench (no R needed):
  cd /tmp && apt-get download r-cran-mlbench && dpkg -x r-cran-mlbench_*.deb /tmp/mlbench
then pass --data-dir /tmp/mlbench (or install the package: apt-get install r-cran-mlbench).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import selfsup  # noqa: E402
from _common import machine as common_machine, write_result  # noqa: E402
from selfsup.data import Dataset, Split  # noqa: E402
from selfsup.loading import load_dataset  # noqa: E402
from selfsup.errors import SelfSupError  # noqa: E402
from selfsup.evaluation import few_label_linear, few_label_splits, stratified_validation_split  # noqa: E402
from selfsup.modalities.tabular.preprocess import Preprocessor  # noqa: E402
from selfsup.run import encode_storage  # noqa: E402

DATASETS = ["sklearn:digits", "sklearn:breast_cancer", "mlbench:LetterRecognition", "mlbench:Satellite"]
FRACTIONS = (0.01, 0.1, 1.0)
# The default tabular configuration (chosen on validation splits of the training data; see the README).
# Chosen once, for all tables, on validation splits carved from the training rows (never test rows):
# SCARF (temperature 0.5, corruption rate 0.3: the method's and the modality's defaults), the MLP encoder
# (4 x 256, BatchNorm), quantile scaling, batch 128, AdamW lr 1e-3, 1,500 steps but at most 100 epochs.
CONFIG = {"method": "scarf", "encoder": "mlp", "batch_size": 128, "steps": 1500, "max_epochs": 100}
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "tabular.json"


def pretrain(ds: Dataset, cfg: dict[str, Any], seed: int) -> tuple[Any, float]:
    """Pre-train on the training rows only; labels are removed before the data reaches the trainer."""
    unlabelled = Dataset(ds.name, "tabular", Split(ds.train.x, None), None, {})
    steps_per_epoch = max(1, len(ds.train) // cfg["batch_size"])
    epochs = max(1, min(math.ceil(cfg["steps"] / steps_per_epoch), cfg["max_epochs"]))
    start = time.perf_counter()
    run = selfsup.train(unlabelled, method=cfg["method"], encoder=cfg["encoder"], epochs=epochs,
                        batch_size=cfg["batch_size"], seed=seed, monitor=False, device="cpu")
    return run, time.perf_counter() - start


def hgb_inputs(x: torch.Tensor, spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Raw values for gradient boosting: numeric columns as they are (NaN = missing), categorical columns
    as category indices (missing/unknown -> NaN); and the categorical-column mask."""
    pre = Preprocessor(spec)
    lay = pre.layout
    out = x.double().numpy().copy()
    if lay.categorical_columns:
        slots = pre.slots(x[:, lay.categorical_columns].double()).numpy().astype(np.float64) - 2
        slots[slots < 0] = np.nan
        out[:, lay.categorical_columns] = slots
    cat = np.zeros(x.shape[1], bool)
    cat[lay.categorical_columns] = True
    return out, cat


def hgb_accuracy(xtr, ytr, xte, yte, categorical, seed: int) -> tuple[float, int]:
    """HistGradientBoosting on the labelled rows; min_samples_leaf from {5, 20} on a validation split."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    def fit(x, y, leaf):
        return HistGradientBoostingClassifier(min_samples_leaf=leaf, random_state=seed,
                                              categorical_features=categorical if categorical.any() else None
                                              ).fit(x, y)

    _, counts = np.unique(ytr, return_counts=True)
    if math.floor(0.2 * counts.min()) >= 2:
        fit_idx, val_idx = stratified_validation_split(ytr, 0.2, seed)
        scores = {leaf: fit(xtr[fit_idx], ytr[fit_idx], leaf).score(xtr[val_idx], ytr[val_idx]) for leaf in (5, 20)}
        leaf = max(scores, key=scores.get)
    else:
        leaf = min(20, max(1, len(ytr) // 10))
    return float(fit(xtr, ytr, leaf).score(xte, yte)), leaf


def stats(accs: list[float]) -> dict[str, Any]:
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
            "accs": [round(a, 4) for a in accs]}


def run_dataset(uri: str, data_dir: str | None, cfg: dict[str, Any], draws: int, seed: int,
                log=print) -> dict[str, Any]:
    ds = load_dataset(uri, data_dir, "tabular")
    if ds.test is None or ds.train.y is None:
        raise SelfSupError(f"{uri}: the benchmark needs labels and a test split")
    log(f"{uri}: {len(ds.train)} train / {len(ds.test)} test rows, {ds.train.x.shape[1]} columns, "
        f"{len(ds.info['classes'])} classes; pre-training {cfg['method']} ...")
    run, seconds = pretrain(ds, cfg, seed)
    mod, spec = run.modality, run.spec
    z_tr = encode_storage(run.encoder, mod, spec, ds.train.x)
    z_te = encode_storage(run.encoder, mod, spec, ds.test.x)
    r_tr, r_te = mod.raw_features(ds.train.x, spec), mod.raw_features(ds.test.x, spec)
    h_tr, cat = hgb_inputs(ds.train.x, spec)
    h_te, _ = hgb_inputs(ds.test.x, spec)
    ytr, yte = ds.train.y, ds.test.y
    out: dict[str, Any] = {"n_train": len(ds.train), "n_test": len(ds.test), "n_columns": int(ds.train.x.shape[1]),
                           "n_classes": len(ds.info["classes"]), "test_split": ds.info.get("test_source"),
                           "pretrain_seconds": round(seconds, 1), "pretrain_steps": run.summary["steps"],
                           "pretrain_epochs": run.summary["epochs"], "precision": run.resolved["precision"],
                           "resolved": {k: run.resolved[k] for k in ("encoder", "encoder_options", "method_options",
                                                                     "optimizer", "lr", "weight_decay", "views")},
                           "scaling": spec["scaling"],
                           "fractions": {}}
    for fraction in FRACTIONS:
        seeds = list(range(draws)) if fraction < 1 else [0]
        start = time.perf_counter()
        ssl = few_label_linear(z_tr, ytr, z_te, yte, fractions=(fraction,), seeds=seeds)[str(fraction)]
        raw = few_label_linear(r_tr, ytr, r_te, yte, fractions=(fraction,), seeds=seeds)[str(fraction)]
        hgb, leaves = [], []
        for s, idx in zip(seeds, few_label_splits(ytr, fraction, seeds)):
            acc, leaf = hgb_accuracy(h_tr[idx], ytr[idx], h_te, yte, cat, s)
            hgb.append(acc)
            leaves.append(leaf)
        row = {"n_labels": ssl["n_labels"], "draws": len(seeds),
               "selfsup": {**stats(ssl["accs"]), "C": ssl["C"]}, "raw": {**stats(raw["accs"]), "C": raw["C"]},
               "hgb": {**stats(hgb), "min_samples_leaf": leaves}, "seconds": round(time.perf_counter() - start, 1)}
        out["fractions"][f"{fraction:g}"] = row
        log(f"  {fraction:>5.0%} ({row['n_labels']} labels): selfsup {fmt(row['selfsup'])}  raw {fmt(row['raw'])}  "
            f"hgb {fmt(row['hgb'])}")
    return out


def fmt(s: dict[str, Any]) -> str:
    return f"{s['mean']:.3f}±{s['std']:.3f}"


def markdown(results: dict[str, Any]) -> str:
    lines = ["| dataset | labels | n | selfsup + probe | raw + probe | HistGradientBoosting |",
             "|---|---|---|---|---|---|"]
    for uri, r in results.items():
        for frac, row in r.get("fractions", {}).items():
            best = max(("selfsup", "raw", "hgb"), key=lambda k: row[k]["mean"])
            cells = [f"**{fmt(row[k])}**" if k == best else fmt(row[k]) for k in ("selfsup", "raw", "hgb")]
            lines.append(f"| {uri} | {float(frac):.0%} | {row['n_labels']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(results: dict[str, Any]) -> dict[str, Any]:
    """Where pre-training helps, per fraction: mean test accuracy of selfsup minus raw (same probe) and minus
    HistGradientBoosting, per dataset, and the datasets where selfsup is ahead, behind or level."""
    out: dict[str, Any] = {}
    for frac in (f"{f:g}" for f in FRACTIONS):
        rows = {u: r["fractions"][frac] for u, r in results.items() if frac in r.get("fractions", {})}
        entry: dict[str, Any] = {}
        for other in ("raw", "hgb"):
            diff = {u: round(row["selfsup"]["mean"] - row[other]["mean"], 4) for u, row in rows.items()}
            entry[f"selfsup_minus_{other}"] = diff
            entry[f"selfsup_beats_{other}"] = sorted(u for u, d in diff.items() if d > 0)
            entry[f"{other}_beats_selfsup"] = sorted(u for u, d in diff.items() if d < 0)
            entry[f"level_with_{other}"] = sorted(u for u, d in diff.items() if d == 0)
        out[frac] = entry
    return out


def summary(v: dict[str, Any]) -> list[str]:
    """One plain sentence per label fraction, generated from the verdict."""
    names = lambda us: ", ".join(u.split(":", 1)[1] for u in us) or "none"  # noqa: E731
    return [f"{float(frac):.0%} labels: selfsup + probe ahead of raw + probe on {names(e['selfsup_beats_raw'])}; "
            f"behind on {names(e['raw_beats_selfsup'])}; level on {names(e['level_with_raw'])}. Ahead of "
            f"HistGradientBoosting on {names(e['selfsup_beats_hgb'])}; behind on {names(e['hgb_beats_selfsup'])}."
            for frac, e in v.items()]


def machine() -> dict[str, Any]:
    """_common.machine() (CPU flags, native bf16, versions) and the library versions this benchmark uses."""
    return {**common_machine(), "numpy": np.__version__, "sklearn": __import__("sklearn").__version__,
            "selfsup": selfsup.__version__}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="mlbench tables: cd /tmp && apt-get download r-cran-mlbench && "
                                       "dpkg -x r-cran-mlbench_*.deb /tmp/mlbench, then --data-dir /tmp/mlbench")
    p.add_argument("--datasets", nargs="+", default=DATASETS, help="data URIs (any table the loader reads)")
    p.add_argument("--data-dir", help="folder with the mlbench .rda files or an extracted r-cran-mlbench .deb")
    p.add_argument("--draws", type=int, default=5, help="label draws for the 1%% and 10%% fractions (default 5)")
    p.add_argument("--seed", type=int, default=0, help="pre-training seed")
    p.add_argument("--steps", type=int, default=CONFIG["steps"], help="pre-training steps per dataset")
    p.add_argument("--method", default=CONFIG["method"], help="pre-training method (default: the tabular default)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: small MLPs)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON results file")
    p.add_argument("--json", action="store_true", help="print the JSON results on stdout")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = {**CONFIG, "steps": args.steps, "method": args.method}
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    info = machine()
    start = time.perf_counter()
    for uri in args.datasets:
        try:
            results[uri] = run_dataset(uri, args.data_dir, cfg, args.draws, args.seed, log)
        except SelfSupError as exc:
            skipped[uri] = str(exc)
            log(f"{uri}: skipped: {exc}")
    doc = {
        "protocol": "Tabular, few labels (benchmark-protocol.md)",
        "command": "python " + " ".join([str(Path(sys.argv[0]))] + (argv if argv is not None else sys.argv[1:])),
        "config": cfg, "label_fractions": list(FRACTIONS), "draw_seeds": list(range(args.draws)),
        "pretrain_seed": args.seed,
        "label_draws": "selfsup.evaluation.few_label_splits: round(fraction * n_c) rows per class c, at least 1",
        "probe": "selfsup.evaluation.linear_probe via few_label_linear: C in (1e-3 .. 10) on a stratified 20% "
                 "validation split of the labelled rows; C = 1 when a class has < 10 labelled rows",
        "hgb": "HistGradientBoostingClassifier defaults; min_samples_leaf in {5, 20} on the same validation split, "
               "else min(20, max(1, n // 10))",
        "machine": info, "seconds": round(time.perf_counter() - start, 1), "results": results,
        "verdict": verdict(results), "skipped": skipped, "table_markdown": markdown(results),
    }
    doc["summary"] = summary(doc["verdict"])
    out = write_result(Path(args.out), doc)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(markdown(results))
        print("\n".join(doc["summary"]))
        print(f"wrote {out} ({doc['seconds']:.0f} s)")
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
