"""`selfsup compare RUN1 RUN2 ...`: runs' settings and figures side by side (terminal, markdown, or an HTML page)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

COLUMNS = ("run", "method", "encoder", "data", "epochs", "train_seconds", "samples_per_s", "knn_acc", "linear_acc",
           "raw knn", "raw linear", "random knn", "random linear")


def compare_runs(paths: list[str]) -> list[dict[str, Any]]:
    """One row per run from its summary.json and eval.json (figures missing from a run stay empty)."""
    rows = []
    for p in map(Path, paths):
        if not (p / "summary.json").exists():
            raise ConfigError(f"{p}: not a complete run (no summary.json)")
        s = json.loads((p / "summary.json").read_text())
        ev = json.loads((p / "eval.json").read_text()) if (p / "eval.json").exists() else {}
        base = ev.get("baselines", {})
        rows.append({"run": p.name, "method": s.get("method"), "encoder": s.get("encoder"), "data": s.get("data"),
                     "epochs": s.get("epochs"), "train_seconds": s.get("train_seconds"),
                     "samples_per_s": s.get("samples_per_s"), "knn_acc": ev.get("knn_acc"),
                     "linear_acc": ev.get("linear_acc"), "raw knn": base.get("raw", {}).get("knn"),
                     "raw linear": base.get("raw", {}).get("linear"),
                     "random knn": base.get("random_encoder", {}).get("knn"),
                     "random linear": base.get("random_encoder", {}).get("linear")})
    return rows


def cell(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if isinstance(v, float) and v < 1.5 else (f"{v:,.1f}" if isinstance(v, float) else str(v))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def terminal_table(rows: list[dict[str, Any]]) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(*COLUMNS)
    for r in rows:
        table.add_row(*(cell(r[c]) for c in COLUMNS))
    console = Console(record=True, width=200)
    with console.capture() as cap:
        console.print(table)
    return cap.get()


def html_page(paths: list[str]) -> str:
    """Several runs side by side in one self-contained page: the verdict table (one column per run, the baselines
    once), training curves overlaid, and only the configuration settings that differ."""
    import html

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .html_parts import Raw, figure_uri, table
    from .report import CSS, PROTOCOL_NAMES, difference, pct, read_metrics

    runs = []
    for p in map(Path, paths):
        if not (p / "summary.json").exists():
            raise ConfigError(f"{p}: not a complete run (no summary.json)")
        ev = json.loads((p / "eval.json").read_text()) if (p / "eval.json").exists() else {}
        cfg = yaml.safe_load((p / "config.yaml").read_text())
        runs.append({"name": p.name, "summary": json.loads((p / "summary.json").read_text()), "eval": ev,
                     "config": cfg, "metrics": read_metrics(p / "metrics.jsonl")})
    names = [r["name"] for r in runs]
    data = {r["summary"].get("data") for r in runs}
    # the verdict: one row per protocol, one column per run, the baselines of the first run that has them
    protocols = [p for p in PROTOCOL_NAMES if any(p in r["eval"].get("protocols", {}) for r in runs)]
    rows = []
    for proto in protocols:
        key = "nmi" if proto == "kmeans" else "acc"
        base = next((r["eval"]["protocols"][proto] for r in runs if proto in r["eval"].get("protocols", {})), {})
        raw, rand = (base.get(n, {}).get(key) for n in ("raw", "random_encoder"))
        cells: list[Any] = [PROTOCOL_NAMES[proto]]
        for r in runs:
            ours = r["eval"].get("protocols", {}).get(proto, {}).get("selfsup", {}).get(key)
            cells.append("-" if ours is None else Raw(f"<b>{pct(ours)}</b> {difference(ours, raw)}"))
        cells += ["-" if raw is None else pct(raw), "-" if rand is None else pct(rand)]
        rows.append(cells)
    verdict = table(rows, ["protocol", *names, "raw input", "random encoder"], "verdict") if rows else \
        "<p>None of these runs has an evaluation (eval.json).</p>"
    note = ("" if len(data) == 1 else "<p class='note'>The runs were trained on different data "
            f"({', '.join(sorted(map(str, data)))}); the baselines shown are the first run's.</p>")
    # curves: each run's loss relative to its first logged value (losses of different methods have other scales)
    panels = [("loss / first loss", 0, "step", lambda recs: [(r["step"], r["loss"]) for r in recs if "loss" in r], True),
              ("online kNN accuracy", 1, "epoch", lambda recs: [(r["epoch"], r["online_knn_acc"]) for r in recs
                                                               if "online_knn_acc" in r], False),
              ("RankMe", 1, "epoch", lambda recs: [(r["epoch"], r["rankme"]) for r in recs if "rankme" in r], False),
              ("samples / s", 0, "step", lambda recs: [(r["step"], r["samples_per_s"]) for r in recs
                                                      if "samples_per_s" in r], False)]
    panels = [p for p in panels if any(p[3](r["metrics"][p[1]]) for r in runs)]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(3.4 * max(1, len(panels)), 3), squeeze=False)
    for ax, (title, which, xlabel, points, relative) in zip(axes[0], panels):
        for r in runs:
            pts = points(r["metrics"][which])
            if pts:
                xs, ys = zip(*pts)
                ys = [y / ys[0] for y in ys] if relative and ys[0] else ys
                ax.plot(xs, ys, label=r["name"], marker="." if which else None)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    curves = f'<img alt="training curves" src="{figure_uri(fig)}">'
    # configuration: only what differs
    flat = [flatten(r["config"]) for r in runs]
    keys = sorted({k for f in flat for k in f if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1})
    keys = [k for k in keys if not k.startswith("resolved.data_spec")]
    diff_rows = [[k, *(json.dumps(f.get(k)) if k in f else "-" for f in flat)] for k in keys]
    summary_rows = [[k, *(r["summary"].get(k) for r in runs)]
                    for k in ("method", "encoder", "data", "steps", "epochs", "train_seconds", "samples_per_s")]
    title = "selfsup: " + ", ".join(names)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><meta name='viewport' content='width=device-width, "
            f"initial-scale=1'><title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{len(runs)} runs compared</h1><section id='verdict'><h2>Verdict</h2>{verdict}{note}"
            "<p class='note'>Each run's figure, its difference to raw input in points, and the shared baselines "
            "(frozen encoders; hyper-parameters chosen on validation splits of the training data).</p></section>"
            f"<h2>Runs</h2>{table(summary_rows, ['', *names])}<h2>Training curves</h2>{curves}"
            f"<h2>Configuration differences</h2>{table(diff_rows, ['setting', *names]) if diff_rows else '<p>None.</p>'}"
            "</body></html>")


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 1}} -> {'train.lr': 1} (lists and scalars are leaves)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def write_html(paths: list[str], out: str | Path) -> Path:
    from .artifacts import atomic_write_text

    path = Path(out)
    atomic_write_text(path, html_page(paths))
    return path
