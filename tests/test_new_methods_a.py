"""DCL, DCLW, TiCo, MMCR and DirectCLR: losses against values computed by hand from the papers' formulas, the
stateful covariance of TiCo, and the multi-process losses against the single-process loss on the global batch."""
import gc
import json
import math

import pytest
import torch
import torch.multiprocessing as mp

from selfsup.methods import methods
from selfsup.methods.dcl import dcl_loss
from selfsup.methods.directclr import directclr_loss, scaled_loss_dim
from selfsup.methods.mmcr import mmcr_loss
from selfsup.methods.simclr import nt_xent_loss
from selfsup.methods.tico import tico_loss
from selfsup.views import Views
from selfsup.methods.base import StepInfo

from test_distributed import TinyEncoder, free_port, gloo_group, grads

E = math.e


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


# ---- DCL / DCLW ----
# z1 = [[1,0],[0,1]], z2 = [[1,0],[-1,0]], tau = 1. Per anchor: -w cos(positive) + log sum exp over the two negatives
#   z1_0: -1 + log(e^0 + e^-1)    z1_1: -0 + log(e^0 + e^0)    z2_0: -1 + log(e^-1 + e^0)    z2_1: -0 + log(2 e^-1)
Z1, Z2 = t([[1, 0], [0, 1]]), t([[1, 0], [-1, 0]])


def test_dcl_hand_computed():
    expected = (-1 + math.log(1 + 1 / E) + math.log(2) - 1 + math.log(1 + 1 / E) + math.log(2) - 1) / 4
    assert dcl_loss(Z1, Z2, temperature=1.0).item() == pytest.approx(expected, abs=1e-6)
    # the positive left out of the denominator: lower than NT-Xent, whose denominator adds e^(1/tau) per anchor
    assert dcl_loss(Z1 * 3, Z2, temperature=1.0).item() == pytest.approx(expected, abs=1e-6)
    assert dcl_loss(Z1, Z2, 1.0).item() < nt_xent_loss(Z1, Z2, 1.0).item()


def test_dclw_hand_computed():
    # positive cosines (1, 0); sigma = 1: w = 2 - 2 softmax(1, 0) = (2/(e+1), 2e/(e+1)); only w_0 multiplies a cos != 0
    w0 = 2 / (E + 1)
    expected = (-w0 + math.log(1 + 1 / E) + math.log(2) - w0 + math.log(1 + 1 / E) + math.log(2) - 1) / 4
    assert dcl_loss(Z1, Z2, temperature=1.0, sigma=1.0).item() == pytest.approx(expected, abs=1e-6)


def test_dclw_weight_carries_no_gradient():
    # d/dz of -w * cos/tau with w held fixed: the loss's gradient equals that of DCL with the weights as constants
    z1, z2 = torch.randn(6, 4), torch.randn(6, 4)
    a = z1.clone().requires_grad_()
    dcl_loss(a, z2, 0.1, sigma=0.5).backward()
    n1, n2 = torch.nn.functional.normalize(z1, dim=1), torch.nn.functional.normalize(z2, dim=1)
    w = 2 - 6 * torch.softmax((n1 * n2).sum(1) / 0.5, dim=0)
    b = z1.clone().requires_grad_()
    nb = torch.nn.functional.normalize(b, dim=1)
    pos = (nb * n2).sum(1) / 0.1
    extra = ((1 - w) * pos).mean()  # DCL's positive term is -pos; DCLW's -w pos = -pos + (1 - w) pos
    (dcl_loss(b, z2, 0.1) + extra).backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sigma", [None, 0.5])
def test_dcl_shards_average_to_the_full_loss(sigma):
    z1, z2 = torch.randn(12, 5), torch.randn(12, 5)
    full = dcl_loss(z1, z2, 0.1, sigma)
    parts = [dcl_loss(z1[r * 4:(r + 1) * 4], z2[r * 4:(r + 1) * 4], 0.1, sigma, z1, z2, 4 * r) for r in range(3)]
    assert (sum(parts) / 3).item() == pytest.approx(full.item(), rel=1e-6)
    alone = sum(dcl_loss(z1[r * 4:(r + 1) * 4], z2[r * 4:(r + 1) * 4], 0.1, sigma) for r in range(3)) / 3
    assert abs(alone.item() - full.item()) > 1e-3  # without the global batch the value differs


# ---- TiCo ----

def test_tico_hand_computed_over_two_steps():
    # step 1: z1 = I, B = I/2, C = 0.1 B = 0.05 I; cosines (1, 0) -> -0.5; z C z = 0.05 each -> 20 * 0.05 = 1
    z1, z2 = t([[1, 0], [0, 2]]), t([[1, 0], [1, 0]])
    loss, c = tico_loss(z1, z2, torch.zeros(2, 2), beta=0.9, rho=20.0)
    torch.testing.assert_close(c, 0.05 * torch.eye(2))
    assert loss.item() == pytest.approx(-0.5 + 1.0, abs=1e-6)
    # step 2: both rows (0.6, 0.8): B = [[.36,.48],[.48,.64]], C = 0.9 C + 0.1 B = [[.081,.048],[.048,.109]];
    # z C z = .36*.081 + 2*.48*.048 + .64*.109 = 0.145; cos 1 -> -1 + 20 * 0.145 = 1.9
    z = t([[0.6, 0.8], [3, 4]])
    loss, c = tico_loss(z, z, c, beta=0.9, rho=20.0)
    torch.testing.assert_close(c, t([[0.081, 0.048], [0.048, 0.109]]))
    assert loss.item() == pytest.approx(-1 + 20 * 0.145, abs=1e-5)


def test_tico_covariance_takes_no_gradient():
    z1, z2 = torch.randn(6, 3, requires_grad=True), torch.randn(6, 3)
    loss, c = tico_loss(z1, z2, torch.zeros(3, 3))
    assert not c.requires_grad
    (g,) = torch.autograd.grad(loss, z1)

    def by_hand(cov):
        n, m = torch.nn.functional.normalize(z1, dim=1), torch.nn.functional.normalize(z2, dim=1)
        return -(n * m).sum(1).mean() + 20 * ((n @ cov(n)) * n).sum(1).mean()

    (g_fixed,) = torch.autograd.grad(by_hand(lambda n: c), z1)
    torch.testing.assert_close(g, g_fixed, rtol=1e-5, atol=1e-6)
    (g_through,) = torch.autograd.grad(by_hand(lambda n: 0.1 * n.T @ n / 6), z1)  # C inside autograd: another
    assert (g_through - g).abs().max() > 1e-3


def test_tico_covariance_is_a_buffer_kept_after_the_step_outside_autograd():
    torch.manual_seed(0)
    method = methods.get("tico")(TinyEncoder(), proj_hidden_dim=16, proj_dim=8)
    assert "covariance" in dict(method.named_buffers()) and not method.covariance.any()
    views = Views([torch.randn(10, 10), torch.randn(10, 10)])
    loss, _ = method(views)
    loss.backward()
    assert not method.covariance.any()  # the forward does not touch the state
    pending = method.pending_covariance
    assert not pending.requires_grad and pending.grad_fn is None
    z1 = method.projector(method.encoder(views.global_views[0]))
    torch.testing.assert_close(pending, tico_loss(z1, z1, torch.zeros(8, 8))[1])
    method.after_optimizer_step(StepInfo())
    assert torch.equal(method.covariance, pending) and method.pending_covariance is None
    method(views)  # the next step reads C_1: beta C_1 + (1 - beta) B
    torch.testing.assert_close(method.pending_covariance, 0.9 * pending + 0.1 * (pending / 0.1), rtol=1e-5,
                               atol=1e-6)


# ---- MMCR ----

def test_mmcr_hand_computed():
    # sample 0: views (1,0), (0,1) -> centroid (.5,.5); sample 1: (1,0), (2,0) -> (1,0); C = [[.5,.5],[1,0]]
    # a 2 x 2 matrix's nuclear norm is sqrt(||C||_F^2 + 2 |det C|) = sqrt(1.5 + 2 * 0.5)
    z = t([[[1, 0], [0, 1]], [[1, 0], [2, 0]]])
    assert mmcr_loss(z).item() == pytest.approx(-math.sqrt(2.5), abs=1e-6)
    # manifolds: ||I||_* = 2, ||[[1,0],[1,0]]||_* = sqrt(2); lambda times their mean
    assert mmcr_loss(z, lambd=0.1).item() == pytest.approx(-math.sqrt(2.5) + 0.1 * (2 + math.sqrt(2)) / 2, abs=1e-6)


def test_mmcr_is_lowest_for_agreeing_views_of_orthogonal_samples():
    agree = torch.eye(4).unsqueeze(1).expand(4, 3, 4)  # every view of sample i is e_i: C = I, nuclear norm 4
    assert mmcr_loss(agree).item() == pytest.approx(-4.0, abs=1e-5)
    assert mmcr_loss(torch.randn(4, 3, 4)).item() > -4.0


# ---- DirectCLR ----

def test_directclr_scaled_dimension():
    assert [scaled_loss_dim(d) for d in (2048, 512, 256, 64, 2)] == [360, 90, 45, 11, 1]


def test_directclr_is_nt_xent_on_the_first_dimensions_only():
    # first two dimensions orthonormal -> NT-Xent = log(1 + 2 e^-2) at tau 0.5 whatever the rest holds
    r1 = t([[1, 0, 5, -1], [0, 1, -7, 2]]).requires_grad_()
    r2 = t([[1, 0, 3, 3], [0, 1, 1, 0]])
    loss = directclr_loss(r1, r2, loss_dim=2, temperature=0.5)
    assert loss.item() == pytest.approx(math.log(1 + 2 * math.exp(-2)), abs=1e-6)
    loss.backward()
    assert not r1.grad[:, 2:].any()
    r = torch.randn(12, 6)
    parts = [directclr_loss(r[4 * k:4 * k + 4], r[4 * k:4 * k + 4].flip(1), 3, 0.5, r, r.flip(1), 4 * k)
             for k in range(3)]
    assert (sum(parts) / 3).item() == pytest.approx(directclr_loss(r, r.flip(1), 3, 0.5).item(), rel=1e-6)


def test_directclr_has_no_projector_and_scales_d0_to_the_encoder():
    method = methods.get("directclr")(TinyEncoder(d_out=64))
    assert method.loss_dim == 11
    assert {n.split(".")[0] for n, _ in method.named_parameters()} == {"encoder"}
    assert methods.get("directclr")(TinyEncoder(d_out=64), loss_dim=20).loss_dim == 20


# ---- across processes: the gathered loss and its gradients equal the single-process global-batch values ----

WORLD, LOCAL = 2, 6
NEW = {"dcl": {}, "dclw": {}, "tico": {}, "mmcr": {}, "directclr": {"loss_dim": 5}}


def build(name):
    torch.manual_seed(0)
    heads = {} if name == "directclr" else {"proj_hidden_dim": 16, "proj_dim": 8}
    return methods.get(name)(TinyEncoder(), **heads, **NEW[name])


def _worker(rank: int, port: int, out: str) -> None:
    from selfsup.training.distributed import convert_sync_batchnorm, ddp

    with gloo_group(rank, port):
        report = {}
        for name in NEW:
            count = build(name).view_request().global_views
            gen = torch.Generator().manual_seed(1)
            views = [torch.randn(LOCAL * WORLD, 10, generator=gen) for _ in range(count)]
            single = build(name)
            loss_single, _ = single(Views(views))
            loss_single.backward()
            method = build(name)
            method.set_world(rank, WORLD)
            convert_sync_batchnorm(method, torch.device("cpu"))
            wrapped = ddp(method, torch.device("cpu"))
            loss, _ = wrapped(Views([v[rank * LOCAL:(rank + 1) * LOCAL] for v in views]))
            loss.backward()
            mean = loss.detach().clone()
            torch.distributed.all_reduce(mean)
            g1, g2 = grads(single), grads(method)
            report[name] = {"single": loss_single.item(), "dist": mean.item() / WORLD,
                            "keys": sorted(g1) == sorted(g2),
                            "grad_diff": max((g1[k] - g2[k]).abs().max().item() for k in g1),
                            "grad_max": max(g.abs().max().item() for g in g1.values())}
            del wrapped  # DDP's reducer goes while its process group lives (at exit it aborted the process)
            gc.collect()  # the wrapper and its module hold each other: freed now, not by a later collection
        with open(f"{out}/rank{rank}.json", "w") as f:
            json.dump(report, f)


def test_gathered_losses_match_the_global_batch(tmp_path):
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        for name, r in json.loads((tmp_path / f"rank{rank}.json").read_text()).items():
            assert abs(r["dist"] - r["single"]) <= 1e-5 * max(1.0, abs(r["single"])), (name, r)
            assert r["keys"] and r["grad_max"] > 1e-4, (name, r)
            assert r["grad_diff"] <= 1e-5 * max(1.0, r["grad_max"]), (name, r)
