#!/usr/bin/env python
"""Graphs: unsupervised graph classification on MUTAG and on the generated `motifs`, and one node-level run.

MUTAG (188 graphs, 2 classes; the copy the grakel wheel ships), the protocol of InfoGraph and GraphCL
(shared/reference/benchmark-protocol.md, "Graphs, unsupervised graph classification"): pre-train on all graphs without
labels, embed every graph with the frozen encoder, stratified 10-fold CV accuracy of an RBF SVM whose C is chosen by
5-fold CV inside each fold's training part (selfsup.evaluation.cross_validated_svm), mean over 5 seeds (each seed trains
anew and draws its own folds). Each method runs with its paper's settings (METHODS, which names each departure). Steps:
the papers' loaders keep the partial last batch and selfsup drops it, so the epochs here are the papers' epochs scaled
to give the papers' number of optimiser steps (on MUTAG at batch 128: 2 steps an epoch in the papers, 1 here, so 40
epochs for 20). In the same run, with the same folds: the random encoder of the same architecture (the GIN of each
method, untrained, the same seed), the raw-input baseline (each graph's summed and averaged one-hot node labels, node
and edge counts), the raw input with each graph's summed and averaged random-walk return probabilities (1-16 moves: the
structure the GIN's `walk_steps` inputs carry, without a network), and the Weisfeiler-Lehman subtree kernel (grakel; its
iterations 1-5 and C chosen by the inner CV). Published figures (anchors.md) are listed beside, not measured.

`motifs` (--part motifs; 1,200 generated graphs of 6 classes, selfsup's embedded `motifs` source): the same
protocol on a set large enough to separate methods, whose classes differ by structure only (node and edge counts drawn
apart from the class, no node labels). No published figure exists for it. Its graphs carry no node columns, so
their spec gives the encoders 16 steps of return probabilities as inputs (graph/features.py); the entry
`motifs_constant_inputs` keeps the same protocol measured when the GIN saw only the constant 1 (478a10f).

Node level (--part nodes): a graph with planted communities generated offline (stochastic block model, 8 blocks of
250 nodes, p_in 0.02, p_out 0.002, noisy 32-d node features that carry the block weakly), the nodes' rooted
2-hop neighbourhoods as samples; DGI and GRACE on a 2-layer GCN against the random encoder, the raw node features
and a spectral embedding of the adjacency (scikit-learn), each probed by logistic regression on a stratified 50/50
split of the nodes (C by inner CV on the training half).

    python benchmarks/graphs.py --json --part mutag
    python benchmarks/graphs.py --json --part motifs
    python benchmarks/graphs.py --json --part nodes --seeds 3
    python benchmarks/graphs.py --json --part mutag-walks --threads 1

`mutag-walks` (entry `mutag_walk_steps`): on MUTAG, each method with and without the return probabilities as GIN
inputs, and how often the inner CV chooses them (`walk_choice`): the evidence for the spec's default.

A part updates its own entry of benchmarks/results/graphs.json (with its command and machine); --part all writes all.
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

from _common import RESULTS, machine, publish  # noqa: E402

import selfsup  # noqa: E402
from selfsup.evaluation import cross_validated_svm  # noqa: E402
from selfsup.methods import methods as method_registry  # noqa: E402
from selfsup.modalities import get_modality  # noqa: E402
from selfsup.modalities.graph.codec import padded, unpack  # noqa: E402
from selfsup.modalities.graph.encoders import return_probabilities  # noqa: E402
from selfsup.modalities.graph.features import WALK_STEPS, featurise  # noqa: E402
from selfsup.run import build_encoder, encode_storage  # noqa: E402

#: the papers' settings; `epochs` are the papers' epochs (see `steps_matched`)
METHODS: dict[str, dict[str, Any]] = {
    # GraphCL unsupervised_TU/go.sh: 3 GIN layers of 32, lr 0.01, batch 128, 20 epochs
    "graphcl": {"encoder_options": {"layers": 3, "hidden": 32}, "batch_size": 128, "epochs": 20},
    # InfoGraph: 5 GIN layers of 32 (its default), batch 128, 20 epochs, lr 1e-3 (its paper searches 0.01 and 1e-3);
    # its GIN without BatchNorm (its encoder default): both chosen by the inner CV in every fold on motifs
    "infograph": {"encoder_options": {"layers": 5, "hidden": 32}, "batch_size": 128, "epochs": 20},
    # GraphMAE configs.yml (MUTAG): 5 layers of 32, lr 5e-4, batch 64, 20 epochs, mask rate 0.75
    # and selfsup's target, the inputs standardised per column (the paper's, the raw inputs, is all but constant on
    # graphs without node columns: methods/graphmae.py)
    "graphmae": {"encoder_options": {"layers": 5, "hidden": 32}, "method_options": {"target": "standardised"},
                 "batch_size": 64, "epochs": 20},
    # node-level methods on graph classification: the GIN of GraphCL, their own rates and views, the same steps;
    # DGI's and GRACE's GIN without BatchNorm (their encoder defaults), as their papers' GCN encoders have none; each
    # method's declared GIN options come under these (`gin_options`). GRACE contrasts at most 1,024
    # of a batch's nodes (motifs: 5,000), which bounds its similarity matrices (its default, 4,096: 16 times larger)
    "grace": {"encoder_options": {"layers": 3, "hidden": 32}, "method_options": {"max_nodes": 1024},
              "batch_size": 128, "epochs": 20},
    "dgi": {"encoder_options": {"layers": 3, "hidden": 32}, "batch_size": 128, "epochs": 20},
    "bgrl": {"encoder_options": {"layers": 3, "hidden": 32}, "batch_size": 128, "epochs": 20},
}
#: the sets of --part mutag and --part motifs
SETS = {"mutag": "tu:MUTAG", "motifs": "motifs"}
PUBLISHED = {"tu:MUTAG": {"InfoGraph": [89.01, 1.13], "GraphCL": [86.80, 1.34], "JOAO": [87.35, None],
                          "MVGRL": [89.70, 1.10], "GraphMAE": [88.19, 1.26]}}
TARGETS = {"tu:MUTAG": 89.0}


def wl_kernels(x: torch.Tensor, iterations: tuple[int, ...] = (1, 2, 3, 4, 5)) -> dict[int, np.ndarray]:
    """Normalised Weisfeiler-Lehman subtree kernel matrices (grakel) of packed graphs, one per iteration count."""
    from grakel import Graph as GrakelGraph
    from grakel.kernels import VertexHistogram, WeisfeilerLehman

    graphs = []
    for g in unpack(x):
        edges = {(int(u), int(v)) for u, v in g.edges} | {(int(v), int(u)) for u, v in g.edges}
        labels = {i: int(g.node_categorical[i, 0]) if g.node_categorical.shape[1] else 0 for i in range(g.num_nodes)}
        graphs.append(GrakelGraph(sorted(edges), node_labels=labels))
    return {h: WeisfeilerLehman(n_iter=h, base_graph_kernel=VertexHistogram, normalize=True).fit_transform(graphs)
            for h in iterations}


def summed_returns(x: torch.Tensor, spec: dict[str, Any], steps: int = WALK_STEPS) -> np.ndarray:
    """[N, 2 x steps]: each graph's return probabilities after 1..steps moves (the GIN's walk_steps inputs), summed and
    averaged over its nodes: the structural encoding without a network."""
    p = padded(featurise(x, spec))
    returns = return_probabilities(p, steps) * p.node_valid[..., None]
    total = returns.sum(1)
    return torch.cat([total, total / p.nodes_count.clamp(min=1)[:, None]], dim=1).numpy()


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    accs = [100 * r["acc"] for r in per_seed]
    return {"acc_mean": float(np.mean(accs)), "acc_std_over_seeds": float(np.std(accs)),
            "acc_fold_std_mean": float(np.mean([100 * r["acc_std"] for r in per_seed])), "per_seed": accs}


def steps_matched(settings: dict[str, Any], graphs: int) -> dict[str, Any]:
    """`settings` with the papers' epochs scaled so that selfsup, which drops the partial last batch, takes the
    papers' number of optimiser steps (ceil(graphs / batch) an epoch there, floor here)."""
    batch = settings["batch_size"]
    return {**settings, "epochs": round(settings["epochs"] * -(-graphs // batch) / (graphs // batch))}


def classification(uri: str, seeds: list[int], methods: list[str], threads: int) -> dict[str, Any]:
    """One graph-classification set (`uri`) under the protocol of the module docstring."""
    ds = selfsup.load_dataset(uri)
    y = ds.train.y
    modality = get_modality("graph")
    spec = modality.fit_spec(ds.train.x)
    results: dict[str, Any] = {"data": {"graphs": len(y), "classes": ds.info["classes"],
                                        "mean_nodes": spec["mean_nodes"], "mean_edges": spec["mean_edges"],
                                        "walk_steps": spec["walk_steps"]}}
    t = time.perf_counter()
    kernels = wl_kernels(ds.train.x)
    kernel_seconds = time.perf_counter() - t
    baselines: dict[str, list[dict[str, Any]]] = {"raw node-label counts": [], "WL subtree kernel": [],
                                                  "raw counts and return probabilities": []}
    raw = modality.raw_features(ds.train.x, spec)
    structural = np.concatenate([raw, summed_returns(ds.train.x, spec)], axis=1)
    for seed in seeds:
        baselines["raw node-label counts"].append(cross_validated_svm(raw, y, seed=seed))
        baselines["raw counts and return probabilities"].append(cross_validated_svm(structural, y, seed=seed))
        baselines["WL subtree kernel"].append(cross_validated_svm(kernels, y, seed=seed, kernel="precomputed"))
    results["baselines"] = {name: summarise(runs) for name, runs in baselines.items()}
    results["baselines"]["WL subtree kernel"]["kernel_seconds"] = kernel_seconds
    results["baselines"]["WL subtree kernel"]["chosen"] = [r["chosen"] for r in baselines["WL subtree kernel"]]
    results["methods"] = {}
    for method in methods:
        settings = steps_matched(METHODS[method], len(y))  # the spec's walk steps, said in the settings:
        settings["encoder_options"] = {**gin_options(method, settings), "walk_steps": spec["walk_steps"]}
        candidates_here = candidate_settings(method, settings, uri)
        runs, selected, random_runs, seconds, losses = [], [], [], [], []
        for seed in seeds:
            candidates = {}
            for name, change in candidates_here.items():
                with tempfile.TemporaryDirectory() as out:
                    t = time.perf_counter()
                    run = selfsup.train(ds, method=method, seed=seed, threads=threads, monitor=False, out=out,
                                        overwrite=True, **{**settings, **change})
                    if name == "paper":
                        seconds.append(time.perf_counter() - t)
                        losses.append(run_final_loss(Path(out)))
                    candidates[name] = run.embed(ds.train.x)
                if name == "paper":
                    random_encoder = build_encoder(run.resolved, seed=seed + 1000)
                    random_runs.append(cross_validated_svm(
                        encode_storage(random_encoder, modality, run.spec, ds.train.x), y, seed=seed))
            runs.append(cross_validated_svm(candidates["paper"], y, seed=seed))
            selected.append(cross_validated_svm(candidates, y, seed=seed))
        results["methods"][method] = {**summarise(runs), "settings": settings, "train_seconds": seconds,
                                      "final_loss": losses, "random_encoder": summarise(random_runs),
                                      "chosen_C": [r["chosen"] for r in runs],
                                      "selected_by_inner_cv": {**summarise(selected),
                                                               "candidates": candidates_here,
                                                               "chosen": [r["chosen"] for r in selected]}}
        r = results["methods"][method]
        print(f"# {method}: {r['acc_mean']:.2f}, selected {r['selected_by_inner_cv']['acc_mean']:.2f} (random "
              f"{r['random_encoder']['acc_mean']:.2f}), train {np.mean(seconds):.1f} s", file=sys.stderr, flush=True)
    results["targets"] = targets(results, TARGETS.get(uri))
    if uri in PUBLISHED:
        results["published"] = PUBLISHED[uri]
    return results


def walk_choice(uri: str, seeds: list[int], methods: list[str], threads: int) -> dict[str, Any]:
    """Whether the GIN's inputs should carry the return probabilities on a labelled set (`uri`): each method trains
    with its paper's settings twice a seed, without them and with features.WALK_STEPS steps, and the inner CV of
    each outer fold chooses between the two embeddings (with C) from the fold's training part, as it chooses among
    candidates in `classification`. Per method: both variants' accuracies, the nested accuracy and in how many
    folds the inner CV chose the return probabilities."""
    ds = selfsup.load_dataset(uri)
    y = ds.train.y
    out: dict[str, Any] = {"steps": WALK_STEPS, "methods": {}}
    for method in methods:
        base = steps_matched(METHODS[method], len(y))
        runs: dict[str, list[dict[str, Any]]] = {"without": [], "with": [], "nested": []}
        for seed in seeds:
            z = {}
            for name, walks in (("without", 0), ("with", WALK_STEPS)):
                settings = {**base, "encoder_options": {**gin_options(method, base), "walk_steps": walks}}
                with tempfile.TemporaryDirectory() as where:
                    run = selfsup.train(ds, method=method, seed=seed, threads=threads, monitor=False, out=where,
                                        overwrite=True, **settings)
                    z[name] = run.embed(ds.train.x)
                runs[name].append(cross_validated_svm(z[name], y, seed=seed))
            runs["nested"].append(cross_validated_svm(z, y, seed=seed))
        chosen = [c["features"] for r in runs["nested"] for c in r["chosen"]]
        out["methods"][method] = {**{name: summarise(r) for name, r in runs.items()},
                                  "chose_with": chosen.count("with"), "folds": len(chosen)}
        r = out["methods"][method]
        print(f"# {method}: without {r['without']['acc_mean']:.2f}, with {r['with']['acc_mean']:.2f}, inner CV chose "
              f"them in {r['chose_with']} of {r['folds']} folds", file=sys.stderr, flush=True)
    return out


def targets(results: dict[str, Any], target: float | None) -> dict[str, Any]:
    """The best method (as trained, and as chosen among its candidates by the inner CV) against the published target
    (None where there is none), the WL kernel and the raw input; the methods above their random encoder."""
    ms = results["methods"]
    if not ms:
        return {}
    best = max(ms, key=lambda m: ms[m]["acc_mean"])
    best_selected = max(ms, key=lambda m: ms[m]["selected_by_inner_cv"]["acc_mean"])
    wl = results["baselines"]["WL subtree kernel"]["acc_mean"]
    strongest_baseline = max(r["acc_mean"] for r in results["baselines"].values())
    return {"best_method": best, "best_acc": ms[best]["acc_mean"], "target_acc": target, "wl_acc": wl,
            "best_selected_method": best_selected,
            "best_selected_acc": ms[best_selected]["selected_by_inner_cv"]["acc_mean"],
            "met_acc": None if target is None else bool(ms[best]["acc_mean"] >= target),
            "above_wl": bool(ms[best]["acc_mean"] > wl),
            "points_over_best_baseline": ms[best]["acc_mean"] - strongest_baseline,
            "above_random_encoder": sorted(m for m, r in ms.items() if r["acc_mean"] > r["random_encoder"]["acc_mean"]),
            "max_train_seconds": max(max(r["train_seconds"]) for r in ms.values()), "target_train_seconds": 120}


#: deeper GINs added to a method's inner-CV candidates on a published set: 4, 8 and 12 layers, within the depths the
#: graph-level papers search on the TU sets (InfoGCL, Xu et al. 2021: {2, 4, 8, 12}); InfoGraph's default is 5
PAPER_DEPTHS: dict[tuple[str, str], tuple[int, ...]] = {("infograph", "tu:MUTAG"): (4, 8, 12)}


def gin_options(method: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The GIN options a method trains with here: its declared encoder defaults (Method.encoder_defaults, e.g.
    InfoGraph's GIN without BatchNorm) under the settings' own, as `selfsup.train` resolves them."""
    return {**method_registry.get(method).encoder_defaults.get("gin", {}), **settings["encoder_options"]}


def candidate_settings(method: str, settings: dict[str, Any], uri: str = "") -> dict[str, dict[str, Any]]:
    """The pre-training settings the inner CV chooses among (with C) in each fold: the paper's first, then three times
    the steps, and a tenth of the learning rate at each length; for a GIN with BatchNorm, also the GIN without it at
    the paper's rate and at a tenth of it; for a method and set of PAPER_DEPTHS, the GIN at each of its depths."""
    lr, epochs, options = method_registry.get(method).optimizer.lr, settings["epochs"], settings["encoder_options"]
    out: dict[str, dict[str, Any]] = {"paper": {}, "3x steps": {"epochs": 3 * epochs}, "lr/10": {"lr": lr / 10},
                                      "3x steps, lr/10": {"epochs": 3 * epochs, "lr": lr / 10}}
    if options.get("norm", "batch") == "batch":
        plain = {**options, "norm": "none"}
        out.update({"no BatchNorm": {"encoder_options": plain},
                    "no BatchNorm, lr/10": {"encoder_options": plain, "lr": lr / 10}})
    out.update({f"{depth} layers": {"encoder_options": {**options, "layers": depth}}
                for depth in PAPER_DEPTHS.get((method, uri), ()) if depth != options["layers"]})
    return out


def run_final_loss(out: Path) -> float | None:
    import json

    lines = (out / "metrics.jsonl").read_text().splitlines()
    epochs = [json.loads(line) for line in lines if '"type": "epoch"' in line]
    return float(epochs[-1]["loss"]) if epochs else None


def _architecture(settings: dict[str, Any]) -> str:
    o = settings["encoder_options"]
    walks = f" + {o['walk_steps']} walk steps" if o.get("walk_steps") else ""
    norm = ", no BatchNorm" if o.get("norm") == "none" else ""
    norm += ", standardised target" if settings.get("method_options", {}).get("target") == "standardised" else ""
    return (f"{settings.get('encoder', 'GIN').upper()} {o['layers']} x {o['hidden']}{walks}{norm}, "
            f"{settings['epochs']} epochs")


def classification_table(result: dict[str, Any], title: str = "MUTAG") -> str:
    """docs/benchmarks.md's table of one graph-classification set: each method (best first) beside its random
    encoder, the raw-input baseline, the WL kernel and the published figures where there are any (not measured); the
    best mean in bold."""
    threads = result["machine"]["threads"]
    rows = [f"| {title} | accuracy ({len(result['seeds'])} seeds) | its random encoder "
            f"| pre-training ({threads} thread{'s' if threads > 1 else ''}, mean) |", "|---|---|---|---|"]
    methods = sorted(result["methods"].items(), key=lambda kv: -kv[1]["acc_mean"])
    best = max(r["acc_mean"] for part in ("methods", "baselines") for r in result[part].values())
    cell = lambda r: (f"{r['acc_mean']:.2f} ± {r['acc_std_over_seeds']:.2f}" if r["acc_mean"] < best  # noqa: E731
                      else f"**{r['acc_mean']:.2f} ± {r['acc_std_over_seeds']:.2f}**")
    for name, r in methods:
        rows.append(f"| `{name}` ({_architecture(r['settings'])}) | {cell(r)} | {r['random_encoder']['acc_mean']:.2f} "
                    f"| {np.mean(r['train_seconds']):.1f} s |")
    labels = {"WL subtree kernel": "Weisfeiler-Lehman subtree kernel (grakel, 1-5 iterations by inner CV)",
              "raw node-label counts": "raw input: each graph's summed and averaged one-hot node labels, node and "
                                       "edge counts",
              "raw counts and return probabilities": f"raw input and each graph's summed and averaged return "
                                                     f"probabilities (1-{WALK_STEPS} moves)"}
    for name, r in result["baselines"].items():
        rows.append(f"| {labels.get(name, name)} | {cell(r)} | | |")
    if "published" in result:
        names = " / ".join(result["published"])
        figures = " / ".join(f"{v[0]:.2f}" for v in result["published"].values())
        rows.append(f"| published (not measured): {names} | {figures} | | |")
    return "\n".join(rows)


def walks_table(result: dict[str, Any]) -> str:
    """docs/benchmarks.md's table of `walk_choice`: each method's accuracy without and with the return probabilities
    as GIN inputs, the nested accuracy when the inner CV chooses between them, and how often it chose them."""
    seeds = len(next(iter(result["methods"].values()))["with"]["per_seed"])
    rows = [f"| MUTAG ({seeds} seeds) | node labels only | with {result['steps']} walk steps | inner CV chooses "
            "| folds it chose the walk steps |", "|---|---|---|---|---|"]
    for method, r in result["methods"].items():
        rows.append(f"| `{method}` | {r['without']['acc_mean']:.2f} ± {r['without']['acc_std_over_seeds']:.2f} "
                    f"| {r['with']['acc_mean']:.2f} ± {r['with']['acc_std_over_seeds']:.2f} "
                    f"| {r['nested']['acc_mean']:.2f} | {r['chose_with']} of {r['folds']} |")
    return "\n".join(rows)


def nodes_table(result: dict[str, Any]) -> str:
    """docs/benchmarks.md's node-level table: each method beside its random encoder, then the baselines (means over
    the seeds); the best method in bold."""
    rows = ["| planted communities | accuracy | its random encoder |", "|---|---|---|"]
    best = max(r["acc_mean"] for r in result["methods"].values())
    for name, r in result["methods"].items():
        o = r["settings"]["encoder_options"]
        acc = f"{r['acc_mean']:.2f}"
        rows.append(f"| `{name}` ({r['settings']['encoder'].upper()} {o.get('layers', 2)} x {o['hidden']}, "
                    f"{r['settings']['epochs']} epochs) | {f'**{acc}**' if r['acc_mean'] == best else acc} | "
                    f"{r['random_encoder_mean']:.2f} |")
    for name, r in result["baselines"].items():
        rows.append(f"| {name} | {r['acc_mean']:.2f} | |")
    return "\n".join(rows)


def command_methods(command: str) -> list[str]:
    """The methods a command line of this script measures (its --methods, else every method of METHODS)."""
    words = command.split()
    given = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--methods"]
    given += [w.partition("=")[2] for w in words if w.startswith("--methods=")]
    return given[-1].split(",") if given else list(METHODS)


def merged(old: dict[str, Any] | None, new: dict[str, Any], target: float | None) -> dict[str, Any]:
    """`new` (one set's entry) with the methods of `old` it does not hold, when `old` was measured on the same seeds
    with the same baselines (else `new` alone); targets recomputed over all the methods, every command kept, and each
    method keeps the machine that measured it (`machine` in its result: the entry's own is the last command's)."""
    accuracies = lambda e: {k: r["per_seed"] for k, r in e["baselines"].items()}  # noqa: E731
    if not old or old["seeds"] != new["seeds"] or accuracies(old) != accuracies(new):
        return {**new, "commands": [new["command"]]}
    stamped = lambda e: {m: {"machine": e["machine"], **r} for m, r in e["methods"].items()}  # noqa: E731
    methods = {**stamped(old), **stamped(new)}
    commands = [*old.get("commands", [old["command"]]), new["command"]]
    # each method's figures come from the last command that names it (a method none names: the last command)
    measured_by = {m: max((i for i, c in enumerate(commands) if m in command_methods(c)), default=len(commands) - 1)
                   for m in methods}
    out = {**new, "methods": methods, "commands": [commands[i] for i in sorted(set(measured_by.values()))]}
    out["targets"] = targets(out, target)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--part", choices=(*SETS, "nodes", "mutag-walks", "all"), default="all")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other methods of the set's entry (same seeds, same baselines) and add these: "
                         "processes running disjoint --methods in parallel build one entry")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = RESULTS / "graphs.json"
    doc: dict[str, Any] = json.loads(path.read_text()) if path.exists() and args.part != "all" else {}
    part_info = {"machine": machine(), "command": "python benchmarks/graphs.py " + " ".join(sys.argv[1:]),
                 "seeds": list(range(args.seeds))}
    for part, uri in SETS.items():
        if args.part in (part, "all"):
            entry = {**classification(uri, list(range(args.seeds)), args.methods.split(","), args.threads),
                     **part_info}
            if args.merge:  # read again: a process beside this one may have written its methods meanwhile
                doc = json.loads(path.read_text()) if path.exists() else {}
                entry = merged(doc.get(part), entry, TARGETS.get(uri))
            doc[part] = entry
    if args.part in ("mutag-walks", "all"):
        entry = {**walk_choice(SETS["mutag"], list(range(args.seeds)), args.methods.split(","), args.threads),
                 **part_info}
        if args.part != "all":  # read again: a process beside this one may have written meanwhile
            doc = json.loads(path.read_text()) if path.exists() else {}
        doc["mutag_walk_steps"] = entry
    if args.part in ("nodes", "all"):
        from graphs_nodes import node_level

        doc["nodes"] = {**node_level(list(range(args.seeds)), args.threads), **part_info}
    doc["machine"] = part_info["machine"]  # the last part's; each part keeps its own
    summary = " ".join(f"{part}: best {doc[part]['targets']['best_method']} {doc[part]['targets']['best_acc']:.2f} "
                       f"(WL {doc[part]['targets']['wl_acc']:.2f})" for part in SETS if part in doc)
    if "nodes" in doc:
        summary += " nodes: " + ", ".join(f"{m} {r['acc_mean']:.2f}" for m, r in doc["nodes"]["methods"].items())
    publish("graphs", doc, args.json, summary)


if __name__ == "__main__":
    main()
