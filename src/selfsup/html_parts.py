"""The pieces of selfsup's HTML pages (report, compare, a modality's presentation): figures as data URIs, tables,
numbers as a person writes them."""
from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np


def figure_uri(fig) -> str:
    """A matplotlib figure as a base64 PNG data URI (and closes it)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def table(rows: list[list[Any]], header: list[str], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cellhtml(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


class Raw(str):
    """HTML a table cell shows as is (already escaped)."""


def cellhtml(v: Any) -> str:
    return str(v) if isinstance(v, Raw) else html.escape(human(v))


def human(v: Any) -> str:
    """A number as a person writes it: 10.0 -> '10', 0.023999999999999997 -> '0.024', 3767.2 -> '3,767'."""
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v).lower()
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, float):
        if not np.isfinite(v):
            return str(v)
        if v == int(v) and abs(v) < 1e6:
            return str(int(v))
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)
