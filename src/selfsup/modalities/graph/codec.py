"""Graphs packed into the rows of one float32 tensor, so that the core's storage, batching, digests and prepared caches
work on them unchanged (the text modality keeps UTF-8 bytes in rows the same way).

A packed tensor [N, width] holds one graph per row, padded to the largest graph of the tensor:

    header (HEADER_SIZE values)        nodes, edges, max_nodes, max_edges, node_categorical, node_numeric,
                                       edge_categorical, edge_numeric, directed, rooted
    node columns  [max_nodes, C + D]   C categorical columns (label values, exact integers), then D numeric ones
    edges         [max_edges, 2]       (source, target) node positions within the graph
    edge columns  [max_edges, Ce + De] the edges' labels and attributes

`rooted` 1: each row is the neighbourhood of one node of a larger graph, that node first (node-level data, nodes.py).
Every row of a tensor repeats the layout (the last eight header values), so a tensor describes itself: two view
batches of the same storage concatenate into one batch (`Method.encode` does exactly that). An undirected graph
stores each edge once (`directed` 0) and `unpack` adds the reverse direction; a self-loop stays single. Padding is
zero. Positions and labels are exact in float32 up to 2**24.

Storage holds the raw columns; `modality.prepare` turns them into the prepared layout (one-hot labels and
standardised attributes as D numeric columns, no edge columns), which views and encoders read. All batch operations
work on the padded [B, max_nodes, ...] views of a tensor, without a Python loop over graphs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...errors import DataError

HEADER = ("nodes", "edges", "max_nodes", "max_edges", "node_categorical", "node_numeric", "edge_categorical",
          "edge_numeric", "directed", "rooted")
HEADER_SIZE = len(HEADER)
EXACT = 2 ** 24  # float32 holds every integer below this exactly


@dataclass(frozen=True)
class Graph:
    """One graph as numpy arrays (what sources produce)."""

    num_nodes: int
    edges: np.ndarray  # int64 [E, 2]: (source, target)
    node_categorical: np.ndarray  # [num_nodes, C]: label values (integers)
    node_numeric: np.ndarray  # float [num_nodes, D]: attributes
    edge_categorical: np.ndarray  # [E, Ce]
    edge_numeric: np.ndarray  # float [E, De]


@dataclass(frozen=True)
class Layout:
    """How the rows of a packed tensor are laid out (the header's last seven values)."""

    max_nodes: int
    max_edges: int
    node_categorical: int
    node_numeric: int
    edge_categorical: int
    edge_numeric: int
    directed: bool
    rooted: bool = False

    @property
    def node_columns(self) -> int:
        return self.node_categorical + self.node_numeric

    @property
    def edge_columns(self) -> int:
        return self.edge_categorical + self.edge_numeric

    @property
    def width(self) -> int:
        return HEADER_SIZE + self.max_nodes * self.node_columns + self.max_edges * (2 + self.edge_columns)

    @classmethod
    def of(cls, t: torch.Tensor) -> Layout:
        """The layout of packed tensor `t` (read from its first row; every row repeats it)."""
        if t.dim() != 2 or t.shape[1] < HEADER_SIZE:
            raise DataError(f"not a packed graph tensor (shape {tuple(t.shape)})")
        h = [int(v) for v in t[0, 2:HEADER_SIZE].tolist()] if len(t) else [0] * (HEADER_SIZE - 2)
        return cls(*h[:6], directed=bool(h[6]), rooted=bool(h[7]))

    def header(self) -> list[float]:
        return [float(self.max_nodes), float(self.max_edges), float(self.node_categorical), float(self.node_numeric),
                float(self.edge_categorical), float(self.edge_numeric), float(self.directed), float(self.rooted)]

    def node_offsets(self) -> tuple[int, int, int]:
        """(start of node columns, start of edges, start of edge columns) within a row."""
        nodes = HEADER_SIZE
        edges = nodes + self.max_nodes * self.node_columns
        return nodes, edges, edges + self.max_edges * 2


@dataclass
class Padded:
    """A packed batch as padded tensors (views of the batch's rows, or new ones to assemble)."""

    layout: Layout
    nodes_count: torch.Tensor  # int64 [B]
    edges_count: torch.Tensor  # int64 [B]
    nodes: torch.Tensor  # float [B, max_nodes, node_columns]
    edges: torch.Tensor  # int64 [B, max_edges, 2]
    edge_columns: torch.Tensor  # float [B, max_edges, edge_columns]

    @property
    def node_valid(self) -> torch.Tensor:
        return torch.arange(self.layout.max_nodes, device=self.nodes.device) < self.nodes_count[:, None]

    @property
    def edge_valid(self) -> torch.Tensor:
        return torch.arange(self.layout.max_edges, device=self.nodes.device) < self.edges_count[:, None]


def padded(t: torch.Tensor) -> Padded:
    """The padded views of packed tensor `t`."""
    lay = Layout.of(t)
    b = len(t)
    n0, e0, c0 = lay.node_offsets()
    return Padded(lay, t[:, 0].long(), t[:, 1].long(),
                  t[:, n0:e0].reshape(b, lay.max_nodes, lay.node_columns),
                  t[:, e0:c0].reshape(b, lay.max_edges, 2).long(),
                  t[:, c0:].reshape(b, lay.max_edges, lay.edge_columns))


def assemble(p: Padded) -> torch.Tensor:
    """The packed tensor of padded parts (padding zeroed)."""
    lay, b = p.layout, len(p.nodes_count)
    head = torch.tensor(lay.header(), dtype=torch.float32, device=p.nodes.device).expand(b, -1)
    nodes = p.nodes.float() * p.node_valid[..., None]
    edge_valid = p.edge_valid[..., None]
    return torch.cat([p.nodes_count[:, None].float(), p.edges_count[:, None].float(), head,
                      nodes.reshape(b, -1), (p.edges * edge_valid).float().reshape(b, -1),
                      (p.edge_columns.float() * edge_valid).reshape(b, -1)], dim=1)


def is_symmetric(edges: np.ndarray, n: int) -> bool:
    """Whether every edge (u, v) of [E, 2] (nodes 0..n-1) also appears as (v, u)."""
    if len(edges) == 0:
        return True
    forward = np.unique(edges[:, 0] * n + edges[:, 1])
    return bool(np.isin(edges[:, 1] * n + edges[:, 0], forward).all())


def one_direction(g: Graph) -> Graph:
    """An undirected graph with each edge kept once, as (min, max), with the attributes of its first occurrence."""
    if len(g.edges) == 0:
        return g
    lo, hi = g.edges.min(axis=1), g.edges.max(axis=1)
    _, first = np.unique(lo * (g.num_nodes + 1) + hi, return_index=True)
    first.sort()
    return Graph(g.num_nodes, np.stack([lo, hi], axis=1)[first], g.node_categorical, g.node_numeric,
                 g.edge_categorical[first], g.edge_numeric[first])


def check_graph(g: Graph, where: str, widths: tuple[int, int, int, int]) -> None:
    """One-line DataError for a graph that cannot be packed with the others (`widths`: C, D, Ce, De of the first)."""
    if g.num_nodes <= 0:
        raise DataError(f"{where}: an empty graph (no nodes)")
    if g.num_nodes >= EXACT:
        raise DataError(f"{where}: {g.num_nodes} nodes, more than the {EXACT - 1} a packed graph holds")
    if len(g.edges):
        bad = np.flatnonzero((g.edges < 0).any(axis=1) | (g.edges >= g.num_nodes).any(axis=1))
        if len(bad):
            u, v = (int(a) for a in g.edges[bad[0]])
            raise DataError(f"{where}: edge {int(bad[0])} joins nodes {u} and {v}, but the graph has nodes "
                            f"0..{g.num_nodes - 1} only")
    mine = (g.node_categorical.shape[1], g.node_numeric.shape[1], g.edge_categorical.shape[1],
            g.edge_numeric.shape[1])
    names = ("node label columns", "node attribute columns", "edge label columns", "edge attribute columns")
    for name, got, want in zip(names, mine, widths):
        if got != want:
            raise DataError(f"{where}: {got} {name}, but the first graph has {want} (features of the wrong width)")
    for name, arr, rows in (("node", g.node_categorical, g.num_nodes), ("node", g.node_numeric, g.num_nodes),
                            ("edge", g.edge_categorical, len(g.edges)), ("edge", g.edge_numeric, len(g.edges))):
        if arr.shape[0] != rows:
            raise DataError(f"{where}: {arr.shape[0]} rows of {name} features for {rows} {name}s")
    if g.node_categorical.size and not np.all(np.abs(g.node_categorical) < EXACT):
        raise DataError(f"{where}: node labels must be integers below {EXACT} in magnitude")


def pack(graphs: list[Graph], where: str, directed: bool | None = None, rooted: bool = False) -> torch.Tensor:
    """Graphs -> packed float32 tensor [N, width]; `where` names the source in errors (graph i is `where` graph i).
    `directed` None: undirected when every graph's edges are symmetric. `rooted`: node 0 of each graph is its
    sample (a neighbourhood of one node)."""
    if not graphs:
        raise DataError(f"{where}: no graphs")
    g0 = graphs[0]
    widths = (g0.node_categorical.shape[1], g0.node_numeric.shape[1], g0.edge_categorical.shape[1],
              g0.edge_numeric.shape[1])
    for i, g in enumerate(graphs):
        check_graph(g, f"{where}: graph {i}", widths)
    if directed is None:
        directed = not all(is_symmetric(g.edges, g.num_nodes) for g in graphs)
    if not directed:
        graphs = [one_direction(g) for g in graphs]
    lay = Layout(max(g.num_nodes for g in graphs), max(max(len(g.edges) for g in graphs), 1), *widths,
                 directed=bool(directed), rooted=rooted)
    out = np.zeros((len(graphs), lay.width), dtype=np.float32)
    n0, e0, c0 = lay.node_offsets()
    out[:, 2:HEADER_SIZE] = lay.header()
    for row, g in zip(out, graphs):
        row[0], row[1] = g.num_nodes, len(g.edges)
        cols = np.concatenate([g.node_categorical, g.node_numeric], axis=1).astype(np.float32)
        row[n0:n0 + cols.size] = cols.reshape(-1)
        row[e0:e0 + 2 * len(g.edges)] = g.edges.reshape(-1)
        ecols = np.concatenate([g.edge_categorical, g.edge_numeric], axis=1).astype(np.float32)
        row[c0:c0 + ecols.size] = ecols.reshape(-1)
    return torch.from_numpy(out)


def unpack(t: torch.Tensor) -> list[Graph]:
    """The graphs of packed tensor `t` (numpy; undirected edges once each): the inverse of `pack`."""
    p = padded(t)
    lay = p.layout
    out = []
    for b in range(len(t)):
        n, e = int(p.nodes_count[b]), int(p.edges_count[b])
        nodes = p.nodes[b, :n].numpy()
        ecols = p.edge_columns[b, :e].numpy()
        out.append(Graph(n, p.edges[b, :e].numpy().copy(), nodes[:, :lay.node_categorical].astype(np.int64),
                         nodes[:, lay.node_categorical:].astype(np.float64),
                         ecols[:, :lay.edge_categorical].astype(np.int64),
                         ecols[:, lay.edge_categorical:].astype(np.float64)))
    return out


@dataclass
class FlatBatch:
    """A prepared packed batch flattened for message passing (PyTorch Geometric's conventions)."""

    x: torch.Tensor  # [M, width] node features, graph after graph
    edge_index: torch.Tensor  # int64 [2, E]: both directions of an undirected edge
    owner: torch.Tensor  # int64 [M]: each node's graph
    first: torch.Tensor  # int64 [B]: each graph's first node's row (its root, for rooted neighbourhoods)
    count: int
    rooted: bool = False


def flatten(t: torch.Tensor) -> FlatBatch:
    """A prepared packed tensor (numeric node columns only) -> flat nodes and edges for message passing."""
    p = padded(t)
    valid = p.node_valid
    x = p.nodes[valid]
    counts = p.nodes_count
    first = torch.cumsum(counts, 0) - counts
    edges = (p.edges + first[:, None, None])[p.edge_valid]  # [E, 2]
    if not p.layout.directed:
        loops = edges[:, 0] == edges[:, 1]
        edges = torch.cat([edges, edges[~loops].flip(1)])
    owner = torch.repeat_interleave(torch.arange(len(t), device=t.device), counts, output_size=x.shape[0])
    return FlatBatch(x, edges.T.contiguous(), owner, first, len(t), p.layout.rooted)
