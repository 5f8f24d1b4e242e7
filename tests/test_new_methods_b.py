"""W-MSE, FastSiam, EMP-SSL and LeJEPA: each loss against values computed by hand from its paper's formula, and the
methods' own parts (views requested, sub-batches, the step's random directions)."""
import math

import pytest
import torch

from selfsup.methods.base import StepInfo
from selfsup.methods.emp_ssl import EMPSSL, emp_ssl_loss, total_coding_rate
from selfsup.methods.fastsiam import FastSiam, fastsiam_loss
from selfsup.methods.lejepa import LeJEPA, lejepa_loss, random_directions, sigreg
from selfsup.methods.wmse import WMSE, cholesky_whiten, random_partition, wmse_loss
from selfsup.views import Views


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def linear_encoder(d_in=6, d_out=5):
    enc = torch.nn.Linear(d_in, d_out)
    enc.out_dim = d_out
    return enc


# ---- W-MSE ----

GRID = t([[1, 1], [-1, 1], [1, -1], [-1, -1]])  # mean 0, covariance 4/3 I (unbiased, n - 1 = 3)


def test_cholesky_whitening_by_hand():
    # Sigma = 4/3 I -> L = sqrt(4/3) I -> whitened rows = rows * sqrt(3) / 2
    assert torch.allclose(cholesky_whiten(GRID), GRID * math.sqrt(3) / 2, atol=1e-6)
    # an anisotropic, shifted sample: rows (+-1, 0), (0, +-2) + 5 -> Sigma = diag(2/3, 8/3)
    z = t([[1, 0], [-1, 0], [0, 2], [0, -2]])
    expected = z / torch.tensor([math.sqrt(2 / 3), math.sqrt(8 / 3)])
    assert torch.allclose(cholesky_whiten(z + 5), expected, atol=1e-5)
    # shrinkage eps = 0.5: (1 - eps) Sigma + eps I = diag(1/3 + 1/2, 4/3 + 1/2)
    expected = z / torch.tensor([math.sqrt(1 / 3 + 0.5), math.sqrt(4 / 3 + 0.5)])
    assert torch.allclose(cholesky_whiten(z, eps=0.5), expected, atol=1e-5)


def test_whitened_rows_have_identity_covariance():
    """Exact to rounding in float64; float32 loses digits with the covariance's condition number (one random 5 x 5
    mixing in ten misses 1e-4 in float32), so the draw is seeded."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 5, generator=g, dtype=torch.float64) @ torch.randn(5, 5, generator=g, dtype=torch.float64) + 3
    w, w32 = cholesky_whiten(z), cholesky_whiten(z.float())
    eye = torch.eye(5, dtype=torch.float64)
    assert torch.allclose(w.mean(0), torch.zeros(5, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(w.T @ w / 63, eye, atol=1e-10)
    assert torch.allclose(w32.mean(0), torch.zeros(5), atol=1e-4)
    assert torch.allclose(w32.T @ w32 / 63, eye.float(), atol=1e-4)


def test_wmse_defaults_whiten_sub_batches_with_more_rows_than_dimensions():
    """On the default batch (256), W-MSE's defaults whiten two sub-batches of 128 rows of 64-d projections: full-rank
    covariances, no shrinkage (the paper's path; tests/test_image_defaults.py trains it on 64 items, where the n <= d
    fallback shrinks)."""
    from selfsup.config import TrainConfig

    hp, batch = WMSE.hyperparameters(), TrainConfig.__dataclass_fields__["batch_size"].default
    parts = random_partition(batch, hp["w_size"], torch.device("cpu"))
    assert [len(p) for p in parts] == [128, 128] and all(len(p) > hp["proj_dim"] for p in parts)
    z = torch.randn(128, hp["proj_dim"], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    w = cholesky_whiten(z)
    assert torch.allclose(w.T @ w / 127, torch.eye(hp["proj_dim"], dtype=torch.float64), atol=1e-10)


def test_wmse_loss_by_hand():
    all_rows = [torch.arange(4)]
    # view 2 = view 1 with the second coordinate negated: whitened rows (a, b) and (a, -b) with |a| = |b| -> cos 0
    assert wmse_loss([GRID, GRID * t([1, -1])], [all_rows]).item() == pytest.approx(2.0, abs=1e-5)
    # an affine copy whitens to the same rows: cos 1 -> 0
    assert wmse_loss([GRID, 3 * GRID + 5], [all_rows]).item() == pytest.approx(0.0, abs=1e-5)
    # 3 views (1, 1 negated, 1 affine): pairs 2, 0 and 2 -> mean 4/3
    three = [GRID, GRID * t([1, -1]), 2 * GRID - 1]
    assert wmse_loss(three, [all_rows]).item() == pytest.approx(4 / 3, abs=1e-5)


def test_wmse_sub_batches_whiten_separately():
    # two sub-batches, each a grid around its own centre: whitened separately, an affine copy still matches (loss 0),
    # while one whitening of all 8 rows would see the two centres and the copy with the other half's centre moved
    z = torch.cat([GRID, GRID + 10])
    moved = torch.cat([GRID, 2 * GRID - 30])  # the second half is an affine copy of its own sub-batch only
    halves = [torch.arange(4), torch.arange(4, 8)]
    assert wmse_loss([z, moved], [halves]).item() == pytest.approx(0.0, abs=1e-4)
    assert wmse_loss([z, moved], [[torch.arange(8)]]).item() > 0.1
    # partitions are averaged: one partition giving 0 and one giving L average to L / 2
    whole = wmse_loss([z, moved], [[torch.arange(8)]]).item()
    assert wmse_loss([z, moved], [halves, [torch.arange(8)]]).item() == pytest.approx(whole / 2, rel=1e-5)


def test_singular_sub_batch_is_shrunk():
    z = torch.randn(3, 5)  # 3 samples in 5 dimensions: singular covariance
    w = cholesky_whiten(z)
    assert torch.isfinite(w).all()


def test_random_partition_sizes():
    for batch, w in [(256, 128), (300, 128), (100, 128), (16, 4)]:
        parts = random_partition(batch, w, torch.device("cpu"))
        assert len(parts) == max(1, batch // w)
        assert sorted(torch.cat(parts).tolist()) == list(range(batch))
        assert min(len(p) for p in parts) >= min(w, batch)


def test_wmse_requests_num_views_and_trains():
    method = WMSE(linear_encoder(), proj_hidden_dim=8, proj_dim=3, num_views=4, w_size=8)
    assert method.view_request().global_views == 4 and method.view_request().recipe == "instance_light"
    loss, _ = method(Views([torch.randn(16, 6) for _ in range(4)]))
    loss.backward()
    assert torch.isfinite(loss) and method.encoder.weight.grad.abs().sum() > 0


# ---- FastSiam ----

def test_fastsiam_loss_by_hand():
    z = [t([[1, 0]]), t([[0, 1]]), t([[-1, 0]]), t([[0, -1]])]  # sum 0: the others' mean of view i is -z_i / 3
    assert fastsiam_loss(z, z).item() == pytest.approx(1.0, abs=1e-6)  # every cosine -1
    p = [t([[1, 0]])] * 4  # cosines with -z_i / 3: -1, 0, 1, 0 -> losses 1, 0, -1, 0
    assert fastsiam_loss(p, z).item() == pytest.approx(0.0, abs=1e-6)
    # two samples: sample 2's views all (1, 1): its targets are (1, 1), its predictions (1, 0) -> cos 1/sqrt(2)
    z2 = [torch.cat([v, t([[1, 1]])]) for v in z]
    p2 = [torch.cat([v, t([[1, 0]])]) for v in z]
    assert fastsiam_loss(p2, z2).item() == pytest.approx((1 - 1 / math.sqrt(2)) / 2, abs=1e-6)


def test_fastsiam_stop_gradient_and_four_views():
    p, z = torch.randn(4, 3, 5, requires_grad=True), torch.randn(4, 3, 5, requires_grad=True)
    fastsiam_loss(list(p), list(z)).backward()
    assert z.grad is None and p.grad.abs().sum() > 0
    assert FastSiam.requested_views.global_views == 4


# ---- EMP-SSL ----

def test_total_coding_rate_by_hand():
    # Z = I (b = d = 2): 1/2 logdet((1 + 2 / (2 * 0.2)) I) = log 6
    assert total_coding_rate(torch.eye(2), eps=0.2).item() == pytest.approx(math.log(6), rel=1e-6)
    # collapsed rows e1, e1: Z^T Z = diag(2, 0) -> 1/2 log(1 + 5 * 2)
    assert total_coding_rate(t([[1, 0], [1, 0]]), eps=0.2).item() == pytest.approx(0.5 * math.log(11), rel=1e-6)
    # one row (b < d, the b x b Gram matrix): 1/2 log(1 + 2 / 0.2)
    assert total_coding_rate(t([[1, 0]]), eps=0.2).item() == pytest.approx(0.5 * math.log(11), rel=1e-6)


def test_emp_ssl_loss_by_hand():
    # two identical patches: cos to their mean 1; each patch's coding rate log 6
    assert emp_ssl_loss([torch.eye(2), torch.eye(2)]).item() == pytest.approx(-math.log(6) - 200, rel=1e-6)
    # patches e1 and e2 of one image: mean (1/2, 1/2), cos 1/sqrt(2) each; coding rate 1/2 log(1 + 2 / 0.2) each
    loss = emp_ssl_loss([t([[1, 0]]), t([[0, 1]])], eps=0.2, inv_weight=2.0)
    assert loss.item() == pytest.approx(-0.5 * math.log(11) - 2 / math.sqrt(2), rel=1e-6)


def test_emp_ssl_rewards_spread_embeddings():
    spread, collapsed = torch.eye(4), t([[1, 0, 0, 0]] * 4)
    assert total_coding_rate(spread).item() > total_coding_rate(collapsed).item()


def test_emp_ssl_requests_num_patches_and_normalises():
    method = EMPSSL(linear_encoder(), proj_hidden_dim=8, proj_dim=4, num_patches=3)
    assert method.view_request().global_views == 3
    loss, _ = method(Views([torch.randn(10, 6) for _ in range(3)]))
    loss.backward()
    assert torch.isfinite(loss) and method.encoder.weight.grad.abs().sum() > 0


# ---- LeJEPA ----

def test_sigreg_by_hand():
    # one direction (D = 1), knots 0 and t_max = 1: doubled trapezoid weights (1, 1) times phi = (1, e^-1/2);
    # samples +-1: ecf(t) = cos t, so the error is 0 at t = 0 and (cos 1 - e^-1/2)^2 at t = 1; times N = 2
    z = t([[1], [-1]])
    expected = 2 * math.exp(-0.5) * (math.cos(1) - math.exp(-0.5)) ** 2
    assert sigreg(z, t([[1]]), knots=2, t_max=1.0).item() == pytest.approx(expected, rel=1e-6)
    # samples 0 and 2: ecf(1) = (1 + e^{2i}) / 2 -> |ecf - phi|^2 = ((1 + cos 2) / 2 - e^-1/2)^2 + (sin 2 / 2)^2
    err = ((1 + math.cos(2)) / 2 - math.exp(-0.5)) ** 2 + (math.sin(2) / 2) ** 2
    expected = 2 * math.exp(-0.5) * err
    assert sigreg(t([[0], [2]]), t([[1]]), knots=2, t_max=1.0).item() == pytest.approx(expected, rel=1e-6)


def test_sigreg_prefers_isotropic_gaussian():
    g = torch.Generator().manual_seed(0)
    gaussian = torch.randn(512, 16, generator=g)
    directions = random_directions(16, 64, step=0, device=torch.device("cpu"))
    assert sigreg(gaussian, directions).item() < 3.0  # N x the squared distance: O(1) for a Gaussian sample
    assert sigreg(gaussian * 0.1, directions).item() > 20 * sigreg(gaussian, directions).item()  # shrunk
    assert sigreg(gaussian[:, :1].expand(512, 16), directions).item() > 20 * sigreg(gaussian, directions).item()


def test_lejepa_loss_by_hand():
    # globals (0, 0) and (2, 0) -> centre (1, 0); local (1, 2): squared distances 1, 1, 4 over 3 views x 2 dims
    g, local = [t([[0, 0]]), t([[2, 0]])], [t([[1, 2]])]
    directions = t([[1], [0]])
    assert lejepa_loss(g, local, directions, lambd=0.0).item() == pytest.approx(1.0, rel=1e-6)
    both = lejepa_loss(g, local, directions, lambd=0.25).item()
    reg = sigreg(torch.stack([*g, *local]), directions).item()
    assert both == pytest.approx(0.25 * reg + 0.75 * 1.0, rel=1e-6)


def test_random_directions_are_unit_and_follow_the_step():
    a = random_directions(8, 5, step=3, device=torch.device("cpu"))
    assert torch.allclose(a.norm(dim=0), torch.ones(5), atol=1e-6)
    assert torch.equal(a, random_directions(8, 5, step=3, device=torch.device("cpu")))
    assert not torch.equal(a, random_directions(8, 5, step=4, device=torch.device("cpu")))


def test_lejepa_directions_follow_the_step_the_trainer_passes():
    """The directions come from the step's index (no counter of the method's own), so a resumed run draws the
    directions the uninterrupted one drew at that step."""
    torch.manual_seed(0)
    method = LeJEPA(linear_encoder(), proj_hidden_dim=8, proj_dim=4, local_crops=1, num_slices=16)
    views = Views([torch.randn(10, 6), torch.randn(10, 6)], [torch.randn(10, 6)])
    method.eval()  # BatchNorm with running statistics: only the directions differ between the calls below
    first, _ = method(views, StepInfo(0, 0.0))
    second, _ = method(views, StepInfo(1, 0.1))
    assert first.item() != second.item()
    assert method.extra_state() == {}
    assert torch.equal(method(views, StepInfo(0, 0.5))[0], first)
