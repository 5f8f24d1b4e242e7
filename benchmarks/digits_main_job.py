"""The README main job on the bundled 8 x 8 digits: its recipe chosen on validation, its figures over seeds.

--search: each candidate (a set of `selfsup.train` options) trains on digits' 1,347 training images without labels
(seeds 0, 1, 2) and is scored by 5-fold cross-validation over the training labels (never the test split): weighted
kNN (k = 20, the evaluate protocol's k for digits) and the linear probe (C chosen inside each fit), beside raw
pixels and the random encoder of the same architecture. Results merge into
benchmarks/results/digits_main_job_search.json (run in stages with --only).

--final (default): the main job as the README runs it (`selfsup.train("digits", epochs=E)`: the digits preset of
selfsup.presets, nothing else given) for each seed and precision (fp32 and bf16 forced: one machine gives both),
evaluated by `selfsup.evaluate` on the digits test split (kNN, linear probe, k-means) beside raw pixels and the
random encoder in the same call; means and stds into benchmarks/results/digits_main_job.json.

    python benchmarks/digits_main_job.py --search [--only NAME,NAME]
    python benchmarks/digits_main_job.py --final --seeds 0,1,2 --precisions fp32,bf16
    python benchmarks/digits_main_job.py --readme     # README's figures from the results
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, publish, save  # noqa: E402

import selfsup  # noqa: E402
from selfsup.data import Dataset, Split  # noqa: E402
from selfsup.evaluate import evaluate_run  # noqa: E402
from selfsup.evaluation import knn_accuracy, linear_probe  # noqa: E402
from selfsup.loading import load_dataset  # noqa: E402
from selfsup.presets import PRESETS  # noqa: E402
from selfsup.run import encode_storage, untrained_encoder  # noqa: E402

EPOCHS = 30
BN = {"out_norm": True}
CANDIDATES: dict[str, dict[str, Any]] = {
    "simclr": {"method": "simclr"},
    "simclr-outnorm": {"method": "simclr", "encoder_options": BN},
    "simclr-t0.2": {"method": "simclr", "method_options": {"temperature": 0.2}},
    "simclr-t0.1": {"method": "simclr", "method_options": {"temperature": 0.1}},
    "simclr-t0.2-e60": {"method": "simclr", "method_options": {"temperature": 0.2}, "epochs": 60},
    "simclr-t0.1-e60": {"method": "simclr", "method_options": {"temperature": 0.1}, "epochs": 60},
    "dcl": {"method": "dcl"},
    "dcl-t0.2": {"method": "dcl", "method_options": {"temperature": 0.2}},
    "byol_a": {"method": "byol_a"},
    "byol": {"method": "byol"},
    "byol-outnorm": {"method": "byol", "encoder_options": BN},
    "moco": {"method": "moco"},
    "moco-t0.1": {"method": "moco", "method_options": {"temperature": 0.1}},
    "moco-e60": {"method": "moco", "epochs": 60},
    "simcse": {"method": "simcse"},
    "npid": {"method": "npid"},
    "dclw": {"method": "dclw"},
    "swav": {"method": "swav"},
    "dino": {"method": "dino"},
    "vicreg": {"method": "vicreg"},
    "barlow_twins-outnorm": {"method": "barlow_twins", "encoder_options": BN},
    "wmse": {"method": "wmse"},
    "simclr-b128": {"method": "simclr", "batch_size": 128},
    "simclr-b128-outnorm": {"method": "simclr", "batch_size": 128, "encoder_options": BN},
}


def probe(a: np.ndarray, ya: np.ndarray, b: np.ndarray, yb: np.ndarray) -> dict[str, float]:
    return {"knn": float(knn_accuracy(a, ya, b, yb, k=20)), "linear": float(linear_probe(a, ya, b, yb)["acc"])}


def cross_validated(features: np.ndarray, y: np.ndarray, folds: int = 5) -> dict[str, float]:
    """kNN and linear probe accuracy over the training images by stratified `folds`-fold cross-validation (every
    training image is scored once, by probes fitted on the other folds; the test split is never touched)."""
    from sklearn.model_selection import StratifiedKFold

    scores = [probe(features[a], y[a], features[b], y[b]) for a, b in
              StratifiedKFold(folds, shuffle=True, random_state=0).split(features, y)]
    return {k: round(float(np.mean([s[k] for s in scores])), 4) for k in ("knn", "linear")}


def cross_validated_runs(name: str, options: dict[str, Any], seeds: list[int], data: str = "digits"
                         ) -> list[dict[str, Any]]:
    """Train `options` on the training split of `data` without labels, once a seed, and score each encoder and the
    random encoder of its architecture by cross_validated over the training labels."""
    ds = load_dataset(data)
    x, y = ds.train.x, ds.train.y
    unlabelled = Dataset(ds.name, ds.modality, Split(x, None), None, dict(ds.info))
    per_seed = []
    for seed in seeds:
        start = time.perf_counter()
        run = selfsup.train(unlabelled, seed=seed, monitor=False, **options)
        seconds = time.perf_counter() - start
        rnd = untrained_encoder(run, x, seed=seed + 1000)
        per_seed.append({"seed": seed, **cross_validated(run.embed(x), y),
                         "random": cross_validated(encode_storage(rnd, run.modality, run.spec, x), y),
                         "train_seconds": round(seconds, 1), "precision": run.resolved.precision})
        print(name, json.dumps(per_seed[-1]), file=sys.stderr, flush=True)
    return per_seed


def raw_cross_validated(data: str = "digits") -> dict[str, float]:
    ds = load_dataset(data)
    return cross_validated(ds.train.x.reshape(len(ds.train.x), -1).float().numpy(), ds.train.y)


def search(names: list[str], seeds: list[int]) -> None:
    path = RESULTS / "digits_main_job_search.json"
    doc = json.loads(path.read_text()) if path.exists() else {"candidates": {}}
    doc["raw"] = raw_cross_validated()
    for name in names:
        options = {"epochs": EPOCHS, **CANDIDATES[name]}
        per_seed = cross_validated_runs(name, options, seeds)
        summary = {k: {"mean": round(float(np.mean([s[k] for s in per_seed])), 4),
                       "std": round(float(np.std([s[k] for s in per_seed], ddof=1)), 4)} for k in ("knn", "linear")}
        doc["candidates"][name] = {"options": options, "seeds": per_seed, **summary,
                                   "score": round(summary["knn"]["mean"] + summary["linear"]["mean"], 4)}
        doc.update(protocol="digits: pre-train on the 1,347 training images without labels; kNN (k=20) and linear "
                            "probe by 5-fold cross-validation over the training labels; mean over seeds",
                   score="mean kNN + mean linear", machine=machine())
        save("digits_main_job_search", doc)
    ranked = sorted(doc["candidates"].items(), key=lambda kv: -kv[1]["score"])
    for name, c in ranked:
        print(f"{name:24s} kNN {c['knn']['mean']:.4f}±{c['knn']['std']:.4f} linear {c['linear']['mean']:.4f}"
              f"±{c['linear']['std']:.4f}  (raw {doc['raw']['knn']:.4f} / {doc['raw']['linear']:.4f})")


def final(seeds: list[int], precisions: list[str], epochs: int) -> None:
    rows = []
    for precision in precisions:
        for seed in seeds:
            start = time.perf_counter()
            run = selfsup.train("digits", epochs=epochs, seed=seed, precision=precision, monitor=False)
            seconds = time.perf_counter() - start
            ev = evaluate_run(run, protocols=("knn", "linear", "kmeans"))
            p = ev["protocols"]
            row = {"seed": seed, "precision": precision, "train_seconds": round(seconds, 1),
                   **{f"{name}_{proto}": round(float(p[proto][name]["acc"]), 4)
                      for proto in ("knn", "linear", "kmeans") for name in ("selfsup", "raw", "random_encoder")}}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    summary: dict[str, Any] = {}
    for precision in precisions:
        mine = [r for r in rows if r["precision"] == precision]
        summary[precision] = {k: {"mean": round(float(np.mean([r[k] for r in mine])), 4),
                                  "std": round(float(np.std([r[k] for r in mine], ddof=1)), 4) if len(mine) > 1 else 0.0}
                              for k in mine[0] if k not in ("seed", "precision")}
        for proto in ("knn", "linear"):
            summary[precision][f"{proto}_margin_over_raw"] = round(
                summary[precision][f"selfsup_{proto}"]["mean"] - summary[precision][f"raw_{proto}"]["mean"], 4)
    preset = PRESETS.get("digits")
    result = {"protocol": "the README main job (selfsup.train('digits', epochs=E)), evaluated by selfsup.evaluate on "
                          "the digits test split (450 images): kNN k=20, linear probe, k-means accuracy",
              "command": "python benchmarks/digits_main_job.py " + " ".join(sys.argv[1:]), "epochs": epochs,
              "preset": preset.options if preset else None, "rows": rows, "summary": summary, "machine": machine()}
    publish("digits_main_job", result, False,
            "; ".join(f"{p}: kNN {s['selfsup_knn']['mean']} vs raw {s['raw_knn']['mean']}, linear "
                      f"{s['selfsup_linear']['mean']} vs raw {s['raw_linear']['mean']}" for p, s in summary.items()))


def readme_figures(result: dict[str, Any]) -> str:
    """The README's sentence of the main job's figures, from digits_main_job.json (tests/test_readme.py checks it)."""
    parts = []
    for precision, s in result["summary"].items():
        f = lambda key: f"{s[key]['mean']:.3f} ± {s[key]['std']:.3f}"  # noqa: E731
        parts.append(f"{precision}: kNN {f('selfsup_knn')} against raw pixels {s['raw_knn']['mean']:.3f} and the "
                     f"random encoder {f('random_encoder_knn')}, linear probe {f('selfsup_linear')} against "
                     f"{s['raw_linear']['mean']:.3f} and {f('random_encoder_linear')}, k-means accuracy "
                     f"{f('selfsup_kmeans')} against {s['raw_kmeans']['mean']:.3f}")
    seeds = sorted({r["seed"] for r in result["rows"]})
    return (f"Measured over seeds {', '.join(map(str, seeds))} (mean ± std; "
            f"`benchmarks/results/digits_main_job.json`, written {result['written'][:10]}): " + "; ".join(parts) + ".")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search", action="store_true")
    parser.add_argument("--final", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--readme", action="store_true", help="write the README's figures from the results and exit")
    args = parser.parse_args()
    if args.readme:
        import blocks

        blocks.write("main job figures")
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.search:
        search(args.only.split(",") if args.only else list(CANDIDATES), seeds)
    else:
        final(seeds, args.precisions.split(","), args.epochs)


if __name__ == "__main__":
    main()
