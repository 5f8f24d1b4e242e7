"""W-MSE, FastSiam, EMP-SSL and LeJEPA against LightlySSL 1.6.0: values and gradients at rtol 1e-5 (fp32).

Random draws (W-MSE's sub-batches, LeJEPA's directions) are made the same on both sides by seeding torch's generator
before each: selfsup receives its draws as arguments, LightlySSL draws them inside its loss.
"""
import pytest
import torch

from _compare import assert_close, value_and_grad
from lightly.loss import EMPSSLLoss, LeJEPALoss, NegativeCosineSimilarity, WMSELoss
from lightly.loss.emp_ssl_loss import invariance_loss, tcr_loss
from lightly.loss.lejepa_loss import SIGReg

from selfsup.methods.emp_ssl import emp_ssl_loss
from selfsup.methods.fastsiam import fastsiam_loss
from selfsup.methods.lejepa import lejepa_loss, sigreg
from selfsup.methods.wmse import random_partition, wmse_loss


def assert_same(ours, theirs):
    (v1, g1), (v2, g2) = ours, theirs
    assert_close(v1, v2)
    for a, b in zip(g1, g2):
        assert_close(a, b)


# ---- W-MSE: WMSELoss (Whitening2d in training mode) ----

@pytest.mark.parametrize("views,w_iter,eps", [(2, 1, 0.0), (4, 1, 0.0), (2, 3, 0.0), (3, 2, 0.1)])
def test_wmse_matches_lightly(views, w_iter, eps):
    batch, dim, w_size = 48, 8, 16
    inputs = [torch.randn(batch, dim) * torch.linspace(0.5, 2.0, dim) + 1.0 for _ in range(views)]
    theirs_fn = WMSELoss(embedding_dim=dim, eps=eps, w_iter=w_iter, w_size=w_size, num_samples=views)

    def theirs(*zs):
        torch.manual_seed(7)  # their sub-batches: torch.randperm(batch).view(-1, w_size), once per iteration
        return theirs_fn(torch.cat(zs))

    def ours(*zs):
        torch.manual_seed(7)
        return wmse_loss(list(zs), [random_partition(batch, w_size, torch.device("cpu")) for _ in range(w_iter)], eps)

    assert_same(value_and_grad(ours, *inputs), value_and_grad(theirs, *inputs))


def test_wmse_matches_lightly_in_float64_on_correlated_embeddings():
    """Strongly correlated embeddings make the whitening ill-conditioned: in fp32 the two implementations' rounding
    then differs by ~1e-4 relative in the gradient (measured); in float64 they agree to 1e-10."""
    batch, dim, w_size = 48, 8, 16
    inputs = [(torch.randn(batch, dim) @ torch.randn(dim, dim)).double() for _ in range(2)]
    theirs_fn = WMSELoss(embedding_dim=dim, w_size=w_size).double()

    def theirs(*zs):
        torch.manual_seed(11)
        return theirs_fn(torch.cat(zs))

    def ours(*zs):
        torch.manual_seed(11)
        return wmse_loss(list(zs), [random_partition(batch, w_size, torch.device("cpu"))])

    (v1, g1), (v2, g2) = value_and_grad(ours, *inputs), value_and_grad(theirs, *inputs)
    torch.testing.assert_close(v1, v2, rtol=1e-10, atol=1e-12)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


# ---- FastSiam: NegativeCosineSimilarity as LightlySSL's FastSiam example combines it ----

def test_fastsiam_matches_lightly_example():
    criterion = NegativeCosineSimilarity()
    ps, zs = [torch.randn(12, 16) for _ in range(4)], [torch.randn(12, 16) for _ in range(4)]

    def theirs(*tensors):
        p, z = torch.stack(tensors[:4]), torch.stack(tensors[4:]).detach()  # their model detaches z
        loss = 0.0
        for i in range(4):
            others = torch.arange(4) != i
            loss = loss + criterion(p[i], z[others].mean(dim=0)) / 4
        return loss

    ours = value_and_grad(lambda *x: fastsiam_loss(list(x[:4]), list(x[4:])), *ps, *zs)
    assert_same(ours, value_and_grad(theirs, *ps, *zs))


# ---- EMP-SSL: EMPSSLLoss minimises +TCR; the paper and its official code maximise it ----

@pytest.mark.parametrize("batch,dim", [(32, 16), (8, 24)])  # b > d and b < d (selfsup's b x b Gram matrix)
def test_emp_ssl_matches_lightly_terms_with_the_papers_sign(batch, dim):
    patches = [torch.nn.functional.normalize(torch.randn(batch, dim), dim=1) for _ in range(5)]

    def papers(*zs):  # -TCR + lambda * (-cos): LightlySSL's two terms combined with the paper's sign of the TCR
        z = torch.stack(zs)
        return -tcr_loss(z, eps=0.2) + 200.0 * invariance_loss(z)

    assert_same(value_and_grad(lambda *zs: emp_ssl_loss(list(zs), 0.2, 200.0), *patches),
                value_and_grad(papers, *patches))


def test_lightly_emp_ssl_loss_rewards_collapse():
    """The departure asserted: EMPSSLLoss adds +TCR, so it prefers collapsed patches; selfsup's loss, like the
    official code (`TotalCodingRate.forward` returns -logdet / 2), prefers spread ones."""
    spread = [torch.eye(8)] * 3
    collapsed = [torch.nn.functional.one_hot(torch.zeros(8, dtype=torch.long), 8).float()] * 3
    theirs = EMPSSLLoss(tcr_eps=0.2, inv_coef=200.0)
    assert theirs(collapsed) < theirs(spread)
    assert emp_ssl_loss(spread) < emp_ssl_loss(collapsed)
    z = torch.stack(spread)
    assert_close(emp_ssl_loss(spread), theirs(spread) - 2 * tcr_loss(z, eps=0.2))


# ---- LeJEPA: SIGReg and LeJEPALoss ----

def directions_like_lightly(seed: int, dim: int, count: int) -> torch.Tensor:
    torch.manual_seed(seed)  # SIGReg._generate_unit_vectors: randn(dim, count), columns normalised
    a = torch.randn(dim, count)
    return a / a.norm(dim=0)


@pytest.mark.parametrize("knots,t_max,count", [(17, 3.0, 1024), (9, 5.0, 64)])
def test_sigreg_matches_lightly(knots, t_max, count):
    z = torch.randn(3, 40, 12) * 1.5 + 0.3
    theirs_fn = SIGReg(knots=knots, t_max=t_max, num_vectors=count)

    def theirs(x):
        torch.manual_seed(3)
        return theirs_fn(x)

    directions = directions_like_lightly(3, 12, count)
    assert_same(value_and_grad(lambda x: sigreg(x, directions, knots, t_max), z), value_and_grad(theirs, z))


@pytest.mark.parametrize("lambd,local", [(0.05, 6), (0.3, 1)])
def test_lejepa_matches_lightly(lambd, local):
    glob = [torch.randn(24, 16) for _ in range(2)]
    loc = [torch.randn(24, 16) * 0.7 for _ in range(local)]
    theirs_fn = LeJEPALoss(lambda_param=lambd, sigreg_num_vectors=256)

    def theirs(*zs):
        torch.manual_seed(5)
        return theirs_fn(local_proj=torch.stack(zs[2:]), global_proj=torch.stack(zs[:2]))

    directions = directions_like_lightly(5, 16, 256)
    ours = value_and_grad(lambda *zs: lejepa_loss(list(zs[:2]), list(zs[2:]), directions, lambd), *glob, *loc)
    assert_same(ours, value_and_grad(theirs, *glob, *loc))
