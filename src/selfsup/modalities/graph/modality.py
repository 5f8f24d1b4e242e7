"""The graph modality: graphs packed into the rows of a float32 tensor (codec.py), node features learned on the training
graphs (features.py), batched graph views (views.py) and message-passing encoders (encoders.py, PyTorch Geometric).

A sample is a graph (graph-level data: molecules, TU benchmarks) or the neighbourhood of one node of a large graph
(node-level data, nodes.py: the node is its neighbourhood's root and its embedding the root's output). `prepare`
turns storage into the prepared packed layout that views and encoders read.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...data import Dataset
from ...encoders import GraphEncoder
from ...errors import DataError
from ..base import Modality, ViewMaker, modalities
from ..exporting import ExportInputs
from ..presentation import Presentation
from .codec import HEADER_SIZE, Layout, pack, padded
from .encoders import graph_encoders
from .features import check_widths, featurise, fit_features
from .sources import is_graph_object, to_graphs
from .views import RECIPES, graph_view_maker

TOY_LABELS = 4


class GraphPresentation(Presentation):
    """How graph samples appear in a report."""

    def thumbnails(self, x: torch.Tensor) -> np.ndarray:
        """Drawings of the graphs (drawing.py: spring layout, nodes coloured by their first label column)."""
        from .drawing import thumbnails

        return thumbnails(x, Layout.of(x).rooted)


def is_packed(x: torch.Tensor) -> bool:
    """Whether a tensor is packed graph storage (float32 rows with their header)."""
    return x.dtype == torch.float32 and x.dim() == 2 and x.shape[1] >= HEADER_SIZE


class GraphExportInputs(ExportInputs):
    """Example storage and the prepared input in words, for exporting a graph encoder."""

    def described(self, spec: dict[str, Any]) -> str | None:
        return (f"packed graphs, one float32 row each (selfsup.modalities.graph.codec): a {HEADER_SIZE}-value header, "
                f"{spec['node_width']} feature columns a node (one-hot labels, standardised attributes), then the "
                "edges as node positions")


class GraphModality(Modality):
    """Graphs, or nodes of one large graph with their neighbourhoods."""

    name = "graph"
    presentation = GraphPresentation()
    summary = "graphs (a list of networkx / PyG graphs, TU folders) or nodes of one large graph; message passing (PyG)"
    encoders = graph_encoders
    export_inputs = GraphExportInputs()
    view_recipes = RECIPES
    encoder_kind = GraphEncoder

    def claims(self, x: Any) -> bool:
        if is_graph_object(x):
            return True
        return isinstance(x, (list, tuple)) and len(x) > 0 and is_graph_object(x[0])

    def from_array(self, x: Any, where: str) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and is_packed(x):
            return x
        if is_graph_object(x):
            from .nodes import node_neighbourhoods
            return node_neighbourhoods(x, where)
        items = list(x) if not isinstance(x, np.ndarray) or x.dtype.kind == "O" else None
        if items is None:
            raise DataError(f"{where}: a {x.ndim}-D array of {x.dtype} is not graphs; pass networkx graphs or "
                            "torch_geometric Data objects")
        graphs, directed = to_graphs(items, where)
        return pack(graphs, where, directed)

    def to_storage(self, x: Any, where: str, spec: dict[str, Any]) -> torch.Tensor:
        """New graphs for a trained run (`Run.embed`): as `from_array` (packed storage as it is; another tensor as its
        array); np.asarray (the base's) would split a list of networkx graphs into their nodes."""
        return self.from_array(x.numpy() if isinstance(x, torch.Tensor) and not is_packed(x) else x, where)

    def fit_spec(self, x: torch.Tensor) -> dict[str, Any]:
        lay = Layout.of(x)
        sizes = x[:, :2].double()
        return {**fit_features(x), "readout": "root" if lay.rooted else "sum", "directed": lay.directed,
                "graphs": int(len(x)), "mean_nodes": float(sizes[:, 0].mean()), "mean_edges": float(sizes[:, 1].mean()),
                "max_nodes": lay.max_nodes}

    def default_encoder(self, spec: dict[str, Any]) -> str:
        return "gcn" if spec.get("readout") == "root" else "gin"

    def view_maker(self, request: Any, spec: dict[str, Any], strength: float = 1.0,
                   options: dict[str, Any] | None = None) -> ViewMaker:
        return graph_view_maker(request, lambda batch: featurise(batch, spec), strength, options)

    def prepare(self, x: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
        return featurise(x, spec)

    def conform(self, x: torch.Tensor, spec: dict[str, Any], where: str, resize: bool = False,
                strict: bool = False) -> tuple[torch.Tensor, list[str]]:
        check_widths(x, spec, where)
        return x, []

    def toy_data(self, n: int, generator: np.random.Generator) -> list[Any]:
        """`n` random PyG graphs of 4-12 nodes: a ring with random chords, one-hot labels of TOY_LABELS kinds."""
        from torch_geometric.data import Data

        graphs = []
        for _ in range(n):
            size = int(generator.integers(4, 13))
            ring = np.stack([np.arange(size), (np.arange(size) + 1) % size], axis=1)
            chords = generator.integers(0, size, size=(int(generator.integers(0, size)), 2))
            edges = np.concatenate([ring, chords])
            edges = edges[edges[:, 0] != edges[:, 1]]
            edges = np.concatenate([edges, edges[:, ::-1]])
            labels = np.eye(TOY_LABELS, dtype=np.float32)[generator.integers(0, TOY_LABELS, size=size)]
            graphs.append(Data(x=torch.from_numpy(labels), edge_index=torch.from_numpy(edges.T.copy()).long(),
                               num_nodes=size))
        return graphs

    def dataset_from_arrays(self, x: Any, y: np.ndarray | None, name: str) -> Dataset:
        if is_graph_object(x):  # one graph: its nodes are the samples
            from .nodes import node_dataset
            return node_dataset(x, y, name)
        return super().dataset_from_arrays(x, y, name)

    def raw_features(self, x: torch.Tensor, spec: dict[str, Any], mask: torch.Tensor | None = None) -> np.ndarray:
        """The raw-input baseline for graphs: each graph's summed and averaged node features (a bag of node labels)
        with its node and edge counts; for a rooted neighbourhood, the root's own features first."""
        p = padded(featurise(x, spec))
        valid = p.node_valid[..., None]
        total = (p.nodes * valid).sum(1)
        mean = total / p.nodes_count.clamp(min=1)[:, None]
        parts = [total, mean, p.nodes_count[:, None].float(), p.edges_count[:, None].float()]
        if p.layout.rooted:
            parts.insert(0, p.nodes[:, 0])
        return torch.cat(parts, dim=1).numpy()


modalities.add("graph", GraphModality(), GraphModality.summary)
