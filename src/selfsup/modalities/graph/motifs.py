"""The `motifs` source: generated graphs whose class is a structure, the graph modality's embedded data set.

Six classes, each a small motif planted two to four times into a random tree: diamond (a 4-cycle with one chord), K4,
square (4-cycle), pentagon, hexagon and house (a square under a triangle). Each graph draws its number of nodes
(30-50) and its cyclomatic number (12-18: the edges beyond a spanning tree) independently of its class: the tree
fills the nodes the motifs leave, each motif hangs from a random tree node by one edge, and random edges between any
two nodes make up the cyclomatic number the motifs leave. So the node and edge counts say nothing about the class,
nodes carry no labels, and the noise edges close cycles of every length; only the planted structure separates the
classes. Draws are fixed by the seed (the training set seed 0, the test set seed 1): every reading gives the same
graphs, with their node ids shuffled.
"""
from __future__ import annotations

import numpy as np

from ...data import Dataset, SourceRequest, Split, sources
from .codec import Graph, pack

#: each class's motif as an edge list over its own nodes 0..s-1
MOTIFS: dict[str, tuple[tuple[int, int], ...]] = {
    "diamond": ((0, 1), (1, 2), (2, 3), (3, 0), (0, 2)),
    "k4": ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)),
    "square": ((0, 1), (1, 2), (2, 3), (3, 0)),
    "pentagon": ((0, 1), (1, 2), (2, 3), (3, 4), (4, 0)),
    "hexagon": ((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0)),
    "house": ((0, 1), (1, 2), (2, 3), (3, 0), (0, 4), (1, 4)),
}
CLASSES = tuple(MOTIFS)
NODES, CYCLES, COPIES = (30, 50), (12, 18), (2, 4)  # inclusive ranges


def motif_graph(motif: tuple[tuple[int, int], ...], rng: np.random.Generator) -> Graph:
    """One graph of the class whose motif is `motif` (an edge list), drawn as the module says."""
    size = 1 + max(max(e) for e in motif)
    nodes, copies = int(rng.integers(NODES[0], NODES[1] + 1)), int(rng.integers(COPIES[0], COPIES[1] + 1))
    tree = nodes - copies * size
    edges = {(int(rng.integers(i)), i) for i in range(1, tree)}  # a random recursive tree on nodes 0..tree-1
    for c in range(copies):
        first = tree + c * size
        edges |= {(first + min(a, b), first + max(a, b)) for a, b in motif}  # each edge once, (low, high)
        edges.add((int(rng.integers(tree)), first + int(rng.integers(size))))
    cycles = int(rng.integers(CYCLES[0], CYCLES[1] + 1))
    while len(edges) - nodes + 1 < cycles:
        a, b = sorted(int(v) for v in rng.integers(nodes, size=2))
        if a != b:
            edges.add((a, b))
    order = rng.permutation(nodes)
    pairs = order[np.array(sorted(edges), dtype=np.int64)]
    both = np.concatenate([pairs, pairs[:, ::-1]])
    none = np.zeros((nodes, 0))
    return Graph(nodes, both, none.astype(np.int64), none, np.zeros((len(both), 0), np.int64),
                 np.zeros((len(both), 0)))


def generate(n: int, seed: int) -> tuple[list[Graph], np.ndarray]:
    """(n graphs, labels int64 [n]): classes in turn (as balanced as n allows), then shuffled."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % len(CLASSES))
    return [motif_graph(MOTIFS[CLASSES[label]], rng) for label in y], y.astype(np.int64)


@sources.register("motifs", "generated graphs of six classes, each a small motif (diamond, K4, square, pentagon, "
                            "hexagon, house) planted in a random tree with noise edges; node and edge counts drawn "
                            "apart from the class: motifs[?n=1200&test=300]", modality="graph")
def load_motifs(req: SourceRequest) -> Dataset:
    req.check_options({"n", "test"})
    graphs, y = generate(req.whole("n", 1200, 6, 1_000_000), 0)
    test_graphs, y_test = generate(req.whole("test", 300, 6, 1_000_000), 1)
    return Dataset("motifs", "graph", Split(pack(graphs, "motifs"), y),
                   Split(pack(test_graphs, "motifs (test)"), y_test),
                   {"classes": list(CLASSES), "graphs": len(graphs)})
