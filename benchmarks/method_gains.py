"""Each method's measured gain over its own untrained encoder, gathered from the committed home-benchmark results.

For every registered method, the difference in points (accuracy x 100, or Spearman x 100 for STS) between the trained
encoder and the randomly initialised encoder of the same architecture, measured in the same run, for each benchmark
result that holds both, averaged over the seeds the result holds:

- images: benchmarks/results/digits_methods.json (every image method with its defaults, 30 epochs on digits; test
  split; kNN and linear probe);
- series: series_gunpoint.json and series_italypowerdemand.json (digits_methods.py on two UCR problems, the
  methods with their default length; test split; kNN and linear probe);
- audio: audio.json (spoken digits with every label and with 10%, speaker identity);
- graphs: graphs.json (MUTAG and the generated `motifs` with and without return-probability inputs, 10-fold SVM; and
  node classification on the generated block graph);
- text: text.json (from scratch, STS-B and SICK-R);
- tables: tabular.json, tabular_dae.json, tabular_vime.json (tabular.py with the default method and with
  --method dae / vime; linear probe, mean over its tables and label fractions);
- point clouds: points.json (digits_methods.py on `shapes?turn=any&scan=1`; test split; kNN and linear probe);
- video: video.json (video.py on the generated `sprites`; test split; kNN and linear probe).

A method is `above` its random encoder where every gain is positive, `mixed` where some are, `below` where none is,
and `not measured` where no result holds it beside its random encoder. The table goes to
src/selfsup/measured_gains.json, which `selfsup methods` and the methods
table of docs/methods.md read; tests/test_readme.py checks that it equals what this script computes from the results.

    python benchmarks/method_gains.py          # writes src/selfsup/measured_gains.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS  # noqa: E402

from digits_methods import summarise  # noqa: E402

from selfsup.artifacts import atomic_write_text  # noqa: E402
from selfsup.methods import methods  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "src" / "selfsup" / "measured_gains.json"
Gains = list[tuple[str, dict[str, Any]]]  # (method, {"benchmark", "result", "seeds", "gains": {metric: points}})
#: the series home sets: (result file of `digits_methods.py --data ucr:PROBLEM --name FILE`, problem)
SERIES = (("series_gunpoint", "GunPoint"), ("series_italypowerdemand", "ItalyPowerDemand"))
#: the tables results: tabular.py with its default method, and with --method dae / vime
TABLES = ("tabular", "tabular_dae", "tabular_vime")


def _load(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _row(benchmark: str, result: str, seeds: int, gains: dict[str, float]) -> dict[str, Any]:
    return {"benchmark": benchmark, "result": f"benchmarks/results/{result}.json", "seeds": seeds,
            "gains": {k: round(float(v), 2) for k, v in gains.items()}}


def _per_method(name: str, benchmark: str) -> Gains:
    """Rows from a digits_methods.py result file (every method of a modality with its defaults on one home set)."""
    entries = [e for e in _load(name).get("entries", []) if "random_knn" in e]  # (not a shared baseline's rows)
    summary = summarise(entries)
    return [(method, _row(benchmark, name, len(m["seeds"]), {
        probe: 100 * (m[key]["mean"] - m[f"random_{key}"]["mean"]) for probe, key in (("kNN", "knn"),
                                                                                      ("linear", "linear"))}))
            for method, m in summary.items()]


def images() -> Gains:
    return _per_method("digits_methods", "digits, 30 epochs")


def points() -> Gains:
    return _per_method("points", "one-sided scans of shapes in any turn")


def video() -> Gains:
    return _per_method("video", "sprites")


def series() -> Gains:
    return [row for name, problem in SERIES for row in _per_method(name, f"UCR {problem}, default length")]


def audio() -> Gains:
    tasks = (("digits", "digit_acc"), ("digits 10%", "digit_acc_10pct"), ("speakers", "speaker_acc"))
    return [(method, _row("spoken digits", "audio", len(m["runs"]), {
        task: np.mean([r["ours"][key] - r["random_encoder"][key] for r in m["runs"]]) for task, key in tasks}))
            for method, m in _load("audio").get("methods", {}).items()]


def graphs() -> Gains:
    doc = _load("graphs")
    sets = [(title, method, np.subtract(m["per_seed"], m["random_encoder"]["per_seed"]))
            for part, title in (("mutag", "MUTAG"), ("motifs", "motifs (generated)"),
                                ("motifs_constant_inputs", "motifs (generated, constant node inputs)"))
            for method, m in doc.get(part, {}).get("methods", {}).items()]
    nodes = [(method, np.subtract(m["acc"], m["random_encoder"]))
             for method, m in doc.get("nodes", {}).get("methods", {}).items()]
    return ([(method, _row(title, "graphs", len(g), {"accuracy": g.mean()})) for title, method, g in sets]
            + [(method, _row("node classification", "graphs", len(g), {"accuracy": g.mean()})) for method, g in nodes])


def text() -> Gains:
    out: Gains = []
    for name, entry in _load("text").get("scratch", {}).items():
        results = entry["results"]
        trained = results[f"selfsup {name}"]
        untrained = next(v for k, v in results.items() if k.startswith("untrained ("))
        encoder = name.split(" (", 1)[1].rstrip(")")
        out.append((entry["training"]["method"], _row(f"text from scratch, {encoder}", "text", 1,
                                                      {s: trained[s] - untrained[s] for s in ("STS-B", "SICK-R")})))
    return out


def tables() -> Gains:
    out: Gains = []
    for name in TABLES:
        doc = _load(name)
        cells = [fraction for table in doc.get("results", {}).values() for fraction in table["summary"].values()]
        if cells:
            gain = 100 * np.mean([c["probe"]["mean"] - c["random_probe"]["mean"] for c in cells])
            out.append((doc["config"]["method"], _row(
                f"tables ({', '.join(doc['results'])}), linear probe, mean of {len(cells)} table x label-fraction "
                "cells", name, len(doc["seeds"]), {"accuracy": gain})))
    return out


SOURCES: tuple[Callable[[], Gains], ...] = (images, series, audio, graphs, text, tables, points, video)


def verdict(rows: list[dict[str, Any]]) -> str:
    gains = [g for row in rows for g in row["gains"].values()]
    if not gains:
        return "not measured"
    above = sum(g > 0 for g in gains)
    return "above" if above == len(gains) else "below" if above == 0 else "mixed"


def gather() -> dict[str, Any]:
    """{method: {"verdict", "rows": [...]}} for every registered method, from the committed results."""
    found: dict[str, list[dict[str, Any]]] = {}
    for source in SOURCES:
        for method, row in source():
            found.setdefault(method, []).append(row)
    table = {name: {"verdict": verdict(found.get(name, [])), "rows": found.get(name, [])} for name in methods.names()}
    return {"generated_by": "python benchmarks/method_gains.py",
            "unit": "points (accuracy or Spearman x 100): trained minus its untrained encoder, mean over seeds",
            "methods": table}


def main() -> None:
    doc = gather()
    atomic_write_text(OUT, json.dumps(doc, indent=1) + "\n")
    counts = {v: sum(m["verdict"] == v for m in doc["methods"].values()) for v in ("above", "mixed", "below",
                                                                                     "not measured")}
    print(f"{OUT}: {counts}")


if __name__ == "__main__":
    main()
