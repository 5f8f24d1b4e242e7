"""`selfsup cluster RUN`: the groups in a trained run's embeddings, with their quality measured where labels exist.

Steps the user sees and can switch: spherical k-means on the embeddings (always, the baseline), then SCAN
(evaluation/scan.py: neighbour consistency and balanced clusters, then self-labelling), or with `method="spectral"`
equal-size spectral clustering of the embeddings' neighbour graph (evaluation/spectral.py), or with `method="umap"`
k-means on the embeddings' UMAP manifold (evaluation/manifold.py, N2D), or nothing more with `method="kmeans"`.
K is given or chosen without labels (`k="auto"`: the best cosine silhouette of k-means over 2..min(20, n/10),
reported with every score). With labels, Hungarian accuracy, NMI and ARI are measured in the
same run for k-means on raw input, k-means on the embeddings and the chosen method.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import Dataset
from .errors import ConfigError
from .evaluate import conformed_split
from .evaluation.clustering import hungarian_accuracy
from .evaluation.manifold import manifold_clusters
from .evaluation.scan import choose_k, scan, spherical_kmeans
from .evaluation.spectral import spectral_clusters
from .loading import load_dataset
from .run import Run, encode_storage, load

METHODS = ("scan", "spectral", "umap", "kmeans")


@dataclass
class Clustering:
    """Cluster of every sample (in the split's order), its confidence, and how it was found and scored."""

    labels: np.ndarray
    confidence: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def table_bytes(self, suffix: str) -> bytes:
        """The assignment as CSV (index, cluster, confidence) or Parquet (needs the 'tabular' extra)."""
        if suffix != ".parquet":
            rows = (f"{i},{c},{p:.6f}" for i, (c, p) in enumerate(zip(self.labels, self.confidence)))
            return ("index,cluster,confidence\n" + "\n".join(rows) + "\n").encode("utf-8")
        try:
            import pandas as pd
        except ImportError:
            raise ConfigError("--out *.parquet needs pandas and pyarrow: pip install 'selfsup[tabular]'") from None
        buf = io.BytesIO()
        pd.DataFrame({"index": np.arange(len(self.labels)), "cluster": self.labels,
                      "confidence": np.round(self.confidence, 6)}).to_parquet(buf, index=False)
        return buf.getvalue()


def scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {"acc": round(hungarian_accuracy(y, pred), 4), "nmi": round(float(normalized_mutual_info_score(y, pred)), 4),
            "ari": round(float(adjusted_rand_score(y, pred)), 4)}


def cluster_run(run: Run | str | Path, data: str | Dataset | None = None, k: int | str = "auto",
                method: str = "scan", split: str = "train", seed: int = 0, resize: bool = False,
                strict: bool = False) -> Clustering:
    """Cluster a run's embeddings of `data` (default: the run's training data) into `k` groups."""
    run = load(run) if not isinstance(run, Run) else run
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    ds = data if isinstance(data, Dataset) else load_dataset(data or run.config.data, run.config.data_dir,
                                                              run.resolved.modality)
    part, notes = conformed_split(run, ds, split, resize, strict)
    n = len(part)
    z = encode_storage(run.encoder, run.modality, run.spec, part.x, mask=part.mask)
    info: dict[str, Any] = {"data": ds.name, "split": split, "samples": n, "method": method, "notes": notes}
    if k == "auto":
        top = max(2, min(20, n // 10))
        if n < 20:
            raise ConfigError(f"--k auto needs at least 20 samples to compare groupings, got {n}; give --k")
        k, silhouettes = choose_k(z, range(2, top + 1), seed)
        info["k_choice"] = {"rule": f"highest cosine silhouette of k-means for K in 2..{top}",
                            "silhouette": {str(kk): round(v, 4) for kk, v in silhouettes.items()}}
    elif isinstance(k, str) or not isinstance(k, (int, np.integer)):
        raise ConfigError(f"--k must be a whole number or 'auto', got {k!r}")
    if not 2 <= int(k) <= n:
        raise ConfigError(f"--k {k}: must lie between 2 and the number of samples ({n})")
    k = int(k)
    info["k"] = k
    km_labels, km_conf = spherical_kmeans(z, k, seed)
    if method == "scan":
        labels, conf, details = scan(z, k, seed=seed)
        info["scan"] = details
    elif method == "spectral":
        labels, conf, details = spectral_clusters(z, k, seed=seed)
        info["spectral"] = details
    elif method == "umap":
        labels, conf, details = manifold_clusters(z, k, seed=seed)
        info["umap"] = details
    else:
        labels, conf = km_labels, km_conf
    if part.y is not None and len(np.unique(part.y)) > 1:
        raw_labels, _ = spherical_kmeans(run.modality.raw_features(part.x, run.spec, part.mask), k, seed)
        info["scores"] = {"kmeans_raw_input": scores(part.y, raw_labels), "kmeans_embeddings": scores(part.y, km_labels)}
        if method != "kmeans":
            info["scores"][method] = scores(part.y, labels)
    info["sizes"] = np.bincount(labels, minlength=k).tolist()
    return Clustering(labels, conf, info)


def format_clustering(c: Clustering) -> str:
    info = c.info
    lines = [f"clustered {info['samples']} samples of {info['data']} ({info['split']}) into K = {info['k']} with "
             f"{info['method']}" + (f" ({info['k_choice']['rule']})" if "k_choice" in info else "")]
    lines.append("cluster sizes: " + ", ".join(map(str, info["sizes"])))
    parts = info.get("spectral", {}).get("graph_parts", 0)
    if parts > info["k"]:
        lines.append(f"warning: the neighbour graph falls into {parts} separate parts, more than K = {info['k']} "
                     "(exact duplicate rows?); its clusters follow the parts: try --method umap or kmeans")
    if "scores" in info:
        lines.append(f"{'against the labels':<22}{'accuracy':>10}{'NMI':>8}{'ARI':>8}")
        for name, s in info["scores"].items():
            lines.append(f"{name.replace('_', ' '):<22}{s['acc']:>10.4f}{s['nmi']:>8.4f}{s['ari']:>8.4f}")
    return "\n".join(lines)
