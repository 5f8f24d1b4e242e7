"""Node-level data: the NODES of one large graph are the samples, each as its rooted neighbourhood.

A node's sample is the subgraph induced by its sampled neighbourhood (GraphSAGE-style, Hamilton et al. 2017): the
node itself first (position 0, the root), then up to ``fanout[0]`` random neighbours of it, then up to ``fanout[1]``
random neighbours of each of those (and so on for longer fanouts), each node once, in that order; and every edge of
the graph between the kept nodes, with its label and attribute columns. The node's label and attribute columns
(codec.Graph) travel with it into every neighbourhood it appears in. Rows are packed with ``rooted`` 1, so the
modality reads out the root's output as the sample's embedding. Row i is node i of the graph (networkx: the i-th node
of ``g.nodes``; PyG: node i; the sources: see below).

Sampling is drawn once, when the storage is made, with ``numpy.random.default_rng(seed)`` (seed 0): every node draws,
for each hop, up to ``fanout[hop]`` of its neighbours without replacement (all of them when it has no more), and a
neighbourhood expands its frontier with those draws (a hop of 0 draws nothing: ``fanout=0`` keeps every node alone,
the graph-free baseline of its features through the same encoder). So each neighbourhood is a GraphSAGE sample, while
a node's draw for a hop is shared by the neighbourhoods that reach it at that hop. Neighbours of a directed graph are its
in-neighbours (sources of edges into the node: the nodes whose messages reach it, as PyG's NeighborLoader samples);
self-loops are never sampled, but kept as edges. An undirected graph keeps each edge once (the codec's convention).

Sources (registered when this module is imported):

- ``edges:PATH?features=F.csv&labels=L.csv&fanout=10,10&directed=0&seed=0``: an edge list, one edge a line as
  ``source,target`` (CSV; TSV for ``.tsv``; other suffixes: commas, tabs or white space as the first line has them;
  quotes are not interpreted), node ids integers or strings, lines starting with ``#`` and blank lines skipped,
  further columns numeric attributes of the edge. The first line is a header when its ids are not both nodes of the
  features file, or (without one) when they read like one (source,target / src,dst / from,to / ...) or are the only
  non-numeric ids of the file. ``features``: a CSV, the node id then numeric attributes (a header row when none of
  its attribute cells is a number); its rows fix the nodes and their order, and an edge naming another node is an
  error. Without it the nodes are the edges' ids, sorted (numerically when every id is an integer). ``labels``: a CSV
  ``node id,label`` (a header when its first id is not a node), kept for evaluation only; every node must have one.
  ``directed`` 0 (default): the edges are undirected. Clean files go through pandas' C parser when pandas is
  installed, others line by line, so that every error names its file and line.
- ``graphml:PATH?label=NAME&fanout=10,10&seed=0``: one graph of a GraphML file (networkx.read_graphml); the numeric
  attributes of its first node are the node features (an integer ``label`` a categorical column), ``label=NAME`` the
  node attribute kept for evaluation (removed from the features). Directed as the file says.

In Python: `node_dataset(g)` (a networkx graph or PyG Data object with per-node labels in the attribute `label`,
default ``y``: a node attribute for networkx, ``data.y`` for PyG; a networkx label is never a feature),
`node_neighbourhoods(g, where)` (storage only: what `GraphModality.from_array` and so `Run.embed(g)` use, with the
default fanout and seed) and `graph_neighbourhoods(graph, where)` for a codec.Graph.

Storage grows as nodes x (largest neighbourhood's nodes x node columns + its edges x (2 + edge columns)): wide node
features and large fanouts multiply; `graph_neighbourhoods` refuses beyond MAX_STORAGE_BYTES in one line.
"""
from __future__ import annotations

import math
import queue
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data import Dataset, SourceRequest, Split, encode_labels, existing_file, sources
from ...errors import ConfigError, DataError
from .codec import EXACT, HEADER_SIZE, Graph, Layout, check_graph, is_symmetric, one_direction
from .sources import _attribute_names, _data_graph, _networkx_graph, is_graph_object

DEFAULT_FANOUT = (10, 10)
MAX_STORAGE_BYTES = 2 ** 34  # 16 GiB of packed neighbourhoods
EDGES_OPTIONS = {"features", "labels", "fanout", "directed", "seed"}
GRAPHML_OPTIONS = {"label", "fanout", "seed"}
HEADER_WORDS = {"source", "target", "src", "dst", "from", "to", "u", "v", "node", "node1", "node2", "id", "id1", "id2",
                "head", "tail", "start", "end", "source_id", "target_id", "src_id", "dst_id"}
CHUNK_CELLS = 2 ** 23  # neighbourhoods made at once x nodes: the size of the chunk's position table


# ---------------------------------------------------------------------------------------------------------- sampling

def _ranges(starts: np.ndarray, counts: np.ndarray, dtype: Any = np.int64) -> np.ndarray:
    """The concatenation of arange(s, s + c) for each (s, c), vectorised."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype)
    shift = np.repeat((starts - (np.cumsum(counts) - counts)).astype(dtype), counts)
    shift += np.arange(total, dtype=dtype)
    return shift


def _neighbour_lists(rows: np.ndarray, cols: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, indices): each row's distinct columns other than itself, ascending."""
    keep = rows != cols
    keys = np.sort(rows[keep] * n + cols[keep])
    if len(keys):
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(keys // n, minlength=n), out=indptr[1:])
    return indptr, keys % n


def _draw(indptr: np.ndarray, indices: np.ndarray, fanout: int, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray]:
    """For every node, up to `fanout` of its neighbours drawn without replacement, in random order (as a CSR)."""
    n = len(indptr) - 1
    degree = np.diff(indptr)
    row = np.repeat(np.arange(n, dtype=np.int64), degree)
    shift = 62 - max(n, 1).bit_length()
    keys = (row << shift) | rng.integers(0, 1 << shift, len(indices), dtype=np.int64)
    order = np.argsort(keys)  # rows stay in place, a random order within each
    rank = np.arange(len(indices), dtype=np.int64) - indptr[row]
    chosen = indices[order][rank < fanout].astype(np.int32)  # n < 2**24 (codec.EXACT)
    counts = np.minimum(degree, fanout)
    out = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=out[1:])
    return out, chosen


@dataclass
class Neighbourhoods:
    """The sampled neighbourhoods of every node, concatenated: node i's kept nodes (global ids, root first) are
    `nodes[node_ptr[i]:node_ptr[i + 1]]`, its edges (local positions) and their graph edges likewise."""

    nodes: np.ndarray  # int64 [total nodes]
    node_ptr: np.ndarray  # int64 [n + 1]
    edges: np.ndarray  # int64 [total edges, 2]
    edge_ptr: np.ndarray  # int64 [n + 1]
    edge_slot: np.ndarray  # int64 [total edges]: the row of the edge's columns in the (stored-direction) graph


def prepared_graph(g: Graph, where: str, directed: bool | None = None) -> tuple[Graph, bool]:
    """`g` checked (codec.check_graph), with `directed` decided (None: undirected when its edges are symmetric) and
    an undirected graph's edges kept once each."""
    check_graph(g, where, (g.node_categorical.shape[1], g.node_numeric.shape[1], g.edge_categorical.shape[1],
                           g.edge_numeric.shape[1]))
    edges = np.asarray(g.edges, dtype=np.int64).reshape(-1, 2)
    if directed is None:
        directed = not is_symmetric(edges, g.num_nodes)
    g = Graph(g.num_nodes, edges, g.node_categorical, g.node_numeric, g.edge_categorical, g.edge_numeric)
    return (g if directed else one_direction(g)), bool(directed)


def _workers(n: int, chunk: int) -> int:
    """Threads for `n` items in chunks of `chunk`: torch's thread count (the run's `threads`), at most 8."""
    return max(1, min(torch.get_num_threads(), 8, (n + chunk - 1) // chunk))


def _oriented(edges: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each edge once, in the row of its endpoint of lower (degree, id) (so a hub's row holds only its edges to
    larger hubs): (indptr, other endpoint, edge index, whether the row is the edge's target)."""
    src, dst = edges[:, 0], edges[:, 1]
    rank = (np.bincount(src, minlength=n) + np.bincount(dst, minlength=n)) * n + np.arange(n, dtype=np.int64)
    flip = rank[src] > rank[dst]
    row = np.where(flip, dst, src)
    order = np.argsort(row, kind="stable")
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(row, minlength=n), out=indptr[1:])
    return indptr, np.where(flip, src, dst)[order].astype(np.int32), order.astype(np.int64), flip[order]


def sample_neighbourhoods(g: Graph, directed: bool, fanout: Sequence[int] = DEFAULT_FANOUT, seed: int = 0
                          ) -> Neighbourhoods:
    """Every node's sampled neighbourhood and the edges between its nodes; `g` as `prepared_graph` returns it.

    Vectorised over chunks of nodes: the chunk's candidates (root, then each hop's draws) are deduplicated by
    (neighbourhood, node) keeping first occurrences, their positions go into a table [chunk, nodes], and the edges are
    found by scanning each kept node's degree-oriented edges against that table: each edge is seen from one endpoint
    only, and a hub's few, so the work is about the kept nodes' degrees and never a hub's full list. Chunks run on
    torch.get_num_threads() threads (at most 8), each with its own table; the result does not depend on them."""
    n = g.num_nodes
    src, dst = g.edges[:, 0], g.edges[:, 1]
    if directed:  # in-neighbours: the sources of edges into the node
        lists = _neighbour_lists(dst, src, n)
    else:
        lists = _neighbour_lists(np.concatenate([src, dst]), np.concatenate([dst, src]), n)
    rng = np.random.default_rng(seed)
    draws = [_draw(*lists, int(f), rng) for f in fanout]
    scan_ptr, scan_other, scan_edge, scan_flip = _oriented(g.edges, n)
    scan_degree = np.diff(scan_ptr)
    entry_type = np.int32 if len(g.edges) < 2 ** 31 else np.int64
    largest = min(n, sum(math.prod(fanout[:i]) for i in range(len(fanout) + 1)))  # nodes in a neighbourhood
    chunk = int(min(n, max(1, CHUNK_CELLS // n)))  # chunk * n < 2**31: cells are int32
    tables: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()

    def neighbourhoods(a: int) -> tuple[np.ndarray, ...]:
        """Nodes a..a + chunk: (kept nodes, their counts, edges, their counts, their graph edges)."""
        b = min(n, a + chunk)
        frontier = np.arange(a, b, dtype=np.int32)
        owner = np.arange(b - a, dtype=np.int32)
        nodes, owners = [frontier], [owner]
        for indptr, indices in draws:
            starts = indptr[frontier]
            counts = indptr[frontier + 1] - starts
            owner = np.repeat(owner, counts)
            frontier = indices[_ranges(starts, counts)]
            nodes.append(frontier)
            owners.append(owner)
        owner = np.concatenate(owners)
        order = np.argsort(owner, kind="stable")  # by neighbourhood, in order of hops within it
        cells = owner[order] * np.int32(n) + np.concatenate(nodes)[order]
        _, first = np.unique(cells, return_index=True)
        first.sort()  # first occurrences, still by neighbourhood and in order (the root first)
        cells = cells[first]
        owner, kept = np.divmod(cells, np.int32(n))
        count = np.bincount(owner, minlength=b - a)
        position = np.arange(len(kept), dtype=np.int32) - np.repeat(np.cumsum(count) - count, count).astype(np.int32)
        try:
            table = tables.get_nowait()
        except queue.Empty:
            table = np.zeros(chunk * n, table_type)
        table[cells] = position + 1
        degree = scan_degree[kept]
        entries = _ranges(scan_ptr[kept], degree, entry_type)
        lookup = np.repeat(owner * np.int32(n), degree)
        lookup += scan_other[entries]
        other = table[lookup]
        table[cells] = 0
        tables.put(table)
        hit = np.flatnonzero(other)
        which = np.searchsorted(np.cumsum(degree), hit, "right")  # the kept node whose edge each hit is
        entries = entries[hit]
        here, there = position[which].astype(np.int64), other[hit].astype(np.int64) - 1
        flip = scan_flip[entries]
        pair = np.stack([np.where(flip, there, here), np.where(flip, here, there)], axis=1)
        if not directed:
            pair.sort(axis=1)  # (min, max): codec.one_direction's convention
        return kept.astype(np.int64), count, pair, np.bincount(owner[which], minlength=b - a), scan_edge[entries]

    table_type = np.int16 if largest + 1 < 2 ** 15 else np.int32  # 1 + a node's position in its neighbourhood
    with ThreadPoolExecutor(_workers(n, chunk)) as pool:  # numpy releases the GIL in the gathers and sorts
        parts = list(pool.map(neighbourhoods, range(0, n, chunk)))
    node_parts, node_counts, edge_parts, edge_counts, slot_parts = zip(*parts)
    node_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.concatenate(node_counts), out=node_ptr[1:])
    edge_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.concatenate(edge_counts), out=edge_ptr[1:])
    return Neighbourhoods(np.concatenate(node_parts), node_ptr, np.concatenate(edge_parts).reshape(-1, 2), edge_ptr,
                          np.concatenate(slot_parts))


def _field(out: np.ndarray, start: int, rows: int, width: int) -> np.ndarray:
    """A [N, rows, width] view of columns start.. of `out` (a view, never a copy)."""
    view = out[:, start:start + rows * width]
    view.shape = (len(out), rows, width)  # raises rather than copy
    return view


def pack_neighbourhoods(g: Graph, hoods: Neighbourhoods, directed: bool, where: str,
                        max_bytes: int = MAX_STORAGE_BYTES) -> torch.Tensor:
    """The packed rooted tensor of `hoods` (one row a node): what codec.pack(graphs, where, directed, rooted=True)
    gives for the neighbourhoods as graphs, assembled without a loop over them."""
    n = g.num_nodes
    node_counts, edge_counts = np.diff(hoods.node_ptr), np.diff(hoods.edge_ptr)
    node_cols = np.concatenate([g.node_categorical, g.node_numeric], axis=1).astype(np.float32)
    edge_cols = np.concatenate([g.edge_categorical, g.edge_numeric], axis=1).astype(np.float32)
    lay = Layout(int(node_counts.max()), max(int(edge_counts.max()), 1), g.node_categorical.shape[1],
                 g.node_numeric.shape[1], g.edge_categorical.shape[1], g.edge_numeric.shape[1], directed=directed,
                 rooted=True)
    if n * lay.width * 4 > max_bytes:
        raise DataError(f"{where}: {n} neighbourhoods of up to {lay.max_nodes} nodes and {lay.max_edges} edges pack "
                        f"into {n * lay.width * 4 / 2 ** 30:.1f} GiB, over the {max_bytes / 2 ** 30:.3g} GiB limit; "
                        "use a smaller fanout or fewer node columns")
    out = np.zeros((n, lay.width), dtype=np.float32)
    n0, e0, c0 = lay.node_offsets()
    node_view = _field(out, n0, lay.max_nodes, lay.node_columns)
    edge_view = _field(out, e0, lay.max_edges, 2)
    column_view = _field(out, c0, lay.max_edges, lay.edge_columns)
    chunk = 4096

    def fill(a: int) -> None:
        b = min(n, a + chunk)
        out[a:b, 0], out[a:b, 1] = node_counts[a:b], edge_counts[a:b]
        out[a:b, 2:HEADER_SIZE] = lay.header()
        lo, hi = hoods.node_ptr[a], hoods.node_ptr[b]
        owner = np.repeat(np.arange(a, b), node_counts[a:b])
        place = np.arange(lo, hi) - np.repeat(hoods.node_ptr[a:b], node_counts[a:b])
        if lay.node_columns:
            node_view[owner, place] = node_cols[hoods.nodes[lo:hi]]
        lo, hi = hoods.edge_ptr[a], hoods.edge_ptr[b]
        owner = np.repeat(np.arange(a, b), edge_counts[a:b])
        place = np.arange(lo, hi) - np.repeat(hoods.edge_ptr[a:b], edge_counts[a:b])
        edge_view[owner, place] = hoods.edges[lo:hi]
        if lay.edge_columns:
            column_view[owner, place] = edge_cols[hoods.edge_slot[lo:hi]]

    with ThreadPoolExecutor(_workers(n, chunk)) as pool:  # rows apart: chunks fill their own
        list(pool.map(fill, range(0, n, chunk)))
    return torch.from_numpy(out)


def _fanout(fanout: Any, where: str) -> tuple[int, ...]:
    try:
        values = tuple(int(f) for f in (fanout.split(",") if isinstance(fanout, str) else fanout))
    except (TypeError, ValueError):
        values = ()
    if not values or any(f < 0 for f in values):
        raise ConfigError(f"{where}: fanout must be whole numbers >= 0 a hop, e.g. 10,10; got {fanout!r}")
    return values


def graph_neighbourhoods(g: Graph, where: str, fanout: Sequence[int] = DEFAULT_FANOUT, seed: int = 0,
                         directed: bool | None = None) -> torch.Tensor:
    """The packed rooted neighbourhoods (one row a node, row i node i) of codec graph `g`. `directed` None: undirected
    when its edges are symmetric."""
    fanout = _fanout(fanout, where)
    g, directed = prepared_graph(g, where, directed)
    hoods = sample_neighbourhoods(g, directed, fanout, seed)
    return pack_neighbourhoods(g, hoods, directed, where)


# ------------------------------------------------------------------------------------------------ Python objects

def _is_pyg(g: Any) -> bool:
    return type(g).__module__.startswith("torch_geometric")


def whole_graph(g: Any, where: str, label: str | None = "y") -> tuple[Graph, bool]:
    """(codec graph, directed) of one networkx graph or PyG Data object; networkx node attribute `label` is left out
    of the features (it is the label)."""
    if not is_graph_object(g):
        raise DataError(f"{where}: a {type(g).__name__} is not a networkx graph or a torch_geometric Data object")
    if _is_pyg(g):
        graph = _data_graph(g, where)
        return graph, not is_symmetric(graph.edges, graph.num_nodes)
    if g.number_of_nodes() == 0:
        raise DataError(f"{where}: an empty graph (no nodes)")
    node0 = g.nodes[next(iter(g.nodes))]
    edge0 = next(iter(g.edges(data=True)), (None, None, {}))[2]
    cat, num = _attribute_names({k: v for k, v in node0.items() if k != label})
    return _networkx_graph(g, where, (cat, num, *_attribute_names(edge0))), bool(g.is_directed())


def node_neighbourhoods(g: Any, where: str, fanout: Sequence[int] = DEFAULT_FANOUT, seed: int = 0,
                        label: str | None = "y") -> torch.Tensor:
    """Storage of a single networkx graph or PyG Data object as node-level data: one packed rooted neighbourhood a
    node (row i: node i of `g.nodes` / of the Data object). A networkx node attribute `label` is not a feature."""
    graph, directed = whole_graph(g, where, label)
    return graph_neighbourhoods(graph, where, fanout, seed, directed)


def node_labels(g: Any, where: str, label: str | None = "y") -> np.ndarray | None:
    """The per-node labels of a networkx graph (node attribute `label`, None when no node has it) or a PyG Data object
    (its attribute `label`, data.y by default), in node order."""
    if label is None:
        return None
    if _is_pyg(g):
        y = getattr(g, label, None)
        if y is None:
            return None
        y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        n = int(g.num_nodes)
        if y.size != n:
            raise DataError(f"{where}: data.{label} has shape {tuple(y.shape)}, not one label for each of the {n} "
                            "nodes")
        return y.reshape(n)
    pairs = list(g.nodes(data=label))
    missing = [node for node, v in pairs if v is None]
    if len(missing) == len(pairs):
        return None
    if missing:
        raise DataError(f"{where}: node {missing[0]!r} has no {label!r} attribute (its label; {len(missing)} of "
                        f"{len(pairs)} nodes have none), other nodes have one")
    return np.asarray([v for _, v in pairs])


def node_dataset(g: Any, y: np.ndarray | None = None, name: str = "graph", fanout: Sequence[int] = DEFAULT_FANOUT,
                 seed: int = 0, label: str | None = "y") -> Dataset:
    """A node-level Dataset of one networkx graph or PyG Data object: one sample a node, labelled by `y` (one label a
    node, in node order) or else by the graph's own node labels (`node_labels`), kept for evaluation."""
    x = node_neighbourhoods(g, name, fanout, seed, label)
    raw = node_labels(g, name, label) if y is None else np.asarray(y).reshape(-1)
    if raw is not None and len(raw) != len(x):
        raise DataError(f"{name}: {len(raw)} labels for {len(x)} nodes")
    (codes,), classes = encode_labels(raw)
    return Dataset(name, "graph", Split(x, codes), None, {"classes": classes, "nodes": len(x),
                                                          "fanout": list(_fanout(fanout, name))})


# ---------------------------------------------------------------------------------------------------------- files

def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_integer(cell: str) -> bool:
    try:
        int(cell)
    except ValueError:
        return False
    return True


def _separator(path: Path, line: str) -> str | None:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return ","
    if suffix == ".tsv":
        return "\t"
    return "," if "," in line else "\t" if "\t" in line else None


def _data_lines(text: str) -> list[tuple[int, str]]:
    """(1-based line number, stripped line) of each line that is neither blank nor a `#` comment."""
    return [(number, line) for number, line in enumerate((raw.strip() for raw in text.splitlines()), start=1)
            if line and not line.startswith("#")]


@dataclass
class Table:
    """A delimited text file's rows as stripped strings [rows, width]; line numbers found when an error needs one."""

    path: Path
    cells: np.ndarray  # object [rows, width]
    text: str
    offset: int = 0  # rows dropped from the front (a header)
    numbers: list[int] | None = None

    def line(self, row: int) -> int:
        """The 1-based file line of row `row`."""
        if self.numbers is None:
            self.numbers = [number for number, _ in _data_lines(self.text)]
        return self.numbers[row + self.offset]

    def without_first(self) -> Table:
        return Table(self.path, self.cells[1:], self.text, self.offset + 1, self.numbers)


def _fast_cells(text: str, sep: str | None) -> np.ndarray | None:
    """The cells of a clean file through pandas' C parser; None (read it line by line) when pandas is missing or the
    file has quotes, ragged rows or empty cells, where the line reader's errors name the line."""
    if '"' in text:
        return None
    try:
        import io

        import pandas as pd
    except ImportError:
        return None
    cleaned = re.sub(r"(?m)^[ \t]*#.*$", "", text)
    try:
        frame = pd.read_csv(io.StringIO(cleaned), sep=r"\s+" if sep is None else sep, header=None, dtype=str,
                            keep_default_na=False, na_values=[], skip_blank_lines=True, quoting=3, engine="c")
    except (ValueError, pd.errors.ParserError):
        return None
    cells = frame.to_numpy(dtype=object)
    if sep is not None and (" " in cleaned or ("\t" in cleaned and sep != "\t")):
        cells = np.asarray([frame[c].str.strip().to_numpy(dtype=object) for c in frame.columns], dtype=object).T
        cells = cells.reshape(len(frame), -1)
    if (cells == "").any():
        return None
    return cells


def read_table(path_text: str, what: str) -> Table:
    """The rows of a delimited text file (CSV; TSV for .tsv; otherwise commas, tabs or white space as its first row
    has them); blank and `#` lines skipped; an empty file or a row of another width than the first is a one-line
    error."""
    path = existing_file(path_text, what)
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if "\x00" in text[:4096]:
        raise DataError(f"{path}: a binary file, not a delimited text {what}")
    first = next((line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")),
                 None)
    if first is None:
        raise DataError(f"{path}: empty file (no rows)")
    sep = _separator(path, first)
    cells = _fast_cells(text, sep)
    if cells is not None:
        return Table(path, cells, text)
    lines = _data_lines(text)
    rows = [[cell.strip() for cell in line.split(sep)] for _, line in lines]
    width = len(rows[0])
    bad = next((i for i, r in enumerate(rows) if len(r) != width), None)
    if bad is not None:
        raise DataError(f"{path}: line {lines[bad][0]} has {len(rows[bad])} values, expected {width} (as line "
                        f"{lines[0][0]})")
    cells = np.empty((len(rows), width), dtype=object)
    cells[:] = rows
    return Table(path, cells, text, numbers=[number for number, _ in lines])


def _numbers(t: Table, first: int) -> np.ndarray:
    """float64 [rows, width - first] of columns first.. of `t`; the first bad cell is a one-line error."""
    block = t.cells[:, first:]
    try:
        return block.astype(np.float64)
    except ValueError:
        for i, row in enumerate(block):
            for cell in row:
                if not _is_number(cell):
                    raise DataError(f"{t.path}: line {t.line(i)}: {cell[:40]!r} is not a number") from None
        raise


def _empty_id(t: Table, columns: int) -> None:
    """A one-line error for an empty node id in the first `columns` columns."""
    empty = np.flatnonzero((t.cells[:, :columns] == "").any(axis=1))
    if len(empty):
        raise DataError(f"{t.path}: line {t.line(int(empty[0]))}: an empty node id")


def read_features(path_text: str) -> tuple[Path, list[str], np.ndarray]:
    """(path, node ids in file order, float64 [nodes, D] attributes) of a features CSV."""
    t = read_table(path_text, "features file")
    if t.cells.shape[1] > 1 and not any(_is_number(c) for c in t.cells[0, 1:]):  # a header row
        t = t.without_first()
        if not len(t.cells):
            raise DataError(f"{t.path}: a header row but no nodes")
    _empty_id(t, 1)
    values = _numbers(t, 1)
    ids = t.cells[:, 0].tolist()
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        i = next(i for i, node in enumerate(ids) if node in seen or seen.add(node))
        hint = ""
        if _is_number(ids[i]) and not float(ids[i]).is_integer():  # a feature value where the id should be
            hint = ("; the first column of a features file is the node id (node,feature1,feature2,...), and "
                    f"{ids[i]!r} looks like a feature value: does the file lack its id column?")
        raise DataError(f"{t.path}: line {t.line(i)}: node {ids[i]!r} listed a second time{hint}")
    return t.path, ids, values


def _all_numbers(cells: np.ndarray) -> bool:
    try:
        cells.astype(np.float64)
    except ValueError:
        return False
    return True


def read_edge_list(path_text: str, known: dict[str, int] | None) -> tuple[Table, np.ndarray]:
    """(the rows, float64 [E, De] attributes: columns after the first two) of an edge list, its header line (when
    there is one) left out."""
    t = read_table(path_text, "edge list")
    if t.cells.shape[1] < 2:
        raise DataError(f"{t.path}: line {t.line(0)} has 1 value, an edge needs 2 (source, target)")
    a, b = t.cells[0, :2]
    if known is not None:
        header = not (a in known and b in known)
    else:
        header = (a.lower() in HEADER_WORDS and b.lower() in HEADER_WORDS) or (
            not (_is_number(a) and _is_number(b)) and len(t.cells) > 1 and _all_numbers(t.cells[1:, :2]))
    if header:
        t = t.without_first()
        if not len(t.cells):
            raise DataError(f"{t.path}: a header line but no edges")
    _empty_id(t, 2)
    return t, _numbers(t, 2)


def _sorted_ids(ids: set[str]) -> list[str]:
    if all(_is_integer(i) for i in ids):
        return sorted(ids, key=lambda i: (int(i), i))
    return sorted(ids)


def read_labels(path_text: str, index: dict[str, int]) -> np.ndarray:
    """Labels [nodes] in node order from a `node id,label` CSV; every node needs exactly one."""
    t = read_table(path_text, "labels file")
    if t.cells.shape[1] != 2:
        raise DataError(f"{t.path}: line {t.line(0)} has {t.cells.shape[1]} values, expected 2 (node id, label)")
    if t.cells[0, 0] not in index:  # a header row
        t = t.without_first()
    labels: list[Any] = [None] * len(index)
    for i, (node_id, value) in enumerate(t.cells.tolist()):
        node = index.get(node_id)
        if node is None:
            raise DataError(f"{t.path}: line {t.line(i)}: a label for node {node_id!r}, which is not a node of the "
                            "graph")
        if labels[node] is not None and labels[node] != value:
            raise DataError(f"{t.path}: line {t.line(i)}: a second label for node {node_id!r} ({value!r}, earlier "
                            f"{labels[node]!r})")
        labels[node] = value
    missing = [i for i, v in enumerate(labels) if v is None]
    if missing:
        name = next(node for node, i in index.items() if i == missing[0])
        raise DataError(f"{t.path}: node {name!r} has no label ({len(missing)} of {len(index)} nodes have none); "
                        "evaluation needs a label for every node")
    if all(_is_integer(v) for v in labels):
        return np.asarray([int(v) for v in labels], dtype=np.int64)
    return np.asarray(labels)


def _node_indices(t: Table, column: int, index: dict[str, int], features: Path | None) -> np.ndarray:
    """int64 [rows]: the node of each row's id in `column`; an id that is no node is a one-line error."""
    ids = t.cells[:, column]
    try:
        import pandas as pd

        found = pd.Index(list(index), dtype=object).get_indexer(ids).astype(np.int64)  # index's values are 0..n-1
    except ImportError:
        found = np.asarray([index.get(i, -1) for i in ids.tolist()], dtype=np.int64)
    if (found < 0).any():
        i = int(np.flatnonzero(found < 0)[0])
        raise DataError(f"{t.path}: line {t.line(i)}: node {ids[i]!r} is not in the features file {features}")
    return found


def read_edges_source(req: SourceRequest) -> tuple[Graph, np.ndarray | None, bool]:
    """(codec graph, raw labels or None, directed) of an edges: source."""
    directed = _flag(req, "directed")
    index: dict[str, int] | None = None
    attributes, features = None, None
    if "features" in req.options:
        features, ids, attributes = read_features(req.options["features"])
        index = {node: i for i, node in enumerate(ids)}
    t, edge_attrs = read_edge_list(req.path, index)
    if index is None:
        index = {node: i for i, node in enumerate(_sorted_ids(set(t.cells[:, :2].ravel().tolist())))}
    n = len(index)
    if n >= EXACT:
        raise DataError(f"{t.path}: {n} nodes, more than the {EXACT - 1} a packed graph holds")
    edges = np.stack([_node_indices(t, 0, index, features), _node_indices(t, 1, index, features)], axis=1)
    nodes = attributes if attributes is not None else np.zeros((n, 0))
    graph = Graph(n, edges, np.zeros((n, 0)), nodes, np.zeros((len(edges), 0)), edge_attrs)
    labels = read_labels(req.options["labels"], index) if "labels" in req.options else None
    return graph, labels, directed


def _flag(req: SourceRequest, key: str) -> bool:
    value = req.options.get(key, "0").strip().lower()
    if value not in ("0", "1", "true", "false", "yes", "no"):
        raise ConfigError(f"--data {req.uri}: {key} must be 0 or 1, got {value!r}")
    return value in ("1", "true", "yes")


def _seed(req: SourceRequest) -> int:
    try:
        return int(req.options.get("seed", "0"))
    except ValueError:
        raise ConfigError(f"--data {req.uri}: seed must be a whole number") from None


def _check_options(req: SourceRequest, allowed: set[str]) -> None:
    req.check_options(allowed)
    if not req.path:
        example = "edges.csv" if req.scheme == "edges" else "graph.graphml"
        raise ConfigError(f"{req.scheme}: needs a file, e.g. {req.scheme}:{example}")


@sources.register("edges", "node-level data: the nodes of one graph from an edge list, each sample its sampled "
                           "neighbourhood (edges:EDGES.csv?features=F.csv&labels=L.csv&fanout=10,10&directed=0)",
                  modality="graph")
def load_edges(req: SourceRequest) -> Dataset:
    _check_options(req, EDGES_OPTIONS)
    fanout = _fanout(req.options.get("fanout", DEFAULT_FANOUT), f"--data {req.uri}")
    seed = _seed(req)
    graph, labels, directed = read_edges_source(req)
    x = graph_neighbourhoods(graph, f"edges:{req.path}", fanout, seed, directed)
    (y,), classes = encode_labels(labels)
    return Dataset(Path(req.path).name, "graph", Split(x, y), None,
                   {"classes": classes, "nodes": graph.num_nodes, "edges": len(graph.edges),
                    "fanout": list(fanout), "directed": directed})


def read_graphml(path_text: str) -> Any:
    """The graph of a GraphML file (networkx); an unreadable file is a one-line error."""
    path = existing_file(path_text, "GraphML file")
    try:
        import networkx as nx
    except ImportError:
        raise ConfigError(f"{path}: reading GraphML needs networkx: pip install networkx") from None
    try:
        return nx.read_graphml(path)
    except Exception as exc:  # noqa: BLE001 -- XML and networkx errors of every kind: one line naming the file
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DataError(f"{path}: not a readable GraphML file ({type(exc).__name__}: {first})") from None


@sources.register("graphml", "node-level data: the nodes of one GraphML graph, each sample its sampled neighbourhood "
                             "(graphml:G.graphml?label=NAME&fanout=10,10)", modality="graph")
def load_graphml(req: SourceRequest) -> Dataset:
    _check_options(req, GRAPHML_OPTIONS)
    fanout = _fanout(req.options.get("fanout", DEFAULT_FANOUT), f"--data {req.uri}")
    seed = _seed(req)
    g = read_graphml(req.path)
    where = f"graphml:{req.path}"
    label = req.options.get("label") or None
    if label is not None and g.number_of_nodes() and all(label not in d for _, d in g.nodes(data=True)):
        raise DataError(f"{where}: no node has the attribute {label!r} (label=); node attributes: "
                        f"{', '.join(sorted({k for _, d in g.nodes(data=True) for k in d})) or 'none'}")
    ds = node_dataset(g, None, Path(req.path).name, fanout, seed, label)
    ds.info.update(edges=int(g.number_of_edges()), directed=bool(g.is_directed()))
    return ds
