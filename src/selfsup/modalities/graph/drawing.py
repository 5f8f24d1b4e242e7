"""Small pictures of graphs for a report's nearest-neighbour grid (`Modality.thumbnails`): each graph laid out by
networkx's spring layout (seeded, so a graph is always drawn the same way), its edges drawn as grey lines and its nodes
as dots coloured by their first label column (tab10), a rooted neighbourhood's root larger and black. Rasterised with
numpy into uint8 RGB arrays, so thousands of graphs draw in seconds."""
from __future__ import annotations

import numpy as np
import torch

from .codec import unpack

SIZE = 48  # pixels a side
PALETTE = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
                    [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]], dtype=np.uint8)


def layout(num_nodes: int, edges: np.ndarray) -> np.ndarray:
    """[n, 2] positions in [0, 1] (spring layout, seed 0; a single node in the middle)."""
    import networkx as nx

    if num_nodes == 1:
        return np.full((1, 2), 0.5)
    g = nx.Graph()
    g.add_nodes_from(range(num_nodes))
    g.add_edges_from(map(tuple, edges.tolist()))
    pos = nx.spring_layout(g, seed=0)
    xy = np.array([pos[i] for i in range(num_nodes)])
    lo, hi = xy.min(0), xy.max(0)
    return (xy - lo) / np.maximum(hi - lo, 1e-9)


def draw(num_nodes: int, edges: np.ndarray, colours: np.ndarray, rooted: bool) -> np.ndarray:
    """One graph as uint8 [3, SIZE, SIZE] on white."""
    image = np.full((SIZE, SIZE, 3), 255, dtype=np.uint8)
    xy = 3 + layout(num_nodes, edges) * (SIZE - 7)
    if len(edges):
        t = np.linspace(0, 1, SIZE)[None, :, None]
        points = (xy[edges[:, 0]][:, None] * (1 - t) + xy[edges[:, 1]][:, None] * t).reshape(-1, 2).round().astype(int)
        image[points[:, 1], points[:, 0]] = 170
    for i, (x, y) in enumerate(xy.round().astype(int)):
        r = 2 if rooted and i == 0 else 1
        image[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1] = 0 if rooted and i == 0 else colours[i]
    return image.transpose(2, 0, 1)


def thumbnails(x: torch.Tensor, rooted: bool) -> np.ndarray:
    """Packed storage -> uint8 [N, 3, SIZE, SIZE] drawings."""
    out = []
    for g in unpack(x):
        codes = g.node_categorical[:, 0] if g.node_categorical.shape[1] else np.zeros(g.num_nodes, dtype=np.int64)
        out.append(draw(g.num_nodes, g.edges, PALETTE[np.abs(codes) % len(PALETTE)], rooted))
    return np.stack(out) if out else np.zeros((0, 3, SIZE, SIZE), dtype=np.uint8)
