"""Each loss function against a value computed by hand from its paper's formula."""
import math

import pytest
import torch

from selfsup.methods.barlow_twins import barlow_twins_loss, off_diagonal
from selfsup.methods.byol import byol_loss
from selfsup.methods.moco import moco_loss
from selfsup.methods.simclr import nt_xent_loss
from selfsup.methods.simsiam import simsiam_loss
from selfsup.methods.vicreg import vicreg_loss


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_nt_xent_hand_computed():
    # anchors a=[1,0], b=[0,1]; each positive has similarity 1 (logit 1/0.5 = 2), both negatives 0 (logit 0)
    z = t([[1, 0], [0, 1]])
    assert nt_xent_loss(z, z.clone(), temperature=0.5).item() == pytest.approx(math.log(1 + 2 * math.exp(-2)), abs=1e-6)


def test_nt_xent_scale_invariant_and_prefers_aligned_views():
    z1 = torch.randn(8, 16)
    assert nt_xent_loss(z1, z1 * 3).item() < nt_xent_loss(z1, torch.randn(8, 16)).item()
    assert nt_xent_loss(z1, z1 * 3).item() == pytest.approx(nt_xent_loss(z1, z1).item(), abs=1e-5)


def test_moco_hand_computed():
    # positive similarity 1 -> logit 5; negatives 0 and -1 -> logits 0 and -5 (temperature 0.2)
    loss = moco_loss(t([[1, 0]]), t([[2, 0]]), t([[0, 1], [-1, 0]]), temperature=0.2)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-5) + math.exp(-10)), abs=1e-6)


def test_byol_and_simsiam_hand_computed():
    p, z = t([[1, 0], [1, 1]]), t([[0, 1], [2, 2]])  # cosines 0 and 1
    assert byol_loss(p, z).item() == pytest.approx((2 + 0) / 2, abs=1e-6)
    assert simsiam_loss(p, z).item() == pytest.approx(-(0 + 1) / 2, abs=1e-6)


def test_byol_and_simsiam_stop_gradient():
    p, z = t([[1, 0.5]]).requires_grad_(), t([[0.3, 1]]).requires_grad_()
    (byol_loss(p, z) + simsiam_loss(p, z)).backward()
    assert z.grad is None and p.grad is not None


def test_off_diagonal():
    m = t([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    assert off_diagonal(m).tolist() == [2, 3, 4, 6, 7, 8]


def test_barlow_twins_hand_computed():
    # standardised z1 = [[1,1],[-1,-1]], z2 = [[1,-1],[-1,1]] -> C = [[1,-1],[1,-1]]
    # on-diagonal (1-1)^2 + (-1-1)^2 = 4; off-diagonal (-1)^2 + 1^2 = 2
    lam = 0.0051
    loss = barlow_twins_loss(t([[1, 1], [-1, -1]]), t([[1, -1], [-1, 1]]), lambd=lam)
    assert loss.item() == pytest.approx(4 + 2 * lam, abs=1e-3)
    assert barlow_twins_loss(t([[1, 1], [-1, -1]]) * 5 + 3, t([[1, 1], [-1, -1]]), lambd=0).item() == \
        pytest.approx(0.0, abs=1e-3)


def test_vicreg_hand_computed():
    # z1 = [[1,2],[3,4]], z2 = [[1,2],[3,6]]: invariance mean((0,0,0,-2)^2) = 1; all stds > 1 -> variance 0;
    # cov1 = [[2,2],[2,2]] -> (4+4)/2 = 4; cov2 = [[2,4],[4,8]] -> (16+16)/2 = 16
    assert vicreg_loss(t([[1, 2], [3, 4]]), t([[1, 2], [3, 6]])).item() == pytest.approx(25 * 1 + 0 + 1 * 20, rel=1e-5)
    # identical, nearly collapsed views: var = 0.02 per dim, std = sqrt(0.0201); cov off-diagonal 0.02
    z = t([[0, 0], [0.2, 0.2]])
    hinge = 1 - math.sqrt(0.02 + 1e-4)
    expected = 25 * 0 + 25 * hinge + 1 * 2 * (2 * 0.02**2 / 2)
    assert vicreg_loss(z, z.clone()).item() == pytest.approx(expected, rel=1e-4)
