"""Validation evidence for the default tabular recipe: every figure here is measured on a stratified fifth of each
table's training rows (split seed 123; tables under 1,000 training rows average split seeds 123-125), with
pre-training on the other four fifths; test rows are never read.

Three questions, each answered on the four tables of benchmarks/tabular.py (pre-training seed 0, SCARF, 1,500 steps
but at most 100 epochs, batch 128):
- readout: the MLP's embedding as its last block (SCARF's choice) or its four blocks side by side, against the raw
  columns, with the same linear probe at 1%, 10% (3 label draws) and 100% of the fit rows' labels;
- fine-tuning with every label: corrupted rows (the instance views at strength 0.5) or the rows as they are, and at
  most 1,000 or 3,000 steps (AdamW 1e-3, 30 passes over the labelled rows), beside the linear probe;
- trees: HistGradientBoosting on the raw columns alone, beside the whole embedding, or beside its 16 leading
  whitened directions, at 1% and 10% (3 draws).

And with --epoch-caps, the epoch cap of the pre-training (EPOCH_CAPS_PROTOCOL), written to tabular_epochs.json.

Usage:  python benchmarks/tabular_recipes.py --data-dir /tmp/mlbench [--datasets ...]
        python benchmarks/tabular_recipes.py --epoch-caps 100,300 --datasets sklearn:digits sklearn:breast_cancer \
            --out benchmarks/results/tabular_epochs.json
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _common import write_result  # noqa: E402
from selfsup import finetune  # noqa: E402
from selfsup.data import Dataset, Split  # noqa: E402
from selfsup.evaluation import few_label_linear, few_label_splits, gradient_boosting  # noqa: E402
from selfsup.evaluation import stratified_validation_split  # noqa: E402
from selfsup.loading import load_dataset  # noqa: E402
from selfsup.run import encode_storage  # noqa: E402
from selfsup.whitening import fit_whitening  # noqa: E402
from tabular import CONFIG, DATASETS, EPOCH_KEYS, hgb_inputs, machine, pretrain, pretrain_epochs  # noqa: E402

# The recipes are measured with the 100-epoch cap on every table (digits' validation-training part included, as
# tabular_recipes.json records), not with the benchmark's cap below 1,000 rows only.
RECIPES_CONFIG = {**CONFIG, "epoch_cap_below_rows": None}

OUT = ROOT / "benchmarks" / "results" / "tabular_recipes.json"
DRAWS = [0, 1, 2]
SPLIT_SEEDS = (123, 124, 125)
EPOCH_CAPS_PROTOCOL = (
    "Validation evidence for the epoch cap of the default tabular configuration (benchmarks/tabular.py CONFIG: 1,500 "
    "steps of batch 128, at most `max_epochs` epochs): on the tables where the caps compared train differently, the "
    "linear probe on the embedding at 1%, 10% (3 label draws each) and 100% of the labels of a stratified fifth of "
    "the training rows, pre-trained on the other four fifths (split seeds 123-125, pre-training seed 0), beside the "
    "raw columns; a cap is chosen by its mean over the three label fractions. Test rows are never read.")
FINE_TUNING = {"corrupted rows, 1,000 steps": (0.5, 1000), "rows as they are, 1,000 steps": (0.0, 1000),
               "rows as they are, 3,000 steps": (0.0, 3000)}


def probe(z_fit: np.ndarray, y_fit: np.ndarray, z_val: np.ndarray, y_val: np.ndarray) -> dict[str, float]:
    return {f"{f:g}": round(few_label_linear(z_fit, y_fit, z_val, y_val, fractions=(f,),
                                             seeds=DRAWS if f < 1 else [0])[str(f)]["mean"], 4)
            for f in (0.01, 0.1, 1.0)}


def fine_tuned(run: Any, x: torch.Tensor, y: np.ndarray, x_val: torch.Tensor, y_val: np.ndarray) -> dict[str, float]:
    out = {}
    declared = type(run.encoder).fine_tuning
    try:
        for name, (strength, most) in FINE_TUNING.items():
            type(run.encoder).fine_tuning = dataclasses.replace(declared, view_strength=strength, max_steps=most)
            steps = finetune.training_steps(len(y), 30, 100, most)
            model = finetune.finetune_once(run.encoder, run.resolved, x, y, int(y.max()) + 1, steps)
            out[name] = round(finetune.accuracy(model, run.resolved, x_val, y_val), 4)
    finally:
        type(run.encoder).fine_tuning = declared
    return out


def trees(run: Any, x: torch.Tensor, y: np.ndarray, x_val: torch.Tensor, y_val: np.ndarray,
          z: np.ndarray, z_val: np.ndarray) -> dict[str, dict[str, float]]:
    (h, cat), (h_val, _) = hgb_inputs(x, run.spec), hgb_inputs(x_val, run.spec)
    w = fit_whitening(z, 16)
    sets = {"raw": (h, h_val), "raw + embedding": (np.hstack([h, z]), np.hstack([h_val, z_val])),
            "raw + 16 whitened directions": (np.hstack([h, w.transform(z)]), np.hstack([h_val, w.transform(z_val)]))}
    out: dict[str, dict[str, float]] = {}
    for frac in (0.01, 0.1):
        subsets = few_label_splits(y, frac, DRAWS)
        for name, (a, b) in sets.items():
            kinds = np.concatenate([cat, np.zeros(a.shape[1] - len(cat), bool)])
            accs = [gradient_boosting(a[i], y[i], b, y_val, categorical=kinds, seed=s)["acc"] for s, i in
                    zip(DRAWS, subsets)]
            out.setdefault(name, {})[f"{frac:g}"] = round(float(np.mean(accs)), 4)
    return out


def mean_of(docs: list[Any]) -> Any:
    """The leaf-wise mean of equally shaped nested dicts of numbers."""
    if isinstance(docs[0], dict):
        return {k: mean_of([d[k] for d in docs]) for k in docs[0]}
    return round(float(np.mean(docs)), 4)


def run_dataset(uri: str, data_dir: str | None) -> dict[str, Any]:
    """Tables under 1,000 training rows (80 validation rows or fewer) average three validation splits."""
    ds = load_dataset(uri, data_dir, "tabular")
    splits = SPLIT_SEEDS if len(ds.train) < 1000 else SPLIT_SEEDS[:1]
    out = mean_of([one_split(ds, seed) for seed in splits])
    out["validation_split_seeds"] = list(splits)
    print(uri, out, flush=True)
    return out


def one_split(ds: Dataset, split_seed: int) -> dict[str, Any]:
    fit, val = stratified_validation_split(ds.train.y, 0.2, split_seed)
    x, y, x_val, y_val = ds.train.x[fit], ds.train.y[fit], ds.train.x[val], ds.train.y[val]
    part = Dataset(ds.name, "tabular", Split(x, None), None, {})
    runs = {readout: pretrain(part, {**RECIPES_CONFIG, "encoder_options": {"readout": readout}}, 0)[0]
            for readout in ("last", "concat")}
    emb = {k: (encode_storage(r.encoder, r.modality, r.spec, x), encode_storage(r.encoder, r.modality, r.spec, x_val))
           for k, r in runs.items()}
    raw = runs["concat"].modality.raw_features(x, runs["concat"].spec), \
        runs["concat"].modality.raw_features(x_val, runs["concat"].spec)
    out = {"n_fit": len(y), "n_validation": len(y_val),
           "readout": {"raw columns": probe(raw[0], y, raw[1], y_val),
                       **{f"{k} (trained so)": probe(a, y, b, y_val) for k, (a, b) in emb.items()}}}
    out["fine_tuning"] = {"linear probe": out["readout"]["concat (trained so)"]["1"],
                          **fine_tuned(runs["concat"], x, y, x_val, y_val)}
    out["trees"] = trees(runs["concat"], x, y, x_val, y_val, *emb["concat"])
    return out


def epoch_caps_split(ds: Dataset, split_seed: int, caps: list[int]) -> dict[str, Any]:
    fit, val = stratified_validation_split(ds.train.y, 0.2, split_seed)
    x, y, x_val, y_val = ds.train.x[fit], ds.train.y[fit], ds.train.x[val], ds.train.y[val]
    part = Dataset(ds.name, "tabular", Split(x, None), None, {})
    out: dict[str, Any] = {}
    for cap in caps:
        capped = {**CONFIG, "max_epochs": cap, "epoch_cap_below_rows": None}  # the cap on every table
        run, _ = pretrain(part, capped, 0)
        epochs = pretrain_epochs(capped, len(y))
        z = [encode_storage(run.encoder, run.modality, run.spec, v) for v in (x, x_val)]
        out[f"at most {cap} epochs"] = {"epochs": epochs, **probe(z[0], y, z[1], y_val)}
    raw = [run.modality.raw_features(v, run.spec) for v in (x, x_val)]
    out["raw columns"] = probe(raw[0], y, raw[1], y_val)
    return out


def epoch_caps(uri: str, data_dir: str | None, caps: list[int]) -> dict[str, Any]:
    ds = load_dataset(uri, data_dir, "tabular")
    out = {"n_train": len(ds.train), "split_seeds": list(SPLIT_SEEDS),
           "validation": mean_of([epoch_caps_split(ds, s, caps) for s in SPLIT_SEEDS])}
    print(uri, out, flush=True)
    return out


def epochs_markdown(doc: dict[str, Any]) -> str:
    """One row per (table, cap): epochs trained and the validation probe at 10% and 100%, the raw columns beside."""
    lines = ["| validation: linear probe | epochs | 1% | 10% | 100% | mean |", "|---|---|---|---|---|---|"]
    for uri, r in doc["results"].items():
        for row, v in r["validation"].items():
            epochs = f"{v['epochs']:g}" if "epochs" in v else "-"
            accs = [v[f] for f in ("0.01", "0.1", "1")]
            lines.append(f"| {uri.split(':', 1)[1]}, {row} | {epochs} | " + " | ".join(f"{a:.3f}" for a in accs)
                         + f" | {np.mean(accs):.3f} |")
    return "\n".join(lines)


def markdown(doc: dict[str, Any]) -> str:
    """Three small tables (readout, fine-tuning, trees), one row per table, rendered into docs/benchmarks.md."""
    res = doc["results"]
    name = lambda uri: uri.split(":", 1)[1]  # noqa: E731
    first = next(iter(res.values()))
    lines = ["| validation: linear probe | " + " | ".join(f"{k} {f}" for k in first["readout"] for f in
                                                          ("1%", "10%", "100%")) + " |",
             "|---|" + "---|" * (3 * len(first["readout"]))]
    lines += [f"| {name(u)} | " + " | ".join(f"{v:.3f}" for k in r["readout"] for v in r["readout"][k].values()) + " |"
              for u, r in res.items()]
    lines += ["", "| validation: every label | " + " | ".join(first["fine_tuning"]) + " |",
              "|---|" + "---|" * len(first["fine_tuning"])]
    lines += [f"| {name(u)} | " + " | ".join(f"{v:.3f}" for v in r["fine_tuning"].values()) + " |"
              for u, r in res.items()]
    lines += ["", "| validation: trees | " + " | ".join(f"{k} {f}" for k in first["trees"] for f in ("1%", "10%"))
              + " |", "|---|" + "---|" * (2 * len(first["trees"]))]
    lines += [f"| {name(u)} | " + " | ".join(f"{v:.3f}" for k in r["trees"] for v in r["trees"][k].values()) + " |"
              for u, r in res.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=DATASETS)
    p.add_argument("--data-dir")
    p.add_argument("--epoch-caps", metavar="A,B", help="instead: compare these caps on the pre-training epochs "
                   "(1,500 steps, at most CAP epochs) on the tables where they differ, three splits each")
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--readme", action="store_true", help="render the tables into docs/benchmarks.md from --out")
    args = p.parse_args(argv)
    if args.readme:
        import blocks
        blocks.write("tabular recipes")
        blocks.write("tabular epochs")
        return 0
    torch.set_num_threads(1)
    start = time.perf_counter()
    doc: dict[str, Any] = {"command": "python " + " ".join([str(Path(sys.argv[0]))] +
                                                           (argv if argv is not None else sys.argv[1:]))}
    if args.epoch_caps:
        caps = [int(c) for c in args.epoch_caps.split(",")]
        results = {uri: epoch_caps(uri, args.data_dir, caps) for uri in args.datasets}
        doc.update(protocol=EPOCH_CAPS_PROTOCOL, config={k: v for k, v in CONFIG.items() if k not in EPOCH_KEYS},
                   caps=caps)
    else:
        results = {uri: run_dataset(uri, args.data_dir) for uri in args.datasets}
        doc.update(protocol=__doc__.split("\n\n")[0], config=RECIPES_CONFIG, draws=DRAWS)
    doc.update(machine=machine(), seconds=round(time.perf_counter() - start, 1), results=results)
    write_result(Path(args.out), doc)
    print((epochs_markdown if args.epoch_caps else markdown)(doc))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
