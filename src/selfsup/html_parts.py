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


def picture_rows(rows: list[list[np.ndarray | None]], inch: float, titles: list[str] | None = None,
                 notes: dict[int, str] | None = None) -> str:
    """Rows of uint8 pictures [C, H, W] of one shape (None: a blank) as one PNG data URI, each picture `inch` wide:
    `titles[r]` above row r (left), `notes` {column: text} above the first row. The pictures are laid into one
    array and drawn by one image, which takes a small part of the time of one matplotlib axes a picture."""
    import matplotlib.pyplot as plt

    c, h, w = next(p for row in rows for p in row if p is not None).shape
    gap, band = max(1, w // 8), max(2, round(0.35 * h))
    title_band = band if titles else gap
    top = band if notes else 0
    pitch = title_band + h + gap
    canvas = np.full((top + len(rows) * pitch, max(map(len, rows)) * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        y = top + r * pitch + title_band
        for col, picture in enumerate(row):
            if picture is not None:
                canvas[y:y + h, col * (w + gap):col * (w + gap) + w] = np.moveaxis(picture[:3] if c >= 3 else
                                                                                   picture[:1].repeat(3, 0), 0, -1)
    scale = inch / (w + gap)  # inches per pixel of the canvas
    fig = plt.figure(figsize=(canvas.shape[1] * scale, canvas.shape[0] * scale))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    for r, title in enumerate(titles or []):
        ax.text(0, top + r * pitch + title_band - 1, title, fontsize=7, va="bottom")
    for col, note in (notes or {}).items():
        ax.text(col * (w + gap), top - 1, note, fontsize=8, va="bottom")
    return figure_uri(fig)


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
