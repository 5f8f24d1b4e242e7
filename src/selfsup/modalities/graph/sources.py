"""Graph data sources and conversions into `codec.Graph`.

- ``tu:PATH``: a folder in the TU Dortmund benchmark format (``NAME_A.txt`` edges as 1-based node ids over the whole
  collection, ``NAME_graph_indicator.txt``, and where present ``NAME_graph_labels.txt``, ``NAME_node_labels.txt``,
  ``NAME_node_attributes.txt``, ``NAME_edge_labels.txt``, ``NAME_edge_attributes.txt``); ``tu:MUTAG`` and
  ``tu:Cuneiform`` (a bare name that is no folder) resolve to the copies the PyPI wheel `grakel` ships, when it is
  installed. Graph labels are kept for evaluation only.
- In Python: a list of networkx graphs or PyTorch Geometric `Data` objects (`api.dataset_from_array`, or
  `selfsup.train(graphs)`), one graph a sample. Node attributes named in `node_attributes` (networkx; default: every
  numeric attribute the first graph's nodes carry, `label` as a categorical column) and a `Data`'s `x`; `edge_attr`
  and edge attributes likewise.

Node-level data (one large graph whose nodes are the samples) lives in `nodes.py`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...data import Dataset, SourceRequest, Split, encode_labels, sources
from ...errors import ConfigError, DataError
from .codec import Graph, pack

GRAKEL_COPIES = ("MUTAG", "Cuneiform")
TU_FILES = ("A", "graph_indicator", "graph_labels", "node_labels", "node_attributes", "edge_labels", "edge_attributes")


def _read_numbers(path: Path, dtype: Any) -> np.ndarray:
    """A TU text file of comma-separated numbers, one row a line, as a 2-D array; a bad line is a one-line error."""
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                values = [float(cell) for cell in line.split(",")]
            except ValueError:
                raise DataError(f"{path}: line {number}: {line[:60]!r} is not comma-separated numbers") from None
            if dtype is int and any(v != int(v) for v in values):
                raise DataError(f"{path}: line {number}: {line[:60]!r} is not whole numbers (ids and labels are)")
            rows.append(values)
            if rows and len(rows[-1]) != len(rows[0]):
                raise DataError(f"{path}: line {number} has {len(rows[-1])} values, line 1 has {len(rows[0])}")
    if not rows:
        raise DataError(f"{path}: empty file")
    return np.asarray(rows, dtype=np.int64 if dtype is int else np.float64)


def tu_folder(path_text: str) -> tuple[Path, str]:
    """(folder, data set name) of a TU source: a folder holding NAME_A.txt, or a name grakel ships."""
    path = Path(path_text).expanduser()
    if not path.exists() and path_text in GRAKEL_COPIES:
        try:
            import grakel
        except ImportError:
            raise ConfigError(f"tu:{path_text} reads the copy the grakel wheel ships: pip install grakel, or give "
                              "the folder of a TU data set") from None
        path = Path(grakel.__file__).parent / "tests" / "data" / path_text
    if not path.is_dir():
        raise DataError(f"{path}: not a folder (tu: needs a TU-format folder, or one of {', '.join(GRAKEL_COPIES)})")
    found = sorted(path.glob("*_A.txt"))
    if len(found) != 1:
        raise DataError(f"{path}: expected one NAME_A.txt file in the folder, found {len(found)}")
    return path, found[0].name[:-len("_A.txt")]


def read_tu(path_text: str) -> tuple[list[Graph], np.ndarray | None]:
    """The graphs of a TU folder and their labels (None when the folder has none)."""
    folder, name = tu_folder(path_text)
    files = {key: folder / f"{name}_{key}.txt" for key in TU_FILES}
    edges = _read_numbers(files["A"], int)
    if edges.shape[1] != 2:
        raise DataError(f"{files['A']}: {edges.shape[1]} values a line, an edge needs 2 (source, target)")
    indicator = _read_numbers(files["graph_indicator"], int)[:, 0]
    nodes = len(indicator)
    if edges.min() < 1 or edges.max() > nodes:
        bad = int(np.flatnonzero((edges < 1).any(axis=1) | (edges > nodes).any(axis=1))[0])
        raise DataError(f"{files['A']}: line {bad + 1}: node {edges[bad].tolist()} out of range 1..{nodes} "
                        f"({files['graph_indicator'].name} has {nodes} nodes)")
    if np.any(np.diff(indicator) < 0):
        raise DataError(f"{files['graph_indicator']}: graph ids must not decrease (nodes are listed graph by graph)")
    graph_ids, first, counts = np.unique(indicator, return_index=True, return_counts=True)

    def optional(key: str, dtype: Any, rows: int) -> np.ndarray:
        if not files[key].exists():
            return np.zeros((rows, 0))
        values = _read_numbers(files[key], dtype)
        if len(values) != rows:
            raise DataError(f"{files[key]}: {len(values)} lines, expected {rows}")
        return values

    node_labels, node_attrs = optional("node_labels", int, nodes), optional("node_attributes", float, nodes)
    edge_labels, edge_attrs = optional("edge_labels", int, len(edges)), optional("edge_attributes", float, len(edges))
    src, dst = edges[:, 0] - 1, edges[:, 1] - 1
    if np.any(indicator[src] != indicator[dst]):
        bad = int(np.flatnonzero(indicator[src] != indicator[dst])[0])
        raise DataError(f"{files['A']}: line {bad + 1} joins nodes of two different graphs")
    owner = np.searchsorted(graph_ids, indicator[src])
    order = np.argsort(owner, kind="stable")
    edge_counts = np.bincount(owner, minlength=len(graph_ids))
    edge_first = np.concatenate([[0], np.cumsum(edge_counts)[:-1]])
    graphs = []
    for g, (start, n) in enumerate(zip(first, counts)):
        sel = order[edge_first[g]:edge_first[g] + edge_counts[g]]
        local = np.stack([src[sel], dst[sel]], axis=1) - start
        graphs.append(Graph(int(n), local, node_labels[start:start + n], node_attrs[start:start + n],
                            edge_labels[sel], edge_attrs[sel]))
    labels = None
    if files["graph_labels"].exists():
        labels = _read_numbers(files["graph_labels"], float)[:, 0]
        if len(labels) != len(graphs):
            raise DataError(f"{files['graph_labels']}: {len(labels)} labels for {len(graphs)} graphs")
        labels = labels.astype(np.int64) if np.all(labels == np.round(labels)) else labels
    return graphs, labels


@sources.register("tu", "graphs in the TU benchmark format (tu:FOLDER; tu:MUTAG and tu:Cuneiform from the grakel "
                        "wheel)", modality="graph")
def load_tu(req: SourceRequest) -> Dataset:
    if req.options:
        raise ConfigError(f"--data {req.uri}: tu: takes no options")
    if not req.path:
        raise ConfigError("tu: needs a folder or a name, e.g. tu:MUTAG")
    graphs, labels = read_tu(req.path)
    (y,), classes = encode_labels(labels)
    where = f"tu:{req.path}"
    return Dataset(Path(req.path).name, "graph", Split(pack(graphs, where), y), None,
                   {"classes": classes, "graphs": len(graphs)})


def _networkx_graph(g: Any, where: str, attributes: tuple[list[str], list[str], list[str], list[str]]) -> Graph:
    nodes = list(g.nodes)
    index = {node: i for i, node in enumerate(nodes)}
    cat, num, ecat, enum = attributes

    def column(data: dict[str, Any], name: str, what: str) -> Any:
        if name not in data:
            raise DataError(f"{where}: {what} has no attribute {name!r} (the first graph's have it)")
        return data[name]

    node_data = [g.nodes[node] for node in nodes]
    try:
        node_cat = np.asarray([[float(column(d, a, f"node {n!r}")) for a in cat] for n, d in zip(nodes, node_data)])
        node_num = np.asarray([np.concatenate([np.ravel(np.asarray(column(d, a, f"node {n!r}"), dtype=float))
                                               for a in num]) if num else [] for n, d in zip(nodes, node_data)])
    except (TypeError, ValueError) as e:
        raise DataError(f"{where}: a node attribute is not numeric ({e})") from None
    edge_list = list(g.edges(data=True))  # an undirected edge once, in either direction: the caller says `directed`
    edges = np.asarray([[index[u], index[v]] for u, v, _ in edge_list], dtype=np.int64).reshape(-1, 2)
    try:
        edge_cat = np.asarray([[float(column(d, a, "an edge")) for a in ecat] for _, _, d in edge_list])
        edge_num = np.asarray([[float(column(d, a, "an edge")) for a in enum] for _, _, d in edge_list])
    except (TypeError, ValueError) as e:
        raise DataError(f"{where}: an edge attribute is not numeric ({e})") from None
    n = len(nodes)
    return Graph(n, edges, node_cat.reshape(n, len(cat)), node_num.reshape(n, -1) if num else np.zeros((n, 0)),
                 edge_cat.reshape(len(edges), len(ecat)), edge_num.reshape(len(edges), -1) if enum
                 else np.zeros((len(edges), 0)))


def _attribute_names(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(categorical, numeric) attribute names of a node's or edge's data: `label` categorical, other numbers (or
    numeric vectors) numeric; anything else is left out."""
    cat, num = [], []
    for name, value in sorted(data.items()):
        if name == "label" and isinstance(value, (int, np.integer)):
            cat.append(name)
        elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool) or (
                isinstance(value, (list, tuple, np.ndarray)) and np.asarray(value).dtype.kind in "iuf"):
            num.append(name)
    return cat, num


def _data_graph(d: Any, where: str) -> Graph:
    """A PyTorch Geometric `Data` object: `x` numeric node columns, `edge_index`, `edge_attr`."""
    n = int(d.num_nodes) if d.num_nodes is not None else 0
    edges = d.edge_index.T.cpu().numpy().astype(np.int64) if d.edge_index is not None else np.zeros((0, 2), np.int64)
    x = d.x.cpu().numpy() if getattr(d, "x", None) is not None else np.zeros((n, 0))
    ea = d.edge_attr.cpu().numpy() if getattr(d, "edge_attr", None) is not None else np.zeros((len(edges), 0))
    return Graph(n, edges, np.zeros((n, 0)), x.reshape(n, -1).astype(np.float64), np.zeros((len(edges), 0)),
                 ea.reshape(len(edges), -1).astype(np.float64))


def is_graph_object(x: Any) -> bool:
    """Whether `x` is a networkx graph or a PyTorch Geometric Data object (by class, without importing either)."""
    module = type(x).__module__.split(".")[0]
    return module in ("networkx", "torch_geometric")


def to_graphs(items: Any, where: str) -> tuple[list[Graph], bool | None]:
    """A list of networkx graphs or PyG Data objects -> (codec graphs, directed): networkx says whether its graphs are
    directed (an undirected edge is listed once); for PyG Data, None (undirected when every graph's edges are
    symmetric, codec.pack's rule). Attributes are chosen from the first graph."""
    items = list(items)
    if not items:
        raise DataError(f"{where}: no graphs")
    for i, g in enumerate(items):
        if not is_graph_object(g):
            raise DataError(f"{where}: item {i} is a {type(g).__name__}, not a networkx graph or a torch_geometric "
                            "Data object")
    if type(items[0]).__module__.startswith("torch_geometric"):
        return [_data_graph(d, f"{where}: graph {i}") for i, d in enumerate(items)], None
    first = items[0]
    node0 = first.nodes[next(iter(first.nodes))] if first.number_of_nodes() else {}
    edge0 = next(iter(first.edges(data=True)), (None, None, {}))[2]
    names = (*_attribute_names(node0), *_attribute_names(edge0))
    if any(g.is_directed() != first.is_directed() for g in items):
        raise DataError(f"{where}: directed and undirected networkx graphs mixed")
    return [_networkx_graph(g, f"{where}: graph {i}", names) for i, g in enumerate(items)], bool(first.is_directed())
