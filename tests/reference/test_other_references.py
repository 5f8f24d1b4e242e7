"""selfsup's text, graph, time-series, tabular and audio losses against published implementations.

References: sentence-transformers (SimCSE's in-batch loss, TSDAE's reconstruction loss), PyTorch Geometric's
DeepGraphInfomax (DGI), PyGCL by GRACE's authors (GRACE, InfoGraph, BGRL, GraphCL), the `ts2vec` package, a copy of
the authors' code (TS2Vec), TabularS3L (SCARF, VIME), lucidrains' byol-pytorch, on which BYOL-A's code is built
(BYOL-A). Each check builds both sides from the same tensors or weights and compares values and gradients (fp32,
rtol 1e-5); where selfsup departs on purpose, the test states the departure exactly.
"""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _compare import assert_close, value_and_grad
from _other import pygcl, require
from selfsup.methods.bgrl import bgrl_loss
from selfsup.methods.byol_a import BYOLA
from selfsup.methods.dgi import DGI, BilinearScore
from selfsup.methods.grace import grace_loss
from selfsup.methods.graphcl import graphcl_loss
from selfsup.methods.infograph import jsd_local_global_loss
from selfsup.methods.scarf import info_nce_loss
from selfsup.methods.simclr import nt_xent_loss
from selfsup.methods.simcse import simcse_loss
from selfsup.methods.ts2vec import hierarchical_contrastive_loss
from selfsup.methods.tsdae import PAD, tsdae_loss
from selfsup.methods.vime import vime_loss
from selfsup.views import Views
from selfsup.methods.base import StepInfo


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def assert_same_value_and_grad(ours, theirs, *inputs, scale=1.0):
    """ours(*inputs) == scale * theirs(*inputs), and so are their gradients with respect to every input."""
    value, grads = value_and_grad(ours, *inputs)
    ref_value, ref_grads = value_and_grad(theirs, *inputs)
    assert_close(value, scale * ref_value)
    for g, ref in zip(grads, ref_grads):
        assert_close(g, scale * ref)


# ---- SimCSE: sentence-transformers' MultipleNegativesRankingLoss ----

def mnrl_module():
    return require("sentence_transformers.sentence_transformer.losses.multiple_negatives_ranking")


def test_simcse_loss_is_multiple_negatives_ranking_at_scale_20():
    """Temperature 0.05 is the scale 20 of MNRL's default (cosine, query -> documents only)."""
    mnrl = mnrl_module().MultipleNegativesRankingLoss(None)
    assert mnrl.scale == 20.0 and mnrl.directions == ("query_to_doc",)
    z1, z2 = randn(8, 16, seed=1), randn(8, 16, seed=2)
    assert_same_value_and_grad(lambda a, b: simcse_loss(a, b, 0.05),
                               lambda a, b: mnrl.compute_loss_from_embeddings([a, b], None), z1, z2)


def test_simcse_is_one_direction_not_mnrl_symmetric():
    """The paper's loss is z1 -> z2 only; MNRL's symmetric form (also doc -> query, per-direction softmax) is the
    mean of both directions, which selfsup's SimCSE does not use."""
    m = mnrl_module()
    symmetric = m.MultipleNegativesRankingLoss(None, directions=("query_to_doc", "doc_to_query"),
                                               partition_mode="per_direction")
    z1, z2 = randn(8, 16, seed=3), randn(8, 16, seed=4)
    both = symmetric.compute_loss_from_embeddings([z1, z2], None)
    assert_close(both, 0.5 * (simcse_loss(z1, z2) + simcse_loss(z2, z1)))
    assert (both - simcse_loss(z1, z2)).abs() > 1e-3


def test_simcse_across_processes_matches_mnrl_gathered(monkeypatch):
    """Under torchrun each process scores its own z1 against the global batch's z2 from `offset` on: MNRL with
    gather_across_devices on rank 1 of 3 (its all-gather replaced by the global batch, built around the local part)."""
    m = mnrl_module()
    world, b, rank = 3, 4, 1
    z1_all, z2_all = randn(world * b, 8, seed=5), randn(world * b, 8, seed=6)

    def insert(full, local):  # the global batch with this rank's rows being `local` (gradients flow to them)
        return torch.cat([full[:rank * b], local, full[(rank + 1) * b:]])
    pending = []
    monkeypatch.setattr(m, "all_gather_with_grad", lambda local: insert(pending.pop(0), local))  # queries, then docs
    monkeypatch.setattr(m, "get_rank", lambda: rank)
    mnrl = m.MultipleNegativesRankingLoss(None, gather_across_devices=True)
    local1, local2 = z1_all[rank * b:(rank + 1) * b], z2_all[rank * b:(rank + 1) * b]

    def theirs(a, c):
        pending[:] = [z1_all, z2_all]
        return mnrl.compute_loss_from_embeddings([a, c], None)
    assert_same_value_and_grad(lambda a, c: simcse_loss(a, insert(z2_all, c), 0.05, rank * b), theirs, local1, local2)
    assert not pending


# ---- TSDAE: sentence-transformers' DenoisingAutoEncoderLoss on given logits ----

def test_tsdae_loss_is_denoising_auto_encoder_loss_on_the_same_logits():
    """DenoisingAutoEncoderLoss.forward run with a stand-in encoder and decoder that return given tensors: the
    decoder sees the sentence vector as its only memory (one position, as selfsup's), and the loss is the cross
    entropy over the non-padding target ids. The departure (documented): the reference feeds ids[:, :-1] starting
    with [CLS] and predicts ids[:, 1:]; selfsup begins with a learned start vector and predicts every id."""
    module = require("sentence_transformers.sentence_transformer.losses.denoising_auto_encoder")
    ids = torch.tensor([[101, 7, 9, 4, 102, PAD, PAD], [101, 5, 3, 3, 8, 6, 102]])
    vocab = 110
    sentence = randn(2, 12, seed=7)
    logits = randn(2, ids.shape[1] - 1, vocab, seed=8)
    seen = {}

    def decoder(input_ids, encoder_hidden_states, **kwargs):
        seen["input_ids"], seen["memory"] = input_ids, encoder_hidden_states
        return (seen["logits"],)

    def reference(lg):
        seen["logits"] = lg
        stand_in = SimpleNamespace(encoder=lambda features: {"sentence_embedding": sentence}, decoder=decoder,
                                   need_retokenization=False, tokenizer_decoder=SimpleNamespace(pad_token_id=PAD))
        features = {"input_ids": ids, "attention_mask": (ids != PAD).long()}
        return module.DenoisingAutoEncoderLoss.forward(stand_in, [features, features], None)

    assert_same_value_and_grad(lambda lg: tsdae_loss(lg, ids[:, 1:]), reference, logits)
    assert torch.equal(seen["input_ids"], ids[:, :-1])
    assert seen["memory"].shape == (2, 1, 12) and torch.equal(seen["memory"][:, 0], sentence)


# ---- DGI: PyTorch Geometric's DeepGraphInfomax ----

def small_graphs(sizes=(7, 5), width=3, seed=0):
    from selfsup.modalities.graph.codec import Graph, pack
    rng = np.random.default_rng(seed)
    graphs = []
    for n in sizes:
        edges = [(i, i + 1) for i in range(n - 1)] + [(0, n - 1)]
        edges += [(b, a) for a, b in edges]
        graphs.append(Graph(n, np.array(edges, dtype=np.int64), np.zeros((n, 0), dtype=np.int64),
                            rng.standard_normal((n, width)), np.zeros((len(edges), 0), dtype=np.int64),
                            np.zeros((len(edges), 0))))
    return pack(graphs, "test")


def test_dgi_step_is_half_of_deep_graph_infomax_on_one_graph():
    """The same GIN encoder, bilinear weight W and corruption (the node rows permuted): selfsup's DGI loss is PyG's
    divided by 2 (PyG sums the positive and negative BCE terms, DGI's code averages them over the 2N logits, as
    selfsup); the bias of DGI's nn.Bilinear (absent in PyG) starts at zero. Values and the gradients of encoder and W
    agree."""
    geometric = require("torch_geometric.nn")
    from dataclasses import replace

    from selfsup.modalities import get_modality, new_encoder
    from selfsup.modalities.graph.codec import assemble, padded
    x = small_graphs(sizes=(9,))
    torch.manual_seed(1)
    p = padded(x)  # the corruption DGI draws from torch's generator at seed 1, applied to the graph for PyG
    nodes = p.nodes.clone()
    nodes[p.node_valid] = p.nodes[p.node_valid][torch.randperm(int(p.node_valid.sum()))]
    corrupted = assemble(replace(p, nodes=nodes))
    torch.manual_seed(0)
    encoder = new_encoder(get_modality("graph"), "gin", {"node_width": 3}).eval()
    method = DGI(encoder)
    state = {k: v.clone() for k, v in encoder.state_dict().items()}

    class NodeFeatures(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = encoder

        def forward(self, graph):
            return self.inner.node_outputs(graph).features

    reference = geometric.DeepGraphInfomax(encoder.node_dim, NodeFeatures(), lambda z, *a: torch.sigmoid(z.mean(0)),
                                           lambda graph: corrupted)
    encoder.load_state_dict(state)  # PyG re-initialises the encoder it is given
    with torch.no_grad():
        reference.weight.copy_(method.discriminator.weight)
    assert float(method.discriminator.bias.detach()) == 0.0
    params = [p for p in encoder.parameters()] + [method.discriminator.weight]
    torch.manual_seed(1)
    ours, _ = method(Views([x]))
    theirs = reference.loss(*reference(x))
    assert_close(ours, 0.5 * theirs)
    grads = torch.autograd.grad(ours, params)
    ref_grads = torch.autograd.grad(theirs, params[:-1] + [reference.weight])
    for g, ref in zip(grads, ref_grads):
        assert_close(g, 0.5 * ref)


def test_dgi_scores_each_graph_against_its_own_summary_as_pyg_per_graph():
    """With several graphs in a batch, every node's score is PyG's discriminate() with its own graph's summary."""
    geometric = require("torch_geometric.nn")
    d, owner = 6, torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    nodes, summaries = randn(len(owner), d, seed=9), torch.sigmoid(randn(3, d, seed=10))
    score = BilinearScore(d)
    reference = geometric.DeepGraphInfomax(d, torch.nn.Identity(), None, None)
    with torch.no_grad():
        reference.weight.copy_(score.weight)
    expected = torch.cat([reference.discriminate(nodes[owner == g], summaries[g], sigmoid=False) for g in range(3)])
    assert_close(score(nodes, summaries, owner), expected)


# ---- GRACE, InfoGraph, BGRL, GraphCL: PyGCL (Zhu et al.) ----

def test_grace_loss_is_pygcl_infonce_with_intra_view_negatives():
    """PyGCL's SameScaleSampler(intraview_negs=True) masks + InfoNCE, both directions averaged: GRACE's loss (the
    other view's nodes and the own view's other nodes as negatives). PyGCL's DualBranchContrast itself replaces the
    sampler's negative mask by 1 - pos_mask (`add_extra_mask` without extra masks), which puts each anchor's
    similarity to itself, e^(1/t), into its denominator: not GRACE's loss (its code subtracts refl_sim.diag())."""
    losses, models = pygcl()
    sampler, info_nce = models.SameScaleSampler(intraview_negs=True), losses.InfoNCE(tau=0.5)
    u, v = randn(10, 8, seed=11), randn(10, 8, seed=12)

    def one_side(a, b, override=False):
        anchor, sample, pos, neg = sampler(anchor=a, sample=b)
        return info_nce(anchor=anchor, sample=sample, pos_mask=pos, neg_mask=1 - pos if override else neg)
    assert_same_value_and_grad(lambda a, b: grace_loss(a, b, 0.5),
                               lambda a, b: 0.5 * (one_side(a, b) + one_side(b, a)), u, v)
    dual = models.DualBranchContrast(info_nce, mode="L2L", intraview_negs=True)(h1=u, h2=v)
    assert_close(dual, 0.5 * (one_side(u, v, True) + one_side(v, u, True)))
    assert dual - grace_loss(u, v, 0.5) > 1e-2


def test_infograph_jsd_loss_is_pygcl_jsd_global_to_local():
    """Node-graph pairs: a node and its own graph positive, every other graph of the batch negative."""
    losses, models = pygcl()
    owner = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3])
    local, global_ = randn(len(owner), 6, seed=13), randn(4, 6, seed=14)

    def theirs(lo, gl):
        anchor, sample, pos, neg = models.CrossScaleSampler().sample(gl, lo, batch=owner, use_gpu=False)
        return losses.JSD()(anchor=anchor, sample=sample, pos_mask=pos, neg_mask=neg)
    assert_same_value_and_grad(lambda lo, gl: jsd_local_global_loss(lo, gl, owner), theirs, local, global_)


def test_bgrl_loss_is_two_minus_twice_pygcl_bootstrap_latent():
    """PyGCL's BootstrapContrast returns the mean cosine of predictions and targets (to maximise); BGRL's loss is
    2 - 2 x that, with the targets detached."""
    losses, models = pygcl()
    reference = models.BootstrapContrast(losses.BootstrapLatent(), mode="L2L")
    p1, p2, y1, y2 = (randn(9, 5, seed=s) for s in (15, 16, 17, 18))
    value, grads = value_and_grad(bgrl_loss, p1, p2, y1, y2)
    ref_value, ref_grads = value_and_grad(lambda a, b, c, d: reference(h1_pred=a, h2_pred=b, h1_target=c,
                                                                       h2_target=d), p1, p2, y1, y2)
    assert_close(value, 2 - 2 * ref_value)
    assert_close(grads[0], -2 * ref_grads[0])
    assert_close(grads[1], -2 * ref_grads[1])
    assert not grads[2].any() and not grads[3].any()  # no gradient into the EMA targets


def test_graphcl_departs_from_pygcl_infonce_by_leaving_the_positive_out():
    """selfsup's GraphCL is the official `loss_cal`: one direction, the positive left out of the denominator. PyGCL's
    InfoNCE keeps it: per anchor, ours = theirs + log(1 - p_ii), p_ii the positive's softmax probability; PyGCL's
    GraphCL example (both directions averaged) differs again."""
    losses, models = pygcl()
    z, z_aug = randn(12, 8, seed=19), randn(12, 8, seed=20)
    eye = torch.eye(12)
    one_way = losses.InfoNCE(tau=0.2)(anchor=z, sample=z_aug, pos_mask=eye, neg_mask=1 - eye)
    p_own = torch.softmax(F.normalize(z, dim=1) @ F.normalize(z_aug, dim=1).T / 0.2, dim=1).diagonal()
    ours = graphcl_loss(z, z_aug, 0.2)
    assert_close(ours, one_way + torch.log1p(-p_own).mean())
    both = models.DualBranchContrast(losses.InfoNCE(tau=0.2), mode="G2G")(g1=z, g2=z_aug)
    assert (ours - one_way).abs() > 1e-3 and (ours - both).abs() > 1e-3


# ---- TS2Vec: the ts2vec package (the authors' models/losses.py) ----

@pytest.mark.parametrize("shape, alpha, temporal_unit", [((4, 16, 8), 0.5, 0), ((3, 13, 5), 0.5, 0),
                                                         ((5, 9, 6), 0.3, 1), ((1, 7, 4), 0.5, 0),
                                                         ((4, 1, 4), 0.5, 0), ((6, 20, 3), 1.0, 0)])
def test_ts2vec_hierarchical_loss_matches_the_official_code(shape, alpha, temporal_unit):
    """Odd lengths (a step dropped by the pooling), one series (no instance term), one step, alpha 1."""
    official = require("ts2vec.models.losses")
    z1, z2 = randn(*shape, seed=21), randn(*shape, seed=22)
    assert_same_value_and_grad(lambda a, b: hierarchical_contrastive_loss(a, b, None, alpha, temporal_unit),
                               lambda a, b: official.hierarchical_contrastive_loss(a, b, alpha, temporal_unit),
                               z1, z2)


# ---- SCARF and VIME: TabularS3L ----

def test_scarf_uses_the_papers_info_nce_not_tabulars3l_nt_xent():
    """TabularS3L's SCARF trains with SimCLR's NT-Xent (both directions, the anchors' own rows also negatives):
    equal to selfsup's nt_xent_loss. selfsup's SCARF keeps the paper's InfoNCE (each anchor against the batch's
    corrupted rows), a different value; its symmetric option averages the two directions of that InfoNCE."""
    loss = require("ts3l.models.scarf.loss")
    a, b = randn(16, 8, seed=23), randn(16, 8, seed=24)
    reference = loss.NTXentLoss(temperature=0.5)
    assert_same_value_and_grad(lambda x, y: nt_xent_loss(x, y, 0.5), reference, a, b)
    assert (info_nce_loss(a, b, 0.5) - reference(a, b)).abs() > 1e-2
    assert (info_nce_loss(a, b, 0.5, symmetric=True) - reference(a, b)).abs() > 1e-2


def test_vime_loss_is_tabulars3l_first_phase_loss_on_the_same_model():
    """TabularS3L's VIME (continuous features): BCE(sigmoid(mask logits), m) + alpha2 x MSE(reconstruction, x),
    alpha2 = 2 by default, as selfsup's; the same forward pass of TabularS3L's model is scored by both, and the
    gradients of its parameters agree."""
    require("pytorch_lightning")
    lightning = require("ts3l.pl_modules")
    configs = require("ts3l.utils.vime_utils")
    embedding = require("ts3l.utils.embedding_utils")
    backbone = require("ts3l.utils.backbone_utils")
    d = 5
    config = configs.VIMEConfig(task="classification", embedding_config=embedding.IdentityEmbeddingConfig(input_dim=d),
                                backbone_config=backbone.MLPBackboneConfig(input_dim=d), output_dim=2,
                                loss_fn="CrossEntropyLoss", num_continuous=d, cat_cardinality=[])
    module = lightning.VIMELightning(config).eval()
    captured = {}
    module.model.mask_predictor.register_forward_hook(lambda m, i, out: captured.__setitem__("logits", out))
    module.model.feature_predictor.register_forward_hook(lambda m, i, out: captured.__setitem__("rebuilt", out[1]))
    x = randn(12, d, seed=25)
    mask = torch.rand(12, d, generator=torch.Generator().manual_seed(26)) < 0.3
    x_tilde = torch.where(mask, x[torch.randperm(12, generator=torch.Generator().manual_seed(27))], x)
    theirs = module._get_first_phase_loss((x_tilde, mask.float(), x))
    ours, _, _ = vime_loss(captured["logits"], mask, captured["rebuilt"], x, 2.0)
    assert module.alpha2 == 2.0
    assert_close(ours, theirs)
    params = list(module.model.parameters())
    for g, ref in zip(torch.autograd.grad(ours, params, retain_graph=True, allow_unused=True),
                      torch.autograd.grad(theirs, params, allow_unused=True)):
        if ref is not None:
            assert_close(g, ref)


# ---- BYOL-A: byol-pytorch (BYOL-A's code is built on it) ----

def test_byol_a_loss_is_half_of_byol_pytorch():
    """byol-pytorch (and BYOL-A's copy) sums the two directions' 2 - 2 cos; selfsup's BYOL-A averages them: half the
    value and the gradients, the same Adam steps up to its epsilon."""
    reference = require("byol_pytorch.byol_pytorch")
    p1, p2, t1, t2 = (randn(6, 8, seed=s) for s in (28, 29, 30, 31))
    method = BYOLA.__new__(BYOLA)  # only the loss of the method's step: predictions and targets given

    def ours(a, b, c, d):
        method.predictions_and_targets = lambda views: (a, b, c, d)
        return BYOLA.loss_on_views(method, None, StepInfo())[0]

    def theirs(a, b, c, d):
        return (reference.cosine_loss_fn(a, d.detach()) + reference.cosine_loss_fn(b, c.detach())).mean()
    assert_same_value_and_grad(ours, theirs, p1, p2, t1, t2, scale=0.5)
