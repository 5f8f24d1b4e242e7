"""Every image method with its defaults on the bundled 8 x 8 digits: does training beat the untrained encoder?

For every method of the registry that trains on images (compatibility.supported_pairs), `selfsup.train("digits",
method=M, epochs=E)` with nothing else given (the method's default encoder, views, optimiser and batch; the digits
source's view options), then `selfsup.evaluate` on the digits test split: kNN (k=20, cosine) and the linear probe
(C chosen on a validation split of the training images), beside the random encoder of the same architecture and
raw pixels, measured in the same call. Results are merged into benchmarks/results/digits_methods.json, one entry a
method and seed (run methods in stages with --only); `summary` holds each method's mean and std over its seeds, and
whether the means of both probes beat the random encoder's (450 test images: one image is 0.22 points, so one
seed cannot tell a method from its random encoder within a point).

`--data URI --name NAME` runs the same protocol on another home set, for the methods of its modality (e.g. the
series methods on a UCR problem, `--epochs 0` keeping the length the method and data choose themselves) into
benchmarks/results/NAME.json.

`--validate NAME=JSON ...`: a method's default is changed on validation only. Each candidate (train options as
JSON: method, method_options, encoder_options, ...) trains on digits' training images without labels at the
same epochs and is scored by 5-fold cross-validated kNN and linear probe over the training labels (the test split is
never touched), beside the random encoder of its architecture; into
benchmarks/results/digits_methods_validation.json (with `--data URI --name NAME`: that set's training split, into
NAME_validation.json).

    python benchmarks/digits_methods.py --epochs 30 [--only simclr,dino] [--seeds 0] [--threads 1]
    python benchmarks/digits_methods.py --validate 'rotnet={"method": "rotnet"}' --seeds 0,1,2
    python benchmarks/digits_methods.py --data ucr:GunPoint --name series_gunpoint --epochs 0 --only ts2vec
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, options_text, result_of, save  # noqa: E402

import selfsup  # noqa: E402
from selfsup.compatibility import supported_pairs  # noqa: E402
from selfsup.evaluate import evaluate_run  # noqa: E402
from selfsup.loading import load_dataset  # noqa: E402

NAME = "digits_methods"


def modality_methods(modality: str) -> list[str]:
    return sorted(m for m, d in supported_pairs() if d == modality)


def measure(method: str, epochs: int | None, seed: int, threads: int | None, data: str = "digits",
            options: dict | None = None) -> dict:
    start = time.perf_counter()
    run = selfsup.train(data, method=method, epochs=epochs, seed=seed, threads=threads, monitor=False,
                        **(options or {}))
    train_seconds = time.perf_counter() - start
    ev = evaluate_run(run, protocols=("knn", "linear"))
    base = ev["baselines"]
    entry = {"method": method, "seed": seed, "epochs": epochs or round(run.summary["epochs"], 1), "encoder": run.resolved.encoder,
             "precision": run.resolved.precision, "knn": round(ev["knn_acc"], 4),
             "linear": round(ev["linear_acc"], 4),
             "random_knn": round(base["random_encoder"]["knn"], 4),
             "random_linear": round(base["random_encoder"]["linear"], 4),
             "raw_knn": round(base["raw"]["knn"], 4), "raw_linear": round(base["raw"]["linear"], 4),
             "train_seconds": round(train_seconds, 1), **({"options": options} if options else {})}
    entry["beats_random"] = entry["knn"] > entry["random_knn"] and entry["linear"] > entry["random_linear"]
    return entry


def summarise(entries: list[dict]) -> dict[str, dict]:
    """Per method: mean and std over its seeds of kNN, linear and the random encoder's, and whether both means
    beat the random encoder's."""
    out: dict[str, dict] = {}
    for method in sorted({e["method"] for e in entries}):
        mine = [e for e in entries if e["method"] == method]
        row: dict = {"seeds": [e["seed"] for e in mine], "epochs": sorted({e["epochs"] for e in mine})}
        for key in ("knn", "linear", "random_knn", "random_linear"):
            values = np.array([e[key] for e in mine])
            row[key] = {"mean": round(float(values.mean()), 4),
                        "std": round(float(values.std(ddof=1)), 4) if len(values) > 1 else 0.0}
        row["beats_random"] = all(row[k]["mean"] > row[f"random_{k}"]["mean"] for k in ("knn", "linear"))
        out[method] = row
    return out


def markdown(doc: dict) -> str:
    """A result file of this script as a table: per method, kNN and linear (mean ± std over its seeds) beside the
    random encoder's and raw input's of the same runs."""
    def cell(values: list[float], bold: bool = False) -> str:
        text = f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.3f}"
        return f"**{text}**" if bold else text

    rows = ["| method (seeds, epochs) | kNN | random encoder | raw input | linear | random encoder | raw input |",
            "|---|---|---|---|---|---|---|"]
    for method in sorted({e["method"] for e in doc["entries"]}):
        mine = [e for e in doc["entries"] if e["method"] == method]
        seeds = ", ".join(str(e["seed"]) for e in mine)
        epochs = "/".join(str(x) for x in sorted({e["epochs"] for e in mine}))
        options = sorted({options_text(e.get("options", {})) for e in mine} - {""})
        row = [f"{method} ({seeds}; {epochs}{''.join('; ' + o for o in options)})"]
        for probe in ("knn", "linear"):
            row += [cell([e[probe] for e in mine], bold=True), cell([e[f"random_{probe}"] for e in mine]),
                    cell([e[f"raw_{probe}"] for e in mine])]
        rows.append("| " + " | ".join(row) + " |")
    return "\n".join(rows)


def validation_markdown(doc: dict) -> str:
    """The candidates of a NAME_validation.json (validate): cross-validated kNN and linear probe beside the random
    encoder of each run, mean ± std over its seeds."""
    def cell(row: dict, key: str) -> str:
        return f"{row[key]['mean']:.3f} ± {row[key]['std']:.3f}"

    rows = ["| candidate (options; epochs; seeds) | kNN | random encoder | linear | random encoder |",
            "|---|---|---|---|---|"]
    for name, row in doc["candidates"].items():
        options = options_text(row["options"])
        seeds = ", ".join(str(s["seed"]) for s in row["seeds"])
        rows.append(f"| {name} ({options}; {row['epochs']}; {seeds}) | {cell(row, 'knn')} | "
                    f"{cell(row, 'random_knn')} | {cell(row, 'linear')} | {cell(row, 'random_linear')} |")
    return "\n".join(rows)


def validate(candidates: dict[str, dict], epochs: int, seeds: list[int], threads: int | None, data: str = "digits",
             name: str = NAME) -> None:
    """Score each candidate's options by cross-validation over the training labels of `data` (see the module's doc)
    into benchmarks/results/NAME_validation.json."""
    from digits_main_job import cross_validated_runs, raw_cross_validated

    path = RESULTS / f"{name}_validation.json"
    raw = raw_cross_validated(data)
    for candidate, options in candidates.items():
        per_seed = cross_validated_runs(candidate, {"epochs": epochs, "threads": threads, **options}, seeds, data)
        row: dict = {"options": options, "epochs": epochs, "seeds": per_seed}
        for key, pick in (("knn", lambda s: s["knn"]), ("linear", lambda s: s["linear"]),
                          ("random_knn", lambda s: s["random"]["knn"]),
                          ("random_linear", lambda s: s["random"]["linear"])):
            values = np.array([pick(s) for s in per_seed])
            row[key] = {"mean": round(float(values.mean()), 4),
                        "std": round(float(values.std(ddof=1)), 4) if len(values) > 1 else 0.0}
        row["beats_random"] = all(row[k]["mean"] > row[f"random_{k}"]["mean"] for k in ("knn", "linear"))
        # read again before each write: another process may have added its candidates meanwhile
        doc = json.loads(path.read_text()) if path.exists() else {"candidates": {}}
        doc["raw"] = raw
        doc["candidates"][candidate] = {**row, "machine": machine(threads),
                                        "command": "python benchmarks/digits_methods.py " + " ".join(sys.argv[1:])}
        doc["protocol"] = (f"{data}: pre-train on the training split without labels; kNN (k=20) and linear probe by "
                           "5-fold cross-validation over the training labels, beside the random encoder of the same "
                           "architecture; mean and std over seeds")
        save(f"{name}_validation", doc)
        print(f"{candidate:28s} kNN {row['knn']['mean']:.4f}±{row['knn']['std']:.4f} "
              f"(random {row['random_knn']['mean']:.4f})"
              f"  linear {row['linear']['mean']:.4f}±{row['linear']['std']:.4f} (random "
              f"{row['random_linear']['mean']:.4f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30, help="0: the method's and data's own default length")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--only", default="", help="comma-separated methods (default: every method of the data's "
                                                   "modality)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", default="digits", help="the home data set (default digits)")
    parser.add_argument("--name", default=NAME, help="result file benchmarks/results/NAME.json")
    parser.add_argument("--options", default="{}", help="selfsup.train options (JSON) for every method, e.g. "
                        "chosen on a validation split (points_screen.py)")
    parser.add_argument("--validate", nargs="+", metavar="NAME=JSON", help="score these candidates' train options "
                        "by cross-validation over the training labels (see the module's doc)")
    args = parser.parse_args()
    if args.validate:
        candidates = {}
        for item in args.validate:
            name, _, options = item.partition("=")
            candidates[name] = json.loads(options)
        validate(candidates, args.epochs, [int(s) for s in args.seeds.split(",")], args.threads, args.data, args.name)
        return
    methods = args.only.split(",") if args.only else modality_methods(load_dataset(args.data).modality)
    path = RESULTS / f"{args.name}.json"
    for method in methods:
        for seed in (int(s) for s in args.seeds.split(",")):
            entry = measure(method, args.epochs or None, seed, args.threads, args.data, json.loads(args.options))
            doc = result_of(path, args.data)
            entries = {f"{e['method']}/{e['seed']}": e for e in doc.get("entries", [])}
            entries[f"{method}/{seed}"] = {**entry, "machine": machine(args.threads)}
            print(json.dumps({k: v for k, v in entry.items()}), flush=True)
            command = "python benchmarks/digits_methods.py " + shlex.join(sys.argv[1:])
            commands = doc.get("commands") or ([doc["command"]] if "command" in doc else [])
            save(args.name, {
                "data": args.data,
                "protocol": f"{args.data} test split: kNN (cosine; k=20, fewer on a small training split) and linear probe on the frozen encoder, beside "
                            "the random encoder of the same architecture (its BatchNorm statistics re-estimated on "
                            "the training inputs where the run's were: jigsaw, relative_position) and raw pixels "
                            "(selfsup.evaluate)",
                "commands": commands + [command] * (command not in commands),  # every run that wrote entries
                "entries": sorted(entries.values(), key=lambda e: (e["method"], e["seed"])),
                "summary": summarise(list(entries.values()))})


if __name__ == "__main__":
    main()
