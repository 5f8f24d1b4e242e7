"""Protocol "Fashion-MNIST, CPU budget" (../shared/reference/benchmark-protocol.md).

Default mode: `selfsup.train("fashion-mnist", minutes=M, seed=S, precision=P)` with no other option, i.e. the
measured preset of selfsup.presets, for every seed (default 0, 1, 2) and forced precision (--precisions), on the
60k training images without labels, 2 threads; then, on the frozen encoder, weighted kNN (k=200, cosine, T=0.1)
and the linear probe (C chosen on a validation split of train) on the test set, beside raw pixels and a randomly
initialised encoder of the same architecture, in the same run.
Training time is the budget; set-up and evaluation are reported separately. Peak RSS is measured.

Search mode (--search): how the preset was chosen. Each candidate configuration trains for
--search-minutes (3 to screen them all, then 10 for the best few) on 50k training images and is scored on the 10k held out from the *training* set
(stratified, seed 0): kNN and linear probe on validation images, never on test. Results are merged
into benchmarks/results/fmnist_budget_search.json (run candidates in stages with --only).

    python benchmarks/fmnist_budget.py --minutes 10 --seeds 0,1,2 --precisions fp32,bf16
    python benchmarks/fmnist_budget.py --search --search-minutes 3 [--only NAME,NAME]
    python benchmarks/fmnist_budget.py --search --stage final --search-minutes 10 --only NAME,NAME
"""
from __future__ import annotations

import argparse
import copy
import json
import resource
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
from selfsup.data import Dataset, Split  # noqa: E402
from selfsup.loading import load_dataset  # noqa: E402
from selfsup.evaluate import evaluate_run  # noqa: E402
from selfsup.run import build_encoder  # noqa: E402
from selfsup.evaluation import knn_accuracy, linear_probe, stratified_validation_split  # noqa: E402
from selfsup.presets import PRESETS  # noqa: E402
from selfsup.run import encode_storage  # noqa: E402

PROTOCOL = "Fashion-MNIST, CPU budget (shared/reference/benchmark-protocol.md)"
PEERS = {
    "lightly_1.6.0_simclr_10min": {"knn_acc": 0.808, "linear_acc": 0.876, "img_per_s": 359,
                                   "source": "shared/reference/anchors.md, measured on a 2-core machine with avx512_bf16 "
                                             "(ConvNet-4, batch 256)"},
    "raw_pixels_rbf_svm": {"acc": 0.897, "source": "Xiao et al. 2017, Table 3 (SVC rbf, C=10)"},
    "raw_pixels_knn_anchor": {"acc": 0.818, "source": "shared/reference/anchors.md (same kNN protocol)"},
}

W32 = {"widths": [32, 64, 128, 256]}
W16 = {"widths": [16, 32, 64, 128]}
W48 = {"widths": [48, 96, 192, 384]}
#: Candidate configurations for the search; every one is a set of `selfsup.train` options.
CANDIDATES: dict[str, dict[str, Any]] = {
    "simclr-w32": {"method": "simclr", "encoder": "convnet4", "encoder_options": W32},
    "simclr-w32-aug0.5": {"method": "simclr", "encoder": "convnet4", "encoder_options": W32,
                          "augmentation_strength": 0.5},
    "simclr-w16-aug0.5": {"method": "simclr", "encoder": "convnet4", "encoder_options": W16,
                          "augmentation_strength": 0.5},
    "vicreg-w32-aug0.5": {"method": "vicreg", "encoder": "convnet4", "encoder_options": W32,
                          "augmentation_strength": 0.5},
    "byol-w32-aug0.5": {"method": "byol", "encoder": "convnet4", "encoder_options": W32,
                        "augmentation_strength": 0.5},
    # training views at 16 px (2.6x the images/s of 28 px for W32; the encoder is evaluated on 28 px images)
    "simclr-w32-aug0.5-views16": {"method": "simclr", "encoder": "convnet4", "encoder_options": W32,
                                  "augmentation_strength": 0.5, "augmentation": {"size": 16}},
    "simclr-convnet4-aug0.5-views16": {"method": "simclr", "encoder": "convnet4", "augmentation_strength": 0.5,
                                       "augmentation": {"size": 16}},
    "simclr-w48-aug0.5-views16": {"method": "simclr", "encoder": "convnet4", "encoder_options": W48,
                                  "augmentation_strength": 0.5, "augmentation": {"size": 16}},
    "simclr-w32-aug0.5-views20": {"method": "simclr", "encoder": "convnet4", "encoder_options": W32,
                                  "augmentation_strength": 0.5, "augmentation": {"size": 20}},
    "simclr-w32-aug0.5-views16-t0.2": {"method": "simclr", "encoder": "convnet4", "encoder_options": W32,
                                       "augmentation_strength": 0.5, "augmentation": {"size": 16},
                                       "method_options": {"temperature": 0.2}},
    "simclr-w32-aug1-views16": {"method": "simclr", "encoder": "convnet4", "encoder_options": W32,
                                "augmentation": {"size": 16}},
    "simclr-w32-aug0.5-views16-outnorm": {"method": "simclr", "encoder": "convnet4",
                                          "encoder_options": {**W32, "out_norm": True},
                                          "augmentation_strength": 0.5, "augmentation": {"size": 16}},
    # SimCLR's square-root rule for small batches and short schedules (appendix B.1): lr = 0.075 x sqrt(256)
    "simclr-w48-aug0.5-views16-sqrtlr": {"method": "simclr", "encoder": "convnet4", "encoder_options": W48,
                                         "augmentation_strength": 0.5, "augmentation": {"size": 16}, "lr": 1.2},
    # the self-distillation and clustering methods on the preset's recipe (W48, strength 0.5, 16-px
    # views), multi-crop with 6 local crops of 8 px (DINO's 96/224 of 16 px would be 7 px: too small for ConvNet-4),
    # each method's paper optimiser and learning rate
    **{f"{m}-w48-aug0.5-views16-local8": {"method": m, "encoder": "convnet4", "encoder_options": W48,
                                          "augmentation_strength": 0.5, "augmentation": {"size": 16, "local_size": 8},
                                          **extra}
       for m, extra in (("dino", {}), ("swav", {}), ("deepcluster_v2", {}),
                        # one head: SeLa's self-labelling (Sinkhorn over 50k x 3000 in float64) costs ~15 s a head
                        ("sela", {"method_options": {"heads": 1}}))},
    # short-budget variants (a 3-10 minute run is 2-20 epochs): DINO's teacher follows faster (momentum 0.99, the
    # last layer not frozen, 1024 prototypes); SwAV with the paper's queue for batch 256 (3840, from 15% of training)
    # and its prototypes not frozen
    "dino-w48-aug0.5-views16-local8-short": {
        "method": "dino", "encoder": "convnet4", "encoder_options": W48, "augmentation_strength": 0.5,
        "augmentation": {"size": 16, "local_size": 8},
        "method_options": {"base_momentum": 0.99, "freeze_last_layer_epochs": 0, "out_dim": 1024}},
    "swav-w48-aug0.5-views16-local8-queue": {
        "method": "swav", "encoder": "convnet4", "encoder_options": W48, "augmentation_strength": 0.5,
        "augmentation": {"size": 16, "local_size": 8},
        "method_options": {"queue_length": 3840, "freeze_prototypes_epochs": 0}},
    **{f"{m}-w48-aug0.5-views16": {"method": m, "encoder": "convnet4", "encoder_options": W48,
                                   "augmentation_strength": 0.5, "augmentation": {"size": 16}}
       for m in ("mocov3", "nnclr")},
    "simclr-w32-aug0.5-views16-b128": {"method": "simclr", "encoder": "convnet4", "encoder_options": W32,
                                       "augmentation_strength": 0.5, "augmentation": {"size": 16},
                                       "batch_size": 128},
    # masked modelling on a Vision Transformer (ViT-Tiny, 4-px patches: 7 x 7 tokens of a 28-px image)
    # and the classic pretext tasks on the preset's ConvNet-4 (W48), each with its paper's optimiser
    "mae-vit_tiny": {"method": "mae", "encoder": "vit_tiny"},
    "rotnet-w48": {"method": "rotnet", "encoder": "convnet4", "encoder_options": W48},
    # the same with its embedding standardised by a BatchNorm without affine parameters (running statistics)
    "rotnet-w48-outnorm": {"method": "rotnet", "encoder": "convnet4", "encoder_options": {**W48, "out_norm": True}},
    # the last map max-pooled, or average- and max-pooled and concatenated (768-d), with or without that standardisation
    **{f"rotnet-w48-{pool}{'-outnorm' if norm else ''}": {
        "method": "rotnet", "encoder": "convnet4",
        "encoder_options": {**W48, "pool": pool, **({"out_norm": True} if norm else {})}}
       for pool in ("max", "avgmax") for norm in (True, False)},
    # the preset at lower learning rates than the paper's 0.2 (the rate that beats the random encoder on 8-px digits)
    **{f"rotnet-w48-avgmax-lr{lr:g}": {"method": "rotnet", "encoder": "convnet4", "lr": lr,
                                       "encoder_options": {**W48, "pool": "avgmax"}} for lr in (0.05, 0.01)},
    "npid-w48-aug0.5-views16": {"method": "npid", "encoder": "convnet4", "encoder_options": W48,
                                "augmentation_strength": 0.5, "augmentation": {"size": 16}},
    "ijepa-vit_tiny": {"method": "ijepa", "encoder": "vit_tiny"},
    "data2vec2-vit_tiny": {"method": "data2vec2", "encoder": "vit_tiny"},
    "jigsaw-w48": {"method": "jigsaw", "encoder": "convnet4", "encoder_options": W48},
    "relative_position-w48": {"method": "relative_position", "encoder": "convnet4", "encoder_options": W48},
    # the methods of LightlySSL 1.6 added to selfsup, each with its defaults on the preset's recipe (W48, strength
    # 0.5, 16-px views; 8-px local crops where the method takes them)
    **{f"{m}-w48-aug0.5-views16": {"method": m, "encoder": "convnet4", "encoder_options": W48,
                                   "augmentation_strength": 0.5, "augmentation": {"size": 16}}
       for m in ("dcl", "dclw", "tico", "mmcr", "directclr", "wmse", "fastsiam", "smog")},
    "lejepa-w48-aug0.5-views16-local8": {"method": "lejepa", "encoder": "convnet4", "encoder_options": W48,
                                         "augmentation_strength": 0.5, "augmentation": {"size": 16, "local_size": 8}},
    # 4 patches instead of the paper's 20 (the CPU setting of EMP-SSL's docstring: 20 views of every image leave a
    # 3-minute budget a few hundred images)
    "emp_ssl-w48-aug0.5-views16-patches4": {"method": "emp_ssl", "encoder": "convnet4", "encoder_options": W48,
                                            "augmentation_strength": 0.5, "augmentation": {"size": 16},
                                            "method_options": {"num_patches": 4}},
    # the token-encoder methods on ViT-Tiny (4-px patches), as mae/ijepa/data2vec2 above
    **{f"{m}-vit_tiny": {"method": m, "encoder": "vit_tiny"} for m in ("msn", "dinov2", "vicregl")},
}


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)


def validation_split(ds: Dataset, seed: int = 0) -> tuple[Split, Split]:
    """10k stratified images held out from the 60k training images (the test set is never touched)."""
    fit, val = stratified_validation_split(ds.train.y, 10000 / len(ds.train), seed)
    return Split(ds.train.x[fit], ds.train.y[fit]), Split(ds.train.x[val], ds.train.y[val])


def score_on_validation(run, fit: Split, val: Split) -> dict[str, Any]:
    """kNN and linear probe of a run's frozen encoder: fit on `fit`, scored on `val`."""
    a = encode_storage(run.encoder, run.modality, run.spec, fit.x)
    b = encode_storage(run.encoder, run.modality, run.spec, val.x)
    lin = linear_probe(a, fit.y, b, val.y)
    return {"val_knn": round(knn_accuracy(a, fit.y, b, val.y, k=200, temperature=0.1), 4),
            "val_linear": round(lin["acc"], 4), "linear_C": lin["C"]}


def with_seed(previous: dict[str, Any] | None, entry: dict[str, Any]) -> dict[str, Any]:
    """A candidate's record after one more run: the runs of every seed at the same budget kept under `seeds`, and
    val_knn / val_linear their means (a run of a seed already there replaces it; another budget starts afresh)."""
    runs = {} if previous is None or previous.get("minutes") != entry["minutes"] else dict(
        previous.get("seeds") or {str(previous["seed"]): {k: v for k, v in previous.items() if k != "seeds"}})
    runs[str(entry["seed"])] = entry
    if len(runs) == 1:
        return entry
    mean = {k: round(float(np.mean([r[k] for r in runs.values()])), 4) for k in ("val_knn", "val_linear")}
    std = {f"{k}_std": round(float(np.std([r[k] for r in runs.values()], ddof=1)), 4) for k in mean}
    return {**entry, **mean, **std, "seed": sorted(int(s) for s in runs), "seeds": runs}


def best_candidate(search_result: dict[str, Any]) -> str:
    """The winner: highest val_knn + val_linear in the final round (full budget) if run, else in the screen."""
    pool = search_result.get("final_round") or search_result["candidates"]
    return max(pool, key=lambda n: pool[n]["val_knn"] + pool[n]["val_linear"])


def baselines_on_validation(run, fit: Split, val: Split) -> dict[str, Any]:
    """Raw pixels and a randomly initialised encoder of the run's architecture, scored like the candidates."""
    raw_fit, raw_val = (run.modality.raw_features(s.x, run.spec) for s in (fit, val))
    lin = linear_probe(raw_fit, fit.y, raw_val, val.y)
    raw = {"val_knn": round(knn_accuracy(raw_fit, fit.y, raw_val, val.y, k=200, temperature=0.1), 4),
           "val_linear": round(lin["acc"], 4), "linear_C": lin["C"]}
    random_run = copy.copy(run)
    random_run.encoder = build_encoder(run.resolved, seed=run.config.seed + 1000)
    return {"raw": raw, "random_encoder": {"encoder_options": run.resolved.encoder_options,
                                           **score_on_validation(random_run, fit, val)}}


def search(minutes: float, only: list[str] | None, seed: int, stage: str) -> dict[str, Any]:
    ds = load_dataset("fashion-mnist")
    fit, val = validation_split(ds)
    path = RESULTS / "fmnist_budget_search.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    out.setdefault("candidates", {})
    results = out.setdefault("candidates" if stage == "screen" else "final_round", {})
    for name in only or list(CANDIDATES):
        options = CANDIDATES[name]
        start = time.perf_counter()
        run = selfsup.train(Dataset("fashion-mnist-fit", "image", fit), minutes=minutes, seed=seed,
                            monitor=False, **options)
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        scores = score_on_validation(run, fit, val)
        eval_s, here = time.perf_counter() - start, machine()
        entry = {"options": options, "minutes": minutes, "seed": seed, **scores,
                 "steps": run.summary["steps"], "img_per_s": run.summary["samples_per_s"],
                 "epochs": round(run.summary["steps"] * run.summary["batch_size"] / len(fit), 2),
                 "train_seconds": round(train_s, 1), "eval_seconds": round(eval_s, 1),
                 "load_average_1min": here["load_average_1min"], "machine": here}
        results[name] = with_seed(results.get(name), entry)
        arch = architecture_key({"encoder": run.resolved.encoder, "encoder_options": run.resolved.encoder_options})
        baselines = out.setdefault("baselines_on_validation", {})
        if arch not in baselines:  # once per architecture: raw pixels and a random encoder, same split and probes
            baselines[arch] = baselines_on_validation(run, fit, val)
        print(json.dumps({name: results[name]}), flush=True)
        out.update({"protocol": PROTOCOL + ", search on a validation split of train",
                    "validation": "10,000 images held out from the 60,000 training images (stratified, seed 0); "
                                  "candidates train on the other 50,000; the test set is not used",
                    "stages": "screen: every candidate with a short budget (candidates); final: the best "
                              "few with the full budget (final_round), which decides",
                    "score": "val_knn + val_linear"})
        out.setdefault("machine", machine())  # the first screens' machine; later runs record theirs in the entry
        out["best"] = best_candidate(out)
        save("fmnist_budget_search", out)
    return out


#: The candidates of the README's table of LightlySSL 1.6's methods (`--table lightly`).
LIGHTLY_METHODS = ("dcl-w48-aug0.5-views16", "dclw-w48-aug0.5-views16", "tico-w48-aug0.5-views16",
                   "mmcr-w48-aug0.5-views16", "directclr-w48-aug0.5-views16", "wmse-w48-aug0.5-views16",
                   "fastsiam-w48-aug0.5-views16", "smog-w48-aug0.5-views16", "lejepa-w48-aug0.5-views16-local8",
                   "emp_ssl-w48-aug0.5-views16-patches4", "msn-vit_tiny", "dinov2-vit_tiny", "vicregl-vit_tiny")
#: The self-distillation and clustering methods screened beside the SimCLR recipe (`--table distillation`).
DISTILLATION_METHODS = ("simclr-w48-aug0.5-views16-sqrtlr", "nnclr-w48-aug0.5-views16", "mocov3-w48-aug0.5-views16",
                        "sela-w48-aug0.5-views16-local8", "swav-w48-aug0.5-views16-local8",
                        "deepcluster_v2-w48-aug0.5-views16-local8", "dino-w48-aug0.5-views16-local8",
                        "dino-w48-aug0.5-views16-local8-short", "swav-w48-aug0.5-views16-local8-queue")
#: The masked-modelling and pretext-task methods screened (`--table pretext`).
PRETEXT_METHODS = ("rotnet-w48", "rotnet-w48-outnorm", "rotnet-w48-max", "rotnet-w48-max-outnorm", "rotnet-w48-avgmax",
                   "rotnet-w48-avgmax-lr0.05", "rotnet-w48-avgmax-lr0.01",
                   "rotnet-w48-avgmax-outnorm", "relative_position-w48", "jigsaw-w48", "npid-w48-aug0.5-views16",
                   "mae-vit_tiny", "ijepa-vit_tiny", "data2vec2-vit_tiny")
TABLES = {"lightly": LIGHTLY_METHODS, "distillation": DISTILLATION_METHODS, "pretext": PRETEXT_METHODS}


def architecture_key(options: dict[str, Any]) -> str:
    """The key of `baselines_on_validation` for a candidate's options (ConvNet-4: its options alone)."""
    encoder = options.get("encoder", "convnet4")
    encoder_options = options.get("encoder_options", {})
    if encoder == "convnet4":
        return json.dumps(encoder_options, sort_keys=True)
    return json.dumps([encoder, encoder_options], sort_keys=True)


def screen_table(search_result: dict[str, Any], names: tuple[str, ...]) -> str:
    """Markdown rows of screened candidates beside the raw pixels and the random encoder of their architecture, as
    measured on the same validation images; a candidate not screened yet is left out."""
    rows = ["| candidate | encoder | validation kNN / linear | random encoder | raw pixels | epochs | steps | "
            "load (1 min) |", "|---|---|---|---|---|---|---|---|"]
    for name in names:
        r = search_result["candidates"].get(name)
        if r is None:
            continue
        base = search_result["baselines_on_validation"][architecture_key(r["options"])]
        rnd, raw = base["random_encoder"], base["raw"]
        better = r["val_knn"] > rnd["val_knn"] and r["val_linear"] > rnd["val_linear"]
        score = f"{r['val_knn']:.3f} / {r['val_linear']:.3f}"
        rows.append(f"| `{name}` | {r['options'].get('encoder', 'convnet4')} | {f'**{score}**' if better else score} "
                    f"| {rnd['val_knn']:.3f} / {rnd['val_linear']:.3f} | {raw['val_knn']:.3f} / "
                    f"{raw['val_linear']:.3f} | {r['epochs']} | {r['steps']} | {r['load_average_1min']:.1f} |")
    return "\n".join(rows)


def final_round_table(search_result: dict[str, Any]) -> str:
    """Markdown rows of the search's final round: the best screened candidates trained for the full budget, scored on
    the same validation images (mean ± std where the round ran several seeds)."""
    rows = ["| candidate | budget | seeds | validation kNN | validation linear | kNN + linear | epochs | steps |",
            "|---|---|---|---|---|---|---|---|"]
    f = lambda r, k: f"{r[k]:.3f}" + (f" ± {r[k + '_std']:.3f}" if k + "_std" in r else "")  # noqa: E731
    best = best_candidate(search_result)
    for name, r in search_result["final_round"].items():
        seeds = r["seed"] if isinstance(r["seed"], list) else [r["seed"]]
        score = f"{r['val_knn'] + r['val_linear']:.3f}"
        rows.append(f"| `{name}` | {r['minutes']:g} min | {', '.join(map(str, seeds))} | {f(r, 'val_knn')} | "
                    f"{f(r, 'val_linear')} | {f'**{score}**' if name == best else score} | {r['epochs']} | "
                    f"{r['steps']} |")
    return "\n".join(rows)


def budget_table(result: dict[str, Any]) -> str:
    """Markdown rows of the budget runs (fmnist_budget.json): per precision, mean ± std over seeds of selfsup, raw
    pixels and the random encoder, measured in the same runs (the README's table; tests/test_readme.py checks it)."""
    rows = ["| precision (seeds) | preset kNN (k=200) | raw pixels | random encoder | preset linear | raw pixels | "
            "random encoder | epochs | every seed above raw |", "|---|---|---|---|---|---|---|---|---|"]
    f = lambda v: f"{v['mean']:.3f} ± {v['std']:.3f}"  # noqa: E731
    for precision, s in result["summary"].items():
        runs = [r for r in result["runs"] if r["precision"] == precision]
        epochs = np.mean([r["training"]["epochs"] for r in runs])
        rows.append(f"| {precision} ({', '.join(map(str, s['seeds']))}) | **{f(s['selfsup']['knn_acc'])}** | "
                    f"{f(s['raw']['knn_acc'])} | {f(s['random_encoder']['knn_acc'])} | "
                    f"**{f(s['selfsup']['linear_acc'])}** | {f(s['raw']['linear_acc'])} | "
                    f"{f(s['random_encoder']['linear_acc'])} | {epochs:.1f} | "
                    f"{'yes' if s['every_seed_above_raw'] else 'no'} |")
    return "\n".join(rows)


def budget_run(minutes: float, seed: int, precision: str = "auto", keep: Path | None = None) -> dict[str, Any]:
    """One 10-minute run of the preset, evaluated with its baselines; with `keep`, its run directory stays in
    KEEP/seedS-PRECISION (benchmarks/clustering.py --runs clusters the same encoders)."""
    start = time.perf_counter()
    ds = load_dataset("fashion-mnist")
    load_s = time.perf_counter() - start
    out = None if keep is None else keep / f"seed{seed}-{precision}"
    # no method/encoder: the fashion-mnist preset
    run = selfsup.train(ds, minutes=minutes, seed=seed, precision=precision, out=out)
    rss_after_training = peak_rss_gib()
    ev = evaluate_run(run, ds, protocols=("knn", "linear"))
    preset = PRESETS["fashion-mnist"]
    p = ev["protocols"]
    return {
        "protocol": PROTOCOL, "command": "python benchmarks/fmnist_budget.py " + " ".join(sys.argv[1:]),
        "knn_acc": round(ev["knn_acc"], 4), "linear_acc": round(ev["linear_acc"], 4), "minutes": minutes,
        "seed": seed, "precision": run.resolved.precision,
        "targets": {"knn_acc": 0.85, "linear_acc": 0.90, "peak_rss_gib": 3.0},
        "baselines": {name: {"knn_acc": round(p["knn"][name]["acc"], 4), "linear_acc": round(p["linear"][name]["acc"], 4)}
                      for name in ("raw", "random_encoder")},
        "configuration": {"preset": preset.options, "chosen_by": preset.chosen_by,
                          "resolved": {k: run.resolved.to_dict()[k] for k in ("encoder", "encoder_options", "method_options",
                                                                     "optimizer", "lr", "weight_decay", "batch_size",
                                                                     "precision")},
                          "config": run.config.to_dict()},
        "training": {"train_seconds": run.summary["train_seconds"], "setup_seconds": run.summary["setup_seconds"],
                     "load_seconds": round(load_s, 1), "steps": run.summary["steps"],
                     "epochs": round(run.summary["steps"] * run.summary["batch_size"] / len(ds.train), 2),
                     "img_per_s": run.summary["samples_per_s"], "final_loss": run.summary["final_loss"]},
        "evaluation_seconds": ev["seconds"], "linear_C": p["linear"]["selfsup"]["C"],
        "peak_rss_gib": {"after_training": rss_after_training, "after_evaluation": peak_rss_gib()},
        "peers": PEERS, "machine": machine(),
    }


def merged_runs(previous: dict[str, Any] | None, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs of an earlier budget file that this one does not replace (same preset and budget, another seed or
    precision), followed by this one's: one file holds fp32 and bf16 measured in separate invocations."""
    if not runs:
        return []
    new = {(r["seed"], r["precision"]) for r in runs}
    same = lambda r: (r["configuration"]["preset"] == runs[0]["configuration"]["preset"]  # noqa: E731
                      and r["minutes"] == runs[0]["minutes"])
    kept = [r for r in (previous or {}).get("runs", []) if same(r) and (r["seed"], r["precision"]) not in new]
    return kept + runs


def seed_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The budget runs with, per precision, mean and std over seeds of selfsup, raw pixels and the random encoder
    (kNN and linear), and whether every seed beat raw pixels on both."""
    summary: dict[str, Any] = {}
    for precision in dict.fromkeys(r["precision"] for r in runs):
        mine = [r for r in runs if r["precision"] == precision]
        rows = {"selfsup": [{k: r[k] for k in ("knn_acc", "linear_acc")} for r in mine],
                **{name: [r["baselines"][name] for r in mine] for name in ("raw", "random_encoder")}}
        summary[precision] = {
            name: {k: {"mean": round(float(np.mean([v[k] for v in vals])), 4),
                       "std": round(float(np.std([v[k] for v in vals], ddof=1)), 4) if len(vals) > 1 else 0.0}
                   for k in ("knn_acc", "linear_acc")} for name, vals in rows.items()}
        summary[precision]["seeds"] = [r["seed"] for r in mine]
        summary[precision]["every_seed_above_raw"] = all(
            r[k] > r["baselines"]["raw"][k] for r in mine for k in ("knn_acc", "linear_acc"))
    return {"protocol": PROTOCOL, "command": "python benchmarks/fmnist_budget.py " + " ".join(sys.argv[1:]),
            "targets": runs[0]["targets"], "summary": summary, "runs": runs, "machine": machine()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="search mode: the seed of every candidate")
    parser.add_argument("--seeds", default="0,1,2", help="budget mode: one run per seed (and precision)")
    parser.add_argument("--precisions", default="auto",
                        help="budget mode: comma-separated precisions to force (fp32, bf16; auto: the machine's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep-runs", metavar="DIR",
                        help="budget mode: keep each run's directory under DIR (for benchmarks/clustering.py --runs)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--search", action="store_true", help="score the candidate configurations on validation")
    parser.add_argument("--search-minutes", type=float, default=3.0)
    parser.add_argument("--only", help="comma-separated candidate names (search mode)")
    parser.add_argument("--stage", choices=["screen", "final"], default="screen",
                        help="search mode: short-budget screen, or the final round at the full budget")
    parser.add_argument("--table", choices=sorted(TABLES),
                        help="print the README's markdown table of these screened candidates and exit")
    parser.add_argument("--readme", action="store_true", help="with --table: also write it into README.md")
    parser.add_argument("--budget-table", action="store_true",
                        help="write the README's table of the budget runs (fmnist_budget.json) and exit")
    args = parser.parse_args(argv)
    if args.budget_table:
        import blocks

        blocks.write("screen table budget")
        print(blocks.BLOCKS["screen table budget"]())
        return 0
    if args.table:
        table = screen_table(json.loads((RESULTS / "fmnist_budget_search.json").read_text()), TABLES[args.table])
        if args.readme:
            import blocks

            blocks.write(f"screen table {args.table}")
        print(table)
        return 0
    torch.set_num_threads(args.threads)
    if args.search:
        only = args.only.split(",") if args.only else None
        unknown = sorted(set(only or []) - set(CANDIDATES))
        if unknown:
            parser.error(f"--only: unknown candidate(s) {', '.join(unknown)}; known: {', '.join(CANDIDATES)}")
        result = search(args.search_minutes, only, args.seed, args.stage)
    else:
        keep = Path(args.keep_runs) if args.keep_runs else None
        runs = [budget_run(args.minutes, seed, precision, keep) for precision in args.precisions.split(",")
                for seed in (int(x) for x in args.seeds.split(","))]
        path = RESULTS / "fmnist_budget.json"
        result = seed_summary(merged_runs(json.loads(path.read_text()) if path.exists() else None, runs))
        path = save("fmnist_budget", result)
        if not args.json:
            for precision, s in result["summary"].items():
                print(f"{precision}: kNN {s['selfsup']['knn_acc']} linear {s['selfsup']['linear_acc']} "
                      f"(raw {s['raw']}, random {s['random_encoder']}) in {args.minutes} min")
            print(f"-> {path}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
