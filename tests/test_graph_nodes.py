"""Node-level graph data (modalities/graph/nodes.py): sampled rooted neighbourhoods, the edges: and graphml: sources,
and a DGI run on the nodes of one graph."""
import numpy as np
import pytest
import torch

import selfsup
from selfsup.errors import ConfigError, DataError
from selfsup.loading import load_dataset
from selfsup.modalities.graph import nodes
from selfsup.modalities.graph.codec import Graph, Layout, pack, unpack

nx = pytest.importorskip("networkx")


def node_sets(g, t, attribute="v"):
    """Each row's nodes as the networkx nodes (read back from their numeric attribute), root first."""
    values = {float(d[attribute]): node for node, d in g.nodes(data=True)}
    return [[values[float(v)] for v in h.node_numeric[:, 0]] for h in unpack(t)]


def edge_sets(g, t, attribute="v", kind=frozenset):
    """Each row's edges as pairs of networkx nodes (`kind` tuple: directed)."""
    values = {float(d[attribute]): node for node, d in g.nodes(data=True)}
    out = []
    for h in unpack(t):
        names = [values[float(v)] for v in h.node_numeric[:, 0]]
        out.append({kind((names[a], names[b])) for a, b in h.edges.tolist()})
    return out


def numbered(g):
    for i, node in enumerate(g.nodes):
        g.nodes[node]["v"] = float(i)
    return g


def test_path_cycle_and_star_take_whole_two_hop_neighbourhoods():
    path = numbered(nx.path_graph(4))
    t = nodes.node_neighbourhoods(path, "path")
    lay = Layout.of(t)
    assert lay.rooted and not lay.directed and len(t) == 4
    sets = node_sets(path, t)
    assert [s[0] for s in sets] == [0, 1, 2, 3]  # the root first
    assert [set(s) for s in sets] == [{0, 1, 2}, {0, 1, 2, 3}, {0, 1, 2, 3}, {1, 2, 3}]
    assert edge_sets(path, t) == [{frozenset(e) for e in path.subgraph(s).edges} for s in sets]
    assert sets[1][1:3] and set(sets[1][1:3]) == {0, 2}  # hop-1 neighbours before hop-2 ones

    cycle = numbered(nx.cycle_graph(6))
    t = nodes.node_neighbourhoods(cycle, "cycle")
    sets, edges = node_sets(cycle, t), edge_sets(cycle, t)
    assert set(sets[0]) == {0, 1, 5, 2, 4}
    assert edges[0] == {frozenset(e) for e in [(0, 1), (0, 5), (1, 2), (5, 4)]}
    c5 = numbered(nx.cycle_graph(5))  # both hop-2 nodes joined: an edge no sample drew, still induced
    assert frozenset((2, 3)) in edge_sets(c5, nodes.node_neighbourhoods(c5, "c5"))[0]

    star = numbered(nx.star_graph(6))  # centre 0, leaves 1..6
    t = nodes.node_neighbourhoods(star, "star")
    sets, edges = node_sets(star, t), edge_sets(star, t)
    assert all(set(s) == set(range(7)) and s[0] == i for i, s in enumerate(sets))
    assert all(e == {frozenset((0, leaf)) for leaf in range(1, 7)} for e in edges)


def test_fanout_caps_each_hop_and_the_draw_is_seeded():
    star = numbered(nx.star_graph(20))
    t = nodes.node_neighbourhoods(star, "star", fanout=(3, 2))
    sets = node_sets(star, t)
    assert len(sets[0]) == 4 and sets[0][0] == 0  # the centre and 3 of its leaves (their only neighbour: it)
    assert all(len(s) <= 4 and s[:2] == [leaf, 0] for leaf, s in enumerate(sets) if leaf)
    g = numbered(nx.gnm_random_graph(200, 1500, seed=1))
    t = nodes.node_neighbourhoods(g, "g", fanout=(4, 3))
    assert int(t[:, 0].max()) <= 1 + 4 + 12
    hop1 = [set(s[1:1 + min(4, g.degree(s[0]))]) for s in node_sets(g, t)]
    assert all(h <= set(g.neighbors(i)) for i, h in enumerate(hop1))
    assert torch.equal(t, nodes.node_neighbourhoods(g, "g", fanout=(4, 3)))
    assert not torch.equal(t, nodes.node_neighbourhoods(g, "g", fanout=(4, 3), seed=1))
    assert nodes.node_neighbourhoods(g, "g", fanout=(0,))[:, 0].eq(1).all()  # fanout 0: the node alone


@pytest.mark.parametrize("directed", [False, True])
def test_rows_are_what_pack_gives_and_every_induced_edge_with_its_columns(directed):
    rng = np.random.default_rng(0)
    n, e = 60, 240
    edges = rng.integers(0, n, (e, 2))
    edges[:5] = [[7, 7], [3, 0], [0, 3], [9, 4], [9, 4]]  # a self-loop, both directions, a repeated edge
    edges = np.concatenate([edges, np.stack([np.zeros(50, int), np.arange(1, 51)], 1)])  # a hub
    g = Graph(n, edges, rng.integers(0, 3, (n, 1)), rng.standard_normal((n, 2)), rng.integers(0, 2, (len(edges), 1)),
              rng.standard_normal((len(edges), 1)))
    prepared, d = nodes.prepared_graph(g, "g", directed)
    got = nodes.sample_neighbourhoods(prepared, d, (3, 2), seed=0)
    t = nodes.pack_neighbourhoods(prepared, got, d, "g")
    graphs = []
    for i in range(n):
        kept = got.nodes[got.node_ptr[i]:got.node_ptr[i + 1]]
        local = {int(v): j for j, v in enumerate(kept)}
        slots = got.edge_slot[got.edge_ptr[i]:got.edge_ptr[i + 1]]
        mine = got.edges[got.edge_ptr[i]:got.edge_ptr[i + 1]]
        want = [(local[u], local[v]) for u, v in prepared.edges.tolist() if u in local and v in local]
        if not d:
            want = [tuple(sorted(p)) for p in want]
        assert kept[0] == i and len(set(kept.tolist())) == len(kept)
        assert sorted(want) == sorted(map(tuple, mine.tolist()))
        assert np.array_equal(prepared.edges[slots], kept[mine] if d else np.sort(kept[mine], axis=1))
        graphs.append(Graph(len(kept), mine, prepared.node_categorical[kept], prepared.node_numeric[kept],
                            prepared.edge_categorical[slots], prepared.edge_numeric[slots]))
    assert torch.equal(t, pack(graphs, "g", directed=d, rooted=True))


def test_directed_graphs_sample_in_neighbours():
    g = numbered(nx.DiGraph([(0, 1), (1, 2), (3, 2)]))
    t = nodes.node_neighbourhoods(g, "d")
    assert Layout.of(t).directed
    assert [set(s) for s in node_sets(g, t)] == [{0}, {1, 0}, {2, 1, 3, 0}, {3}]
    assert edge_sets(g, t, kind=tuple)[2] == {(0, 1), (1, 2), (3, 2)}
    assert edge_sets(g, t, kind=tuple)[1] == {(0, 1)}


def test_networkx_label_is_not_a_feature_and_pyg_labels():
    g = nx.karate_club_graph()
    for node, d in g.nodes(data=True):
        d["y"] = int(d["club"] == "Officer")
        d["size"] = float(g.degree(node))
    ds = nodes.node_dataset(g, name="karate")
    assert Layout.of(ds.train.x).node_numeric == 1  # size only (y is the label, club a string)
    assert ds.info["classes"] == [0, 1] and list(ds.train.y) == [g.nodes[n]["y"] for n in g.nodes]
    del g.nodes[5]["y"]
    with pytest.raises(DataError, match=r"karate: node 5 has no 'y' attribute"):
        nodes.node_dataset(g, name="karate")
    g.nodes[5]["y"] = 0
    plain = nodes.node_dataset(g, name="k", label=None)  # no label: y is a feature like any number
    assert plain.train.y is None and Layout.of(plain.train.x).node_numeric == 2
    data = pytest.importorskip("torch_geometric.data")
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    d = data.Data(x=torch.randn(4, 3), edge_index=edge_index, y=torch.tensor([1, 0, 1, 0]), num_nodes=4)
    ds = nodes.node_dataset(d, name="pyg")
    lay = Layout.of(ds.train.x)
    assert not lay.directed and lay.node_numeric == 3 and list(ds.train.y) == [1, 0, 1, 0]
    assert len(unpack(ds.train.x)[0].edges) == 2  # node 0: 0-1, 1-2, each once
    with pytest.raises(DataError, match=r"data.y has shape \(1,\), not one label for each of the 4 nodes"):
        nodes.node_dataset(data.Data(x=d.x, edge_index=edge_index, y=torch.tensor([1]), num_nodes=4), name="p")


def write(path, text):
    path.write_text(text)
    return path


@pytest.fixture(params=["pandas", "line by line"])
def reader(request, monkeypatch):
    """Both readers of delimited files: pandas' C parser (clean files) and the line reader (its fallback)."""
    if request.param != "pandas":
        monkeypatch.setattr(nodes, "_fast_cells", lambda text, sep: None)
    return request.param


def test_edges_source_with_string_ids_features_and_labels(tmp_path, reader):
    e = write(tmp_path / "e.csv", "source,target,weight\ncarol,bob,1.5\nbob,alice,2\n\n# a comment\ndave,carol,1\n")
    f = write(tmp_path / "f.csv", "id,age,score\nalice,30,1\nbob,40,2\ncarol,50,3\ndave,60,4\n")
    lab = write(tmp_path / "l.csv", "node,club\nbob,b\nalice,a\ndave,b\ncarol,a\n")
    ds = load_dataset(f"edges:{e}?features={f}&labels={lab}&fanout=5,5")
    assert ds.modality == "graph" and ds.name == "e.csv" and len(ds.train) == 4
    assert ds.info["classes"] == ["a", "b"] and list(ds.train.y) == [0, 1, 0, 1]  # nodes in the features' order
    assert ds.info["fanout"] == [5, 5] and not ds.info["directed"]
    lay = Layout.of(ds.train.x)
    assert lay.rooted and lay.node_numeric == 2 and lay.edge_numeric == 1
    rows = unpack(ds.train.x)
    assert [r.node_numeric[0, 0] for r in rows] == [30, 40, 50, 60]  # each row's root: node i
    assert set(rows[0].node_numeric[:, 0]) == {30, 40, 50}  # alice - bob - carol
    bob = rows[1]
    weights = {frozenset(bob.node_numeric[[a, b], 0]): w for (a, b), w in zip(bob.edges, bob.edge_numeric[:, 0])}
    assert weights == {frozenset((50, 40)): 1.5, frozenset((40, 30)): 2.0, frozenset((60, 50)): 1.0}
    directed = load_dataset(f"edges:{e}?features={f}&directed=1")
    assert Layout.of(directed.train.x).directed and directed.train.y is None
    # carol -> bob -> alice, dave -> carol: two hops of in-neighbours
    assert [set(r.node_numeric[:, 0]) for r in unpack(directed.train.x)] == [{30, 40, 50}, {40, 50, 60}, {50, 60},
                                                                           {60}]


def test_edges_source_without_features_sorts_numeric_ids_and_detects_headers(tmp_path, reader):
    plain = write(tmp_path / "plain.txt", "10 9\n9 100\n")
    ds = load_dataset(f"edges:{plain}")
    assert ds.info["nodes"] == 3 and ds.info["edges"] == 2 and Layout.of(ds.train.x).node_columns == 0
    sizes = [(r.num_nodes, len(r.edges)) for r in unpack(ds.train.x)]  # ids 9, 10, 100: 9 is the middle
    assert sizes == [(3, 2), (3, 2), (3, 2)]
    headed = write(tmp_path / "h.csv", "src,dst\n10,9\n9,100\n")
    assert torch.equal(load_dataset(f"edges:{headed}").train.x, ds.train.x)
    named = write(tmp_path / "n.tsv", "from\tto\nx\ty\n")
    assert load_dataset(f"edges:{named}").info["nodes"] == 2


def test_edges_source_errors_are_one_line(tmp_path, reader):
    files = {"e": "a,b\nb,c\n", "f": "a,1\nb,2\nc,3\n", "l": "a,x\nb,y\nc,x\n", "e2": "a,b\nb,zed\n",
             "f2": "a,1\nb,2,5\nc,3\n", "f3": "a,1\nb,x2\nc,3\n", "f4": "a,1\nb,2\na,3\n", "empty": "",
             "blank": "# only a comment\n\n", "l2": "a,x\nb,y\nq,x\nc,x\n", "l3": "a,x\nc,x\n", "one": "a\n",
             "e3": "# made by hand\n\na,b\n  # b,c\nb , zed\n", "f5": "a,1\nb,\nc,3\n", "e4": "a,b\n,c\n",
             "f6": 'a,1\n"b,2\nc,3\n', "f7": "0.615,1\n0.2,2\n0.615,3\n"}
    p = {name: write(tmp_path / f"{name}.csv", text) for name, text in files.items()}

    def bad(uri, pattern, error=DataError):
        with pytest.raises(error, match=pattern) as info:
            load_dataset(uri)
        assert "\n" not in str(info.value)

    bad(f"edges:{p['e2']}?features={p['f']}", r"e2.csv: line 2: node 'zed' is not in the features file .*f.csv")
    bad(f"edges:{p['e']}?features={p['f2']}", r"f2.csv: line 2 has 3 values, expected 2")
    bad(f"edges:{p['e']}?features={p['f3']}", r"f3.csv: line 2: 'x2' is not a number")
    bad(f"edges:{p['e']}?features={p['f4']}", r"f4.csv: line 3: node 'a' listed a second time$")
    bad(f"edges:{p['e']}?features={p['f7']}", r"f7.csv: line 3: node '0.615' listed a second time; the first column "
        r"of a features file is the node id .* does the file lack its id column\?")
    bad(f"edges:{p['empty']}", r"empty.csv: empty file")
    bad(f"edges:{p['blank']}", r"blank.csv: empty file \(no rows\)")
    bad(f"edges:{p['e']}?features={p['f']}&labels={p['l2']}",
        r"l2.csv: line 3: a label for node 'q', which is not a node of the graph")
    bad(f"edges:{p['e']}?features={p['f']}&labels={p['l3']}", r"l3.csv: node 'b' has no label \(1 of 3 nodes have none\)")
    bad(f"edges:{p['e']}?fanout=ten", r"fanout must be whole numbers", ConfigError)
    bad(f"edges:{p['e']}?weights=w.csv", r"unknown option\(s\) weights", ConfigError)
    bad(f"edges:{p['one']}", r"one.csv: line 1 has 1 value, an edge needs 2")
    bad(f"edges:{p['e3']}?features={p['f']}", r"e3.csv: line 5: node 'zed' is not in the features file")
    bad(f"edges:{p['e']}?features={p['f5']}", r"f5.csv: line 2: '' is not a number")
    bad(f"edges:{p['e4']}", r"e4.csv: line 2: an empty node id")
    bad(f"edges:{p['e']}?features={p['f6']}", r"e.csv: line 2: node 'b' is not in the features file .*f6.csv")
    assert load_dataset(f"edges:{p['e']}?features={p['f']}&labels={p['l']}").info["classes"] == ["x", "y"]


def test_graphml_round_trip(tmp_path):
    g = nx.karate_club_graph()
    for node, d in g.nodes(data=True):
        d["degree"] = g.degree(node)
        d["score"] = float(node) / 10
    path = tmp_path / "karate.graphml"
    nx.write_graphml(g, path)
    ds = load_dataset(f"graphml:{path}?label=club&fanout=4,4")
    assert ds.info["classes"] == ["Mr. Hi", "Officer"] and len(ds.train) == 34
    lay = Layout.of(ds.train.x)
    assert lay.rooted and lay.node_numeric == 2 and not lay.directed  # degree, score (club: the label)
    assert [r.node_numeric[0, 1] for r in unpack(ds.train.x)] == pytest.approx([i / 10 for i in range(34)])
    again = nodes.node_dataset(nx.read_graphml(path), None, "k", (4, 4), label="club")
    assert torch.equal(again.train.x, ds.train.x) and np.array_equal(again.train.y, ds.train.y)
    assert load_dataset(f"graphml:{path}").train.y is None
    with pytest.raises(DataError, match=r"no node has the attribute 'kind' \(label=\)"):
        load_dataset(f"graphml:{path}?label=kind")
    with pytest.raises(DataError, match=r"not a readable GraphML file"):
        load_dataset(f"graphml:{write(tmp_path / 'bad.graphml', '<graphml><graph')}")  # cut short


def test_dgi_trains_on_the_nodes_of_one_graph_and_embeds_them(tmp_path):
    sizes = [30, 30, 30]
    g = nx.stochastic_block_model(sizes, [[0.3, 0.01, 0.01], [0.01, 0.3, 0.01], [0.01, 0.01, 0.3]], seed=0)
    rng = np.random.default_rng(0)
    for node, d in g.nodes(data=True):
        d["y"] = d.pop("block")
        d["a"], d["b"] = rng.standard_normal(2) + d["y"]
    ds = nodes.node_dataset(g, name="sbm", fanout=(5, 5))
    run = selfsup.train(ds, method="dgi", epochs=1, batch_size=16, monitor=False, out=tmp_path / "r")
    assert run.spec["readout"] == "root"
    emb = run.embed(g)
    assert emb.shape[0] == 90 and np.isfinite(emb).all()
    again = run.embed(ds.train.x[:5])
    assert np.allclose(again, run.embed(nodes.node_neighbourhoods(g, "g", fanout=(5, 5))[:5]), atol=1e-5)
