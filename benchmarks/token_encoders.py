"""Masked modelling on token encoders: each masked method beside the random encoder of its architecture.

Parts (results merged into benchmarks/results/token_encoders.json, one key a part and method):

- ``fmnist``: the Fashion-MNIST CPU-budget protocol (shared/reference/benchmark-protocol.md) for ViT-Tiny (4-px
  patches, 7 x 7 tokens): `selfsup.train` on the 60k training images for METHOD:MINUTES, then on the frozen encoder
  weighted kNN (k=200, cosine, T=0.1) and the linear probe (C chosen on a validation split of train) on the test set,
  and few-label fine-tuning of the whole encoder (selfsup.finetune: the head from the linear probe, the encoder's
  declared optimiser with layer-wise decay for ViTs, the rate chosen on a fifth of the labels) on 1% and 10% of the
  training labels; raw pixels and a random ViT-Tiny (same seed, so the same random encoder for
  every method) in the same run.
- ``digits``: the same protocols on scikit-learn's 8x8 digits (ViT-Tiny with 2-px patches: 4 x 4 tokens; trained for
  EPOCHS epochs), fine-tuning on 1%, 10% and 100% of the 1,347 training labels.
- ``series``: a UCR problem (aeon's copy) through the token protocol: the patch Transformer trained by each masked
  method, then TS2Vec's RBF-SVM protocol on the frozen embeddings, beside the random patch Transformer and the raw
  series, over seeds.

    python benchmarks/token_encoders.py --part fmnist --methods mae:15,ijepa:3,data2vec2:3 --finetune-seeds 2
    python benchmarks/token_encoders.py --part digits --methods mae,data2vec2 --epochs 30
    python benchmarks/token_encoders.py --part series --methods mae,data2vec2 --problem GunPoint --seeds 3

A run stopped before its end (the JSON is written last) keeps what it printed: `--from-log LOG` with the same
arguments records the per-method lines of that output (fmnist and digits parts), marked as such.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, machine, save  # noqa: E402

import selfsup  # noqa: E402
from selfsup.evaluate import evaluate_run  # noqa: E402
from selfsup.finetune import few_label_finetune  # noqa: E402
from selfsup.loading import load_dataset  # noqa: E402

NAME = "token_encoders"


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def training_summary(run: selfsup.Run, n: int) -> dict[str, Any]:
    s = run.summary
    return {"steps": s["steps"], "epochs": round(s["steps"] * s["batch_size"] / n, 2), "batch_size": s["batch_size"],
            "train_seconds": s["train_seconds"], "samples_per_s": s["samples_per_s"], "final_loss": s["final_loss"],
            "precision": run.resolved.precision, "encoder": run.resolved.encoder,
            "encoder_options": run.resolved.encoder_options, "method_options": run.resolved.method_options}


def probe_and_finetune(run: selfsup.Run, ds, fractions: tuple[float, ...], seeds: tuple[int, ...],
                       baselines: bool) -> dict[str, Any]:
    """kNN and linear probe (with raw input and random encoder when `baselines`), then few-label fine-tuning."""
    ev = evaluate_run(run, ds, protocols=("knn", "linear"), baselines=baselines)
    p = ev["protocols"]
    out: dict[str, Any] = {"knn": p["knn"]["selfsup"]["acc"], "linear": p["linear"]["selfsup"]["acc"],
                           "linear_C": p["linear"]["selfsup"]["C"], "evaluation_seconds": ev["seconds"]}
    if baselines:
        out["baselines"] = {name: {"knn": p["knn"][name]["acc"], "linear": p["linear"][name]["acc"]}
                            for name in ("raw", "random_encoder")}
    start = time.perf_counter()
    ft = few_label_finetune(run, ds.train, ds.test, fractions, seeds, baseline=baselines)
    kept = ("mean", "std", "accs", "n_labels", "steps", "lr")
    out["finetune"] = {f: {k: ft["selfsup"][f][k] for k in kept} for f in ft["selfsup"]}
    if baselines:
        out["baselines"]["random_encoder"]["finetune"] = {f: {k: ft["random_encoder"][f][k] for k in kept}
                                                          for f in ft["random_encoder"]}
    out["finetune_seconds"] = round(time.perf_counter() - start, 1)
    recipe = run.encoder.fine_tuning
    out["finetune_settings"] = {"seeds": list(seeds), "protocol": "selfsup.finetune (head from the linear probe, "
                                "label smoothing 0.1, 30 epochs of the labelled set in 100-1000 steps of 64, rate "
                                "x 1/3, 1, 3 chosen on a fifth of the labels)",
                                "optimizer": f"{recipe.optimizer}, lr {recipe.lr}, weight decay {recipe.weight_decay}, "
                                             f"warm-up {recipe.warmup:.0%} of the steps, then cosine, layer decay "
                                             f"{recipe.layer_decay} (the encoder's declared fine-tuning recipe)"}
    return out


def image_part(data: str, specs: list[tuple[str, float]], budget: str, seeds: tuple[int, ...],
               fractions: tuple[float, ...], encoder_options: dict[str, Any], measure_baselines: bool) -> dict[str, Any]:
    ds = load_dataset(data)
    results: dict[str, Any] = {}
    for i, (method, amount) in enumerate(specs):
        options = {"minutes": amount} if budget == "minutes" else {"epochs": int(amount)}
        print(f"# training {method} for {amount} {budget} from {time.strftime('%H:%M:%S')}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        run = selfsup.train(ds, method=method, encoder="vit_tiny", encoder_options=encoder_options, seed=0,
                            monitor=False, **options)
        wall = time.perf_counter() - start
        print(f"# training {method} ended at {time.strftime('%H:%M:%S')}; evaluating", file=sys.stderr, flush=True)
        result = {budget: amount, "training": {**training_summary(run, len(ds.train)), "wall_seconds": round(wall, 1)},
                  **probe_and_finetune(run, ds, fractions, seeds, baselines=measure_baselines and i == 0)}
        results[method] = rounded(result)
        print(json.dumps({method: results[method]}), flush=True)
    return results


def series_part(problem: str, methods: list[str], seeds: int) -> dict[str, Any]:
    ds = load_dataset(f"ucr:{problem}")
    out: dict[str, Any] = {}
    for method in methods:
        per_seed = []
        for seed in range(seeds):
            start = time.perf_counter()
            run = selfsup.train(ds, method=method, encoder="patch_transformer", seed=seed, monitor=False)
            wall = time.perf_counter() - start
            ev = evaluate_run(run, ds, protocols=("svm",))
            p = ev["protocols"]["svm"]
            per_seed.append({"seed": seed, "svm": p["selfsup"]["acc"], "random_encoder": p["random_encoder"]["acc"],
                             "raw": p["raw"]["acc"], "training": {**training_summary(run, len(ds.train)),
                                                                   "wall_seconds": round(wall, 1)}})
            print(json.dumps({method: per_seed[-1]}), flush=True)
        summary = {key: {"mean": float(np.mean([r[key] for r in per_seed])),
                         "std": float(np.std([r[key] for r in per_seed], ddof=1)) if seeds > 1 else 0.0}
                   for key in ("svm", "random_encoder", "raw")}
        out[method] = rounded({"problem": problem, "seeds": list(range(seeds)), **summary, "runs": per_seed})
    return out


def fmnist_table(part: dict[str, Any]) -> str:
    """docs/benchmarks.md's table of the Fashion-MNIST part (4-px patches)."""
    return image_table(part, 4)


def digits_table(part: dict[str, Any]) -> str:
    """docs/benchmarks.md's table of the digits part (2-px patches)."""
    return image_table(part, 2)


def image_table(part: dict[str, Any], patch: int) -> str:
    """A table of an image part: each method and budget, the random ViT-Tiny of the same seed and raw pixels (from
    the entry that measured them), kNN, linear probe and few-label fine-tuning; the best ViT-Tiny figure of each
    column in bold."""
    base = next(e["baselines"] for e in part.values() if "baselines" in e)
    fractions = sorted({f for e in part.values() for f in e.get("finetune", {})}, key=float)
    rows = [(f"`{name.split('@')[0]}`", f"{e['minutes']:g} min" if "minutes" in e else f"{e['epochs']} epochs",
             f"{e['training']['epochs']}", e["knn"], e["linear"], e.get("finetune", {})) for name, e in part.items()]
    rows.append(("random ViT-Tiny (same seed)", "-", "-", base["random_encoder"]["knn"],
                 base["random_encoder"]["linear"], base["random_encoder"].get("finetune", {})))
    best = {"knn": max(r[3] for r in rows), "linear": max(r[4] for r in rows),
            **{f: max(r[5][f]["mean"] for r in rows if f in r[5]) for f in fractions}}
    bold = lambda text, value, key: f"**{text}**" if value == best[key] else text  # noqa: E731
    lines = [f"| ViT-Tiny, {patch}-px patches (test) | budget | epochs | kNN | linear | "
             + " | ".join(f"fine-tuned, {float(f):.0%} labels" for f in fractions) + " |",
             "|---|---|---|---|---|" + "---|" * len(fractions)]
    for label, budget, epochs, knn, linear, tuned in rows:
        cells = [bold(f"{knn:.3f}", knn, "knn"), bold(f"{linear:.3f}", linear, "linear")]
        cells += [bold(f"{tuned[f]['mean']:.3f} ± {tuned[f]['std']:.3f}", tuned[f]["mean"], f) if f in tuned else "-"
                  for f in fractions]
        lines.append(f"| {label} | {budget} | {epochs} | " + " | ".join(cells) + " |")
    lines.append(f"| raw pixels | - | - | {base['raw']['knn']:.3f} | {base['raw']['linear']:.3f} | "
                 + " | ".join("-" for _ in fractions) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["fmnist", "digits", "series"], required=True)
    parser.add_argument("--methods", default="mae,ijepa,data2vec2",
                        help="comma-separated METHOD or METHOD:MINUTES (fmnist; default 3 minutes)")
    parser.add_argument("--finetune-seeds", type=int, default=3, help="labelled subsets per fraction (seeds 0..N-1)")
    parser.add_argument("--epochs", type=int, default=30, help="digits: training epochs")
    parser.add_argument("--problem", default="GunPoint", help="series: UCR problem name")
    parser.add_argument("--seeds", type=int, default=3, help="series: training seeds 0..N-1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baselines-measured", action="store_true",
                        help="fmnist/digits: skip raw input and the random ViT, which an earlier run of this part "
                             "measured (same seed-0 encoder, so the same numbers); the entry names that run")
    parser.add_argument("--from-log", help="record the per-method lines a stopped run of these arguments printed")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    specs = [(m.partition(":")[0], float(m.partition(":")[2] or 3)) for m in args.methods.split(",")]
    seeds = tuple(range(args.finetune_seeds))
    path = RESULTS / f"{NAME}.json"
    if args.baselines_measured:  # checked before hours of training, not after
        earlier = json.loads(path.read_text()).get(args.part, {}) if path.exists() else {}
        measured = [(m, r) for m, r in earlier.items() if "baselines" in r and m not in {m for m, _ in specs}]
        if args.part == "series" or not measured:
            raise SystemExit(f"--baselines-measured: no other entry of part {args.part!r} in {path} has baselines; "
                             "run once without it")
        source, entry = measured[0]
    if args.from_log:
        result = {}
        for line in Path(args.from_log).read_text().splitlines():
            if line.startswith("{"):
                result.update({m: {**r, "recorded_from": "the printed output of a run stopped before it wrote "
                                                         "its JSON (--from-log)"} for m, r in json.loads(line).items()})
        for r in result.values():  # runs before commit 'records the fine-tuning recipe' printed a stale label
            if r.get("finetune_settings", {}).get("optimizer", "").startswith("SGD nesterov, lr 0.05, cosine"):
                r["finetune_settings"]["optimizer"] = ("adamw, lr 0.0005, weight decay 0.05, warm-up 10% of the steps, "
                                                      "then cosine (the encoder's declared fine-tuning recipe; the run "
                                                      "printed the label of the SGD recipe it no longer used)")
    elif args.part == "fmnist":
        result = image_part("fashion-mnist", specs, "minutes", seeds, (0.01, 0.1), {}, not args.baselines_measured)
    elif args.part == "digits":
        result = image_part("digits", [(m, args.epochs) for m, _ in specs], "epochs", seeds, (0.01, 0.1, 1.0), {},
                            not args.baselines_measured)
    else:
        result = series_part(args.problem, [m for m, _ in specs], args.seeds)
    doc = json.loads(path.read_text()) if path.exists() else {}
    command = "python benchmarks/token_encoders.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("--from-log") and a != args.from_log)
    part = doc.setdefault(args.part, {})
    if args.baselines_measured:
        for r in result.values():
            r["baselines"] = entry["baselines"]
            r["baselines_measured_by"] = f"the {source!r} entry of this part: {entry['command']}"
    for method, r in result.items():
        earlier = part.get(method)
        for budget in ("minutes", "epochs"):
            if earlier is not None and budget in earlier and earlier[budget] != r.get(budget):  # keep other budgets
                part[f"{method}@{earlier[budget]:g}{budget}"] = part.pop(method)
        part[method] = {**r, "command": command, "machine": machine()}
    doc["about"] = __doc__.split("\n\n")[0]
    save(NAME, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
