"""TS2Vec's hierarchical contrastive loss (hand-computed cases, a loop reference, padding masks) and the
masked-reconstruction objective; both methods stay modality-agnostic."""
import inspect
import math

import numpy as np
import pytest
import torch
from torch import nn

import selfsup
from selfsup.encoders import SequenceEncoder
from selfsup.errors import ConfigError
from selfsup.methods import masked_reconstruction as mr
from selfsup.methods import ts2vec
from selfsup.methods.base import StepInfo
from selfsup.methods.ts2vec import TS2Vec, hierarchical_contrastive_loss
from selfsup.modalities import get_modality
from selfsup.modalities.sequences.augment import geometric_noise_mask
from selfsup.training.step import optimisation_step


def reference_loss(z1: np.ndarray, z2: np.ndarray, alpha: float = 0.5) -> float:
    """TS2Vec's loss written out with loops over anchors (no masks, temporal_unit 0)."""

    def contrast(groups):  # groups: list of (items [2n, D]); item k's positive is k +- n
        total, count = 0.0, 0
        for items in groups:
            m = len(items) // 2
            for k in range(2 * m):
                pos = k + m if k < m else k - m
                logits = [float(items[k] @ items[j]) for j in range(2 * m) if j != k]
                others = [j for j in range(2 * m) if j != k]
                lse = math.log(sum(math.exp(v) for v in logits))
                total += lse - logits[others.index(pos)]
                count += 1
        return total / count

    loss, d = 0.0, 0
    while z1.shape[1] > 1:
        b, t = z1.shape[:2]
        inst = 0.0 if b == 1 else contrast([np.concatenate([z1[:, s], z2[:, s]]) for s in range(t)])
        temp = contrast([np.concatenate([z1[i], z2[i]]) for i in range(b)])
        loss += alpha * inst + (1 - alpha) * temp
        d += 1
        t2 = t // 2
        z1 = z1[:, : 2 * t2].reshape(b, t2, 2, -1).max(axis=2)
        z2 = z2[:, : 2 * t2].reshape(b, t2, 2, -1).max(axis=2)
    if z1.shape[1] == 1:
        b = z1.shape[0]
        loss += alpha * (0.0 if b == 1 else contrast([np.concatenate([z1[:, 0], z2[:, 0]])]))
        d += 1
    return loss / d


def test_hand_computed_single_step_instance_case():
    # B=2, T=1, orthogonal unit vectors, identical crops: every anchor has logits (1 positive, 0, 0)
    z = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    expected = 0.5 * math.log(1 + 2 / math.e)  # alpha * instance term, one level
    assert hierarchical_contrastive_loss(z, z.clone()).item() == pytest.approx(expected, rel=1e-6)


def test_hand_computed_temporal_case_with_pooling():
    # B=1 (no instance term), T=2 with values +1, -1: temporal logits (1 positive, -1, -1) for every anchor;
    # then max-pooling gives one step (instance term 0 with B=1): two levels in all.
    z = torch.tensor([[[1.0], [-1.0]]])
    expected = 0.5 * math.log(1 + 2 * math.exp(-2)) / 2
    assert hierarchical_contrastive_loss(z, z.clone()).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("shape", [(3, 5, 4), (4, 8, 3), (2, 7, 6)])
def test_matches_loop_reference(shape):
    g = torch.Generator().manual_seed(sum(shape))
    z1, z2 = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    got = hierarchical_contrastive_loss(z1, z2).item()
    assert got == pytest.approx(reference_loss(z1.numpy().astype(np.float64), z2.numpy().astype(np.float64)),
                                rel=1e-5)


def test_padded_steps_do_not_matter_to_the_loss():
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(4, 9, 5, generator=g, requires_grad=True)
    z2 = torch.randn(4, 9, 5, generator=g)
    valid = torch.ones(4, 9, dtype=torch.bool)
    valid[1, 6:] = False
    valid[3, 3:] = False
    base = hierarchical_contrastive_loss(z1, z2, valid)
    base.backward()
    assert torch.all(z1.grad[~valid] == 0) and torch.any(z1.grad[valid] != 0)
    garbage1, garbage2 = z1.detach().clone(), z2.clone()
    garbage1[~valid] = 50 * torch.randn(int((~valid).sum()), 5, generator=g)
    garbage2[~valid] = -30.0
    assert hierarchical_contrastive_loss(garbage1, garbage2, valid).item() == pytest.approx(base.item(), rel=1e-6)
    # with an all-true mask the loss is TS2Vec's unmasked loss, and a change in a valid step changes it
    assert hierarchical_contrastive_loss(z1, z2, torch.ones(4, 9, dtype=torch.bool)).item() == pytest.approx(
        hierarchical_contrastive_loss(z1, z2).item(), rel=1e-6)
    moved = z1.detach().clone()
    moved[0, 0] += 1.0
    assert hierarchical_contrastive_loss(moved, z2, valid).item() != pytest.approx(base.item(), rel=1e-6)


class SeqEncoder(SequenceEncoder):
    """A tiny per-step encoder, independent of any modality: a 3-tap conv, NaN -> 0, hidden steps -> 0."""

    def __init__(self, c=2, d=8):
        super().__init__()
        self.input_width, self.out_dim = c, d
        self.proj = nn.Conv1d(c, d, 3, padding=1)

    def forward_sequence(self, x, step_mask=None):
        x = torch.nan_to_num(x)
        if step_mask is not None:
            x = x.masked_fill(~step_mask.unsqueeze(1), 0.0)
        return self.proj(x).transpose(1, 2)

    def forward(self, x):
        return self.forward_sequence(x).amax(1)


def series_views(method, x, seed=0):
    """The views the time-series modality makes for `method`'s request (with a seeded generator)."""
    modality = get_modality("timeseries")
    maker = modality.view_maker(method.view_request(), modality.fit_spec(x))
    return maker(x, torch.Generator().manual_seed(seed))


def test_ts2vec_trains_on_any_sequence_encoder_and_averages_weights():
    torch.manual_seed(0)
    enc = SeqEncoder()
    method = TS2Vec(enc)
    opt = torch.optim.AdamW(method.online.parameters(), lr=1e-2)
    x = torch.randn(6, 2, 16)
    x[2, :, 10:] = float("nan")  # a shorter series
    w0 = method.encoder.proj.weight.detach().clone()
    online0 = method.online.proj.weight.detach().clone()
    updates = []
    for step in range(3):
        loss, _ = optimisation_step(method, method, opt, series_views(method, x, step), StepInfo(step, 0.5),
                                    torch.device("cpu"), "fp32")
        updates.append(method.online.proj.weight.detach().clone())
        assert math.isfinite(loss.item())
    # the saved encoder is the equal-weight average of the initial and the 3 updated weights
    torch.testing.assert_close(method.encoder.proj.weight, (online0 + sum(updates)) / 4)
    assert not torch.equal(method.encoder.proj.weight, w0)
    assert method.n_averaged == 4 and method.extra_state() == {"n_averaged": 4}
    assert method.momentum_pairs() == [(method.online, method.encoder)]  # the average is never optimised


def test_overlapping_crops_share_their_common_steps():
    """The two crops hold the same values on the overlap (before masking), and padding is not valid there."""
    method = TS2Vec(SeqEncoder(), mask_p=0.0)
    x = torch.randn(5, 2, 40)
    x[1, :, 25:] = float("nan")
    for seed in range(10):
        views = series_views(method, x, seed)
        ov = views.overlap
        a = views.global_views[0][..., ov.start_first:ov.start_first + ov.length]
        b = views.global_views[1][..., ov.start_second:ov.start_second + ov.length]
        torch.testing.assert_close(a, b, equal_nan=True)
        assert torch.equal(ov.valid, ~torch.isnan(a).all(1))
        assert all(bool(k.all()) for k in views.keep)  # mask_p=0: nothing hidden
        assert ov.length >= 2


def test_methods_need_per_step_encoders_and_import_no_modality():
    """The encoder protocol is declared and checked before training: a pooled-only encoder is refused."""
    from selfsup.encoders import Encoder
    from selfsup.modalities.timeseries.encoders import series_encoders

    class Pooled(Encoder):
        out_dim = 4

        def forward(self, x, mask=None):
            return torch.nan_to_num(x).mean(-1)[:, :1].repeat(1, 4)

    series_encoders.add("pooled_test", lambda spec, **o: Pooled(), "test-only pooled encoder")
    try:
        data = selfsup.api.dataset_from_array(np.random.default_rng(0).standard_normal((32, 1, 16)),
                                              modality="timeseries")
        for name in ("ts2vec", "masked_reconstruction"):
            with pytest.raises(ConfigError, match="needs a sequence encoder.*'pooled_test' is not one"):
                selfsup.train(data, method=name, encoder="pooled_test", epochs=1, threads=1)
    finally:
        series_encoders.remove("pooled_test")
    for module in (ts2vec, mr):
        src = inspect.getsource(module)
        assert "from ..modalities" not in src and "selfsup.modalities" not in src


def test_geometric_mask_ratio_and_segment_length():
    g = torch.Generator().manual_seed(0)
    m = geometric_noise_mask((400, 3), 200, ratio=0.15, mean_span=3.0, generator=g)
    assert m.shape == (400, 3, 200)
    assert m.float().mean().item() == pytest.approx(0.15, abs=0.01)
    flat = m.reshape(-1, 200).int()
    starts = ((flat[:, 1:] == 1) & (flat[:, :-1] == 0)).sum() + flat[:, 0].sum()
    assert (flat.sum() / starts).item() == pytest.approx(3.0, rel=0.1)  # mean masked run length


def test_masked_loss_counts_only_masked_observed_values():
    target = torch.tensor([[[1.0, 2.0, float("nan"), 4.0]]])
    mask = torch.tensor([[[True, False, True, False]]])
    pred = torch.tensor([[[3.0, 100.0, 100.0, -7.0]]])  # only position 0 counts: (3 - 1)^2
    assert mr.masked_mse_loss(pred, target, mask).item() == pytest.approx(4.0)


def test_masked_reconstruction_learns_on_a_sequence_encoder():
    torch.manual_seed(0)
    enc = SeqEncoder(c=2, d=16)
    method = mr.MaskedReconstruction(enc)
    opt = torch.optim.Adam(method.parameters(), lr=1e-2)
    t = torch.linspace(0, 6.28, 32)
    x = torch.stack([torch.sin(t + p) for p in torch.rand(32) * 6]).unsqueeze(1).repeat(1, 2, 1)
    first = None
    for step in range(60):
        loss, _ = method(series_views(method, x, step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first
