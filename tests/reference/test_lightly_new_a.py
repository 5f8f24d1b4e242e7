"""DCL, DCLW, TiCo, MMCR and DirectCLR against LightlySSL 1.6's losses: values and gradients at rtol 1e-5 (fp32),
and TiCo's running covariance over several steps, from its loss function and from the method's buffer."""
import pytest
import torch
import torch.nn.functional as F
from lightly.loss import DCLLoss, DCLWLoss, DirectCLRLoss, MMCRLoss, NTXentLoss, TiCoLoss

from _compare import assert_close, value_and_grad
from selfsup.methods import methods
from selfsup.methods.dcl import dcl_loss
from selfsup.methods.directclr import directclr_loss
from selfsup.methods.mmcr import mmcr_loss
from selfsup.methods.tico import tico_loss
from selfsup.views import Views
from selfsup.methods.base import StepInfo


def pair(seed: int, n: int = 16, d: int = 32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)


def assert_same(ours, theirs, *inputs, offset: float = 0.0):
    """Equal values (theirs = ours + offset) and equal gradients with respect to every input."""
    v_ours, g_ours = value_and_grad(ours, *inputs)
    v_theirs, g_theirs = value_and_grad(theirs, *inputs)
    assert_close(v_ours + offset, v_theirs)
    for a, b in zip(g_ours, g_theirs):
        assert_close(a, b)


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_dcl_equals_lightly(temperature):
    z1, z2 = pair(0)
    assert_same(lambda a, b: dcl_loss(a, b, temperature), DCLLoss(temperature=temperature), z1, z2)
    with pytest.raises(AssertionError):  # the comparison tells DCL from NT-Xent (the positive in the denominator)
        assert_close(dcl_loss(z1, z2, temperature), NTXentLoss(temperature=temperature)(z1, z2))


@pytest.mark.parametrize("sigma", [0.5, 1.0])
def test_dclw_equals_lightly(sigma):
    z1, z2 = pair(1)
    z2 = z2 + 2 * z1  # positives of varied similarity, so the weights differ from 1
    assert_same(lambda a, b: dcl_loss(a, b, 0.1, sigma=sigma), DCLWLoss(temperature=0.1, sigma=sigma), z1, z2)
    with pytest.raises(AssertionError):
        assert_close(dcl_loss(z1, z2, 0.1, sigma=sigma), DCLLoss(temperature=0.1)(z1, z2))


def test_tico_loss_and_covariance_equal_lightly_over_steps():
    """Lightly's TiCoLoss keeps C inside the loss module and adds the constant 1; the gradients are the same."""
    theirs = TiCoLoss(beta=0.9, rho=20.0)
    c = torch.zeros(32, 32)
    for step in range(4):
        z1, z2 = pair(10 + step)
        z2 = z2 + z1
        c_before = c
        assert_same(lambda a, b: tico_loss(a, b, c_before, 0.9, 20.0)[0],
                    lambda a, b: theirs(a, b, update_covariance_matrix=False), z1, z2, offset=1.0)
        theirs(z1, z2)  # now the step that moves lightly's C
        c = tico_loss(z1, z2, c, 0.9, 20.0)[1]
        assert_close(c, theirs.C)


def test_tico_method_buffer_follows_lightly_over_steps():
    torch.manual_seed(0)
    method = methods.get("tico")(SmallEncoder(), proj_hidden_dim=16, proj_dim=8)
    theirs = TiCoLoss(beta=0.9, rho=20.0)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        views = Views([torch.randn(12, 10, generator=g), torch.randn(12, 10, generator=g)])
        loss, _ = method(views)
        with torch.no_grad():
            z1 = method.projector(method.encoder(views.global_views[0]))
            z2 = method.target_projector(method.target_encoder(views.global_views[1]))
            assert_close(loss + 1, theirs(z1, z2))
        method.after_optimizer_step(StepInfo())
        assert_close(method.covariance, theirs.C)


class SmallEncoder(torch.nn.Sequential):
    def __init__(self) -> None:
        super().__init__(torch.nn.Linear(10, 12), torch.nn.BatchNorm1d(12), torch.nn.ReLU())
        self.out_dim = 12


@pytest.mark.parametrize("lambd", [0.0, 5e-3])
def test_mmcr_equals_lightly(lambd):
    """Lightly's MMCRLoss takes unit-norm embeddings of the online and momentum networks, half the views each."""
    z = torch.randn(16, 8, 32, generator=torch.Generator().manual_seed(4))
    z = z + 2 * z[:, :1]  # views of a sample that agree in part

    def lightly_on_unit_views(x):
        u = F.normalize(x, dim=-1)
        return MMCRLoss(lmda=lambd)(u[:, :4], u[:, 4:])

    assert_same(lambda x: mmcr_loss(x, lambd), lightly_on_unit_views, z)


@pytest.mark.parametrize("loss_dim", [5, 20])
def test_directclr_equals_lightly(loss_dim):
    r1, r2 = pair(5, d=48)
    assert_same(lambda a, b: directclr_loss(a, b, loss_dim, 0.5), DirectCLRLoss(loss_dim=loss_dim, temperature=0.5),
                r1, r2)
    with pytest.raises(AssertionError):  # another sub-vector gives another loss
        assert_close(directclr_loss(r1, r2, loss_dim, 0.5), DirectCLRLoss(loss_dim=loss_dim + 3)(r1, r2))
