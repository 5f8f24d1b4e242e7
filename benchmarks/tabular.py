"""Protocol "Tabular, few labels" (../shared/reference/benchmark-protocol.md), with the protocols a tabular user runs.

Pre-train one encoder per dataset and seed on all training rows without labels; then for label fractions 1%, 10% and
100% of the training split (stratified draws, 5 draws at 1% and 10%, one at 100%) fit on the labelled rows only and
report test accuracy, mean and standard deviation over every (pre-training seed, draw) pair:

- probe: frozen embedding + linear probe (L-BFGS softmax regression on standardised features; C chosen on a
  stratified fifth of the labelled rows, or C = 1 when a class has fewer than 10 labelled rows);
- knn: frozen embedding + weighted kNN (T = 0.1, cosine; k = 20, at most the number of labelled rows);
- trees: HistGradientBoosting (selfsup.evaluation.gradient_boosting) on the raw columns beside the embedding
  (whitened to its 16 leading directions) where 5-fold cross-validation on the labelled rows prefers that to the
  raw columns alone (as a user deciding whether to add the embedding to a tree model would;
  selfsup.evaluation.trees.choose_features), and, reported beside it, on the raw columns beside it always;
- finetune: the whole encoder + a head trained on the labelled rows (selfsup.finetune.few_label_finetune: the head
  started at the linear probe, the rate chosen on a fifth of the labelled rows where it holds 4 rows a class);
baselines in the same run: the same probe, kNN and trees on the raw columns (numeric columns z-scored with training
statistics, missing indicators, one-hot categories; the trees take the raw values, NaN kept, categorical columns
native), the probe on the untrained encoder of the same architecture, and fine-tuning from that untrained encoder
(a supervised MLP trained from scratch by the same recipe).

Label draws come from selfsup.evaluation.few_label_splits: round(fraction * n_c) rows of every class c, at least one.
Test splits: LetterRecognition and Satellite keep their UCI splits; scikit-learn's tables have none, so a fixed
stratified 70/30 split (seed 0) is used. Nothing is tuned on test data; the pre-training configuration was chosen
once, for all datasets, on validation splits of the training rows. "Level" means the two means differ by at most the
larger of the two standard deviations.

Usage:  python benchmarks/tabular.py --data-dir /tmp/mlbench [--datasets ...] [--seeds 0,1,2] [--readme]
The mlbench tables come from Debian's r-cran-mlbench (no R needed):
  cd /tmp && apt-get download r-cran-mlbench && dpkg -x r-cran-mlbench_*.deb /tmp/mlbench
then pass --data-dir /tmp/mlbench (or install the package: apt-get install r-cran-mlbench).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import selfsup  # noqa: E402
from _common import machine as common_machine, write_result  # noqa: E402
from selfsup.data import Dataset, Split  # noqa: E402
from selfsup.errors import SelfSupError  # noqa: E402
from selfsup.evaluation import few_label_linear, few_label_splits, gradient_boosting, knn_accuracy  # noqa: E402
from selfsup.evaluation.trees import choose_features  # noqa: E402
from selfsup.finetune import few_label_finetune  # noqa: E402
from selfsup.loading import load_dataset  # noqa: E402
from selfsup.modalities.tabular.preprocess import Preprocessor  # noqa: E402
from selfsup.run import build_encoder, encode_storage  # noqa: E402
from selfsup.whitening import fit_whitening  # noqa: E402

DATASETS = ["sklearn:digits", "sklearn:breast_cancer", "mlbench:LetterRecognition", "mlbench:Satellite"]
FRACTIONS = (0.01, 0.1, 1.0)
TREE_FRACTIONS = (0.01, 0.1)  # gradient boosting with every label is the slowest part: not measured
# Trees see the embedding whitened to its 16 leading directions (fitted on the unlabelled training rows; what
# `selfsup embed --whiten 16 --with-raw` writes): gradient boosting on all 1,024 dimensions of 26-class
# LetterRecognition is the slowest part of the benchmark. benchmarks/tabular_recipes.py compares both on validation.
TREE_DIM = 16
# The default tabular configuration, chosen once for all tables on validation splits carved from the training rows
# (never test rows; docs/benchmarks.md): SCARF (temperature 0.5, corruption rate 0.3), the MLP encoder (4 x 256,
# BatchNorm) read out as all four blocks side by side, quantile scaling, batch 128, AdamW lr 1e-3, 1,500 steps, and
# on tables of fewer than 1,000 training rows at most 100 epochs. On validation (tabular_recipes.py --epoch-caps,
# benchmarks/results/tabular_epochs.json) the full 1,500 steps (215 epochs) won on digits' 1,005 validation-training
# rows at 10% and 100% of the labels, and 300 epochs lost to 100 on breast_cancer's 318 at 1%; tables above a few
# thousand rows reach 1,500 steps within 100 epochs anyway.
CONFIG = {"method": "scarf", "encoder": "mlp", "encoder_options": {"readout": "concat"}, "batch_size": 128,
          "steps": 1500, "max_epochs": 100, "epoch_cap_below_rows": 1000}
EPOCH_KEYS = ("max_epochs", "epoch_cap_below_rows")  # settings that change only how long a table pre-trains
KNN_K = 20
# protocol name -> (what it measures, whether it depends on the pre-training seed)
PROTOCOLS = {
    "probe": ("selfsup embedding + linear probe", True),
    "raw_probe": ("raw columns + linear probe", False),
    "random_probe": ("untrained encoder + linear probe", True),
    "knn": ("selfsup embedding + kNN", True),
    "raw_knn": ("raw columns + kNN", False),
    "trees": ("HistGradientBoosting on raw columns + selfsup embedding (16 whitened directions) where "
              "cross-validation on the labelled rows "
              "prefers it, else on raw columns (evaluation.trees.choose_features)", True),
    "trees_always": ("HistGradientBoosting on raw columns + selfsup embedding, always", True),
    "trees_choice": ("share of draws where cross-validation chose raw columns + selfsup embedding", True),
    "raw_trees": ("HistGradientBoosting on raw columns", False),
    "finetune": ("fine-tuning the selfsup encoder", True),
    "random_finetune": ("fine-tuning the untrained encoder (supervised from scratch)", True),
}
# the comparisons the benchmark answers: (selfsup protocol, baseline, fractions)
COMPARISONS = [("probe", "raw_probe", FRACTIONS), ("trees", "raw_trees", TREE_FRACTIONS),
               ("finetune", "probe", (1.0,)), ("probe", "random_probe", FRACTIONS),
               ("finetune", "random_finetune", FRACTIONS)]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "tabular.json"


def pretrain_epochs(cfg: dict[str, Any], rows: int) -> int:
    """Epochs of pre-training on `rows` training rows: `steps` optimiser steps, at most `max_epochs` epochs when
    there are fewer than `epoch_cap_below_rows` rows (absent or None: on every table)."""
    steps_per_epoch = max(1, rows // cfg["batch_size"])
    epochs = math.ceil(cfg["steps"] / steps_per_epoch)
    below = cfg.get("epoch_cap_below_rows")
    return max(1, min(epochs, cfg["max_epochs"]) if below is None or rows < below else epochs)


def pretrain(ds: Dataset, cfg: dict[str, Any], seed: int) -> tuple[Any, float]:
    """Pre-train on the training rows only; labels are removed before the data reaches the trainer."""
    unlabelled = Dataset(ds.name, "tabular", Split(ds.train.x, None), None, {})
    epochs = pretrain_epochs(cfg, len(ds.train))
    start = time.perf_counter()
    run = selfsup.train(unlabelled, method=cfg["method"], encoder=cfg["encoder"],
                        encoder_options=dict(cfg["encoder_options"]), epochs=epochs, batch_size=cfg["batch_size"],
                        seed=seed, monitor=False, device="cpu")
    return run, time.perf_counter() - start


def hgb_inputs(x: torch.Tensor, spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Raw values for gradient boosting: numeric columns as they are (NaN = missing), categorical columns
    as category indices (missing/unknown -> NaN); and the categorical-column mask."""
    pre = Preprocessor(spec)
    lay = pre.layout
    out = x.double().numpy().copy()
    if lay.categorical_columns:
        slots = pre.slots(x[:, lay.categorical_columns].double()).numpy().astype(np.float64) - 2
        slots[slots < 0] = np.nan
        out[:, lay.categorical_columns] = slots
    cat = np.zeros(x.shape[1], bool)
    cat[lay.categorical_columns] = True
    return out, cat


def frozen_protocols(feats: dict[str, tuple[np.ndarray, np.ndarray]], cat: np.ndarray, ytr: np.ndarray,
                     yte: np.ndarray, fraction: float, draws: list[int], with_baselines: bool
                     ) -> dict[str, list[float]]:
    """Accuracy per draw of every frozen-feature protocol at one label fraction (raw baselines only when asked)."""
    out: dict[str, list[float]] = {}
    probes = {"probe": "selfsup", "random_probe": "random"} | ({"raw_probe": "raw"} if with_baselines else {})
    for name, key in probes.items():
        tr, te = feats[key]
        out[name] = few_label_linear(tr, ytr, te, yte, fractions=(fraction,), seeds=draws)[str(fraction)]["accs"]
    subsets = few_label_splits(ytr, fraction, draws)
    knns = {"knn": "selfsup"} | ({"raw_knn": "raw"} if with_baselines else {})
    for name, key in knns.items():
        tr, te = feats[key]
        out[name] = [knn_accuracy(tr[idx], ytr[idx], te, yte, k=min(KNN_K, len(idx)), temperature=0.1)
                     for idx in subsets]
    if fraction not in TREE_FRACTIONS:
        return out
    (h_tr, h_te), (z_tr, z_te) = feats["trees"], feats["selfsup_reduced"]
    both = np.concatenate([h_tr, z_tr], 1), np.concatenate([h_te, z_te], 1)
    both_cat = np.concatenate([cat, np.zeros(z_tr.shape[1], bool)])
    out["trees_always"], out["trees"], out["trees_choice"] = [], [], []
    if with_baselines:
        out["raw_trees"] = []
    for s, idx in zip(draws, subsets):
        raw = gradient_boosting(h_tr[idx], ytr[idx], h_te, yte, categorical=cat, seed=s)["acc"]
        always = gradient_boosting(both[0][idx], ytr[idx], both[1], yte, categorical=both_cat, seed=s)["acc"]
        choice, _ = choose_features({"raw": (h_tr[idx], cat), "raw + selfsup": (both[0][idx], both_cat)}, ytr[idx], s)
        out["trees_always"].append(always)
        out["trees"].append(always if choice == "raw + selfsup" else raw)
        out["trees_choice"].append(float(choice == "raw + selfsup"))
        if with_baselines:
            out["raw_trees"].append(raw)
    return out


def run_seed(ds: Dataset, cfg: dict[str, Any], seed: int, draws: int, with_baselines: bool, log=print
             ) -> dict[str, Any]:
    """One pre-training seed: every protocol at every fraction, accuracies per draw."""
    run, seconds = pretrain(ds, cfg, seed)
    mod, spec = run.modality, run.spec
    random_encoder = build_encoder(run.resolved, seed=seed + 1000)
    feats = {"selfsup": tuple(encode_storage(run.encoder, mod, spec, s.x) for s in (ds.train, ds.test)),
             "random": tuple(encode_storage(random_encoder, mod, spec, s.x) for s in (ds.train, ds.test)),
             "raw": tuple(mod.raw_features(s.x, spec) for s in (ds.train, ds.test))}
    (h_tr, cat), (h_te, _) = hgb_inputs(ds.train.x, spec), hgb_inputs(ds.test.x, spec)
    feats["trees"] = (h_tr, h_te)
    reduce = fit_whitening(feats["selfsup"][0], TREE_DIM, "the training rows' embeddings")
    feats["selfsup_reduced"] = (reduce.transform(feats["selfsup"][0]), reduce.transform(feats["selfsup"][1]))
    out: dict[str, Any] = {"seed": seed, "pretrain_seconds": round(seconds, 1), "pretrain_steps": run.summary["steps"],
                           "pretrain_epochs": run.summary["epochs"], "precision": run.resolved.precision,
                           "resolved": {k: run.resolved.to_dict()[k] for k in ("encoder", "encoder_options", "method_options",
                                                                     "optimizer", "lr", "weight_decay", "views")},
                           "scaling": spec["scaling"], "fractions": {}}
    for fraction in FRACTIONS:
        seeds = list(range(draws)) if fraction < 1 else [0]
        start = time.perf_counter()
        accs = frozen_protocols(feats, cat, ds.train.y, ds.test.y, fraction, seeds, with_baselines)
        ft = few_label_finetune(run, ds.train, ds.test, fractions=(fraction,), seeds=seeds)
        accs["finetune"] = ft["selfsup"][str(fraction)]["accs"]
        accs["random_finetune"] = ft["random_encoder"][str(fraction)]["accs"]
        out["fractions"][f"{fraction:g}"] = {"accs": {k: [round(a, 4) for a in v] for k, v in accs.items()},
                                            "finetune_lr": {k: ft[k][str(fraction)]["lr"] for k in ft},
                                            "seconds": round(time.perf_counter() - start, 1)}
        log(f"  seed {seed} {fraction:>5.0%}: " + "  ".join(f"{k} {np.mean(v):.3f}" for k, v in accs.items()))
    return out


def stats(accs: list[float]) -> dict[str, Any]:
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
            "n": len(accs)}


def aggregate(per_seed: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """fraction -> protocol -> mean/std over every (seed, draw) pair (over the draws of the first seed for the
    baselines that do not depend on pre-training)."""
    out: dict[str, dict[str, Any]] = {}
    for frac in per_seed[0]["fractions"]:
        row = {}
        for name, (_, seeded) in PROTOCOLS.items():
            runs = per_seed if seeded else per_seed[:1]
            accs = [a for r in runs for a in r["fractions"][frac]["accs"].get(name, [])]
            if accs:
                row[name] = stats(accs)
        out[frac] = row
    return out


def compare(a: dict[str, Any], b: dict[str, Any]) -> str:
    """'ahead', 'level' (means within the larger std) or 'behind'."""
    diff = a["mean"] - b["mean"]
    if abs(diff) <= max(a["std"], b["std"]):
        return "level" if diff <= 0 else "ahead"
    return "ahead" if diff > 0 else "behind"


def verdict(results: dict[str, Any]) -> dict[str, Any]:
    """Every comparison of COMPARISONS per dataset and fraction: the difference of means and ahead/level/behind."""
    out: dict[str, Any] = {}
    for mine, other, fractions in COMPARISONS:
        key = f"{mine} vs {other}"
        out[key] = {}
        for uri, r in results.items():
            for frac in (f"{f:g}" for f in fractions):
                row = r["summary"][frac]
                out[key][f"{uri} {float(frac):.0%}"] = {"diff": round(row[mine]["mean"] - row[other]["mean"], 4),
                                                      "result": compare(row[mine], row[other])}
    return out


def summary(v: dict[str, Any]) -> list[str]:
    """One plain sentence per comparison, generated from the verdict."""
    lines = []
    for key, cases in v.items():
        by = {res: sorted(c for c, x in cases.items() if x["result"] == res) for res in ("ahead", "level", "behind")}
        lines.append(f"{key}: ahead on {len(by['ahead'])}, level on {len(by['level'])}, behind on "
                     f"{len(by['behind'])} of {len(cases)}" + (f" (behind: {', '.join(by['behind'])})"
                                                             if by["behind"] else "") + ".")
    return lines


def fmt(s: dict[str, Any]) -> str:
    return f"{s['mean']:.3f}±{s['std']:.3f}" if s["n"] > 1 else f"{s['mean']:.3f}"


COLUMNS = [("probe", "selfsup + probe"), ("raw_probe", "raw + probe"), ("random_probe", "untrained + probe"),
           ("trees", "trees, raw + selfsup if CV prefers"), ("trees_always", "trees on raw + selfsup"),
           ("raw_trees", "trees on raw"), ("finetune", "fine-tuned"), ("random_finetune", "trained from scratch")]


def markdown(doc: dict[str, Any]) -> str:
    """The results table (best of each row in bold), rendered into docs/benchmarks.md."""
    lines = ["| dataset | labels | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for uri, r in doc["results"].items():
        for frac, row in r["summary"].items():
            best = max(row[k]["mean"] for k, _ in COLUMNS if k in row)  # trees_choice is a share, not a column
            cells = ["-" if k not in row else f"**{fmt(row[k])}**" if row[k]["mean"] == best else fmt(row[k])
                     for k, _ in COLUMNS]
            lines.append(f"| {uri.split(':', 1)[1]} | {float(frac):.0%} | " + " | ".join(cells) + " |")
    m = doc["machine"][0] if isinstance(doc["machine"], list) else doc["machine"]
    lines.append("")
    lines.append(f"{len(doc['seeds'])} pre-training seeds x {len(doc['draw_seeds'])} label draws at 1% and 10% (one "
                 f"draw at 100%); {m.get('cpu', 'CPU')}, {', '.join(m.get('cpu_flags', [])) or 'no listed flags'}, "
                 f"{doc['precision']}. " + " ".join(doc["summary_lines"]))
    return "\n".join(lines)


def run_dataset(uri: str, data_dir: str | None, cfg: dict[str, Any], draws: int, seeds: list[int], log=print
                ) -> dict[str, Any]:
    ds = load_dataset(uri, data_dir, "tabular")
    if ds.test is None or ds.train.y is None:
        raise SelfSupError(f"{uri}: the benchmark needs labels and a test split")
    log(f"{uri}: {len(ds.train)} train / {len(ds.test)} test rows, {ds.train.x.shape[1]} columns, "
        f"{len(ds.info['classes'])} classes; pre-training {cfg['method']} ...")
    per_seed = [run_seed(ds, cfg, seed, draws, i == 0, log) for i, seed in enumerate(seeds)]
    return {"n_train": len(ds.train), "n_test": len(ds.test), "n_columns": int(ds.train.x.shape[1]),
            "n_classes": len(ds.info["classes"]), "test_split": ds.info.get("test_source"),
            "n_labels": {f"{f:g}": int(len(few_label_splits(ds.train.y, f, [0])[0])) for f in FRACTIONS},
            "summary": aggregate(per_seed), "per_seed": per_seed}


def machine() -> dict[str, Any]:
    """_common.machine() (CPU flags, native bf16, versions) and the library versions this benchmark uses."""
    return {**common_machine(), "numpy": np.__version__, "sklearn": __import__("sklearn").__version__,
            "selfsup": selfsup.__version__}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="mlbench tables: cd /tmp && apt-get download r-cran-mlbench && "
                                       "dpkg -x r-cran-mlbench_*.deb /tmp/mlbench, then --data-dir /tmp/mlbench")
    p.add_argument("--datasets", nargs="+", default=DATASETS, help="data URIs (any table the loader reads)")
    p.add_argument("--data-dir", help="folder with the mlbench .rda files or an extracted r-cran-mlbench .deb")
    p.add_argument("--draws", type=int, default=5, help="label draws for the 1%% and 10%% fractions (default 5)")
    p.add_argument("--seeds", default="0,1,2", help="pre-training seeds (default 0,1,2)")
    p.add_argument("--steps", type=int, default=CONFIG["steps"], help="pre-training steps per dataset")
    p.add_argument("--method", default=CONFIG["method"], help="pre-training method (default: the tabular default)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: small MLPs)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON results file")
    p.add_argument("--readme", action="store_true", help="render the table into docs/benchmarks.md from --out")
    p.add_argument("--combine", nargs="+", metavar="JSON",
                   help="write --out from result files of this script run on other datasets (e.g. in parallel)")
    args = p.parse_args(argv)
    if args.readme:
        import blocks
        blocks.write("tabular table")
        return 0
    if args.combine:
        return combine([json.loads(Path(f).read_text()) for f in args.combine], Path(args.out))
    torch.set_num_threads(args.threads)
    cfg = {**CONFIG, "steps": args.steps, "method": args.method}
    seeds = [int(s) for s in args.seeds.split(",")]
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    info = machine()
    start = time.perf_counter()
    for uri in args.datasets:
        try:
            results[uri] = run_dataset(uri, args.data_dir, cfg, args.draws, seeds, log)
        except SelfSupError as exc:
            skipped[uri] = str(exc)
            log(f"{uri}: skipped: {exc}")
    doc = {
        "protocol": "Tabular, few labels (benchmark-protocol.md)",
        "command": "python " + " ".join([str(Path(sys.argv[0]))] + (argv if argv is not None else sys.argv[1:])),
        "config": cfg, "label_fractions": list(FRACTIONS), "draw_seeds": list(range(args.draws)), "seeds": seeds,
        "protocols": {k: v[0] for k, v in PROTOCOLS.items()}, "knn_k": KNN_K,
        "label_draws": "selfsup.evaluation.few_label_splits: round(fraction * n_c) rows per class c, at least 1",
        "level": "two means are level when they differ by at most the larger standard deviation",
        "machine": info, "seconds": round(time.perf_counter() - start, 1), "results": results, "skipped": skipped,
    }
    finish(doc, Path(args.out))
    return 1 if skipped else 0


def finish(doc: dict[str, Any], out: Path) -> None:
    """Add the precision, verdict and summary sentences to a result document; write and print it."""
    doc["precision"] = ", ".join(sorted({r["precision"] for res in doc["results"].values() for r in res["per_seed"]}))
    doc["verdict"] = verdict(doc["results"])
    doc["summary_lines"] = summary(doc["verdict"])
    write_result(out, doc)
    print(markdown(doc))
    print(f"wrote {out} ({doc['seconds']:.0f} s)")


def combine(docs: list[dict[str, Any]], out: Path) -> int:
    """One result document from several runs of this script with the same settings; a table measured by more than
    one keeps the last file's figures. The configurations may differ only in the epoch cap (EPOCH_KEYS), and only
    where every table kept was pre-trained for the epochs the last file's configuration gives it (a cap that does not
    bind on a table leaves its training unchanged)."""
    keys = ("seeds", "draw_seeds", "label_fractions")
    for d in docs[1:]:
        if any(d[k] != docs[0][k] for k in keys):
            raise SystemExit(f"--combine: the files differ in {', '.join(k for k in keys if d[k] != docs[0][k])}")
    cfg = docs[-1]["config"]
    results = {u: r for d in docs for u, r in d["results"].items()}
    for d in docs:
        if {k: v for k, v in d["config"].items() if k not in EPOCH_KEYS} != \
                {k: v for k, v in cfg.items() if k not in EPOCH_KEYS}:
            raise SystemExit("--combine: the files' configurations differ beyond the epoch cap")
    if all(d["config"] == cfg for d in docs):
        return finish_combined(docs, results, out)
    for uri, r in results.items():
        got = {s["pretrain_epochs"] for s in r["per_seed"]}
        if got != {pretrain_epochs(cfg, r["n_train"])}:
            raise SystemExit(f"--combine: {uri} was pre-trained for {sorted(got)} epochs; the configuration of the "
                             f"last file gives {pretrain_epochs(cfg, r['n_train'])}: measure it again")
    return finish_combined(docs, results, out)


def finish_combined(docs: list[dict[str, Any]], results: dict[str, Any], out: Path) -> int:
    def flat(key: str) -> list[Any]:
        return [x for d in docs for x in (d[key] if isinstance(d[key], list) else [d[key]])]
    doc = {**docs[-1], "command": flat("command"), "machine": flat("machine"),
           "seconds": round(sum(d["seconds"] for d in docs), 1), "results": results,
           "skipped": {u: r for d in docs for u, r in d["skipped"].items()}}
    finish(doc, out)
    return 1 if doc["skipped"] else 0


if __name__ == "__main__":
    sys.exit(main())
