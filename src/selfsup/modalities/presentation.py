"""How a modality's samples appear in a report: pictures, media, captions, nearest neighbours and a method's
illustration.

A modality declares one `Presentation` (`Modality.presentation`); report.py asks it, and only it, how to show
samples. Each answer is None (or no HTML) where the modality has no way to show them, and the report leaves that part
out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch


@dataclass(frozen=True)
class Neighbours:
    """A few queries among a sample of items and their nearest others: rows[i] = [query, nearest, next, ...]
    (indices into the sample), sims[i] their cosine similarities to the query (the query's own first, 1)."""
    rows: list[list[int]]
    sims: list[list[float]]
    sample: int  # the sample's size


def neighbour_grid(neighbours: Neighbours, draw: Callable[[Any, list[int]], None], note: str = "") -> list[str]:
    """The report's nearest-neighbours section as one figure: a row a query (left column) and its nearest samples,
    `draw(axes_of_the_row, sample_indices)` filling each row's axes; `note` a caption under the heading."""
    import matplotlib.pyplot as plt

    from ..html_parts import figure_uri

    rows, k = neighbours.rows, len(neighbours.rows[0])
    fig, axes = plt.subplots(len(rows), k, figsize=(1.1 * k, 1.1 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        draw(axes[r], row)
        for ax in axes[r]:
            ax.axis("off")
    axes[0, 0].set_title(NEIGHBOUR_NOTES[0], fontsize=8)
    axes[0, min(1, k - 1)].set_title(NEIGHBOUR_NOTES[1], fontsize=8, loc="left")
    return neighbours_html(figure_uri(fig), note)


#: the labels above a nearest-neighbours grid's columns
NEIGHBOUR_NOTES = {0: "query", 1: "nearest neighbours →"}


def neighbours_html(picture: str, note: str = "") -> list[str]:
    """The report's nearest-neighbours section around its picture (a data URI)."""
    return ["<h2>Nearest neighbours</h2>", *([f"<p class='note'>{note}</p>"] if note else []),
            f'<img alt="nearest neighbours" src="{picture}">']


class Presentation:
    """The presentation of a modality that shows nothing: every answer None."""

    neighbour_queries = 8  # the report's queries for nearest neighbours, and the neighbours shown for each
    neighbours_per_query = 8

    def render_neighbours(self, x: torch.Tensor, neighbours: Neighbours) -> list[str]:
        """The report's nearest-neighbours section (HTML parts) for storage samples `x` (the sample the indices of
        `neighbours` point into); none where the modality cannot show its samples."""
        return []

    def thumbnails(self, x: torch.Tensor) -> np.ndarray | None:
        """Storage samples as uint8 pictures [N, C, H, W] for a report's neighbour grid (None: not pictures)."""
        return None

    def media(self, x: torch.Tensor) -> list[str] | None:
        """Storage samples as HTML media elements (audio players) for a report's neighbour table (None: none)."""
        return None

    def captions(self, x: torch.Tensor) -> list[str] | None:
        """Storage samples as short texts for a report's neighbour table (None: not text)."""
        return None

    def draw_panels(self, pictures: dict[str, torch.Tensor], maps: dict[str, torch.Tensor], spec: dict[str, Any]
                    ) -> Any:
        """A matplotlib figure of a few samples for a report (a method's illustration): `pictures` are prepared
        inputs or predictions in input space (NaN: not shown), `maps` one value in [-1, 1] per input position (NaN:
        none); None when the modality has no way to draw them."""
        return None
