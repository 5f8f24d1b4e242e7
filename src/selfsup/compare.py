"""`selfsup compare RUN1 RUN2 ...`: runs' settings and figures side by side (terminal or markdown)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
