"""The node-level part of benchmarks/graphs.py: a graph with planted communities, generated offline (see there)."""
from __future__ import annotations

import sys
import tempfile
import time
from typing import Any

import numpy as np

import selfsup
from selfsup.evaluation import linear_probe, stratified_validation_split
from selfsup.modalities.graph.nodes import node_dataset
from selfsup.run import build_encoder, encode_storage

BLOCKS, BLOCK_SIZE, P_IN, P_OUT, FEATURES, SIGNAL = 8, 250, 0.02, 0.002, 32, 0.35
#: DGI's and GRACE's settings at node level (their encoders: a GCN; DGI 1 layer of 512 in the paper, GRACE 2 of 128)
METHODS: dict[str, dict[str, Any]] = {
    "dgi": {"encoder": "gcn", "encoder_options": {"hidden": 256, "layers": 2}, "batch_size": 128, "epochs": 10},
    "grace": {"encoder": "gcn", "encoder_options": {"hidden": 128, "layers": 2}, "batch_size": 128, "epochs": 10},
}


def planted_graph(seed: int) -> tuple[Any, np.ndarray]:
    """A stochastic block model graph with `FEATURES` node attributes: N(0, 1) noise plus SIGNAL x the block's own
    random direction (so the features alone tell the blocks apart only weakly)."""
    import networkx as nx

    rng = np.random.default_rng(seed)
    probs = np.full((BLOCKS, BLOCKS), P_OUT) + np.eye(BLOCKS) * (P_IN - P_OUT)
    g = nx.stochastic_block_model([BLOCK_SIZE] * BLOCKS, probs.tolist(), seed=seed)
    y = np.repeat(np.arange(BLOCKS), BLOCK_SIZE)
    centres = rng.standard_normal((BLOCKS, FEATURES))
    x = rng.standard_normal((len(y), FEATURES)) + SIGNAL * centres[y]
    for i in g.nodes:
        g.nodes[i]["x"] = x[i].tolist()
        del g.nodes[i]["block"]
    return g, y


def spectral(g: Any, dim: int = 16) -> np.ndarray:
    import networkx as nx
    from sklearn.manifold import SpectralEmbedding

    adjacency = nx.to_scipy_sparse_array(g, nodelist=sorted(g.nodes), format="csr").astype(np.float64)
    adjacency.indices, adjacency.indptr = adjacency.indices.astype(np.int32), adjacency.indptr.astype(np.int32)
    return SpectralEmbedding(dim, affinity="precomputed", random_state=0).fit_transform(adjacency)


def probe(features: np.ndarray, y: np.ndarray, seed: int) -> float:
    """Linear probe on a stratified half of the nodes, tested on the other half (C on a validation split of the
    training half)."""
    train, test = stratified_validation_split(y, 0.5, seed)
    return 100 * linear_probe(features[train], y[train], features[test], y[test], seed=seed)["acc"]


def node_level(seeds: list[int], threads: int) -> dict[str, Any]:
    out: dict[str, Any] = {"graph": {"blocks": BLOCKS, "block_size": BLOCK_SIZE, "p_in": P_IN, "p_out": P_OUT,
                                     "features": FEATURES, "signal": SIGNAL}, "methods": {}, "baselines": {}}
    g, y = planted_graph(0)
    out["graph"]["edges"] = g.number_of_edges()
    ds = node_dataset(g, y, "planted")
    raw = np.array([g.nodes[i]["x"] for i in sorted(g.nodes)])
    out["baselines"]["raw node features"] = [probe(raw, y, s) for s in seeds]
    structure = spectral(g)
    out["baselines"]["spectral embedding (16-d)"] = [probe(structure, y, s) for s in seeds]
    out["baselines"]["spectral + raw features"] = [probe(np.hstack([structure, raw]), y, s) for s in seeds]
    for method, settings in METHODS.items():
        accs, random_accs, seconds = [], [], []
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                run = selfsup.train(ds, method=method, seed=seed, threads=threads, monitor=False, out=tmp,
                                    overwrite=True, **settings)
                seconds.append(time.perf_counter() - t)
                accs.append(probe(run.embed(ds.train.x), y, seed))
                rand = build_encoder(run.resolved, seed=seed + 1000)
                random_accs.append(probe(encode_storage(rand, run.modality, run.spec, ds.train.x), y, seed))
        out["methods"][method] = {"acc": accs, "acc_mean": float(np.mean(accs)), "random_encoder": random_accs,
                                  "random_encoder_mean": float(np.mean(random_accs)), "train_seconds": seconds,
                                  "settings": settings}
        print(f"# nodes {method}: {np.mean(accs):.2f} (random {np.mean(random_accs):.2f})", file=sys.stderr, flush=True)
    out["baselines"] = {k: {"acc": v, "acc_mean": float(np.mean(v))} for k, v in out["baselines"].items()}
    return out
