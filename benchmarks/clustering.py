#!/usr/bin/env python
"""Clustering benchmark: how well `selfsup cluster` finds the classes without labels, beside k-means baselines.

For each data set: pre-train with selfsup's default configuration for it (fashion-mnist: the measured preset on
the 60k training images for --minutes; digits: the README's main job, 30 epochs), embed the evaluation images
(Fashion-MNIST: the 10k test images; digits: the 450 test images), and cluster them into K = 10 groups. Rows,
all measured in this run: spherical k-means on raw pixels, on a randomly initialised encoder of the same
architecture, on selfsup's embeddings, and `selfsup cluster`: SCAN + self-labelling on the embeddings, k-means
on their UMAP manifold (`--method umap`, N2D's recipe) and equal-size spectral clustering of their neighbour graph
(`--method spectral`); Hungarian accuracy, NMI and ARI against the labels (used for scoring only). Published rows
beside: N2D (McConville et al. 2020) on Fashion-MNIST, accuracy 0.672 / NMI 0.684, and k-means on raw pixels ~0.47.

    python benchmarks/clustering.py --datasets digits,fashion-mnist --minutes 10 --seeds 0,1,2 --json
    python benchmarks/clustering.py --datasets fashion-mnist --configs preset,NAME --minutes 10 --json
    python benchmarks/fmnist_budget.py --minutes 10 --seeds 0,1,2 --keep-runs DIR   # then, on the same encoders:
    python benchmarks/clustering.py --datasets fashion-mnist --runs DIR --seeds 0,1,2 --json

`--validate --configs A,B`: choose without the test set: each configuration trains on the 50k images of
fmnist_budget.py's validation split and clusters the 10k training images held out (clustering_search.json).
`--validate --keep-runs DIR` keeps the preset's runs it trains there; `--validate --runs DIR` clusters such runs
(DIR/seedN-*, trained on those 50k images: checked) and scores equal-size spectral clustering over a grid of
neighbours and softness as well (its defaults were chosen there).

`--configs`: Fashion-MNIST pre-training configurations, `preset` (the dataset's measured preset) or candidate names
of benchmarks/fmnist_budget.py (chosen there on a validation split of the training images); one block of rows each.

Every row is a mean and std over --seeds (default 0, 1, 2; the per-seed scores are kept). Writes
benchmarks/results/clustering.json with the machine it ran on and the time of each stage.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, machine, publish, save  # noqa: E402
from fmnist_budget import CANDIDATES  # noqa: E402

import selfsup  # noqa: E402
from selfsup.cluster import scores  # noqa: E402
from selfsup.evaluation.manifold import manifold_clusters  # noqa: E402
from selfsup.evaluation.scan import scan, spherical_kmeans  # noqa: E402
from selfsup.evaluation.spectral import spectral_clusters  # noqa: E402
from selfsup.loading import load_dataset  # noqa: E402
from selfsup.run import build_encoder, encode_storage  # noqa: E402

PUBLISHED = {"fashion-mnist": {"N2D (McConville et al. 2020)": {"acc": 0.672, "nmi": 0.684},
                               "k-means on raw pixels (literature, about)": {"acc": 0.47}}}


def trained(name: str, minutes: float, seed: int, config: str, out: Path, runs: Path | None):
    """The pre-trained run clustered: the one benchmarks/fmnist_budget.py --keep-runs RUNS left for this seed (its
    10-minute preset, so one training serves both benchmarks), else a new one in `out`."""
    if runs is not None:
        found = sorted(runs.glob(f"seed{seed}-*"))
        if len(found) != 1:
            raise SystemExit(f"--runs {runs}: expected one run directory seed{seed}-PRECISION, found {len(found)}")
        run = selfsup.load(found[0])
        if run.config.seed != seed:
            raise SystemExit(f"--runs {found[0]}: trained with seed {run.config.seed}, not {seed}")
        return run, {"minutes": run.config.minutes, "run": str(found[0])}, run.summary["train_seconds"]
    options = {"minutes": minutes} if name == "fashion-mnist" else {"epochs": 30}
    if config != "preset":
        options.update(CANDIDATES[config])
    start = time.perf_counter()
    run = selfsup.train(name, out=out, seed=seed, monitor=False, **options)
    return run, options, time.perf_counter() - start


def cluster_rows(run, x: Any, y: np.ndarray, seed: int) -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
    """Every row's scores on images `x` (labels `y` used to score only), SCAN's details and the run's embeddings."""
    z = encode_storage(run.encoder, run.modality, run.spec, x)
    raw = run.modality.raw_features(x, run.spec)
    rand = encode_storage(build_encoder(run.resolved, seed=seed + 1000), run.modality, run.spec, x)
    rows = {}
    for label, feats in (("k-means on raw pixels", raw), ("k-means on a random encoder", rand),
                         ("k-means on selfsup embeddings", z)):
        pred, _ = spherical_kmeans(feats, 10, seed)
        rows[label] = scores(y, pred)
    labels, _, details = scan(z, 10, seed=seed)
    rows["selfsup cluster (SCAN + self-labelling)"] = scores(y, labels)
    manifold, _, _ = manifold_clusters(z, 10, seed=seed)
    rows["selfsup cluster --method umap (N2D)"] = scores(y, manifold)
    spectral, _, _ = spectral_clusters(z, 10, seed=seed)
    rows["selfsup cluster --method spectral (equal sizes)"] = scores(y, spectral)
    return rows, details, z


SPECTRAL_GRID = {"neighbours": (5, 10, 20), "softness": (0.05, 0.1, 0.2)}


def spectral_grid(z: np.ndarray, y: np.ndarray, seed: int) -> dict[str, dict[str, float]]:
    """Equal-size spectral clustering's scores of embeddings `z` for every (neighbours, softness) of SPECTRAL_GRID
    (validation only)."""
    return {f"neighbours {n}, softness {s}": scores(y, spectral_clusters(z, 10, seed, neighbours=n, softness=s)[0])
            for n in SPECTRAL_GRID["neighbours"] for s in SPECTRAL_GRID["softness"]}


def validate(configs: list[str], minutes: float, seeds: list[int], runs: Path | None = None,
             keep: Path | None = None) -> None:
    """Choose the Fashion-MNIST clustering configuration without the test set: each configuration trains on the
    50k images of fmnist_budget.py's validation split for `minutes` and clusters the 10k held out from the training
    set; results merge into benchmarks/results/clustering_search.json (per configuration and seed). With `runs`
    (the preset only), the runs of that directory (`seedN-*`, trained on the same 50k images: checked) are clustered
    instead of training anew, and equal-size spectral clustering is also scored over SPECTRAL_GRID. With `keep` (the
    preset only), the runs trained are kept as KEEP/seedN-preset for such a later `runs`."""
    from fmnist_budget import validation_split

    from selfsup.data import Dataset
    from selfsup.presets import PRESETS

    fit, val = validation_split(load_dataset("fashion-mnist"))
    path = RESULTS / "clustering_search.json"
    doc = json.loads(path.read_text()) if path.exists() else {"configurations": {}}
    for config in configs:
        for seed in seeds:
            chosen = CANDIDATES[config] if config != "preset" else PRESETS["fashion-mnist"].options
            options = {"minutes": minutes, **chosen}
            start = time.perf_counter()
            if runs is None:
                out = None if keep is None else keep / f"seed{seed}-{config}"
                run = selfsup.train(Dataset("fashion-mnist-fit", "image", fit), seed=seed, monitor=False, out=out,
                                    **options)
            else:
                run, kept, _ = trained("fashion-mnist", minutes, seed, config, Path(), runs)
                if run.summary["data"] != "fashion-mnist-fit" or run.summary["train_samples"] != len(fit):
                    raise SystemExit(f"--runs {runs}: seed {seed}'s run was not trained on the validation split's "
                                     f"{len(fit)} images")
                options = {**kept, **chosen}
            train_s = time.perf_counter() - start if runs is None else run.summary["train_seconds"]
            rows, _, z = cluster_rows(run, val.x, val.y, seed)
            entry = {"options": options, "rows": rows, "train_seconds": round(train_s, 1),
                     "epochs": round(run.summary["steps"] * run.summary["batch_size"] / len(fit), 2),
                     "precision": run.resolved.precision, "machine": machine()}
            if runs is not None:
                entry["spectral_grid"] = spectral_grid(z, val.y, seed)
            doc["configurations"].setdefault(config, {})[str(seed)] = entry
            print(config, seed, json.dumps(rows), flush=True)
            doc.update(protocol="Fashion-MNIST: pre-train on 50,000 training images (fmnist_budget.py's validation "
                                "split) for the stated minutes, cluster the 10,000 training images held out (K = 10); "
                                "the test set is not used", command="python benchmarks/clustering.py "
                                                                    + " ".join(sys.argv[1:]))
            save("clustering_search", doc)


def one(name: str, minutes: float, seed: int, config: str = "preset", runs: Path | None = None) -> dict:
    ds = load_dataset(name)
    with tempfile.TemporaryDirectory() as tmp:
        run, options, train_s = trained(name, minutes, seed, config, Path(tmp) / "run", runs)
        test = ds.test
        t0 = time.perf_counter()
        rows, details, _ = cluster_rows(run, test.x, test.y, seed)
        cluster_s = time.perf_counter() - t0
    return {"data": name, "configuration": config, "options": options, "train_samples": len(ds.train),
            "clustered": f"{len(test)} test images, K = 10",
            "training": {"method": run.summary["method"], "encoder": run.summary["encoder"],
                         "epochs": run.summary["epochs"], "train_seconds": round(train_s, 1),
                         "precision": run.resolved.precision},
            "cluster_seconds": round(cluster_s, 1), "rows": rows, "scan": details,
            "published": PUBLISHED.get(name, {})}


def over_seeds(name: str, minutes: float, seeds: list[int], config: str, runs: Path | None = None) -> dict:
    """`one` for every seed (pre-training, random encoder and clustering all follow the seed), and every row's
    scores as mean and std over the seeds."""
    per_seed = [one(name, minutes, seed, config, runs) for seed in seeds]
    rows = {label: {metric: {"mean": round(float(np.mean([r["rows"][label][metric] for r in per_seed])), 4),
                             "std": round(float(np.std([r["rows"][label][metric] for r in per_seed], ddof=1)), 4)
                             if len(per_seed) > 1 else 0.0}
                    for metric in per_seed[0]["rows"][label]}
            for label in per_seed[0]["rows"]}
    first = per_seed[0]
    return {**{k: first[k] for k in ("data", "configuration", "options", "train_samples", "clustered", "published")},
            "seeds": seeds, "rows": rows,
            "per_seed": [{k: r[k] for k in ("training", "cluster_seconds", "rows", "scan")} for r in per_seed]}


ROW_ORDER = ("k-means on raw pixels", "k-means on a random encoder", "k-means on selfsup embeddings",
             "selfsup cluster (SCAN + self-labelling)", "selfsup cluster --method umap (N2D)",
             "selfsup cluster --method spectral (equal sizes)")


def cell(score: Any, metric: str) -> str:
    """One figure of a block: the mean (± std over seeds) or, in blocks of one seed, the value."""
    value = score[metric]
    if isinstance(value, dict):
        return f"{value['mean']:.3f} ± {value['std']:.3f}" if value["std"] else f"{value['mean']:.3f}"
    return f"{value:.3f}"


def clustering_table(doc: dict[str, Any]) -> str:
    """README's clustering table, one row per (data, configuration) block of clustering.json: accuracy / NMI of
    each row, the encoder it clustered, its seeds and the date it was measured (tests/test_readme.py checks it)."""
    rows = ["| data (clustered) | encoder | k-means raw pixels | k-means random encoder | k-means selfsup | "
            "`selfsup cluster` (SCAN) | `--method umap` (N2D) | `--method spectral` (equal sizes) | published |",
            "|---|---|---|---|---|---|---|---|---|"]
    for block in doc["datasets"]:
        first = block["per_seed"][0]["training"] if block.get("per_seed") else block["training"]
        seeds = block.get("seeds", [0])
        encoder = (f"{first['method']} ({block['configuration']}), {first['precision']}, seeds "
                   f"{','.join(map(str, seeds))}, {str(block['measured'])[:10]}")
        published = "; ".join(f"{name.split(' (')[0]} {v['acc']:.3f} / {v['nmi']:.3f}"
                              for name, v in block.get("published", {}).items() if "nmi" in v)
        figures = [f"{cell(block['rows'][r], 'acc')} / {cell(block['rows'][r], 'nmi')}" if r in block["rows"]
                   else "not measured" for r in ROW_ORDER]
        rows.append(f"| {block['data']} ({block['clustered']}) | {encoder} | " + " | ".join(figures) +
                    f" | {published} |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="digits,fashion-mnist")
    p.add_argument("--minutes", type=float, default=10.0, help="Fashion-MNIST pre-training budget")
    p.add_argument("--configs", default="preset", help="Fashion-MNIST configurations: preset and/or candidate names "
                   "of benchmarks/fmnist_budget.py, comma-separated")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds; rows are means and stds over them")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", metavar="DIR", help="Fashion-MNIST preset: cluster the runs that "
                   "`benchmarks/fmnist_budget.py --keep-runs DIR` trained (one per seed) instead of training again")
    p.add_argument("--keep-runs", metavar="DIR", help="--validate: keep the runs trained on the validation split "
                   "under DIR (seedN-preset), for a later --validate --runs DIR")
    p.add_argument("--json", action="store_true")
    p.add_argument("--validate", action="store_true", help="choose among --configs on a validation split of the "
                   "training images (clustering_search.json) instead of measuring on the test images")
    p.add_argument("--readme", action="store_true", help="write README's clustering table from the results and exit")
    args = p.parse_args()
    if args.readme:
        import blocks

        blocks.write("clustering table")
        return
    torch.set_num_threads(args.threads)
    configs = args.configs.split(",")
    unknown = sorted(set(configs) - {"preset", *CANDIDATES})
    if unknown:
        p.error(f"--configs: unknown {', '.join(unknown)}; known: preset, {', '.join(CANDIDATES)}")
    command = "python benchmarks/clustering.py " + " ".join(sys.argv[1:])
    seeds = [int(x) for x in args.seeds.split(",")]
    if args.validate:
        if (args.runs or args.keep_runs) and configs != ["preset"]:
            p.error("--validate --runs / --keep-runs: only with --configs preset")
        validate(configs, args.minutes, seeds, Path(args.runs) if args.runs else None,
                 Path(args.keep_runs) if args.keep_runs else None)
        return
    if args.runs and (args.datasets != "fashion-mnist" or configs != ["preset"]):
        p.error("--runs: only with --datasets fashion-mnist --configs preset (the runs of fmnist_budget.py)")
    runs = Path(args.runs) if args.runs else None
    results = [{**over_seeds(name, args.minutes, seeds, config, runs), "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": command, "machine": machine()}
               for name in args.datasets.split(",") for config in (configs if name == "fashion-mnist" else ["preset"])]
    # blocks of other (data, configuration) pairs measured by earlier runs stay, each with its own date and machine
    path = RESULTS / "clustering.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    earlier = [{"configuration": "preset", "measured": old.get("written"), "command": old.get("command"),
                "machine": old.get("machine"), **r}
               for r in old.get("datasets", [])]
    done = {(r["data"], r["configuration"]) for r in results}
    measured, results = results, [r for r in earlier if (r["data"], r["configuration"]) not in done] + results
    doc = {"benchmark": "clustering without labels, K = 10, scored against the labels (Hungarian accuracy, NMI, ARI)",
           "command": command, "seeds": seeds,
           "budget": f"Fashion-MNIST: {args.minutes} min of pre-training on {args.threads} threads, then clustering "
                     "(timed separately); digits: the README's main job",
           "merging": "each block carries the date and machine it was measured on; a run replaces the blocks of "
                      "the (data, configuration) pairs it measures and keeps the others",
           "datasets": results, "machine": machine()}
    summary = "; ".join(f"{r['data']} ({r['configuration']}): SCAN acc "
                        f"{r['rows']['selfsup cluster (SCAN + self-labelling)']['acc']['mean']}, "
                        f"k-means raw {r['rows']['k-means on raw pixels']['acc']['mean']}" for r in measured)
    publish("clustering", doc, args.json, summary)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
