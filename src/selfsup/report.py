"""`selfsup report RUN`: one self-contained report.html (figures embedded as PNG data URIs, no network).

Sections: configuration, training curves (loss, lr, throughput, RankMe, online kNN), the evaluation table
with baselines, a 2-D t-SNE map of test embeddings coloured by label, nearest-neighbour queries for
images, and the linear probe's confusion matrix.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import atomic_write_text
from .evaluate import evaluation_rows, holdout_test_split
from .loading import load_dataset
from .run import Run, encode_storage, load


def read_metrics(path: Path) -> tuple[list[dict], list[dict]]:
    """(step records, epoch records) from metrics.jsonl."""
    steps, epochs = [], []
    if path.exists():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            (epochs if rec.get("type") == "epoch" else steps).append(rec)
    return steps, epochs


def rankme_knn_correlation(epochs: list[dict]) -> float | None:
    """Spearman correlation between RankMe and online kNN accuracy across epochs (None if undefined)."""
    pairs = [(e["rankme"], e["online_knn_acc"]) for e in epochs if "rankme" in e and "online_knn_acc" in e]
    if len(pairs) < 3:
        return None
    from scipy.stats import spearmanr

    rho = spearmanr(*zip(*pairs)).statistic
    return None if not np.isfinite(rho) else float(rho)


def figure_uri(fig) -> str:
    """A matplotlib figure as a base64 PNG data URI (and closes it)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def curves_figure(steps: list[dict], epochs: list[dict]) -> str:
    import matplotlib.pyplot as plt

    panels = [("loss", steps, "step"), ("lr", steps, "step"), ("samples_per_s", steps, "step"),
              ("rankme", epochs, "epoch"), ("online_knn_acc", epochs, "epoch"), ("uniformity", epochs, "epoch")]
    panels = [p for p in panels if any(p[0] in r for r in p[1])]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8), squeeze=False)
    for ax, (key, recs, x) in zip(axes[0], panels):
        pts = [(r[x], r[key]) for r in recs if key in r]
        ax.plot(*zip(*pts), marker="." if x == "epoch" else None)
        ax.set_title(key.replace("_", " "))
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return figure_uri(fig)


def embedding_map(z: np.ndarray, y: np.ndarray, classes: list, seed: int = 0) -> str:
    """t-SNE of (at most 2,000) test embeddings, coloured by label."""
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    z = PCA(n_components=min(50, z.shape[1], len(z) - 1), random_state=seed).fit_transform(z)
    xy = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30, max(5, len(z) // 10))).fit_transform(z)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=y, cmap="tab10" if y.max() < 10 else "tab20", s=6)
    handles = [plt.Line2D([], [], marker="o", ls="", color=sc.cmap(sc.norm(k))) for k in np.unique(y)]
    ax.legend(handles, [str(classes[k]) if k < len(classes) else str(k) for k in np.unique(y)], fontsize=7,
              loc="center left", bbox_to_anchor=(1, 0.5))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("t-SNE of test embeddings")
    return figure_uri(fig)


def neighbour_grid(x: np.ndarray, z: np.ndarray, n_queries: int = 8, k: int = 8, seed: int = 0) -> str:
    """Image queries (left column) and their k nearest neighbours by cosine similarity of embeddings."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    q = rng.choice(len(z), size=min(n_queries, len(z)), replace=False)
    zn = z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-12)
    nn = np.argsort(-(zn[q] @ zn.T), axis=1)[:, 1:k + 1]
    fig, axes = plt.subplots(len(q), k + 1, figsize=(1.1 * (k + 1), 1.1 * len(q)), squeeze=False)
    for r, (qi, row) in enumerate(zip(q, nn)):
        for c, idx in enumerate([qi, *row]):
            img = x[idx].transpose(1, 2, 0)
            axes[r, c].imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray")
            axes[r, c].axis("off")
    axes[0, 0].set_title("query", fontsize=8)
    axes[0, 1].set_title("nearest neighbours →", fontsize=8, loc="left")
    return figure_uri(fig)


def confusion_figure(cm: np.ndarray, classes: list) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(cm, cmap="Blues")
    labels = [str(c) for c in classes] if len(classes) == len(cm) else [str(i) for i in range(len(cm))]
    ax.set_xticks(range(len(cm)), labels, rotation=60, fontsize=7, ha="right")
    ax.set_yticks(range(len(cm)), labels, fontsize=7)
    for i in range(len(cm)):
        for j in range(len(cm)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=6,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("linear probe confusion matrix (test)")
    return figure_uri(fig)


def table(rows: list[list[Any]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))


CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f0f0f0}td:first-child{text-align:left}img{max-width:100%}h2{border-bottom:1px solid #ddd}"""


def build_report(run: Run, data: Any = None, out: str | Path | None = None, max_points: int = 2000) -> Path:
    """Write report.html for a run directory; returns its path."""
    assert run.path is not None, "report needs a run directory"
    import matplotlib

    matplotlib.use("Agg")
    steps, epochs = read_metrics(run.path / "metrics.jsonl")
    ev = json.loads((run.path / "eval.json").read_text()) if (run.path / "eval.json").exists() else {}
    s = run.summary
    parts = [f"<h1>selfsup run: {html.escape(str(s.get('method')))} on {html.escape(str(s.get('data')))}</h1>",
             "<h2>Summary</h2>", table([[k, v] for k, v in s.items() if not isinstance(v, dict)], ["", "value"])]
    cfg = {**{k: v for k, v in run.config.to_dict().items() if v not in (None, {}, [])},
           **{f"resolved.{k}": v for k, v in run.resolved.items() if k != "data_spec"}}
    parts += ["<h2>Configuration</h2>", table([[k, json.dumps(v)] for k, v in cfg.items()], ["option", "value"])]
    if steps:
        parts += ["<h2>Training curves</h2>", f'<img alt="training curves" src="{curves_figure(steps, epochs)}">']
        rho = rankme_knn_correlation(epochs)
        if rho is not None:
            parts.append(f"<p>Spearman correlation of RankMe with online kNN accuracy across epochs: "
                         f"<b>{rho:.3f}</b> ({len(epochs)} epochs).</p>")
    if ev.get("protocols"):
        parts += ["<h2>Evaluation (frozen encoder)</h2>",
                  f"<p>{ev['n_train']} train / {ev['n_test']} test; test = {html.escape(ev['test_source'])}. "
                  "Hyper-parameters chosen on validation splits of the training data.</p>",
                  table(evaluation_rows(ev), ["protocol", "selfsup", "raw input", "random encoder"])]
    try:
        ds = load_dataset(data or run.config.data, run.config.data_dir, run.resolved["modality"])
    except Exception as exc:  # data moved or unlabelled: the report still shows what it can
        ds = None
        parts.append(f"<p>Embedding views skipped: {html.escape(str(exc))}</p>")
    if ds is not None and ds.train.y is not None:
        _, test, _ = holdout_test_split(ds)
        sel = np.random.default_rng(0).permutation(len(test))[:max_points]
        x = test.x[sel]
        z = encode_storage(run.encoder, run.modality, run.spec, x, mask=test.mask[sel] if test.mask is not None else None)
        classes = ds.info.get("classes") or sorted(set(test.y.tolist()))
        parts += ["<h2>Embedding map</h2>", f'<img alt="embedding map" src="{embedding_map(z, test.y[sel], classes)}">']
        pictures = run.modality.thumbnails(x)
        if pictures is not None:
            parts += ["<h2>Nearest neighbours</h2>", f'<img alt="nearest neighbours" src="{neighbour_grid(pictures, z)}">']
        cm = ev.get("linear_confusion")
        if cm is not None:
            parts += ["<h2>Confusion matrix</h2>", f'<img alt="confusion matrix" src="{confusion_figure(np.array(cm), classes)}">']
    doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>selfsup report</title><style>{CSS}</style>"
           f"</head><body>{''.join(parts)}</body></html>")
    path = Path(out) if out else run.path / "report.html"
    atomic_write_text(path, doc)
    return path


def report(run_dir: str | Path, data: Any = None) -> Path:
    """Load a run directory and write its report.html."""
    return build_report(load(run_dir), data)
