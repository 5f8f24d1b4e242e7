"""`GraphEncoder`: an Encoder over batches of graphs that also gives one vector per node,
``node_outputs(x, hide=None, mask_token=None, shuffle=None) -> NodeOutputs`` (every node of the batch, graph after
graph, with the sample each belongs to, the message-passing edges between them and their input features), and
``readout(nodes) -> [B, out_dim]``, the sample's vector (pooled over its nodes, or its root node's for rooted
neighbourhoods); `forward(x)` is ``readout(node_outputs(x))``. `hide` [M] bool replaces those nodes' input features by
`mask_token` [input_width] (the caller's learned token; zeros without one) before the first layer (masked feature
modelling: GraphMAE). `shuffle` [M] int64, a permutation of the batch's node rows, gives node m the input features of
node shuffle[m], structure kept (DGI's corruption). Both act on the inputs the encoder's first layer sees, those it
computes from the structure (random-walk encodings) included, so graphs without node features can be corrupted too.
Node-level losses (GRACE, DGI, InfoGraph) read these without knowing how graphs are stored.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Encoder


@dataclass(frozen=True)
class NodeOutputs:
    """Per-node outputs of a batch of B graphs: M nodes in all, in the order of their graphs."""

    features: torch.Tensor  # [M, node_dim]
    owner: torch.Tensor  # int64 [M]: the sample (0..B-1) each node belongs to, non-decreasing
    count: int  # B, the samples of the batch (a graph may have no node left after an augmentation)
    edges: torch.Tensor  # int64 [2, E]: directed message-passing edges (source row, target row) between the M nodes
    inputs: torch.Tensor  # [M, input_width]: each node's input features (a reconstruction target)
    # int64 [B]: the row of each sample's own node when a sample is a node's neighbourhood in a larger graph (its
    # other rows are copies of nodes that are samples too); None when every row is a distinct node (graph samples)
    anchors: torch.Tensor | None = None


class GraphEncoder(Encoder):
    """An Encoder over batches of graphs with per-node outputs (see the module docstring)."""

    node_dim: int  # width of NodeOutputs.features

    def forward(self, x: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        return self.readout(self.node_outputs(x))

    def node_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """[M, input_width]: the input features of every node of batch `x`, in NodeOutputs order (a method that hides
        nodes draws its mask over these rows)."""
        raise NotImplementedError

    def node_count(self, x: torch.Tensor) -> int:
        """How many rows `node_inputs(x)` has, without computing the inputs (a method that hides nodes draws its
        mask over that many)."""
        raise NotImplementedError

    def node_outputs(self, x: torch.Tensor, hide: torch.Tensor | None = None,
                     mask_token: torch.Tensor | None = None, shuffle: torch.Tensor | None = None) -> NodeOutputs:
        raise NotImplementedError

    def readout(self, nodes: NodeOutputs) -> torch.Tensor:
        raise NotImplementedError
