"""Evaluate a run's frozen encoder on a labelled dataset, beside raw-input and random-encoder baselines."""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from .data import Dataset, Split
from .errors import ConfigError
from .evaluation import (cross_validated_svm, data_k, few_label_linear, gradient_boosting, kmeans_clustering,
                         knn_accuracy, linear_probe, sts_protocol, svm_protocol, transfer_accuracy)
from .loading import load_dataset
from .run import Run, encode_storage, untrained_encoder
from .whitening import Whitening

DEFAULT_PROTOCOLS = ("knn", "linear", "kmeans")  # kmeans: are the groups the classes?


def holdout_test_split(ds: Dataset, fraction: float = 0.25, seed: int = 0) -> tuple[Split, Split, str]:
    """The dataset's own train/test split, or a stratified hold-out carved from train when it has none."""
    if ds.test is not None and ds.test.y is not None:
        return ds.train, ds.test, "dataset test split"
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(ds.train))
    tr, te = train_test_split(idx, test_size=fraction, random_state=seed, stratify=ds.train.y)
    take = lambda ii: Split(ds.train.x[ii], ds.train.y[ii],  # noqa: E731
                            ds.train.mask[ii] if ds.train.mask is not None else None)
    return take(tr), take(te), f"{int(fraction * 100)}% stratified hold-out of train (seed {seed})"


def conformed_split(run: Run, ds: Dataset, which: str, resize: bool = False, strict: bool = False
                    ) -> tuple[Split, list[str]]:
    """The dataset's split checked against the run: same modality, then `Modality.conform` (image size, table
    columns by name, series channels); the split to encode and notes on what was adapted."""
    if ds.modality != run.resolved.modality:
        raise ConfigError(f"--data {ds.name!r} is {ds.modality} data but the run {run.path or ''} was trained on "
                          f"{run.resolved.modality} data")
    split = ds.split(which)
    x, notes = run.modality.conform(split.x, run.spec, f"--data {ds.name} ({which})", resize=resize, strict=strict)
    return Split(x, split.y, split.mask), notes


def check_labels(ds: Dataset) -> None:
    """Refuse labels the classification protocols cannot use, in one line: continuous numbers, one class, or
    classes too small to split (training never depends on labels; only evaluation stops here)."""
    classes = ds.info.get("classes") or []
    if any(isinstance(c, float) and not float(c).is_integer() for c in classes):
        example = next(c for c in classes if isinstance(c, float) and not float(c).is_integer())
        raise ConfigError(f"--data {ds.name!r}: the labels are continuous numbers ({len(classes)} distinct values, "
                          f"e.g. {example:g}); the evaluation protocols classify, so they need class labels")
    y = np.concatenate([ds.train.y] + ([ds.test.y] if ds.test is not None and ds.test.y is not None else []))
    counts = np.bincount(y)
    present = counts[counts > 0]
    if len(present) < 2:
        raise ConfigError(f"--data {ds.name!r}: every label is the same class; accuracy would be 1.0 by construction, "
                          "so evaluation needs at least 2 classes")
    if (present < 2).any():
        raise ConfigError(f"--data {ds.name!r}: {int((present < 2).sum())} of {len(present)} classes have a single "
                          "example; the protocols need at least 2 per class (are these class labels?)")


def feature_sets(run: Run, train: Split, test: Split, baselines: bool = True, device: str | None = None,
                 whitening: Whitening | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train/test features for the run's encoder (whitened when `whitening` is given) and, with `baselines`, raw
    input and a random encoder."""
    mod, spec = run.modality, run.spec
    enc = run.encoder.to(device or "cpu")
    feats = {"selfsup": (encode_storage(enc, mod, spec, train.x, mask=train.mask),
                         encode_storage(enc, mod, spec, test.x, mask=test.mask))}
    if whitening is not None:
        feats["selfsup"] = (whitening.transform(feats["selfsup"][0]), whitening.transform(feats["selfsup"][1]))
    if baselines:
        feats["raw"] = (mod.raw_features(train.x, spec, train.mask), mod.raw_features(test.x, spec, test.mask))
        rand = untrained_encoder(run, train.x).to(device or "cpu")
        feats["random_encoder"] = (encode_storage(rand, mod, spec, train.x, mask=train.mask),
                                   encode_storage(rand, mod, spec, test.x, mask=test.mask))
    return feats


def knn_protocol(a, b, c, d) -> dict[str, Any]:
    """Weighted kNN (T = 0.1) with k following the data (evaluation.knn.data_k, stated in `k`), plus k = 20 and the
    published k = 200 when they differ from it."""
    k = data_k(b)
    out: dict[str, Any] = {"acc": knn_accuracy(a, b, c, d, k=k, temperature=0.1), "k": k}
    for other in (20, 200):
        if other != k:
            out[f"acc_k{other}"] = knn_accuracy(a, b, c, d, k=other, temperature=0.1)
    return out


def linear_with_confusion(a, b, c, d) -> dict[str, Any]:
    """Linear probe figures plus the test confusion matrix (for the report)."""
    from sklearn.metrics import confusion_matrix

    res = linear_probe(a, b, c, d)
    labels = np.arange(int(max(b.max(), d.max())) + 1)
    return {**{k: v for k, v in res.items() if k != "predictions"},
            "confusion": confusion_matrix(d, res["predictions"], labels=labels).tolist()}


PROTOCOLS: dict[str, Callable[..., dict[str, Any]]] = {
    "knn": lambda a, b, c, d: knn_protocol(a, b, c, d),
    "linear": linear_with_confusion,
    "kmeans": lambda a, b, c, d: kmeans_clustering(c, d),  # clusters the test embeddings, no training labels
    "fewshot": few_label_linear,
    "svm": lambda a, b, c, d: {k: v for k, v in svm_protocol(a, b, c, d).items() if k != "predictions"},
    # SentEval's transfer: 10-fold cross-validation over every labelled item (both splits), C by inner CV
    "transfer": lambda a, b, c, d: transfer_accuracy(np.concatenate([a, c]), np.concatenate([b, d])),
    # InfoGraph's and GraphCL's graph classification: 10-fold CV over both splits, an RBF SVM with C by inner CV
    "svm_cv": lambda a, b, c, d: cross_validated_svm(np.concatenate([a, c]), np.concatenate([b, d])),
    # HistGradientBoosting: on the raw features alone, and on the raw features beside each embedding (BESIDE_RAW)
    "trees": lambda a, b, c, d: gradient_boosting(a, b, c, d),
}
BESIDE_RAW = frozenset({"trees"})  # protocols whose model sees [raw features | embedding], as a tree model given both


def beside_raw(feats: dict[str, tuple[np.ndarray, np.ndarray]], run: Run, train: Split, test: Split
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The raw features alone ("raw") and, for every other feature set, [raw | that set] for train and test."""
    mod, spec = run.modality, run.spec
    raw = feats.get("raw") or (mod.raw_features(train.x, spec, train.mask), mod.raw_features(test.x, spec, test.mask))
    both = {name: (np.concatenate([raw[0], tr], 1), np.concatenate([raw[1], te], 1))
            for name, (tr, te) in feats.items() if name != "raw"}
    return {**both, "raw": raw}


def headline(result: dict[str, Any]) -> float | None:
    """The one figure that summarises a protocol's result (accuracy; NMI for clustering; 10% labels for few-shot)."""
    if "acc" in result:
        return result["acc"]
    if "nmi" in result:
        return result["nmi"]
    if "spearman" in result:
        return result["spearman"]
    fractions = sorted((k for k in result if k.replace(".", "").isdigit()), key=float)
    return result[fractions[-1]]["mean"] if fractions else None


def evaluate_run(run: Run, data: str | Dataset | None = None, protocols: tuple[str, ...] = DEFAULT_PROTOCOLS,
                 baselines: bool = True, data_dir: str | None = None, finetune: bool = True, resize: bool = False,
                 strict: bool = False, whitening: Whitening | None = None) -> dict[str, Any]:
    """All requested protocols on the run's encoder and baselines; one JSON-ready dict.

    `fewshot` adds fine-tuning of the whole encoder (from the run and from a random encoder) unless
    `finetune` is False. `whitening` (selfsup.whitening.run_whitening) post-processes the run's embeddings.
    """
    if data is None:
        data = run.training_data("give the data to evaluate it on (data=)")
    ds = data if isinstance(data, Dataset) else load_dataset(data, data_dir or run.config.data_dir,
                                                              run.resolved.modality)
    if ds.modality != run.resolved.modality:
        raise ConfigError(f"--data {ds.name!r} is {ds.modality} data but the run was trained on "
                          f"{run.resolved.modality} data")
    if ds.info.get("pairs") is not None:  # pairs with gold similarity (sts:PATH): the STS protocol
        return evaluate_pairs(run, ds, baselines, whitening)
    if ds.train.y is None:
        raise ConfigError(f"--data {ds.name!r} has no labels; evaluation protocols need labels")
    check_labels(ds)
    notes: list[str] = []
    conformed = {}
    for which in ("train", "test") if ds.test is not None else ("train",):
        split = ds.split(which)
        x, adapted = run.modality.conform(split.x, run.spec, f"--data {ds.name} ({which})", resize=resize,
                                          strict=strict)
        notes += [n for n in adapted if n not in notes]
        conformed[which] = Split(x, split.y, split.mask)
    ds = replace(ds, **conformed)
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ConfigError(f"--protocols: unknown {', '.join(unknown)}; known: {', '.join(PROTOCOLS)}")
    train, test, test_source = holdout_test_split(ds)
    start = time.perf_counter()
    feats = feature_sets(run, train, test, baselines, whitening=whitening)
    results: dict[str, Any] = {"data": ds.name, "test_source": test_source, "n_train": len(train),
                               "n_test": len(test), "protocols": {}}
    if whitening is not None:
        results["whitening"] = {"dim": whitening.dim, "fitted_on": whitening.fitted_on}
    if notes:
        results["notes"] = notes
    for proto in protocols:
        sets = beside_raw(feats, run, train, test) if proto in BESIDE_RAW else feats
        results["protocols"][proto] = {name: PROTOCOLS[proto](tr, train.y, te, test.y)
                                       for name, (tr, te) in sets.items()}
    p = results["protocols"]
    if "linear" in p:
        results["linear_confusion"] = p["linear"]["selfsup"].pop("confusion")
        for by_name in p["linear"].values():
            by_name.pop("confusion", None)
    if "fewshot" in p and finetune:
        from .finetune import few_label_finetune
        results["protocols"]["finetune"] = few_label_finetune(run, train, test)
    for proto, key in (("knn", "knn_acc"), ("linear", "linear_acc"), ("svm", "svm_acc"),
                       ("transfer", "transfer_acc"), ("trees", "trees_acc")):
        if proto in p:
            results[key] = p[proto]["selfsup"]["acc"]
    results["baselines"] = {name: {proto: headline(p[proto][name]) for proto in p if name in p[proto]}
                            for name in ("raw", "random_encoder") if baselines}
    results["seconds"] = round(time.perf_counter() - start, 2)
    return results


def evaluate_pairs(run: Run, ds: Dataset, baselines: bool = True, whitening: Whitening | None = None
                   ) -> dict[str, Any]:
    """The STS protocol on a dataset of sentence pairs with gold scores (`info["pairs"]`: indices into the training
    split and scores), for the run's encoder and, with `baselines`, raw input and a random encoder."""
    x, notes = run.modality.conform(ds.train.x, run.spec, f"--data {ds.name}")
    pairs = ds.info["pairs"]
    start = time.perf_counter()
    split = Split(x)
    feats = feature_sets(run, split, Split(x[:0]), baselines, whitening=whitening)
    results: dict[str, Any] = {"data": ds.name, "test_source": "sentence pairs with gold scores", "n_train": 0,
                               "n_test": len(pairs["gold"]), "protocols": {"sts": {
                                   name: sts_protocol(tr, pairs["first"], pairs["second"], pairs["gold"])
                                   for name, (tr, _) in feats.items()}}}
    if notes:
        results["notes"] = notes
    if whitening is not None:
        results["whitening"] = {"dim": whitening.dim, "fitted_on": whitening.fitted_on}
    results["sts_spearman"] = results["protocols"]["sts"]["selfsup"]["spearman"]
    results["baselines"] = {name: {"sts": results["protocols"]["sts"][name]["spearman"]}
                            for name in ("raw", "random_encoder") if baselines}
    results["seconds"] = round(time.perf_counter() - start, 2)
    return results


def evaluation_rows(ev: dict[str, Any]) -> list[list[Any]]:
    """One row per (protocol, metric) with selfsup / raw / random-encoder columns."""
    rows = []
    for proto, by_name in ev.get("protocols", {}).items():
        sample = by_name.get("selfsup", {})
        metrics = [m for m in ("acc", "acc_k20", "acc_k200", "nmi", "ari", "spearman", "pearson") if m in sample]
        for frac in [k for k in sample if k.replace(".", "").isdigit()]:  # few-label: {"0.01": {"mean","std"}}
            rows.append([f"{proto} {float(frac):.0%} labels"] + [
                f"{by_name[n][frac]['mean']:.4f} ± {by_name[n][frac]['std']:.4f}" if n in by_name else "-"
                for n in ("selfsup", "raw", "random_encoder")])
        for m in metrics:
            label = f"{proto} {m}" + (f" (k={sample['k']})" if m == "acc" and "k" in sample else "") + (
                " (raw beside each)" if proto in BESIDE_RAW else "")
            rows.append([label] + [by_name.get(n, {}).get(m, "-") for n in ("selfsup", "raw", "random_encoder")])
    return rows


def format_results(results: dict[str, Any]) -> str:
    """A plain-text table: one row per protocol figure, columns selfsup / raw / random encoder."""
    names = ["selfsup", "raw input", "random encoder"]
    lines = [f"evaluation on {results['data']} ({results['n_train']} train / {results['n_test']} test; "
             f"test = {results['test_source']})",
             f"{'protocol':<26}" + "".join(f"{n:>18}" for n in names)]
    for row in evaluation_rows(results):
        lines.append(f"{row[0]:<26}" + "".join(f"{c:>18.4f}" if isinstance(c, float) else f"{c:>18}" for c in row[1:]))
    return "\n".join(lines)
