"""Does a label-free criterion choose the method as labels would? The evidence behind `selfsup train --search`.

For each benchmark (a data source of one modality) and seed, every candidate `--search` would screen
(selfsup.search.candidates_for: the data's preset and the modality's search space) trains for the same budget
(`--minutes`, from its initial weights, the seed's weights and views), with the labels held aside. Then, on the
training split only:
- every label-free criterion of selfsup.evaluation.criteria, computed as `--search` computes them (selfsup.search.
  score_run: 512 training items and 4 views each of the modality's instance recipe);
- the validation linear accuracy: 5-fold stratified cross-validation over the training items of the linear probe on
  the frozen embeddings (selfsup.evaluation.linear_probe, its C chosen inside each fold's training part).
Per benchmark and criterion: the Spearman correlation between the criterion and the validation accuracy over the
candidates (mean over seeds), the pick's validation accuracy against the label oracle's (the best candidate by
validation accuracy) and against the modality default's (the preset when the data have one, else the first method of
the search space), each a mean over seeds. The test split is never used.

    python benchmarks/selection.py --benchmarks images,tables,series,graphs,graphs-motifs --minutes 0.5 --seeds 0,1,2

Results are merged into benchmarks/results/selection.json, one entry a benchmark (run benchmarks in stages).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, machine, save  # noqa: E402

import selfsup  # noqa: E402
from selfsup.evaluation.criteria import CRITERIA  # noqa: E402
from selfsup.evaluation.linear import linear_probe  # noqa: E402
from selfsup.run import encode_storage  # noqa: E402
from selfsup.search import candidates_for, sample_items, score_run, scoring_view_options  # noqa: E402

#: benchmark name -> data source (one per modality)
BENCHMARKS = {"images": "digits", "tables": "sklearn:breast_cancer", "series": "ucr:GunPoint", "graphs": "tu:MUTAG",
              "images-fashion": "fashion-mnist", "graphs-motifs": "motifs"}
NAME = "selection"


def validation_accuracy(z: np.ndarray, y: np.ndarray, seed: int, folds: int = 5) -> float:
    """Mean linear-probe accuracy over stratified folds of the training items (C chosen inside each fold)."""
    split = StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    return float(np.mean([linear_probe(z[a], y[a], z[b], y[b], seed=seed)["acc"] for a, b in split]))


def measure(data: str, minutes: float, seed: int, threads: int | None) -> dict[str, Any]:
    """Every candidate of `data` trained for `minutes`, scored by every criterion and by validation accuracy."""
    ds = selfsup.load_dataset(data)
    items = sample_items(ds.train, 512, seed)
    y = np.asarray(ds.train.y)
    rows = {}
    for c in candidates_for(data, ds.modality, {"data": data, "seed": seed}):
        start = time.perf_counter()
        run = selfsup.train(ds, **{k: v for k, v in c.options.items() if k != "data"}, minutes=minutes,
                            threads=threads, monitor=False)
        trained = time.perf_counter() - start
        z = encode_storage(run.encoder, run.modality, run.spec, ds.train.x, mask=ds.train.mask)
        rows[c.name] = {"method": c.options["method"], "train_seconds": round(trained, 1),
                        "steps": run.summary["steps"],
                        "scores": score_run(run, items, seed=seed, view_options=scoring_view_options(ds, {})),
                        "val_linear": round(validation_accuracy(z, y, seed), 4)}
        print(f"{data} seed {seed} {c.name}: val linear {rows[c.name]['val_linear']:.4f} "
              + " ".join(f"{k} {v:.4g}" for k, v in rows[c.name]["scores"].items()), flush=True)
    return rows


def analyse(per_seed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per criterion: Spearman with validation accuracy, the pick's accuracy against the oracle's and the default's
    (means over seeds)."""
    out = {}
    for criterion in CRITERIA:
        rho, pick, oracle, default, picks = [], [], [], [], []
        for rows in per_seed.values():
            names = list(rows)
            acc = [rows[n]["val_linear"] for n in names]
            score = [rows[n]["scores"][criterion] for n in names]
            r = spearmanr(score, acc)[0]
            rho.append(0.0 if np.isnan(r) else float(r))
            chosen = names[int(np.argmax(score))]
            picks.append(chosen)
            pick.append(rows[chosen]["val_linear"])
            oracle.append(max(acc))
            default.append(rows[names[0]]["val_linear"])
        out[criterion] = {"spearman": round(float(np.mean(rho)), 3), "spearman_per_seed": [round(v, 3) for v in rho],
                          "pick_val_linear": round(float(np.mean(pick)), 4),
                          "oracle_val_linear": round(float(np.mean(oracle)), 4),
                          "default_val_linear": round(float(np.mean(default)), 4),
                          "regret_points": round(100 * float(np.mean(oracle) - np.mean(pick)), 2),
                          "vs_default_points": round(100 * float(np.mean(pick) - np.mean(default)), 2),
                          "picks": picks}
    return out


def markdown(doc: dict[str, Any]) -> str:
    """docs/benchmarks.md's table: per benchmark and criterion, the Spearman correlation with validation accuracy
    and the pick's validation accuracy beside the oracle's and the default's (means over seeds)."""
    lines = ["| benchmark (data, budget a candidate, seeds) | criterion | Spearman with validation linear | pick | "
             "label oracle | default | pick's regret (points) |", "|---|---|---|---|---|---|---|"]
    for name, b in doc["benchmarks"].items():
        where = f"{name} (`{b['data']}`, {b['minutes']:g} min, seeds {', '.join(b['seeds'])})"
        for criterion, a in b["criteria"].items():
            rho = f"{a['spearman']:.2f}"
            lines.append(f"| {where} | {criterion} | {f'**{rho}**' if a['spearman'] >= 0.6 else rho} | "
                         f"{a['pick_val_linear']:.3f} | {a['oracle_val_linear']:.3f} | {a['default_val_linear']:.3f} | "
                         f"{a['regret_points']:.2f} |")
            where = ""
    return "\n".join(lines)


def summary(doc: dict[str, Any], criterion: str) -> str:
    """One sentence per criterion over the benchmarks measured: how often it tracks validation accuracy, how often
    its pick is within a point of the oracle's, and the benchmarks where it fails."""
    rows = {name: b["criteria"][criterion] for name, b in doc["benchmarks"].items()}
    tracks = [n for n, a in rows.items() if a["spearman"] >= 0.6]
    close = [n for n, a in rows.items() if a["regret_points"] <= 1.0]
    below = [n for n, a in rows.items() if a["vs_default_points"] < -1.0]
    return (f"`{criterion}` tracks validation accuracy (Spearman >= 0.6) on {len(tracks)} of {len(rows)} benchmarks"
            f"{' (' + ', '.join(tracks) + ')' if tracks else ''}; its pick is within a point of the label oracle's "
            f"on {len(close)} of {len(rows)}; it fails on "
            f"{', '.join(n for n in rows if n not in tracks) or 'none'}"
            f"{'; its pick falls more than a point below the default on ' + ', '.join(below) if below else ''}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", default="images,tables,series,graphs")
    parser.add_argument("--minutes", type=float, default=0.5, help="training budget of every candidate")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    path = RESULTS / f"{NAME}.json"
    doc = json.loads(path.read_text()) if path.exists() else {"benchmarks": {}}
    for name in args.benchmarks.split(","):
        data = BENCHMARKS[name]
        per_seed = {str(s): measure(data, args.minutes, s, args.threads) for s in map(int, args.seeds.split(","))}
        doc["benchmarks"][name] = {"data": data, "minutes": args.minutes, "seeds": per_seed,
                                   "criteria": analyse(per_seed), "machine": machine(),
                                   "command": "python benchmarks/selection.py " + " ".join(sys.argv[1:])}
        doc["protocol"] = __doc__.split("\n\n")[1].replace("\n", " ")
        save(NAME, doc)
        for criterion, a in doc["benchmarks"][name]["criteria"].items():
            print(f"{name} {criterion}: spearman {a['spearman']}, regret {a['regret_points']} points, "
                  f"vs default {a['vs_default_points']} points", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
