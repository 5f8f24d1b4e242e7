"""The graph modality: the packed-graph codec, the batched augmentations against direct computations on known graphs,
the graph methods' losses by hand, invariance of the encoders to node order, TU / networkx / PyG sources with their
one-line errors, and training end to end (API and CLI)."""
import importlib.util
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

import selfsup
from selfsup.errors import ConfigError, DataError
from selfsup.loading import load_dataset
from selfsup.methods.bgrl import bgrl_loss
from selfsup.methods.dgi import BilinearScore, dgi_loss, mean_by_owner
from selfsup.methods.grace import grace_loss
from selfsup.methods.graphcl import graphcl_loss
from selfsup.methods.graphmae import TARGETS, hidden_nodes, scaled_cosine_error, standardised
from selfsup.methods.infograph import jsd_local_global_loss
from selfsup.modalities import get_modality, new_encoder
from selfsup.modalities.graph.codec import Graph, Layout, assemble, flatten, pack, padded, unpack
from selfsup.modalities.graph.encoders import return_probabilities
from selfsup.methods import methods
from selfsup.methods.base import StepInfo
from selfsup.modalities.graph.features import WALK_MAX_NODES, featurise, fit_features
from selfsup.modalities.graph.views import (drop_edges, drop_nodes, grow_subgraph, mask_attributes,
                                            mask_feature_columns, perturb_edges)
from selfsup.views import ViewRequest, Views

from conftest import run_cli
from test_cli import assert_one_line_error

if importlib.util.find_spec("torch_geometric") is None:  # found, not imported: collection on every worker stays light
    pytest.skip("torch_geometric is not installed", allow_module_level=True)
nx = pytest.importorskip("networkx")

GRAPH_METHODS = ("graphcl", "infograph", "grace", "dgi", "bgrl", "graphmae")


def graph(n, edges, node_cat=None, node_num=None, edge_cat=None, edge_num=None):
    """A codec Graph from Python lists (absent columns: width 0)."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    e = len(edges)

    def cols(values, rows):
        return np.zeros((rows, 0)) if values is None else np.asarray(values, dtype=np.float64).reshape(rows, -1)
    return Graph(n, edges, cols(node_cat, n).astype(np.int64), cols(node_num, n), cols(edge_cat, e).astype(np.int64),
                 cols(edge_num, e))


def assert_same_graph(a, b):
    assert a.num_nodes == b.num_nodes
    np.testing.assert_array_equal(a.edges, b.edges)
    for name in ("node_categorical", "node_numeric", "edge_categorical", "edge_numeric"):
        got, want = getattr(a, name), getattr(b, name)
        assert got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def edge_set(edges):
    return {tuple(sorted((int(u), int(v)))) for u, v in edges}


# ---- codec ----

def test_pack_unpack_round_trip_of_directed_graphs_with_every_kind_of_column():
    a = graph(3, [[0, 1], [1, 2], [2, 0]], node_cat=[[2], [0], [7]], node_num=[[0.5, -1], [3, 0.25], [0, 8]],
              edge_cat=[[1], [2], [3]], edge_num=[[0.5], [1.5], [-2.5]])
    b = graph(4, [[0, 1], [0, 3]], node_cat=[[1], [1], [4], [5]], node_num=[[1, 1], [2, 2], [3, 3], [4, 4]],
              edge_cat=[[9], [8]], edge_num=[[0.0], [4.0]])
    t = pack([a, b], "t")
    assert t.dtype == torch.float32 and t.shape[0] == 2
    lay = Layout.of(t)
    assert lay == Layout(max_nodes=4, max_edges=3, node_categorical=1, node_numeric=2, edge_categorical=1,
                         edge_numeric=1, directed=True, rooted=False)
    assert t.shape[1] == lay.width == 10 + 4 * 3 + 3 * (2 + 2)
    assert t[:, :2].tolist() == [[3, 3], [4, 2]]  # each row's node and edge counts
    for got, want in zip(unpack(t), [a, b]):
        assert_same_graph(got, want)
    # the padding of the smaller graph is zero: the row of b holds only b's values
    p = padded(t)
    assert (p.nodes[1, 4:] == 0).all() and (p.edges[1, 2:] == 0).all() and (p.edge_columns[1, 2:] == 0).all()


def test_undirected_graphs_are_stored_once_and_flatten_gives_both_directions():
    # both directions listed; the reverse copies carry other labels, the first occurrence's are kept
    u = graph(4, [[0, 1], [1, 0], [2, 1], [1, 2], [3, 3]], node_num=[[1], [2], [3], [4]],
              edge_cat=[[10], [11], [20], [21], [30]])
    single = graph(2, [[0, 1], [1, 0]], node_num=[[5], [6]], edge_cat=[[40], [41]])
    t = pack([u, single], "t")
    assert not Layout.of(t).directed
    stored = unpack(t)
    assert stored[0].edges.tolist() == [[0, 1], [1, 2], [3, 3]]  # (min, max), once each; the self-loop once
    assert stored[0].edge_categorical[:, 0].tolist() == [10, 20, 30]
    assert stored[1].edges.tolist() == [[0, 1]] and stored[1].edge_categorical[:, 0].tolist() == [40]
    flat = flatten(t)
    assert flat.x[:, 0].tolist() == [1, 2, 3, 4, 5, 6]  # node rows graph after graph
    assert flat.owner.tolist() == [0, 0, 0, 0, 1, 1] and flat.first.tolist() == [0, 4] and flat.count == 2
    pairs = sorted(map(tuple, flat.edge_index.T.tolist()))
    # graph 0: 0-1 and 1-2 both ways, 3-3 once; graph 1 (rows 4, 5): 4-5 both ways
    assert pairs == [(0, 1), (1, 0), (1, 2), (2, 1), (3, 3), (4, 5), (5, 4)]
    # one graph that is not symmetric makes the tensor directed: the symmetric one keeps both directions
    d = pack([u, graph(2, [[0, 1]], node_num=[[1], [1]], edge_cat=[[0]])], "t")
    assert Layout.of(d).directed and unpack(d)[0].edges.tolist() == u.edges.tolist()
    assert flatten(d).edge_index.shape[1] == 5 + 1


def connected_graphs(sizes, seed=0):
    """Connected networkx graphs (a ring with random chords) of the given sizes."""
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        g = nx.cycle_graph(n)
        for _ in range(n // 2):
            u, v = rng.integers(0, n, size=2)
            if u != v:
                g.add_edge(int(u), int(v))
        out.append(g)
    return out


def one_hot_batch(nx_graphs, width=None):
    """Undirected graphs packed as prepared tensors whose node features are one-hot node ids (width: the largest)."""
    width = width or max(g.number_of_nodes() for g in nx_graphs)
    eye = np.eye(width)
    graphs = [graph(g.number_of_nodes(), list(g.edges), node_num=eye[:g.number_of_nodes()]) for g in nx_graphs]
    return pack(graphs, "t", directed=False)


def node_ids(g, width):
    """The original ids of a view's nodes, read from their one-hot features (each row must still be one-hot)."""
    ids = g.node_numeric.argmax(axis=1)
    np.testing.assert_array_equal(g.node_numeric, np.eye(width)[ids])
    return ids


def assert_padding_zero(t):
    p = padded(t)
    assert (p.nodes[~p.node_valid] == 0).all() and (p.edges[~p.edge_valid] == 0).all()


SIZES = (5, 7, 10, 12, 13, 16)


def test_node_dropping_removes_floor_fifth_of_the_nodes_and_gives_the_induced_subgraph():
    nxg = connected_graphs(SIZES)
    x = one_hot_batch(nxg)
    width = max(SIZES)
    kept_sets = set()
    for seed in range(5):
        out = assemble(drop_nodes(padded(x), 0.2, torch.Generator().manual_seed(seed)))
        assert_padding_zero(out)
        for g, view in zip(nxg, unpack(out)):
            n = g.number_of_nodes()
            assert view.num_nodes == n - n // 5
            ids = node_ids(view, width)
            assert list(ids) == sorted(set(ids.tolist())) and ids.max() < n  # survivors renumbered in order
            kept = set(ids.tolist())
            kept_sets.add((n, frozenset(kept)))
            expected = edge_set(e for e in g.edges if e[0] in kept and e[1] in kept)
            assert len(view.edges) == len(expected)  # every edge between survivors, no edge touching a dropped node
            assert edge_set(ids[view.edges]) == expected  # renumbered consistently with the node rows
    assert len(kept_sets) > len(SIZES)  # the dropped nodes change from seed to seed


def test_subgraph_is_connected_with_ceil_four_fifths_of_the_nodes():
    nxg = connected_graphs(SIZES, seed=1)
    x = one_hot_batch(nxg)
    width = max(SIZES)
    starts = set()
    for seed in range(5):
        out = assemble(grow_subgraph(padded(x), 0.2, torch.Generator().manual_seed(seed)))
        for g, view in zip(nxg, unpack(out)):
            n = g.number_of_nodes()
            assert view.num_nodes == math.ceil(4 * n / 5) == (4 * n + 4) // 5
            ids = node_ids(view, width)
            kept = set(ids.tolist())
            starts.add(frozenset(kept))
            assert nx.is_connected(g.subgraph(kept))
            assert edge_set(ids[view.edges]) == edge_set(g.subgraph(kept).edges)  # the induced subgraph
            assert len(view.edges) == g.subgraph(kept).number_of_edges()
            assert nx.is_connected(nx.Graph(list(map(tuple, view.edges.tolist()))))  # the stored view itself
    assert len(starts) > len(SIZES)


def test_edge_perturbation_removes_floor_fifth_of_the_edges_and_adds_none():
    nxg = connected_graphs(SIZES, seed=2)
    x = one_hot_batch(nxg)
    for seed in range(3):
        out = assemble(perturb_edges(padded(x), 0.2, torch.Generator().manual_seed(seed)))
        assert_padding_zero(out)
        for g, before, view in zip(nxg, unpack(x), unpack(out)):
            e = g.number_of_edges()
            assert len(before.edges) == e and len(view.edges) == e - e // 5
            np.testing.assert_array_equal(view.node_numeric, before.node_numeric)  # nodes untouched
            original = [tuple(r) for r in before.edges.tolist()]
            rest = [tuple(r) for r in view.edges.tolist()]
            assert set(rest) <= set(original) and len(set(rest)) == len(rest)
            assert rest == [r for r in original if r in set(rest)]  # kept in their order


def test_attribute_masking_changes_floor_fifth_of_the_node_rows():
    nxg = connected_graphs(SIZES, seed=3)
    x = one_hot_batch(nxg)
    for seed in range(3):
        out = assemble(mask_attributes(padded(x), 0.2, torch.Generator().manual_seed(seed)))
        assert_padding_zero(out)
        for before, view in zip(unpack(x), unpack(out)):
            changed = (view.node_numeric != before.node_numeric).any(axis=1)
            assert changed.sum() == before.num_nodes // 5
            np.testing.assert_array_equal(view.edges, before.edges)
    # the noise is N(0.5, 0.5): over many masked rows its mean and spread
    big = one_hot_batch([nx.cycle_graph(50)] * 40)
    out = padded(assemble(mask_attributes(padded(big), 0.2, torch.Generator().manual_seed(0))))
    rows = out.nodes[(out.nodes != padded(big).nodes).any(-1)]
    assert rows.shape[0] == 40 * 10
    assert rows.mean().item() == pytest.approx(0.5, abs=0.02) and rows.std().item() == pytest.approx(0.5, abs=0.02)


def test_grace_edge_dropping_rate_and_feature_masking_by_whole_columns():
    nxg = [nx.gnm_random_graph(30, 100, seed=i) for i in range(20)]
    x = one_hot_batch(nxg, width=30)
    p_e = 0.3
    out = unpack(assemble(drop_edges(padded(x), p_e, torch.Generator().manual_seed(0))))
    total = sum(g.number_of_edges() for g in nxg)
    removed = sum(len(a.edges) - len(b.edges) for a, b in zip(unpack(x), out))
    assert abs(removed / total - p_e) < 4 * math.sqrt(p_e * (1 - p_e) / total)
    for a, b in zip(unpack(x), out):
        assert set(map(tuple, b.edges.tolist())) <= set(map(tuple, a.edges.tolist()))
        np.testing.assert_array_equal(a.node_numeric, b.node_numeric)
    # feature masking: nonzero features, so a zero means masked
    rng = np.random.default_rng(0)
    graphs = [graph(n, [[0, 1]], node_num=1 + rng.random((n, 20))) for n in rng.integers(2, 9, size=60)]
    feats = pack(graphs, "t", directed=False)
    p_f = 0.4
    masked = unpack(assemble(mask_feature_columns(padded(feats), p_f, torch.Generator().manual_seed(0))))
    patterns = []
    for before, after in zip(graphs, masked):
        zero = after.node_numeric == 0
        column = zero.all(axis=0)
        assert (zero == column[None, :]).all()  # a column is zeroed for every node of the graph or for none
        kept = ~column
        np.testing.assert_allclose(after.node_numeric[:, kept], before.node_numeric[:, kept].astype(np.float32))
        patterns.append(tuple(column))
    rate = np.mean(patterns)
    assert abs(rate - p_f) < 4 * math.sqrt(p_f * (1 - p_f) / (60 * 20))
    assert len(set(patterns)) > 1  # drawn per graph


def test_shuffle_gives_each_node_another_nodes_inputs_walk_encodings_included():
    """DGI's corruption: node m gets node shuffle[m]'s inputs, structure kept. On graphs with node columns it equals
    encoding the graphs with their feature rows permuted; on graphs without any (motifs: the random-walk encodings
    the encoder computes are the only inputs) the corrupted outputs differ from the real ones, where permuting the
    stored (empty) feature rows changes nothing (the negative control)."""
    nxg = connected_graphs(SIZES, seed=4)
    rng = np.random.default_rng(0)
    x = pack([graph(g.number_of_nodes(), list(g.edges), node_num=rng.standard_normal((g.number_of_nodes(), 4)))
              for g in nxg], "t", directed=False)
    p = padded(x)
    perm = torch.randperm(int(p.node_valid.sum()), generator=torch.Generator().manual_seed(0))
    nodes = p.nodes.clone()
    nodes[p.node_valid] = p.nodes[p.node_valid][perm]
    moved = assemble(replace(p, nodes=nodes))
    torch.manual_seed(0)
    encoder = new_encoder(get_modality("graph"), "gin", {"node_width": 4}).eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder.node_outputs(x, shuffle=perm).features, encoder.node_outputs(moved).features)
        assert not torch.equal(encoder.node_outputs(x).features, encoder.node_outputs(moved).features)
    bare = pack([graph(g.number_of_nodes(), list(g.edges)) for g in nxg], "t", directed=False)
    walker = new_encoder(get_modality("graph"), "gin", {"node_width": 0}, walk_steps=6).eval()
    p = padded(bare)
    nodes = p.nodes.clone()
    nodes[p.node_valid] = p.nodes[p.node_valid][perm]  # the stored rows permuted: zero columns, the same graphs
    with torch.no_grad():
        real, corrupted = walker.node_outputs(bare), walker.node_outputs(bare, shuffle=perm)
        torch.testing.assert_close(walker.node_outputs(assemble(replace(p, nodes=nodes))).features, real.features)
    torch.testing.assert_close(corrupted.inputs, real.inputs[perm])
    assert (corrupted.features - real.features).abs().max() > 1e-2


def toy_storage(n=12, seed=0):
    graph_modality = get_modality("graph")
    return graph_modality, graph_modality.from_array(graph_modality.toy_data(n, np.random.default_rng(seed)), "toy")


def test_instance_recipe_with_first_unchanged_gives_the_prepared_graph_as_view_zero():
    graph_modality, storage = toy_storage(16)
    spec = graph_modality.fit_spec(storage)
    prepared = graph_modality.prepare(storage, spec)
    maker = graph_modality.view_maker(ViewRequest("instance", options={"first_unchanged": 1.0}), spec)
    views = maker(storage, torch.Generator().manual_seed(0))
    assert torch.equal(views.global_views[0], prepared)
    assert views.global_views[1].shape[0] == 16 and not torch.equal(views.global_views[1], prepared)
    plain = graph_modality.view_maker(ViewRequest("instance"), spec)(storage, torch.Generator().manual_seed(0))
    assert not torch.equal(plain.global_views[0], prepared)
    # GraphCL asks for exactly this: the graph itself against node dropping or subgraph
    from selfsup.methods.graphcl import GraphCL
    assert GraphCL.requested_views.options["first_unchanged"] == 1.0


# ---- losses by hand ----

def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def softplus(v):
    return math.log1p(math.exp(v))


def test_graphcl_loss_by_hand_leaves_the_positive_out_of_the_denominator():
    z = [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]
    za = [[2.0, 1.0], [-1.0, 1.0], [0.5, 0.0]]
    t = 0.2
    terms = []
    for i in range(3):
        s = [cos(z[i], za[j]) / t for j in range(3)]
        terms.append(-s[i] + math.log(sum(math.exp(s[j]) for j in range(3) if j != i)))
    got = graphcl_loss(torch.tensor(z), torch.tensor(za), t).item()
    assert got == pytest.approx(sum(terms) / 3, abs=1e-5)
    # one direction: swapping the views gives another number
    swapped = graphcl_loss(torch.tensor(za), torch.tensor(z), t).item()
    assert abs(swapped - got) > 1e-2
    # the positive may be negative infinity away from the others: with two rows the loss is s_01 - s_00
    assert graphcl_loss(torch.tensor(z[:2]), torch.tensor(za[:2]), 1.0).item() == pytest.approx(
        0.5 * ((cos(z[0], za[1]) - cos(z[0], za[0])) + (cos(z[1], za[0]) - cos(z[1], za[1]))), abs=1e-6)
    # a process's rows against the global batch: row 1 of z is the positive of row 1 of z_aug
    assert graphcl_loss(torch.tensor(z[1:2]), torch.tensor(za), t, offset=1).item() == pytest.approx(terms[1], abs=1e-5)


def test_infograph_jsd_loss_by_hand_on_three_nodes_of_two_graphs():
    local = [[1.0, 0.0], [0.5, -1.0], [0.0, 2.0]]
    glob = [[1.0, 1.0], [-0.5, 0.5]]
    owner = [0, 0, 1]
    log2 = math.log(2)
    pos, neg = [], []
    for m in range(3):
        for g in range(2):
            s = sum(a * b for a, b in zip(local[m], glob[g]))
            (pos if owner[m] == g else neg).append(s)
    e_pos = sum(log2 - softplus(-s) for s in pos) / 3
    e_neg = sum(softplus(-s) + s - log2 for s in neg) / (3 * 1)
    got = jsd_local_global_loss(torch.tensor(local), torch.tensor(glob), torch.tensor(owner)).item()
    assert got == pytest.approx(e_neg - e_pos, abs=1e-6)
    # with offset: the nodes' own graphs are rows 1 and 2 of a global batch of three
    glob3 = [[0.0, -1.0]] + glob
    pos, neg = [], []
    for m in range(3):
        for g in range(3):
            s = sum(a * b for a, b in zip(local[m], glob3[g]))
            (pos if owner[m] + 1 == g else neg).append(s)
    expected = sum(softplus(-s) + s - log2 for s in neg) / 6 - sum(log2 - softplus(-s) for s in pos) / 3
    got = jsd_local_global_loss(torch.tensor(local), torch.tensor(glob3), torch.tensor(owner), offset=1).item()
    assert got == pytest.approx(expected, abs=1e-6)


def test_dgi_bilinear_score_and_loss_by_hand():
    d = BilinearScore(2)
    with torch.no_grad():
        d.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0]]))
        d.bias.fill_(0.25)
    nodes = [[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]]
    owner = [0, 0, 1]
    # summaries: the sigmoid of each graph's mean node vector
    summary = mean_by_owner(torch.tensor(nodes), torch.tensor(owner), 3)
    assert summary.tolist() == [[0.5, 0.5], [2.0, 1.0], [0.0, 0.0]]  # a graph with no node: zeros
    s = [[0.5, 0.5], [2.0, 1.0]]
    w = [[1.0, 2.0], [0.0, -1.0]]

    def score(h, g):  # h^T W s + b
        ws = [sum(w[i][j] * s[g][j] for j in range(2)) for i in range(2)]
        return sum(h[i] * ws[i] for i in range(2)) + 0.25
    expected = [score(h, g) for h, g in zip(nodes, owner)]
    got = d(torch.tensor(nodes), torch.tensor(s), torch.tensor(owner))
    assert got.tolist() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx([1.75, -0.25, 7.25])  # worked out: W s_0 = [1.5, -0.5], W s_1 = [4, -1]
    positive, negative = [1.75, -0.25], [0.5, -2.0, 3.0]
    bce = 0.5 * (sum(softplus(-v) for v in positive) / 2 + sum(softplus(v) for v in negative) / 3)
    assert dgi_loss(torch.tensor(positive), torch.tensor(negative)).item() == pytest.approx(bce, abs=1e-6)


def test_grace_loss_by_hand_with_intra_and_inter_view_negatives():
    u = [[1.0, 0.0], [1.0, 1.0], [0.0, -1.0]]
    v = [[2.0, 0.5], [-1.0, 1.0], [0.5, -0.5]]
    t = 0.5

    def ell(a, b, i):
        num = math.exp(cos(a[i], b[i]) / t)
        den = sum(math.exp(cos(a[i], b[k]) / t) for k in range(3)) + \
            sum(math.exp(cos(a[i], a[k]) / t) for k in range(3) if k != i)
        return -math.log(num / den)
    expected = sum(0.5 * (ell(u, v, i) + ell(v, u, i)) for i in range(3)) / 3
    assert grace_loss(torch.tensor(u), torch.tensor(v), t).item() == pytest.approx(expected, abs=1e-5)
    # without the intra-view terms the number would be smaller: they are really in the denominator
    inter_only = sum(0.5 * sum(-cos(a[i], b[i]) / t + math.log(sum(math.exp(cos(a[i], b[k]) / t) for k in range(3)))
                               for a, b in ((u, v), (v, u))) for i in range(3)) / 3
    assert expected > inter_only + 0.1


def test_scaled_cosine_error_and_bgrl_loss_by_hand():
    pred, target = [[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]], [[0.0, 1.0], [1.0, 0.0], [3.0, 4.0]]
    c = [cos(a, b) for a, b in zip(pred, target)]  # 0, 1/sqrt 2, 1
    assert c == pytest.approx([0, 2 ** -0.5, 1])
    for alpha in (2.0, 1.0):
        expected = sum((1 - ci) ** alpha for ci in c) / 3
        assert scaled_cosine_error(torch.tensor(pred), torch.tensor(target), alpha).item() == pytest.approx(
            expected, abs=1e-6)
    assert scaled_cosine_error(torch.tensor(pred), torch.tensor(target), 2.0).item() == pytest.approx(
        (1 + (1 - 2 ** -0.5) ** 2) / 3, abs=1e-6)
    p1, p2 = [[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [2.0, 0.0]]
    y1, y2 = [[1.0, 1.0], [0.0, -1.0]], [[1.0, 0.0], [1.0, 1.0]]
    expected = 2 - (cos(p1[0], y2[0]) + cos(p1[1], y2[1])) / 2 - (cos(p2[0], y1[0]) + cos(p2[1], y1[1])) / 2
    tp1, tp2 = torch.tensor(p1, requires_grad=True), torch.tensor(p2, requires_grad=True)
    ty1, ty2 = torch.tensor(y1, requires_grad=True), torch.tensor(y2, requires_grad=True)
    loss = bgrl_loss(tp1, tp2, ty1, ty2)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(2 - (1 + 2 ** -0.5) / 2 - (1 + 0) / 2)
    loss.backward()
    assert ty1.grad is None and ty2.grad is None and tp1.grad is not None and tp2.grad is not None  # targets detached


# ---- encoders: invariance to node order ----

def permuted_pair():
    """A graph, the same graph with its nodes renumbered by a permutation (rows moved, edges mapped), another graph;
    prepared (3 numeric columns a node). Returns the packed batch and the permutation."""
    rng = np.random.default_rng(0)
    g = connected_graphs([7], seed=5)[0]
    feats = rng.standard_normal((7, 3))
    perm = np.array([3, 0, 6, 1, 5, 2, 4])  # node i becomes node perm[i]; node 0 moves
    moved = np.empty_like(feats)
    moved[perm] = feats
    edges = np.array(list(g.edges))
    other = graph(5, [[0, 1], [1, 2], [3, 4]], node_num=rng.standard_normal((5, 3)))
    batch = pack([graph(7, edges, node_num=feats), graph(7, perm[edges], node_num=moved), other], "t", directed=False)
    return batch, perm


@pytest.mark.parametrize("name, options", [("gin", {}), ("gcn", {}), ("gat", {}), ("gin", {"walk_steps": 5})])
def test_encoders_are_invariant_to_node_order(name, options):
    batch, perm = permuted_pair()
    assert not torch.equal(batch[0], batch[1])  # the packed rows differ: the test is not vacuous
    spec = {"node_width": 3}
    graph_modality = get_modality("graph")
    torch.manual_seed(0)
    encoder = new_encoder(graph_modality, name, spec, **options).eval()
    with torch.no_grad():
        e = encoder(batch)
        nodes = encoder.node_outputs(batch)
    assert e.shape == (3, encoder.out_dim)
    torch.testing.assert_close(e[0], e[1], atol=1e-5, rtol=1e-5)
    assert (e[0] - e[2]).abs().max() > 1e-3  # another graph: another embedding
    # node outputs are equivariant: node i of the graph is node perm[i] of the renumbered one
    first, second = nodes.features[:7], nodes.features[7:14]
    torch.testing.assert_close(second[torch.as_tensor(perm)], first, atol=1e-5, rtol=1e-5)
    # a readout that reads a node position (the root: node 0) sees the renumbering
    torch.manual_seed(0)
    rooted = new_encoder(graph_modality, name, spec, readout="root", **options).eval()
    with torch.no_grad():
        r = rooted(batch)
    assert (r[0] - r[1]).abs().max() > 1e-3


def test_gin_without_batchnorm_keeps_the_channels_scales_and_rejects_another_norm():
    """norm="none": no BatchNorm, so training-mode and eval-mode outputs agree and no running statistics exist; the
    default GIN's training-mode outputs are standardised per channel over the batch's nodes (the control)."""
    batch, _ = permuted_pair()
    torch.manual_seed(0)
    plain = new_encoder(get_modality("graph"), "gin", {"node_width": 3}, norm="none")
    torch.manual_seed(0)
    normed = new_encoder(get_modality("graph"), "gin", {"node_width": 3})
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in plain.modules())
    with torch.no_grad():
        torch.testing.assert_close(plain.train()(batch), plain.eval()(batch))
        nodes = normed.train().node_outputs(batch).features
    torch.testing.assert_close(nodes.mean(0), torch.zeros(nodes.shape[1]), atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="norm='layer': one of batch, none"):
        new_encoder(get_modality("graph"), "gin", {"node_width": 3}, norm="layer")


def test_return_probabilities_by_hand():
    """Triangle: back after 2 moves with 1/2, after 3 with 2 x 1/8; 4-cycle: 1/2 after 2 and 4, never after odd moves;
    one edge: 0, 1, 0, 1; an isolated node and the padding: zeros; a directed 3-cycle: certainly back after 3."""
    triangle = graph(3, [[0, 1], [1, 2], [2, 0]])
    square = graph(4, [[0, 1], [1, 2], [2, 3], [3, 0]])
    edge_and_isolated = graph(3, [[0, 1]])
    p = padded(pack([triangle, square, edge_and_isolated], "t", directed=False))
    got = return_probabilities(p, 4)
    assert got.shape == (3, 4, 4)
    torch.testing.assert_close(got[0, :3], torch.tensor([[0, 0.5, 0.25, 0.375]]).expand(3, 4))
    torch.testing.assert_close(got[1], torch.tensor([[0, 0.5, 0, 0.5]]).expand(4, 4))
    torch.testing.assert_close(got[2], torch.tensor([[0, 1.0, 0, 1], [0, 1, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]))
    assert (got[0, 3] == 0).all()  # padding
    directed = padded(pack([graph(3, [[0, 1], [1, 2], [2, 0]])], "t", directed=True))
    torch.testing.assert_close(return_probabilities(directed, 3)[0], torch.tensor([[0, 0, 1.0]]).expand(3, 3))


def test_walk_steps_let_gin_tell_apart_graphs_that_1wl_cannot():
    """A hexagon and two triangles are both 2-regular on six nodes: 1-WL, and so a GIN on constant node features,
    gives them one embedding (the negative control); the return probabilities differ after 3 moves. Graphs without
    node columns ask for 16 steps in their spec, and so do whole graphs with them up to WALK_MAX_NODES nodes; larger
    labelled graphs and rooted neighbourhoods with node columns for none."""
    hexagon = graph(6, [[i, (i + 1) % 6] for i in range(6)], node_num=np.ones((6, 1)))
    triangles = graph(6, [[0, 1], [1, 2], [2, 0], [3, 4], [4, 5], [5, 3]], node_num=np.ones((6, 1)))
    batch = pack([hexagon, triangles], "t", directed=False)
    graph_modality = get_modality("graph")
    torch.manual_seed(0)
    plain = new_encoder(graph_modality, "gin", {"node_width": 1}).eval()
    torch.manual_seed(0)
    walking = new_encoder(graph_modality, "gin", {"node_width": 1}, walk_steps=6).eval()
    assert walking.input_width == 1 + 6 and walking.node_inputs(batch).shape == (12, 7)
    assert walking.node_count(batch) == 12  # the rows GraphMAE masks, without the return probabilities
    bare = pack([graph(6, hexagon.edges), graph(6, triangles.edges)], "t", directed=False)
    assert fit_features(bare)["walk_steps"] == 16 and fit_features(batch)["walk_steps"] == 16
    rooted = pack([hexagon, triangles], "t", directed=False, rooted=True)  # node-level samples with node columns
    assert fit_features(rooted)["walk_steps"] == 0
    ring = lambda n: graph(n, [[i, (i + 1) % n] for i in range(n)], node_num=np.ones((n, 1)))  # noqa: E731
    assert fit_features(pack([hexagon, ring(WALK_MAX_NODES)], "t", directed=False))["walk_steps"] == 16
    assert fit_features(pack([hexagon, ring(WALK_MAX_NODES + 1)], "t", directed=False))["walk_steps"] == 0
    bare_large = pack([graph(WALK_MAX_NODES + 1, ring(WALK_MAX_NODES + 1).edges)], "t", directed=False)
    assert fit_features(bare_large)["walk_steps"] == 16  # without node columns the walks are all a GIN has
    assert new_encoder(graph_modality, "gin", fit_features(bare)).input_width == 1 + 16
    with torch.no_grad():
        same, apart = plain(batch), walking(batch)
    torch.testing.assert_close(same[0], same[1])
    assert (apart[0] - apart[1]).abs().max() > 1e-3


def test_graphmae_with_walk_steps_rebuilds_the_structure_columns_and_reloads(tmp_path):
    pytest.importorskip("grakel")
    run = selfsup.train("tu:MUTAG", method="graphmae", epochs=1, batch_size=64, monitor=False, out=tmp_path / "r",
                        seed=0, encoder_options={"walk_steps": 4})
    assert run.encoder.input_width == run.spec["node_width"] + 4
    assert math.isfinite(run.summary["final_loss"])  # its mask token and decoder are sized to the widened inputs
    x = load_dataset("tu:MUTAG").train.x[:10]
    np.testing.assert_allclose(selfsup.load(tmp_path / "r").embed(x), run.embed(x), atol=1e-5)


def test_graphmae_rebuilds_standardised_inputs_by_default_and_the_inputs_on_request():
    """The default target centres and scales each input column over the batch's nodes (a constant column, the 1 of
    graphs without node columns, becomes 0); target="inputs" rebuilds the inputs as they are; another value is
    refused in one line."""
    x = torch.tensor([[1.0, 0.0, 2.0], [1.0, 1.0, 4.0], [1.0, 2.0, 0.0]])
    expected = torch.tensor([[0.0, -1.5 ** 0.5, 0.0], [0.0, 0.0, 1.5 ** 0.5], [0.0, 1.5 ** 0.5, -1.5 ** 0.5]])
    torch.testing.assert_close(standardised(x), expected)  # by hand: column 2 has mean 2 and variance 8/3
    bare = pack([graph(6, [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 0]]), graph(4, [[0, 1], [1, 2], [2, 3]])],
                "t", directed=False)
    spec = fit_features(bare)
    losses = {}
    for target in TARGETS:
        torch.manual_seed(0)
        method = methods.get("graphmae")(new_encoder(get_modality("graph"), "gin", spec), target=target)
        torch.manual_seed(1)
        x_in = featurise(bare, spec)
        losses[target], _ = method.loss_on_views(Views([x_in]), StepInfo())
        torch.manual_seed(1)  # the same hidden nodes: the inputs' loss by hand
        hide = hidden_nodes(method.encoder.node_count(x_in), method.mask_rate, x_in.device)
        nodes = method.encoder.node_outputs(x_in, hide, method.mask_token)
        rebuilt = method.decoder(method.encoder_to_decoder(nodes.features).masked_fill(hide[:, None], 0.0), nodes.edges)
        wanted = standardised(nodes.inputs) if target == "standardised" else nodes.inputs
        torch.testing.assert_close(losses[target], scaled_cosine_error(rebuilt[hide], wanted[hide]))
    assert (losses["standardised"] - losses["inputs"]).abs() > 1e-3  # the negative control: the targets differ
    with pytest.raises(ConfigError, match="target='mean'"):
        methods.get("graphmae")(new_encoder(get_modality("graph"), "gin", spec), target="mean")


# ---- sources ----

def write_tu(folder, name="TOY", edges=None, labels=("1", "-1", "1")):
    """A TU-format folder of three graphs: a triangle (nodes 1-3), an edge (4-5), a path (6-9); both directions."""
    folder.mkdir(parents=True, exist_ok=True)
    if edges is None:
        edges = [(1, 2), (2, 3), (3, 1), (4, 5), (6, 7), (7, 8), (8, 9)]
        edges = edges + [(b, a) for a, b in edges]
    (folder / f"{name}_A.txt").write_text("".join(f"{a}, {b}\n" for a, b in edges))
    (folder / f"{name}_graph_indicator.txt").write_text("1\n1\n1\n2\n2\n3\n3\n3\n3\n")
    (folder / f"{name}_node_labels.txt").write_text("0\n1\n2\n0\n0\n1\n1\n2\n0\n")
    if labels is not None:
        (folder / f"{name}_graph_labels.txt").write_text("\n".join(labels) + "\n")
    return folder


def test_tu_folder_is_read_with_node_and_graph_labels(tmp_path):
    folder = write_tu(tmp_path / "toy")
    ds = load_dataset(f"tu:{folder}")
    assert ds.modality == "graph" and len(ds.train.x) == 3
    assert ds.info["classes"] == [-1, 1] and ds.train.y.tolist() == [1, 0, 1]
    lay = Layout.of(ds.train.x)
    assert not lay.directed and lay.node_categorical == 1 and lay.max_nodes == 4
    g = unpack(ds.train.x)
    assert [x.num_nodes for x in g] == [3, 2, 4]
    assert edge_set(g[0].edges) == {(0, 1), (1, 2), (0, 2)} and len(g[0].edges) == 3
    assert g[1].edges.tolist() == [[0, 1]]
    assert edge_set(g[2].edges) == {(0, 1), (1, 2), (2, 3)}
    assert [x.node_categorical[:, 0].tolist() for x in g] == [[0, 1, 2], [0, 0], [1, 1, 2, 0]]
    # labels: one-hot of the three values seen
    spec = get_modality("graph").fit_spec(ds.train.x)
    assert spec["node_categories"] == [[0, 1, 2]] and spec["node_width"] == 3 and spec["readout"] == "sum"
    unlabelled = load_dataset(f"tu:{write_tu(tmp_path / 'plain', labels=None)}")
    assert unlabelled.train.y is None


def test_tu_mutag_from_the_grakel_copy():
    pytest.importorskip("grakel")
    ds = load_dataset("tu:MUTAG")
    assert len(ds.train.x) == 188 and ds.info["classes"] == [-1, 1]
    assert np.bincount(ds.train.y).tolist() == [63, 125]
    assert not Layout.of(ds.train.x).directed
    sizes = ds.train.x[:, 0]
    assert sizes.min() == 10 and sizes.max() == 28


def test_the_motifs_source_plants_its_class_and_draws_the_counts_apart_from_it():
    """`motifs`: six classes, balanced, fixed draws (train seed 0, test seed 1); every graph connected, unlabelled,
    its node count and cyclomatic number in their ranges whatever its class, and its class's motif in it (a K4 graph
    has a 4-clique, a graph of another class of K4-free motifs mostly has none); options checked in one line."""
    from selfsup.errors import ConfigError
    from selfsup.modalities.graph.motifs import CLASSES, CYCLES, NODES, generate

    ds = load_dataset("motifs?n=120&test=30")
    assert ds.modality == "graph" and len(ds.train.x) == 120 and len(ds.test.x) == 30
    assert ds.info["classes"] == list(CLASSES) and np.bincount(ds.train.y).tolist() == [20] * 6
    again = load_dataset("motifs?n=120&test=30")
    assert torch.equal(ds.train.x, again.train.x) and not torch.equal(ds.train.x[:30], ds.test.x)
    graphs, y = generate(300, 5)
    counts = {c: [] for c in range(len(CLASSES))}
    for g, label in zip(graphs, y):
        h = nx.Graph(g.edges.tolist())
        assert nx.is_connected(h) and h.number_of_nodes() == g.num_nodes and g.node_categorical.shape[1] == 0
        assert NODES[0] <= g.num_nodes <= NODES[1] and CYCLES[0] <= h.number_of_edges() - g.num_nodes + 1 <= CYCLES[1]
        counts[label].append((g.num_nodes, h.number_of_edges(), max(len(c) for c in nx.find_cliques(h))))
    means = np.array([np.mean(v, axis=0)[:2] for v in counts.values()])
    assert np.ptp(means[:, 0]) < 4 and np.ptp(means[:, 1]) < 4  # counts say nothing of the class
    assert all(c[2] >= 4 for c in counts[CLASSES.index("k4")])
    assert np.mean([c[2] >= 4 for c in counts[CLASSES.index("hexagon")]]) < 0.2  # noise edges rarely close a K4
    for uri, words in (("motifs?n=5", "n='5'"), ("motifs?colour=red", "unknown option")):
        with pytest.raises(ConfigError, match=words):
            load_dataset(uri)


def raises_one_line(match, fn, *args):
    """`fn(*args)` raises a DataError matching `match`, in one line."""
    with pytest.raises(DataError, match=match) as caught:
        fn(*args)
    assert "\n" not in str(caught.value)


def test_bad_graph_input_is_one_line(tmp_path):
    from torch_geometric.data import Data

    bad_edge = [(1, 2), (2, 3), (3, 1), (4, 5), (6, 7), (7, 8), (8, 9), (9, 10)]
    raises_one_line(r"line 8: node \[9, 10\] out of range 1..9", load_dataset,
                    f"tu:{write_tu(tmp_path / 'edge', edges=bad_edge)}")
    raises_one_line("2 labels for 3 graphs", load_dataset, f"tu:{write_tu(tmp_path / 'labels', labels=('1', '0'))}")
    from_array = selfsup.api.dataset_from_array
    raises_one_line("graph 1: an empty graph", from_array, [nx.path_graph(3), nx.Graph()])
    raises_one_line("item 1 is a str, not a networkx graph", from_array, [nx.path_graph(3), "a string"])
    ring = torch.tensor([[0, 1, 2], [1, 2, 0]])
    raises_one_line(r"graph 1: 4 node attribute columns, but the first graph has 2 \(features of the wrong width\)",
                    from_array, [Data(x=torch.zeros(3, 2), edge_index=ring),
                                 Data(x=torch.zeros(3, 4), edge_index=ring)])
    raises_one_line("graph 0: edge 1 joins nodes 1 and 5, but the graph has nodes 0..2 only", from_array,
                    [Data(x=torch.zeros(3, 2), edge_index=torch.tensor([[0, 1], [1, 5]]))])
    proc = run_cli("train", "--data", f"tu:{tmp_path / 'edge'}", "--method", "graphcl", "--out", tmp_path / "r")
    assert_one_line_error(proc, "out of range 1..9")
    assert not (tmp_path / "r").exists()


# ---- end to end ----

@pytest.mark.parametrize("method", GRAPH_METHODS)
def test_graph_methods_train_on_mutag(method, tmp_path):
    pytest.importorskip("grakel")
    from selfsup.evaluate import evaluate_run

    run = selfsup.train("tu:MUTAG", method=method, epochs=1, batch_size=64, monitor=False, out=tmp_path / "r", seed=0)
    assert run.resolved.modality == "graph" and run.summary["train_samples"] == 188
    losses = [row["loss"] for row in map(json.loads, (tmp_path / "r" / "metrics.jsonl").read_text().splitlines())
              if "loss" in row]
    assert losses and all(math.isfinite(v) for v in losses) and math.isfinite(run.summary["final_loss"])
    x = load_dataset("tu:MUTAG").train.x
    emb = run.embed(x)
    assert emb.shape == (188, run.encoder.out_dim) and np.isfinite(emb).all()
    assert emb.std(axis=0).max() > 0  # not one point
    np.testing.assert_allclose(selfsup.load(tmp_path / "r").embed(x[:10]), emb[:10], atol=1e-5)
    ev = evaluate_run(run, protocols=("knn",), baselines=False, finetune=False)
    assert ev["n_train"] + ev["n_test"] == 188 and 0.0 <= ev["knn_acc"] <= 1.0


def test_a_methods_encoder_defaults_sit_under_the_callers_options():
    """InfoGraph declares its GIN without BatchNorm (Method.encoder_defaults): the default run resolves norm=none and
    builds no BatchNorm; the caller's own option wins; another method (GraphCL, none declared) keeps the GIN's
    BatchNorm; an encoder the defaults do not name (GCN) is left alone."""
    graphs, _ = labelled_nx_graphs(16)
    ds = selfsup.api.dataset_from_array(graphs)
    train = lambda method, **kw: selfsup.train(ds, method=method, epochs=1, batch_size=8,  # noqa: E731
                                               monitor=False, seed=0, **kw)
    has_batch_norm = lambda run: any(isinstance(m, torch.nn.BatchNorm1d) for m in run.encoder.modules())  # noqa: E731
    plain = train("infograph")
    assert plain.resolved.encoder_options["norm"] == "none" and not has_batch_norm(plain)
    run = train("infograph", encoder_options={"norm": "batch"})
    assert run.resolved.encoder_options["norm"] == "batch" and has_batch_norm(run)
    graphcl = train("graphcl")  # the negative control: no declared defaults, the GIN's own BatchNorm
    assert "norm" not in graphcl.resolved.encoder_options and has_batch_norm(graphcl)
    gcn = train("dgi", encoder="gcn", encoder_options={"hidden": 8})
    assert "norm" not in gcn.resolved.encoder_options


def labelled_nx_graphs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    graphs = []
    for i in range(n):
        g = nx.cycle_graph(int(rng.integers(4, 9))) if i % 2 else nx.star_graph(int(rng.integers(3, 8)))
        for node in g.nodes:
            g.nodes[node]["label"] = int(rng.integers(0, 3))
        for u, v in g.edges:
            g.edges[u, v]["weight"] = float(rng.random())
        graphs.append(g)
    return graphs, [i % 2 for i in range(n)]


def test_a_list_of_networkx_graphs_trains_and_embeds():
    graphs, y = labelled_nx_graphs()
    ds = selfsup.api.dataset_from_array(graphs, y)
    assert ds.modality == "graph" and len(ds.train.x) == 40 and ds.train.y.tolist() == y
    lay = Layout.of(ds.train.x)
    assert lay.node_categorical == 1 and lay.edge_numeric == 1 and not lay.directed
    run = selfsup.train(ds, method="graphcl", epochs=1, batch_size=16, monitor=False, seed=0)
    assert run.resolved.modality == "graph" and run.resolved.encoder == "gin"
    assert math.isfinite(run.summary["final_loss"])
    emb = run.embed(graphs[:5])  # the graphs themselves, as the run was trained on
    assert emb.shape == (5, run.encoder.out_dim)
    np.testing.assert_allclose(emb, run.embed(ds.train.x[:5]), atol=1e-5)
    with pytest.raises(DataError, match="features of the wrong width"):
        run.embed([nx.path_graph(3)])  # no node labels: not what the run was trained on


def test_pyg_data_objects_train_with_a_gcn_encoder_and_embed():
    graph_modality = get_modality("graph")
    data = graph_modality.toy_data(48, np.random.default_rng(0))
    ds = selfsup.api.dataset_from_array(data)
    assert ds.modality == "graph" and len(ds.train.x) == 48 and ds.train.y is None
    run = selfsup.train(ds, method="dgi", encoder="gcn", encoder_options={"hidden": 16}, epochs=1, batch_size=16,
                        monitor=False, seed=0)
    assert math.isfinite(run.summary["final_loss"]) and run.encoder.out_dim == 16
    emb = run.embed(data[:4])
    assert emb.shape == (4, 16)
    np.testing.assert_allclose(emb, run.embed(ds.train.x[:4]), atol=1e-5)


def test_cli_trains_and_embeds_mutag(tmp_path):
    pytest.importorskip("grakel")
    out = tmp_path / "run"
    proc = run_cli("train", "--data", "tu:MUTAG", "--method", "graphcl", "--epochs", "1", "--batch-size", "64",
                   "--out", out, "--no-eval", "--no-monitor", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)["summary"]
    assert summary["method"] == "graphcl" and summary["encoder"] == "gin" and summary["train_samples"] == 188
    proc = run_cli("embed", out, "--data", "tu:MUTAG", "--out", tmp_path / "emb.npy")
    assert proc.returncode == 0, proc.stderr
    emb = np.load(tmp_path / "emb.npy")
    run = selfsup.load(out)
    assert emb.shape == (188, run.encoder.out_dim)
    np.testing.assert_allclose(emb, run.embed(load_dataset("tu:MUTAG").train.x), atol=1e-5)


def test_rooted_neighbourhoods_mark_each_samples_own_node_and_grace_contrasts_only_those():
    from selfsup.methods.grace import GRACE

    graphs = [graph(3, [[0, 1], [1, 2]], node_num=np.eye(3)), graph(2, [[0, 1]], node_num=np.eye(3)[:2])]
    plain, rooted = pack(graphs, "plain"), pack(graphs, "rooted", rooted=True)
    modality = get_modality("graph")
    spec = modality.fit_spec(plain)
    encoder = new_encoder(modality, "gin", spec, hidden=4, layers=1)
    assert encoder.node_outputs(modality.prepare(plain, spec)).anchors is None
    assert encoder.node_outputs(modality.prepare(rooted, spec)).anchors.tolist() == [0, 3]  # rows of the roots
    method = GRACE(encoder, proj_dim=4)
    seen = []
    method.projector.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    views = modality.view_maker(method.view_request(), spec)(rooted, torch.Generator().manual_seed(0))
    method(views)
    assert seen == [2, 2]  # the two roots in each view, not the 5 node rows
    seen.clear()
    method(modality.view_maker(method.view_request(), spec)(plain, torch.Generator().manual_seed(0)))
    assert seen == [5, 5]


def test_thumbnails_draw_each_graph_with_its_nodes_coloured_by_label_and_a_rooted_root_in_black():
    from selfsup.modalities.graph.drawing import PALETTE

    graphs = [graph(3, [[0, 1], [1, 2]], node_cat=[[0], [1], [1]]), graph(1, [], node_cat=[[2]])]
    pictures = get_modality("graph").presentation.thumbnails(pack(graphs, "g"))
    assert pictures.shape == (2, 3, 48, 48) and pictures.dtype == np.uint8
    colours = {tuple(c) for c in pictures[0].reshape(3, -1).T.tolist()}
    assert tuple(PALETTE[0]) in colours and tuple(PALETTE[1]) in colours and (170, 170, 170) in colours  # edges grey
    assert tuple(PALETTE[2]) not in colours
    assert {tuple(c) for c in pictures[1].reshape(3, -1).T.tolist()} == {(255, 255, 255), tuple(PALETTE[2])}
    rooted = get_modality("graph").presentation.thumbnails(pack(graphs, "g", rooted=True))
    assert (0, 0, 0) in {tuple(c) for c in rooted[0].reshape(3, -1).T.tolist()}


def test_cross_validated_svm_folds_choice_of_candidates_and_precomputed_kernels():
    from selfsup.evaluate import PROTOCOLS
    from selfsup.evaluation import cross_validated_svm

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    signal = rng.standard_normal((80, 4)) + 3.0 * y[:, None]
    noise = rng.standard_normal((80, 4))
    r = cross_validated_svm(signal, y, seed=0)
    assert r["folds"] == 10 and len(r["fold_acc"]) == 10 and r["acc"] > 0.95
    assert cross_validated_svm(noise, y, seed=0)["acc"] < 0.75
    both = cross_validated_svm({"noise": noise, "signal": signal}, y, seed=0)  # chosen on training folds only
    assert [c["features"] for c in both["chosen"]] == ["signal"] * 10 and both["acc"] == r["acc"]
    kernels = {"noise": noise @ noise.T, "signal": signal @ signal.T}
    gram = cross_validated_svm(kernels, y, seed=0, kernel="precomputed")
    assert {c["features"] for c in gram["chosen"]} == {"signal"} and gram["acc"] > 0.95
    linear = cross_validated_svm(signal, y, seed=0, kernel="linear")
    assert gram["fold_acc"] == linear["fold_acc"]  # the same linear SVM, given as its Gram matrix
    with pytest.raises(ValueError, match="at least 10 samples of every class"):
        cross_validated_svm(signal[:45], y[:45], seed=0)
    split = PROTOCOLS["svm_cv"](signal[:60], y[:60], signal[60:], y[60:])  # both splits, cross-validated together
    assert len(split["fold_acc"]) == 10 and split["acc"] > 0.95
