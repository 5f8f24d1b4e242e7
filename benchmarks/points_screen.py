"""Screen training options for the point-cloud home benchmark on a validation split of its training clouds.

The benchmark's training clouds (`--data`, by default `shapes?turn=any&n=2000`: 2,000) are split once (fixed
permutation): all but 400 to pre-train on without labels, 400 to score on. For each candidate (a name and
`selfsup.train` options as JSON) and seed: train on the rest, then kNN (k=20, cosine) and linear probe fitted on
the rest's labels and scored on the 400, beside the random encoder of the same architecture and the D2 raw-input
baseline of the same evaluation. The test clouds are never read, so the options chosen here can be measured on
the test split afterwards (digits_methods.py --options).

    python benchmarks/points_screen.py --epochs 20 --seeds 0 --threads 1 \\
        simclr_b64='{"method": "simclr", "batch_size": 64}' point_mae_b32='{"method": "point_mae", "batch_size": 32}'

Results are merged into benchmarks/results/NAME.json (`--name`, by default points_screen), one entry a candidate,
seed and length.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, options_text, result_of, save  # noqa: E402

import selfsup  # noqa: E402
from selfsup.data import Split  # noqa: E402
from selfsup.evaluate import evaluate_run  # noqa: E402
from selfsup.loading import load_dataset  # noqa: E402

NAME = "points_screen"
DATA = "shapes?turn=any&n=2000"
VALIDATION = 400


def validation_dataset(data: str) -> selfsup.Dataset:
    """The training split cut in two: the last VALIDATION clouds of a fixed permutation become the test split."""
    ds = load_dataset(data)
    order = np.random.default_rng(0).permutation(len(ds.train))
    fit, score = order[:-VALIDATION], order[-VALIDATION:]
    return dataclasses.replace(ds, train=Split(ds.train.x[fit], ds.train.y[fit]),
                               test=Split(ds.train.x[score], ds.train.y[score]))


def screen(name: str, options: dict, epochs: int, seed: int, threads: int | None, data: str) -> dict:
    dataset = validation_dataset(data)
    start = time.perf_counter()
    run = selfsup.train(dataset, epochs=epochs, seed=seed, threads=threads, monitor=False, **options)
    seconds = time.perf_counter() - start
    ev = evaluate_run(run, dataset, protocols=("knn", "linear"))
    base = ev["baselines"]
    return {"candidate": name, "options": options, "seed": seed, "epochs": epochs, "encoder": run.resolved.encoder,
            "batch_size": run.resolved.batch_size, "precision": run.resolved.precision,
            "knn": round(ev["knn_acc"], 4), "linear": round(ev["linear_acc"], 4),
            "random_knn": round(base["random_encoder"]["knn"], 4),
            "random_linear": round(base["random_encoder"]["linear"], 4),
            "raw_knn": round(base["raw"]["knn"], 4), "raw_linear": round(base["raw"]["linear"], 4),
            "train_seconds": round(seconds, 1)}


def markdown(doc: dict) -> str:
    """One row a candidate, seed and length: validation kNN and linear probe beside the random encoder and raw input."""
    rows = ["| candidate (options) | epochs | seed | kNN | random encoder | raw input | linear | random encoder | "
            "raw input |", "|---|---|---|---|---|---|---|---|---|"]
    for e in doc["entries"]:
        options = options_text(e["options"])
        rows.append(f"| {e['candidate']} ({options}) | {e['epochs']} | {e['seed']} | " + " | ".join(
            f"{e[k]:.3f}" for k in ("knn", "random_knn", "raw_knn", "linear", "random_linear", "raw_linear")) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="+", metavar="NAME=JSON")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--name", default=NAME, help="result file under benchmarks/results/ (one data set a file)")
    args = parser.parse_args()
    path = RESULTS / f"{args.name}.json"
    for item in args.candidates:
        name, _, options = item.partition("=")
        for seed in (int(s) for s in args.seeds.split(",")):
            entry = screen(name, json.loads(options), args.epochs, seed, args.threads, args.data)
            doc = result_of(path, args.data)
            entries = {f"{e['candidate']}/{e['seed']}/{e['epochs']}": e for e in doc.get("entries", [])}
            entries[f"{name}/{seed}/{args.epochs}"] = {**entry, "machine": machine(args.threads),
                                                        "command": "python benchmarks/points_screen.py "
                                                        + shlex.join(sys.argv[1:])}
            print(json.dumps(entry), flush=True)
            save(args.name, {"data": args.data, "protocol": __doc__.split("\n\n")[1].replace("\n", " "),
                        "entries": sorted(entries.values(), key=lambda e: (e["candidate"], e["seed"], e["epochs"]))})


if __name__ == "__main__":
    main()
