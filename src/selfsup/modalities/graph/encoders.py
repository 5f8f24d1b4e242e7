"""Graph encoders (encoders.GraphEncoder) built from PyTorch Geometric's layers over prepared packed graphs.

Each flattens its batch (codec.flatten: node rows graph after graph, both directions of every undirected edge) and
runs message passing; `readout` turns node outputs into one vector a sample: the sum (GIN, as InfoGraph and GraphCL)
or mean (GCN, GAT) over its nodes, or its root node's output when the samples are rooted neighbourhoods of one large
graph (node-level data; the spec says `readout: root`). All of them are invariant to the order of a graph's nodes.
`hide` (GraphMAE) replaces the hidden nodes' inputs by the caller's `mask_token` (zeros without one); `shuffle` (DGI)
permutes the input rows across the batch's nodes.

`walk_steps` K > 0 appends to every node's features its random-walk structural encoding (RWSE; Dwivedi et al.
2022, "Graph Neural Networks with Learnable Structural and Positional Representations"): the probabilities that a
random walk from the node is back at it after 1..K moves, computed on the graph the encoder is given (an augmented
view's own structure). Message passing with sum aggregation is bounded by the 1-WL test, which cannot count cycles;
the return probabilities can (a node on a triangle can be back after 3 moves, one on a tree never after an odd
number), so graphs whose classes differ by their cycles, not their node labels, become separable. They are part of
the node inputs, so GraphMAE reconstructs them too. The default is the spec's (features.py: 16 steps for graphs
without node columns and for whole graphs of at most 128 nodes with them, none otherwise). Cost: a dense [B, n, n]
walk matrix a batch, n the largest graph of the data set (storage pads every graph to it).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...encoders import GraphEncoder, NodeOutputs
from ...errors import ConfigError
from ...registry import Registry
from .codec import Padded, flatten, padded

graph_encoders: Registry = Registry("graph encoder")
READOUTS = ("sum", "mean", "root")
GIN_NORMS = ("batch", "none")


def pyg() -> Any:
    try:
        import torch_geometric.nn as gnn
    except ImportError:
        raise ConfigError("graph encoders use PyTorch Geometric: pip install 'selfsup[graph]'") from None
    return gnn


def pool(nodes: NodeOutputs, how: str) -> torch.Tensor:
    """[B, d]: each sample's nodes summed or averaged (`how`), or its first node's output ("root"; zeros for a sample
    with no node)."""
    if how == "root":
        counts = torch.bincount(nodes.owner, minlength=nodes.count)
        first = (torch.cumsum(counts, 0) - counts).clamp(max=max(nodes.features.shape[0] - 1, 0))
        return nodes.features[first] * (counts > 0)[:, None].to(nodes.features.dtype)
    out = nodes.features.new_zeros(nodes.count, nodes.features.shape[1])
    out = out.index_add(0, nodes.owner, nodes.features)
    if how == "mean":
        counts = torch.bincount(nodes.owner, minlength=nodes.count).clamp(min=1)
        out = out / counts[:, None].to(out.dtype)
    return out


def return_probabilities(p: Padded, steps: int) -> torch.Tensor:
    """[B, max_nodes, steps] float32: for each node of padded batch `p`, the probability that a random walk from it
    (a uniformly drawn edge at every move) is back at it after 1..steps moves; zeros at padding and isolated nodes."""
    b, n = p.nodes.shape[:2]
    edges = p.edges.clamp(min=0, max=max(n - 1, 0))
    weight = p.edge_valid.float()
    adjacency = p.nodes.new_zeros(b, n * n, dtype=torch.float32)
    adjacency.scatter_add_(1, edges[..., 0] * n + edges[..., 1], weight)
    if not p.layout.directed:
        adjacency.scatter_add_(1, edges[..., 1] * n + edges[..., 0], weight * (edges[..., 0] != edges[..., 1]))
    adjacency = adjacency.view(b, n, n)
    move = adjacency / adjacency.sum(-1, keepdim=True).clamp(min=1)
    walk, out = move, []
    for step in range(steps):  # in the step's precision (bf16 products under autocast: ~0.4% of a probability)
        out.append(walk.diagonal(dim1=1, dim2=2))
        if step + 1 < steps:
            walk = walk @ move
    return torch.stack(out, -1)


class MessagePassingEncoder(GraphEncoder):
    """Layers of message passing over flattened packed graphs; subclasses build `layers` and say how they combine."""

    def __init__(self, spec: dict[str, Any], readout: str | None, walk_steps: int | None = None) -> None:
        super().__init__()
        walk_steps = int(spec.get("walk_steps", 0)) if walk_steps is None else walk_steps
        readout = readout or spec.get("readout", "sum")
        if readout not in READOUTS:
            raise ConfigError(f"encoder option readout={readout!r}: one of {', '.join(READOUTS)}")
        if walk_steps < 0:
            raise ConfigError(f"encoder option walk_steps={walk_steps}: 0 (none) or more")
        self.readout_kind = readout
        self.walk_steps = walk_steps
        self.input_width = int(spec["node_width"]) + walk_steps

    def propagate(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def node_inputs(self, x: torch.Tensor) -> torch.Tensor:
        p = padded(x)
        if not self.walk_steps:
            return p.nodes[p.node_valid]
        return torch.cat([p.nodes, return_probabilities(p, self.walk_steps).to(p.nodes.dtype)], -1)[p.node_valid]

    def node_count(self, x: torch.Tensor) -> int:
        return int(padded(x).nodes_count.sum())

    def node_outputs(self, x: torch.Tensor, hide: torch.Tensor | None = None,
                     mask_token: torch.Tensor | None = None, shuffle: torch.Tensor | None = None) -> NodeOutputs:
        flat = flatten(x)
        inputs = self.node_inputs(x) if self.walk_steps else flat.x
        if shuffle is not None:
            inputs = inputs[shuffle]
        h = inputs
        if hide is not None:
            token = mask_token.to(inputs.dtype) if mask_token is not None else inputs.new_zeros(())
            h = torch.where(hide[:, None], token, inputs)
        out = self.propagate(h, flat.edge_index)
        return NodeOutputs(out, flat.owner, flat.count, flat.edge_index, inputs, flat.first if flat.rooted else None)

    def readout(self, nodes: NodeOutputs) -> torch.Tensor:
        return pool(nodes, self.readout_kind)


class GIN(MessagePassingEncoder):
    """Xu et al. 2019 as InfoGraph and GraphCL use it: each layer GINConv(Linear-ReLU-Linear), ReLU, BatchNorm; the
    node output is the concatenation of every layer's output (jumping knowledge), pooled by sum.

    norm="none" leaves the BatchNorm out. BatchNorm standardises every channel over the data's nodes, and the sum
    pooled graph vector of standardised channels weighs every channel alike: an untrained GIN (whose BatchNorm, at its
    initial statistics, passes its inputs through) keeps the channels' own scales, which an RBF kernel on the graph
    vectors can use (motifs: an untrained GIN whose BatchNorm statistics are estimated from the data loses 3.6 points
    of SVM accuracy)."""

    def __init__(self, spec: dict[str, Any], hidden: int = 32, layers: int = 3, readout: str | None = None,
                 walk_steps: int | None = None, norm: str = "batch") -> None:
        super().__init__(spec, readout, walk_steps)
        if hidden < 1 or layers < 1:
            raise ConfigError(f"gin: hidden and layers must be at least 1 (got {hidden}, {layers})")
        if norm not in GIN_NORMS:
            raise ConfigError(f"gin: encoder option norm={norm!r}: one of {', '.join(GIN_NORMS)}")
        gnn = pyg()
        width = self.input_width
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        for _ in range(layers):
            mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
            self.convs.append(gnn.GINConv(mlp))
            self.norms.append(nn.BatchNorm1d(hidden) if norm == "batch" else nn.Identity())
            width = hidden
        self.node_dim = self.out_dim = hidden * layers

    def propagate(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        outs = []
        for conv, norm in zip(self.convs, self.norms):
            x = norm(torch.relu(conv(x, edge_index)))
            outs.append(x)
        return torch.cat(outs, dim=1)


class GCN(MessagePassingEncoder):
    """Kipf & Welling 2017: GCNConv layers (symmetric normalisation with self-loops), PReLU after each (DGI's
    encoder is one such layer of 512; GRACE's two); the node output is the last layer's."""

    def __init__(self, spec: dict[str, Any], hidden: int = 256, layers: int = 2, readout: str | None = None,
                 walk_steps: int | None = None) -> None:
        super().__init__(spec, readout or spec.get("readout", "mean"), walk_steps)
        if hidden < 1 or layers < 1:
            raise ConfigError(f"gcn: hidden and layers must be at least 1 (got {hidden}, {layers})")
        gnn = pyg()
        widths = [self.input_width] + [hidden] * layers
        self.convs = nn.ModuleList(gnn.GCNConv(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.acts = nn.ModuleList(nn.PReLU(hidden) for _ in range(layers))
        self.node_dim = self.out_dim = hidden

    def propagate(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x, edge_index))
        return x


class GAT(MessagePassingEncoder):
    """Velickovic et al. 2018: GATConv layers of `heads` attention heads (concatenated), ELU after each; dropout 0.1
    on the attention coefficients (the paper's 0.6 is for 140 labelled Cora nodes, not for pre-training)."""

    def __init__(self, spec: dict[str, Any], hidden: int = 64, heads: int = 4, layers: int = 2, dropout: float = 0.1,
                 readout: str | None = None, walk_steps: int | None = None) -> None:
        super().__init__(spec, readout or spec.get("readout", "mean"), walk_steps)
        if hidden < 1 or layers < 1 or heads < 1:
            raise ConfigError(f"gat: hidden, heads and layers must be at least 1 (got {hidden}, {heads}, {layers})")
        gnn = pyg()
        widths = [self.input_width] + [hidden * heads] * layers
        self.convs = nn.ModuleList(gnn.GATConv(a, hidden, heads=heads, dropout=dropout)
                                   for a in widths[:-1])
        self.node_dim = self.out_dim = hidden * heads

    def propagate(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = nn.functional.elu(conv(x, edge_index))
        return x


@graph_encoders.register("gin", "Graph Isomorphism Network (3 layers of 32, BatchNorm, every layer's output "
                                "concatenated, sum pooling; 16 steps of random-walk return probabilities beside the "
                                "node features of whole graphs): graph-level, InfoGraph's and GraphCL's encoder",
                         "Xu et al. 2019, arXiv:1810.00826", small={"hidden": 16, "layers": 2})
def gin(spec: dict[str, Any], hidden: int = 32, layers: int = 3, readout: str = "",
        walk_steps: int | None = None, norm: str = "batch") -> GIN:
    return GIN(spec, hidden, layers, readout or None, walk_steps, norm)


@graph_encoders.register("gcn", "Graph Convolutional Network (2 layers of 256, PReLU), mean pooling or the root node: "
                                "node-level, DGI's and GRACE's encoder", "Kipf & Welling 2017, arXiv:1609.02907",
                         small={"hidden": 32})
def gcn(spec: dict[str, Any], hidden: int = 256, layers: int = 2, readout: str = "",
        walk_steps: int | None = None) -> GCN:
    return GCN(spec, hidden, layers, readout or None, walk_steps)


@graph_encoders.register("gat", "Graph Attention Network (2 layers, 4 heads of 64, ELU), mean pooling or the root node",
                         "Velickovic et al. 2018, arXiv:1710.10903",
                         small={"hidden": 16, "heads": 2})
def gat(spec: dict[str, Any], hidden: int = 64, heads: int = 4, layers: int = 2, dropout: float = 0.1,
        readout: str = "", walk_steps: int | None = None) -> GAT:
    return GAT(spec, hidden, heads, layers, dropout, readout or None, walk_steps)
