"""Evaluate a run's frozen encoder on a labelled dataset, beside raw-input and random-encoder baselines."""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from .data import Dataset, Split, load_dataset
from .errors import ConfigError
from .evaluation import knn_accuracy, linear_probe
from .run import Run, build_encoder, encode_storage

DEFAULT_PROTOCOLS = ("knn", "linear")


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


def feature_sets(run: Run, train: Split, test: Split, baselines: bool = True, device: str | None = None
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train/test features for the run's encoder and, with `baselines`, raw input and a random encoder."""
    mod, spec = run.modality, run.spec
    enc = run.encoder.to(device or "cpu")
    feats = {"selfsup": (encode_storage(enc, mod, spec, train.x, mask=train.mask),
                         encode_storage(enc, mod, spec, test.x, mask=test.mask))}
    if baselines:
        feats["raw"] = (mod.raw_features(train.x, spec, train.mask), mod.raw_features(test.x, spec, test.mask))
        rand = build_encoder(run.resolved, seed=run.config.seed + 1000).to(device or "cpu")
        feats["random_encoder"] = (encode_storage(rand, mod, spec, train.x, mask=train.mask),
                                   encode_storage(rand, mod, spec, test.x, mask=test.mask))
    return feats


def protocol_table() -> dict[str, Callable[..., dict[str, Any]]]:
    """Protocol name -> function(train_x, train_y, test_x, test_y) -> dict of figures."""
    from . import evaluation as ev

    table: dict[str, Callable[..., dict[str, Any]]] = {
        "knn": lambda a, b, c, d: {"acc": knn_accuracy(a, b, c, d, k=200, temperature=0.1),
                                   "acc_k20": knn_accuracy(a, b, c, d, k=20, temperature=0.1)},
        "linear": lambda a, b, c, d: {k: v for k, v in linear_probe(a, b, c, d).items() if k != "predictions"},
    }
    for name, fn in (("kmeans", "kmeans_clustering"), ("fewshot", "few_label_linear"), ("svm", "svm_protocol")):
        if hasattr(ev, fn):
            f = getattr(ev, fn)
            table[name] = (lambda f: (lambda a, b, c, d: f(c, d)))(f) if name == "kmeans" else f
    return table


def evaluate_run(run: Run, data: str | Dataset | None = None, protocols: tuple[str, ...] = DEFAULT_PROTOCOLS,
                 baselines: bool = True, data_dir: str | None = None) -> dict[str, Any]:
    """All requested protocols on the run's encoder and baselines; one JSON-ready dict."""
    if data is None:
        data = run.config.data
    ds = data if isinstance(data, Dataset) else load_dataset(data, data_dir or run.config.data_dir,
                                                              run.resolved["modality"])
    if ds.modality != run.resolved["modality"]:
        raise ConfigError(f"--data {ds.name!r} is {ds.modality} data but the run was trained on "
                          f"{run.resolved['modality']} data")
    if ds.train.y is None:
        raise ConfigError(f"--data {ds.name!r} has no labels; evaluation protocols need labels")
    table = protocol_table()
    unknown = [p for p in protocols if p not in table]
    if unknown:
        raise ConfigError(f"--protocols: unknown {', '.join(unknown)}; known: {', '.join(table)}")
    train, test, test_source = holdout_test_split(ds)
    start = time.perf_counter()
    feats = feature_sets(run, train, test, baselines)
    results: dict[str, Any] = {"data": ds.name, "test_source": test_source, "n_train": len(train),
                               "n_test": len(test), "protocols": {}}
    for proto in protocols:
        results["protocols"][proto] = {name: table[proto](tr, train.y, te, test.y) for name, (tr, te) in feats.items()}
    p = results["protocols"]
    if "knn" in p:
        results["knn_acc"] = p["knn"]["selfsup"]["acc"]
    if "linear" in p:
        results["linear_acc"] = p["linear"]["selfsup"]["acc"]
    if baselines:
        results["baselines"] = {name: {proto: p[proto][name].get("acc", p[proto][name].get("nmi"))
                                       for proto in p if isinstance(p[proto][name], dict)}
                                for name in ("raw", "random_encoder")}
    results["seconds"] = round(time.perf_counter() - start, 2)
    return results


def format_results(results: dict[str, Any]) -> str:
    """A plain-text table: one row per protocol, columns selfsup / raw / random encoder."""
    names = ["selfsup", "raw", "random_encoder"]
    lines = [f"evaluation on {results['data']} ({results['n_train']} train / {results['n_test']} test; "
             f"test = {results['test_source']})",
             f"{'protocol':<22}" + "".join(f"{n:>16}" for n in names)]
    for proto, by_name in results["protocols"].items():
        for metric in ("acc", "acc_k20", "nmi", "ari"):
            if metric in by_name.get("selfsup", {}):
                cells = "".join(f"{by_name[n][metric]:>16.4f}" if n in by_name else f"{'-':>16}" for n in names)
                lines.append(f"{proto + ' ' + metric:<22}{cells}")
    return "\n".join(lines)


