"""Graph views, made on a whole batch at once from prepared packed graphs (codec.py): every operation works on the
padded [B, max_nodes, ...] layout with per-graph counts, so no Python loop runs over the graphs.

Augmentations (You et al. 2020, GraphCL, section 3.1; Zhu et al. 2020, GRACE):

- node dropping: round-down `ratio` x n of each graph's nodes removed with their edges, the rest renumbered in
  order;
- subgraph: grown from a random node by adding, one at a time, a random neighbour of the nodes taken so far, until
  (1 - ratio) x n nodes are in (GraphCL's code grows it this way; its paper calls it a random walk); the induced
  subgraph is kept;
- edge perturbation: round-down `ratio` x e of each graph's edges removed (GraphCL's unsupervised code removes and
  adds none, see GitHub issue #7 of its repository; an undirected edge counts once);
- attribute masking: round-down `ratio` x n nodes' features replaced by N(0.5, 0.5) noise (GraphCL's code);
- edge dropping (GRACE): each edge removed with probability p_e;
- feature masking (GRACE): each feature column zeroed with probability p_f, the same columns for all nodes of a graph.

Recipes: ``instance`` (each view: one of the four GraphCL augmentations drawn per graph, ratio 0.2),
``instance_light`` (ratio 0.1), ``asymmetric`` (view 0 node dropping or subgraph, view 1 edge perturbation or
attribute masking), ``unchanged``, ``node_aligned`` (edge dropping + feature masking: GRACE's Cora rates, view 0
p_e 0.2, p_f 0.3, view 1 0.4 and 0.4). A method tunes them through `ViewRequest.options`:
``ratio``; ``node_dropping``, ``subgraph``, ``edge_perturbation``, ``attribute_masking`` (the weights of the draw
among the four); ``first_unchanged`` 1 (view 0 is the graph itself: GraphCL's unsupervised code augments one view
only); ``edge_drop_0``/``edge_drop_1``/``feature_mask_0``/``feature_mask_1`` (node_aligned). `--aug-strength` scales
every ratio and probability. Multi-crop: local views are subgraphs grown to `local_size` of each graph's nodes.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import torch

from ...errors import ConfigError
from ...views import ViewRequest, Views
from .codec import Padded, assemble, padded

GRAPHCL = ("node_dropping", "subgraph", "edge_perturbation", "attribute_masking")
GRACE_RATES = {"edge_drop_0": 0.2, "feature_mask_0": 0.3, "edge_drop_1": 0.4, "feature_mask_1": 0.4}
KNOWN_OPTIONS = {"ratio", "first_unchanged", *GRAPHCL, *GRACE_RATES}


def uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """U[0, 1) drawn from `generator` (on its own device) and moved to `device`."""
    dev = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=dev).to(device)


def ranks(keys: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Each valid entry's rank 0.. within its row by `keys` (random keys: a uniform random order); invalid last."""
    return torch.where(valid, keys, 2.0).argsort(dim=1).argsort(dim=1)


def compact(mask: torch.Tensor, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Entries where `mask` [B, K] is True moved to the front of each row, in order; their new positions [B, K]
    (-1 where dropped) first, then each of `values` [B, K, ...] reordered."""
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices
    position = torch.where(mask, mask.long().cumsum(1) - 1, -1)
    moved = [v.gather(1, order.view(*order.shape, *[1] * (v.dim() - 2)).expand_as(v)) for v in values]
    return (position, *moved)


def induced(p: Padded, kept: torch.Tensor) -> Padded:
    """The subgraphs induced by the nodes `kept` [B, max_nodes] (renumbered in order; edges between kept nodes)."""
    kept = kept & p.node_valid
    position, nodes = compact(kept, p.nodes)
    ends = position.gather(1, p.edges.reshape(len(kept), -1)).view_as(p.edges)
    edge_kept = p.edge_valid & (ends >= 0).all(dim=-1)
    _, edges, edge_columns = compact(edge_kept, ends.clamp(min=0), p.edge_columns)
    return replace(p, nodes_count=kept.sum(1), edges_count=edge_kept.sum(1), nodes=nodes, edges=edges,
                   edge_columns=edge_columns)


def keep_edges(p: Padded, kept: torch.Tensor) -> Padded:
    """The graphs with only the edges `kept` [B, max_edges]."""
    kept = kept & p.edge_valid
    _, edges, edge_columns = compact(kept, p.edges, p.edge_columns)
    return replace(p, edges_count=kept.sum(1), edges=edges, edge_columns=edge_columns)


def drop_nodes(p: Padded, ratio: float, generator: torch.Generator | None) -> Padded:
    valid = p.node_valid
    dropped = (p.nodes_count.double() * ratio).floor().long()
    rank = ranks(uniform(tuple(valid.shape), generator, valid.device), valid)
    return induced(p, valid & (rank >= dropped[:, None]))


def grow_subgraph(p: Padded, ratio: float, generator: torch.Generator | None) -> Padded:
    """Induced subgraph of (1 - ratio) x n nodes grown from a random node through random neighbours."""
    b, device = len(p.nodes_count), p.nodes.device
    target = (p.nodes_count.double() * (1.0 - ratio)).ceil().long().clamp(min=1)
    start = (uniform((b,), generator, device) * p.nodes_count).long().clamp(max=p.layout.max_nodes - 1)
    visited = torch.zeros(b, p.layout.max_nodes, dtype=torch.bool, device=device)
    visited[torch.arange(b, device=device), start] = True
    ends = torch.cat([p.edges, p.edges.flip(-1)], dim=1)  # both directions: [B, 2E, 2]
    edge_valid = torch.cat([p.edge_valid, p.edge_valid], dim=1)
    source, target_node = ends[..., 0], ends[..., 1]
    steps = int(target.max()) - 1
    for _ in range(steps):
        frontier = edge_valid & visited.gather(1, source) & ~visited.gather(1, target_node)
        keys = torch.where(frontier, uniform(tuple(frontier.shape), generator, device), -1.0)
        pick = keys.argmax(dim=1)
        grow = frontier.any(dim=1) & (visited.sum(1) < target)
        chosen = target_node.gather(1, pick[:, None])[:, 0]
        visited[torch.arange(b, device=device), chosen] |= grow
    return induced(p, visited)


def perturb_edges(p: Padded, ratio: float, generator: torch.Generator | None) -> Padded:
    valid = p.edge_valid
    dropped = (p.edges_count.double() * ratio).floor().long()
    rank = ranks(uniform(tuple(valid.shape), generator, valid.device), valid)
    return keep_edges(p, rank >= dropped[:, None])


def mask_attributes(p: Padded, ratio: float, generator: torch.Generator | None) -> Padded:
    valid = p.node_valid
    masked_count = (p.nodes_count.double() * ratio).floor().long()
    rank = ranks(uniform(tuple(valid.shape), generator, valid.device), valid)
    masked = valid & (rank < masked_count[:, None])
    noise = 0.5 + 0.5 * torch.randn(p.nodes.shape, generator=generator,
                                    device=generator.device if generator is not None else p.nodes.device)
    return replace(p, nodes=torch.where(masked[..., None], noise.to(p.nodes.device), p.nodes))


def drop_edges(p: Padded, probability: float, generator: torch.Generator | None) -> Padded:
    return keep_edges(p, uniform(tuple(p.edge_valid.shape), generator, p.nodes.device) >= probability)


def mask_feature_columns(p: Padded, probability: float, generator: torch.Generator | None) -> Padded:
    b, _, width = p.nodes.shape
    keep = uniform((b, 1, width), generator, p.nodes.device) >= probability
    return replace(p, nodes=p.nodes * keep)


AUGMENTATIONS: dict[str, Callable[[Padded, float, torch.Generator | None], Padded]] = {
    "node_dropping": drop_nodes, "subgraph": grow_subgraph, "edge_perturbation": perturb_edges,
    "attribute_masking": mask_attributes}


def one_of(x: torch.Tensor, weights: dict[str, float], ratio: float, generator: torch.Generator | None
           ) -> torch.Tensor:
    """Each graph of prepared batch `x` augmented by one augmentation drawn by `weights` (every candidate is applied to
    the whole batch and each row takes its draw's result: all share the batch's layout)."""
    names = [n for n in GRAPHCL if weights.get(n, 0.0) > 0]
    if not names:
        return x
    p = padded(x)
    results = [assemble(AUGMENTATIONS[n](p, ratio, generator)) for n in names]
    if len(results) == 1:
        return results[0]
    w = torch.tensor([weights[n] for n in names], dtype=torch.float64)
    cumulative = (w.cumsum(0) / w.sum()).to(x.device)
    choice = torch.searchsorted(cumulative, uniform((len(x),), generator, x.device).double(), right=True)
    choice = choice.clamp(max=len(names) - 1)
    out = results[0]
    for k in range(1, len(results)):
        out = torch.where((choice == k)[:, None], results[k], out)
    return out


ViewOf = Callable[[torch.Tensor, int, dict[str, Any], dict[str, float], "torch.Generator | None"], torch.Tensor]


@dataclass(frozen=True)
class RecipeMaker:
    """How a recipe makes global view number `view` of a prepared batch (`view`), and its default `ratio`."""

    view: ViewOf
    ratio: float = 0.2


def graphcl_view(x: torch.Tensor, view: int, settings: dict[str, Any], weights: dict[str, float],
                 generator: torch.Generator | None) -> torch.Tensor:
    """instance / instance_light: one of the four GraphCL augmentations, drawn per graph by `weights`."""
    return one_of(x, weights, settings["ratio"], generator)


def asymmetric_view(x: torch.Tensor, view: int, settings: dict[str, Any], weights: dict[str, float],
                    generator: torch.Generator | None) -> torch.Tensor:
    """asymmetric: view 0 node dropping or subgraph, the others edge perturbation or attribute masking."""
    pick = ("node_dropping", "subgraph") if view == 0 else ("edge_perturbation", "attribute_masking")
    return one_of(x, {n: weights[n] for n in pick}, settings["ratio"], generator)


def unchanged_view(x: torch.Tensor, view: int, settings: dict[str, Any], weights: dict[str, float],
                   generator: torch.Generator | None) -> torch.Tensor:
    """unchanged: the graphs themselves."""
    return x


def node_aligned_view(x: torch.Tensor, view: int, settings: dict[str, Any], weights: dict[str, float],
                      generator: torch.Generator | None) -> torch.Tensor:
    """node_aligned: GRACE's edge dropping + feature masking, view 0 at its own rates, the others at view 1's."""
    k = min(view, 1)
    p = drop_edges(padded(x), settings[f"edge_drop_{k}"], generator)
    return assemble(mask_feature_columns(p, settings[f"feature_mask_{k}"], generator))


#: The recipes the graph modality makes, each with its maker (RECIPES lists their names).
VIEW_MAKERS: dict[str, RecipeMaker] = {
    "instance": RecipeMaker(graphcl_view), "instance_light": RecipeMaker(graphcl_view, ratio=0.1),
    "asymmetric": RecipeMaker(asymmetric_view), "unchanged": RecipeMaker(unchanged_view),
    "node_aligned": RecipeMaker(node_aligned_view)}
RECIPES = tuple(VIEW_MAKERS)


def recipe_options(request: ViewRequest, strength: float) -> dict[str, Any]:
    """The recipe's settings with the method's options and `strength` applied."""
    unknown = sorted(set(request.options) - KNOWN_OPTIONS)
    if unknown:
        raise ConfigError(f"unknown graph view option(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_OPTIONS))}")
    base: dict[str, Any] = {"ratio": VIEW_MAKERS[request.recipe].ratio, "first_unchanged": 0.0,
                            **{n: 1.0 for n in GRAPHCL}, **GRACE_RATES}
    base.update(request.options)
    scale = max(0.0, strength)
    for key in ("ratio", *GRACE_RATES):
        base[key] = min(0.95, float(base[key]) * scale)
        if not 0.0 <= base[key] < 1.0:
            raise ConfigError(f"graph view option {key}={base[key]} must be in [0, 1)")
    return base


def graph_view_maker(request: ViewRequest, prepare: Callable[[torch.Tensor], torch.Tensor], strength: float = 1.0,
                     options: dict[str, Any] | None = None) -> Callable[..., Views]:
    """A view maker for `request` over storage batches (`prepare` featurises them)."""
    if request.recipe not in RECIPES:
        raise ConfigError(f"the graph modality makes no {request.recipe!r} views; it makes: {', '.join(RECIPES)}")
    if request.keep or request.corruption_mask:
        raise ConfigError(f"the graph modality makes no keep masks or corruption masks (requested by "
                          f"{request.recipe!r})")
    if options:
        raise ConfigError(f"graph views take no --augmentation options ({', '.join(sorted(options))}); methods set "
                          "them through their view request")
    settings = recipe_options(request, strength)
    weights = {n: float(settings[n]) for n in GRAPHCL}

    view_of = VIEW_MAKERS[request.recipe].view

    def make(batch: torch.Tensor, generator: torch.Generator | None = None) -> Views:
        x = prepare(batch)
        out = [x if view == 0 and settings["first_unchanged"] else view_of(x, view, settings, weights, generator)
               for view in range(request.global_views)]
        local = [assemble(grow_subgraph(padded(x), 1.0 - request.local_size, generator))
                 for _ in range(request.local_views)]
        return Views(out, local, clean=x if request.clean else None)

    return make
