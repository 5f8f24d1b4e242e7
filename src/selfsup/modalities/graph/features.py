"""Node features learned on the training graphs: the categories of each label column (one-hot, an unseen value all
zeros) and the mean and standard deviation of each attribute column (standardised, a missing value 0), kept in the
run's input spec; graphs with no node columns get the constant 1 (what GraphCL's and InfoGraph's code give
unlabelled graphs). The spec asks the encoders for WALK_STEPS steps of random-walk return probabilities
(encoders.return_probabilities) beside the node features: without them a message-passing encoder sees no more of a
graph than the 1-WL test, which counts no cycles. Graphs without node columns always get them (on the constant input
alone a GIN tells graphs apart by their neighbourhood trees only). Whole graphs with node columns get them too while
their largest graph has at most WALK_MAX_NODES nodes: on MUTAG (node labels) the graph benchmark's inner
cross-validation chose them over the node labels alone in 37 to 42 of 50 folds for five methods and in 26 for GraphCL
(benchmarks/results/graphs.json, `mutag_walk_steps`). Rooted neighbourhoods of one large graph (node-level data) with
node columns get none: their encoders (DGI's and GRACE's GCN) read the node features, and the node-level benchmark
measured them without. A spec without the key (an older run's) asks for none."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from ...errors import DataError
from .codec import Layout, Padded, assemble, padded

#: the return-probability steps a spec of whole graphs asks for (the random-walk encodings of Dwivedi et al. 2022
#: take 16 steps on ZINC, whose atoms are labelled; GraphGPS 20)
WALK_STEPS = 16
#: the largest graph (nodes) of a set with node columns whose spec still asks for them: the walk matrix of a batch is
#: [B, n, n] with n the set's largest graph (MUTAG 28, NCI1 111, ENZYMES 126; PROTEINS' 620 would cost seconds a
#: forward pass, DD's 5,748 gigabytes)
WALK_MAX_NODES = 128


def fit_features(x: torch.Tensor) -> dict[str, Any]:
    """The node-feature part of the input spec, from packed training storage."""
    p = padded(x)
    lay = p.layout
    nodes = p.nodes[p.node_valid].double()
    categories = [sorted(set(torch.unique(nodes[:, j]).long().tolist())) for j in range(lay.node_categorical)]
    numeric = nodes[:, lay.node_categorical:]
    finite = torch.isfinite(numeric)
    count = finite.sum(0).clamp(min=1)
    mean = torch.where(finite, numeric, 0).sum(0) / count
    var = (torch.where(finite, numeric - mean, 0) ** 2).sum(0) / count
    std = var.sqrt()
    width = sum(len(c) for c in categories) + lay.node_numeric
    return {"node_categories": categories, "node_mean": mean.tolist(),
            "node_std": [float(s) if s > 1e-12 else 1.0 for s in std.tolist()], "node_width": max(width, 1),
            "walk_steps": 0 if width and (lay.rooted or p.nodes.shape[1] > WALK_MAX_NODES) else WALK_STEPS,
            "node_categorical": lay.node_categorical, "node_numeric": lay.node_numeric,
            "edge_categorical": lay.edge_categorical, "edge_numeric": lay.edge_numeric}


def check_widths(x: torch.Tensor, spec: dict[str, Any], where: str) -> None:
    """One-line DataError when storage `x` has other node or edge columns than the run was trained on."""
    lay = Layout.of(x)
    for key, got in (("node_categorical", lay.node_categorical), ("node_numeric", lay.node_numeric),
                     ("edge_categorical", lay.edge_categorical), ("edge_numeric", lay.edge_numeric)):
        if got != spec[key]:
            words = key.replace("_", " ").replace("categorical", "label").replace("numeric", "attribute")
            raise DataError(f"{where}: {got} {words} columns, the run was trained on {spec[key]} "
                            "(features of the wrong width)")


def featurise(x: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
    """Packed storage -> the prepared packed tensor: node_width numeric columns a node, no edge columns."""
    p = padded(x)
    lay = p.layout
    cat, num = p.nodes[..., :lay.node_categorical], p.nodes[..., lay.node_categorical:]
    parts = []
    for j, values in enumerate(spec["node_categories"]):
        table = torch.tensor(values, dtype=torch.float32, device=x.device)
        parts.append((cat[..., j:j + 1] == table).float())
    if lay.node_numeric:
        mean = torch.tensor(spec["node_mean"], dtype=torch.float32, device=x.device)
        std = torch.tensor(spec["node_std"], dtype=torch.float32, device=x.device)
        parts.append(torch.nan_to_num((num.float() - mean) / std, nan=0.0, posinf=0.0, neginf=0.0))
    if not parts:
        parts.append(torch.ones(*p.nodes.shape[:2], 1, device=x.device))
    nodes = torch.cat(parts, dim=-1)
    if nodes.shape[-1] != spec["node_width"]:
        raise DataError(f"node features of width {nodes.shape[-1]}, the run's are {spec['node_width']}")
    out = replace(lay, node_categorical=0, node_numeric=nodes.shape[-1], edge_categorical=0, edge_numeric=0)
    return assemble(Padded(out, p.nodes_count, p.edges_count, nodes, p.edges,
                           p.edge_columns.new_zeros(len(x), lay.max_edges, 0)))
