"""`selfsup report RUN`: one self-contained report.html (figures embedded as PNG data URIs, no network).

It leads with the verdict (each protocol beside raw input and a random encoder, differences in points, one
sentence each), then the pictures (t-SNE map of test embeddings, nearest neighbours for pictures, what a masked
method predicts (MAE's reconstructions, I-JEPA's and data2vec's prediction quality per position), the linear probe's
confusion matrix), the training curves with a reading of the diagnostics, and configuration and environment folded
away.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from .artifacts import atomic_write_text
from .html_parts import Raw, figure_uri, human, picture_rows, table
from .evaluate import evaluation_rows, holdout_test_split
from .evaluation.scan import normalise
from .loading import load_dataset
from .methods import Method, TrainingContext, methods
from .modalities.presentation import Neighbours
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
    if len(pairs) < 3 or any(len(set(series)) < 2 for series in zip(*pairs)):  # a constant series: undefined
        return None
    from scipy.stats import spearmanr

    rho = spearmanr(*zip(*pairs)).statistic
    return None if not np.isfinite(rho) else float(rho)


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


MIN_MAP_POINTS = 4  # t-SNE of fewer points draws nothing a reader can use
# 250 iterations of early exaggeration and 250 after it: against scikit-learn's 1,000 the map keeps its
# trustworthiness (0.9696 against 0.9703 on 450 digits, 0.9885 against 0.9887 on 1,797) and its 2-D kNN accuracy
# within 0.001, in 0.6 and 0.5 of the time (benchmarks/results/report_tsne.json, 3 seeds)
TSNE_ITERATIONS = 500


def embedding_map(z: np.ndarray, y: np.ndarray, classes: list, seed: int = 0) -> str:
    """t-SNE of (at most 2,000) test embeddings, coloured by label."""
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    z = PCA(n_components=min(50, z.shape[1], len(z) - 1), random_state=seed).fit_transform(z)
    # t-SNE needs a perplexity below the number of points: 5-30 as the set grows, less for a handful of points
    perplexity = min(30, max(5, len(z) // 10), (len(z) - 1) / 3)
    xy = TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity,
              max_iter=TSNE_ITERATIONS).fit_transform(z)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=y, cmap="tab10" if y.max() < 10 else "tab20", s=6)
    handles = [plt.Line2D([], [], marker="o", ls="", color=sc.cmap(sc.norm(k))) for k in np.unique(y)]
    ax.legend(handles, [str(classes[k]) if k < len(classes) else str(k) for k in np.unique(y)], fontsize=7,
              loc="center left", bbox_to_anchor=(1, 0.5))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("t-SNE of test embeddings")
    return figure_uri(fig)


def nearest(z: np.ndarray, n_queries: int, k: int, seed: int = 1) -> Neighbours:
    """`n_queries` random items of the sample and their k nearest others by cosine similarity of the embeddings."""
    zn = normalise(z)
    queries = np.random.default_rng(seed).choice(len(z), size=min(n_queries, len(z)), replace=False)
    rows, sims = [], []
    for q in queries:
        s = zn @ zn[q]
        s[q] = -np.inf
        order = np.argsort(-s)[:k]
        rows.append([int(q), *order.tolist()])
        sims.append([1.0, *s[order].astype(float).tolist()])
    return Neighbours(rows, sims, len(z))


def neighbours_section(run: Run, x: torch.Tensor, z: np.ndarray) -> list[str]:
    """Nearest neighbours of a few items, as the modality's presentation shows them (nothing where it shows none)."""
    p = run.modality.presentation
    if len(z) < 2:
        return []
    return p.render_neighbours(x, nearest(z, p.neighbour_queries, p.neighbours_per_query))


def cluster_grid(x: np.ndarray, labels: np.ndarray, confidence: np.ndarray, per_side: int = 5) -> str:
    """One row per cluster: its `per_side` most typical members (highest confidence), then its least typical."""
    rows, titles = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        order = members[np.argsort(-confidence[members])]
        typical, atypical = list(order[:per_side]), list(order[::-1][:per_side][::-1])
        picks = typical + [None] * (per_side - len(typical) + 1) + [None] * (per_side - len(atypical)) + atypical
        rows.append([None if i is None or i >= len(x) else x[i] for i in picks])
        titles.append(f"cluster {c} ({len(members)})")
    return picture_rows(rows, 0.8, titles, {0: "most typical", per_side + 1: "least typical"})


def clusters_section(run: Run, ds: Any) -> list[str]:
    """The clusters `selfsup cluster` stored in the run: sizes, scores beside the k-means baselines, and for
    pictures each cluster's most and least typical members."""
    info_path, table_path = run.path / "clusters.json", run.path / "clusters.csv"
    if not info_path.exists() or not table_path.exists():
        return []
    info = json.loads(info_path.read_text())
    rows = np.loadtxt(table_path, delimiter=",", skiprows=1, ndmin=2)
    labels, confidence = rows[:, 1].astype(np.int64), rows[:, 2]
    parts = ["<h2>Clusters</h2>", f"<p>{human(info['samples'])} samples of {html.escape(str(info['data']))} "
             f"({html.escape(str(info['split']))}) in K = {info['k']} clusters by {html.escape(info['method'])}"
             + (f"; K chosen by {html.escape(info['k_choice']['rule'])}" if "k_choice" in info else "") + ".</p>",
             table([[f"cluster {i}", n] for i, n in enumerate(info["sizes"])], ["", "members"])]
    if "scores" in info:
        parts.append(table([[name.replace("_", " "), pct(v["acc"]), human(v["nmi"]), human(v["ari"])]
                            for name, v in info["scores"].items()], ["against the labels", "accuracy", "NMI", "ARI"]))
    if ds is not None:
        pictures = run.modality.presentation.thumbnails(ds.split(info["split"]).x)
        if pictures is not None and len(pictures) == len(labels):
            parts.append(f'<img alt="cluster members" src="{cluster_grid(pictures, labels, confidence)}">')
    return parts


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


def pct(v: float) -> str:
    return f"{100 * v:.1f} %"


PROTOCOL_NAMES = {"knn": "kNN", "linear": "linear probe", "svm": "RBF SVM", "kmeans": "k-means clustering (NMI)"}


def verdict(ev: dict[str, Any]) -> tuple[str, list[str]]:
    """The report's first block: each protocol's figure beside raw input and a random encoder, the differences
    in points (coloured), and one plain sentence per protocol."""
    rows, sentences = [], []
    for proto, by_name in ev.get("protocols", {}).items():
        if proto not in PROTOCOL_NAMES:
            continue
        key = "nmi" if proto == "kmeans" else "acc"
        ours = by_name.get("selfsup", {}).get(key)
        if ours is None:
            continue
        raw, rand = (by_name.get(n, {}).get(key) for n in ("raw", "random_encoder"))
        k = by_name.get("selfsup", {}).get("k")
        name = PROTOCOL_NAMES[proto] + (f" (k = {k})" if k is not None else "")
        rows.append([name, Raw(f"<b>{pct(ours)}</b>"), "-" if raw is None else pct(raw),
                     difference(ours, raw), "-" if rand is None else pct(rand), difference(ours, rand)])
        sentences.append(sentence(name, ours, raw, rand))
    header = ["protocol", "selfsup", "raw input", "vs raw", "random encoder", "vs random"]
    return (table(rows, header, "verdict") if rows else ""), sentences


def difference(ours: float, other: float | None) -> Raw:
    if other is None:
        return Raw("-")
    d = 100 * (ours - other)
    colour = "good" if d > 0.5 else "bad" if d < -0.5 else "even"
    return Raw(f'<span class="{colour}">{d:+.1f} pt</span>')


def sentence(name: str, ours: float, raw: float | None, rand: float | None) -> str:
    def rel(other: float, what: str) -> str:
        d = 100 * (ours - other)
        if abs(d) <= 0.5:
            return f"on par with {what} ({pct(other)})"
        return f"{abs(d):.1f} points {'above' if d > 0 else 'below'} {what} ({pct(other)})"

    parts = [rel(raw, "raw input")] if raw is not None else []
    parts += [rel(rand, "a random encoder")] if rand is not None else []
    text = f"The {name} reaches {pct(ours)}" + (": " + " and ".join(parts) if parts else "") + "."
    if raw is not None and ours < raw - 0.005:
        text += " Below raw input, the representation loses information this protocol could use; train longer, " \
                "try another method, or check the augmentations suit the data."
    return text


def reading(epochs: list[dict], summary: dict[str, Any]) -> list[str]:
    """Plain sentences on the training diagnostics: collapse, and a label-free signal moving against a labelled one."""
    notes = [f"Warning: {w}" for w in summary.get("warnings", [])]
    both = [e for e in epochs if "rankme" in e and "online_knn_acc" in e]
    if len(both) >= 2:
        r0, r1 = both[0]["rankme"], both[-1]["rankme"]
        a0, a1 = both[0]["online_knn_acc"], both[-1]["online_knn_acc"]
        rho = rankme_knn_correlation(epochs)
        trend = f" (rank correlation over {len(both)} epochs: {rho:+.2f})" if rho is not None else ""
        if (r1 - r0) * (a1 - a0) < 0 and abs(a1 - a0) >= 0.005:
            notes.append(f"RankMe (label-free) went from {r0:.0f} to {r1:.0f} while the online kNN accuracy went from "
                         f"{pct(a0)} to {pct(a1)}{trend}: on this data the label-free signal does not track accuracy, "
                         "so do not choose checkpoints by RankMe alone (--select last is the default).")
        elif abs(a1 - a0) >= 0.005:
            notes.append(f"RankMe went from {r0:.0f} to {r1:.0f} and the online kNN accuracy from {pct(a0)} to "
                         f"{pct(a1)}{trend}: the label-free and labelled signals agree.")
    std = [e["embedding_std"] for e in epochs if "embedding_std" in e]
    if std and not summary.get("warnings") and std[-1] < 1e-3:
        notes.append(f"The embeddings' per-dimension std ended at {std[-1]:.2g}: close to collapse.")
    return notes


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}img{max-width:100%;height:auto}
h2{border-bottom:1px solid #ddd;margin-top:1.6em}.scroll{overflow-x:auto}
#verdict{background:#f7f9fc;border:1px solid #d5deea;border-radius:6px;padding:.4em 1em 1em}
#verdict p{margin:.4em 0}.good{color:#137333;font-weight:600}.bad{color:#b3261e;font-weight:600}.even{color:#555}
details{margin:1em 0}summary{cursor:pointer;font-weight:600}.note{color:#555;font-size:.92em}"""


def load_method(run: Run) -> Method:
    """The run's method with its trained heads (method.safetensors) around the run's encoder, in eval mode."""
    cls = methods.get(run.config.method)
    method = cls(run.encoder, **run.resolved.method_options)
    method.setup(TrainingContext(int(run.summary.get("train_samples", 1)), int(run.resolved.batch_size)))
    state = {f"encoder.{k}": v for k, v in run.encoder.state_dict().items()}
    path = run.path / "method.safetensors"
    if path.exists():
        state.update(load_file(str(path)))
    method.load_state_dict(state)
    return method.eval()


def illustration_section(run: Run, x: torch.Tensor, n: int = 6) -> list[str]:
    """What a masked method learned to do (Method.illustrate) on a few test samples, drawn by the modality."""
    try:
        method = load_method(run)
    except Exception as exc:  # heads missing or of another version: the report shows the rest
        return [f"<p class='note'>What the method predicts is not shown: {html.escape(str(exc))}</p>"]
    torch.manual_seed(0)
    with torch.no_grad():
        illustration = method.illustrate(run.modality.prepare(x[:n], run.spec))
    if illustration is None:
        return []
    fig = run.modality.presentation.draw_panels(illustration.pictures, illustration.maps, run.spec)
    if fig is None:
        return []
    return ["<h2>What the method predicts</h2>", f"<p>{html.escape(illustration.caption)}</p>",
            f'<img alt="what the method predicts" src="{figure_uri(fig)}">']


def search_section(path: Path) -> list[str]:
    """How `train --search` chose the method (RUN/search.json): the reason, then every round's scores."""
    if not (path / "search.json").exists():
        return []
    doc = json.loads((path / "search.json").read_text())
    rows = [[s["round"] + 1, s["candidate"], f"{s['scores'][doc['criterion']]:.4g}", human(s["seconds"]),
             human(s.get("steps")), "kept" if s["candidate"] in doc["rounds"][s["round"]]["kept"] else ""]
            for s in doc["screens"]]
    return ["<h2>How the method was chosen</h2>",
            f"<p>{html.escape(doc['why'])}. {len(doc['candidates'])} candidates screened by successive halving in "
            f"{human(doc['screen_seconds'])} s, ranked by {html.escape(doc['criterion'])} on training items; no label "
            "was read.</p>",
            table(rows, ["round", "candidate", doc["criterion"], "seconds", "steps", ""])]


def build_report(run: Run, data: Any = None, out: str | Path | None = None, max_points: int = 2000) -> Path:
    """Write report.html for a run directory; returns its path.

    Order: the verdict (evaluation beside the baselines, in points and words), the pictures, the training curves
    with a reading of the diagnostics, then configuration and environment folded away.
    """
    assert run.path is not None, "report needs a run directory"
    import matplotlib

    matplotlib.use("Agg")
    steps, epochs = read_metrics(run.path / "metrics.jsonl")
    ev = json.loads((run.path / "eval.json").read_text()) if (run.path / "eval.json").exists() else {}
    s = run.summary
    title = f"{s.get('method')} on {s.get('data')}"
    block, sentences = verdict(ev)
    head = (f"<p class='note'>{human(s.get('steps'))} steps, {human(s.get('epochs'))} epochs in "
            f"{human(s.get('train_seconds'))} s on {html.escape(str(s.get('device')))} "
            f"({html.escape(str(s.get('precision')))}); encoder {html.escape(str(s.get('encoder')))}.</p>")
    if ev.get("protocols"):
        where = (f"<p class='note'>Frozen encoder; {human(ev['n_train'])} train / {human(ev['n_test'])} test "
                 f"({html.escape(ev['test_source'])}); hyper-parameters chosen on validation splits of the training "
                 "data.</p>")
        body = block + "".join(f"<p>{html.escape(t)}</p>" for t in sentences) + where
    else:
        body = "<p>No evaluation: the data have no labels, or evaluation was skipped. The embeddings are in the run " \
               "(<code>selfsup embed</code>); label a few hundred samples and run <code>selfsup eval</code>.</p>"
    parts = [f"<h1>{html.escape(title)}</h1>", f"<section id='verdict'><h2>Verdict</h2>{body}{head}</section>"]
    parts += search_section(run.path)
    try:
        ds = load_dataset(data or run.config.data, run.config.data_dir, run.resolved.modality)
    except Exception as exc:  # data moved or unlabelled: the report still shows what it can
        ds = None
        parts.append(f"<p class='note'>Embedding pictures skipped: {html.escape(str(exc))}</p>")
    if ds is not None and ds.train.y is not None:
        _, test, _ = holdout_test_split(ds)
        sel = np.random.default_rng(0).permutation(len(test))[:max_points]
        x = test.x[sel]
        z = encode_storage(run.encoder, run.modality, run.spec, x, mask=test.mask[sel] if test.mask is not None else None)
        classes = ds.info.get("classes") or sorted(set(test.y.tolist()))
        if len(z) >= MIN_MAP_POINTS:
            parts += ["<h2>Embedding map</h2>",
                      f'<img alt="embedding map" src="{embedding_map(z, test.y[sel], classes)}">']
        else:
            parts.append(f"<p class='note'>Embedding map skipped: {len(z)} test items, a map needs "
                         f"{MIN_MAP_POINTS}.</p>")
        parts += neighbours_section(run, x, z)
        parts += illustration_section(run, x)
        cm = ev.get("linear_confusion")
        if cm is not None:
            parts += ["<h2>Confusion matrix</h2>", f'<img alt="confusion matrix" src="{confusion_figure(np.array(cm), classes)}">']
    elif ds is not None:  # no labels: the neighbours of items of the data
        split = ds.test if ds.test is not None else ds.train
        sel = np.sort(np.random.default_rng(0).permutation(len(split))[:max_points])
        x = split.x[sel]
        mask = split.mask[sel] if split.mask is not None else None
        z = encode_storage(run.encoder, run.modality, run.spec, x, mask=mask)
        parts += neighbours_section(run, x, z)
    parts += clusters_section(run, ds)
    if steps:
        parts += ["<h2>Training curves</h2>", f'<img alt="training curves" src="{curves_figure(steps, epochs)}">']
        parts += [f"<p>{html.escape(t)}</p>" for t in reading(epochs, s)]
    if ev.get("protocols"):
        parts.append("<details><summary>All evaluation figures</summary>" +
                     table(evaluation_rows(ev), ["protocol", "selfsup", "raw input", "random encoder"]) + "</details>")
    cfg = {**{k: v for k, v in run.config.to_dict().items() if v not in (None, {}, [])},
           **{f"resolved.{k}": v for k, v in run.resolved.to_dict().items() if k != "data_spec"}}
    parts.append("<details><summary>Configuration</summary>" +
                 table([[k, json.dumps(v)] for k, v in cfg.items()], ["option", "value"]) + "</details>")
    env = {k: v for k, v in s.items() if not isinstance(v, (dict, list))}
    env.update({f"versions.{k}": v for k, v in s.get("versions", {}).items()})
    parts.append("<details><summary>Run summary and environment</summary>" +
                 table([[k, v] for k, v in env.items()], ["", "value"]) + "</details>")
    doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><meta name='viewport' content='width=device-width, "
           f"initial-scale=1'><title>selfsup: {html.escape(title)}</title><style>{CSS}</style></head>"
           f"<body>{''.join(parts)}</body></html>")
    path = Path(out) if out else run.path / "report.html"
    atomic_write_text(path, doc)
    return path


def report(run_dir: str | Path, data: Any = None) -> Path:
    """Load a run directory and write its report.html."""
    return build_report(load(run_dir), data)
