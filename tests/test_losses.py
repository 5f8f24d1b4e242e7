"""Each loss function against a value computed by hand from its paper's formula."""
import math

import pytest
import torch

from selfsup.methods.barlow_twins import barlow_twins_loss, off_diagonal
from selfsup.methods.base import StepInfo
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


# ---- DINO, MoCo v3, NNCLR ----

def test_dino_loss_by_hand():
    """Teacher softmax of (t - c) / T_t against student log-softmax s / T_s, over pairs of different views."""
    from selfsup.methods.dino import dino_loss

    t = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])]
    s = [torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])]
    c = torch.tensor([[0.5, 0.5]])
    # teacher 0: (0.5, -0.5) / 0.5 = (1, -1) -> q0 = (e^2, 1) / (e^2 + 1); teacher 1: q1 = (1, e^2) / (e^2 + 1)
    e2 = math.exp(2)
    q0, q1 = (e2 / (e2 + 1), 1 / (e2 + 1)), (1 / (e2 + 1), e2 / (e2 + 1))
    # student at T_s = 1: log-softmax of (0,0) = (-log2, -log2); of (1,0); of (0,2)
    def logp(a, b):
        z = math.log(math.exp(a) + math.exp(b))
        return a - z, b - z
    h = lambda q, lp: -(q[0] * lp[0] + q[1] * lp[1])  # noqa: E731
    pairs = [h(q0, logp(1, 0)), h(q0, logp(0, 2)), h(q1, logp(0, 0)), h(q1, logp(0, 2))]  # (0,1) (0,2) (1,0) (1,2)
    expected = sum(pairs) / 4
    assert dino_loss(s, t, c, student_temp=1.0, teacher_temp=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_dino_centre_freeze_and_teacher_temperature():
    from selfsup.methods.base import TrainingContext
    from selfsup.methods.dino import DINO
    from selfsup.views import Views

    torch.manual_seed(0)
    enc = torch.nn.Linear(6, 5)
    enc.out_dim = 5
    method = DINO(enc, out_dim=4, hidden_dim=8, bottleneck_dim=3, local_crops=1, teacher_temp=0.07,
                  warmup_teacher_temp=0.04, teacher_temp_warmup=0.5)
    method.setup(TrainingContext(num_samples=20, batch_size=10))  # 2 steps per epoch: the last layer frozen 2 steps
    views = Views([torch.randn(10, 6), torch.randn(10, 6)], [torch.randn(10, 6)])
    loss, logs = method(views)
    assert float(logs["teacher_temp"]) == pytest.approx(0.04)  # warm-up starts at warmup_teacher_temp
    teacher = method.pending_teacher.clone()
    loss.backward()
    method.before_optimizer_step(StepInfo(1, 0.25))
    assert all(p.grad is None for p in method.head.last_layer.parameters())
    assert method.head.mlp[0].weight.grad is not None
    method.after_optimizer_step(StepInfo(1, 0.25))
    torch.testing.assert_close(method.center, 0.1 * teacher.mean(dim=0, keepdim=True))  # 0.9 * 0 + 0.1 * mean
    assert method.teacher_temp(0.25) == pytest.approx(0.055) and method.teacher_temp(0.8) == pytest.approx(0.07)
    late = StepInfo(2, 0.25)  # past the first epoch: the last layer trains, at the step's own temperature
    method.zero_grad()
    loss, logs = method(views, late)
    assert float(logs["teacher_temp"]) == pytest.approx(0.055)
    loss.backward()
    method.before_optimizer_step(late)
    assert all(p.grad is not None for p in method.head.last_layer.parameters() if p.requires_grad)


def test_nearest_neighbours_and_nnclr_loss_by_hand():
    from selfsup.methods.nnclr import nearest_neighbours, nnclr_loss

    support = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    z = torch.tensor([[0.9, 0.1], [0.1, 3.0], [1.0, 1.2]])
    torch.testing.assert_close(nearest_neighbours(z, support), support[[0, 1, 2]])
    nn_z, p = torch.eye(2), torch.eye(2)
    # cos = identity, T = 0.5: logits diag 2, off 0 -> -log(e^2 / (e^2 + 1))
    assert nnclr_loss(nn_z, p, 0.5).item() == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 1)), rel=1e-6)


def test_mocov3_loss_by_hand():
    from selfsup.methods.mocov3 import mocov3_loss

    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    k = torch.tensor([[3.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # three keys (two processes' worth), offset 1
    c = 1 / math.sqrt(2)
    # row 0 (positive key 1): logits (1, c, 0) / T; row 1 (positive key 2): logits (0, c, 1) / T; T = 1
    ce0 = -math.log(math.exp(c) / (math.exp(1) + math.exp(c) + 1))
    ce1 = -math.log(math.exp(1) / (1 + math.exp(c) + math.exp(1)))
    assert mocov3_loss(q, k, temperature=1.0, offset=1).item() == pytest.approx(2 * (ce0 + ce1) / 2, rel=1e-6)


def test_sinkhorn_by_hand_and_its_marginals():
    from selfsup.methods.swav import sinkhorn

    # exp(scores / 1) = [[e, 1], [1, e]] is already balanced: codes are its rows normalised
    e = math.e
    codes = sinkhorn(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), epsilon=1.0, iterations=3)
    torch.testing.assert_close(codes, torch.tensor([[e / (e + 1), 1 / (e + 1)], [1 / (e + 1), e / (e + 1)]]))
    scores = torch.nn.functional.normalize(torch.randn(12, 5), dim=1) @ torch.nn.functional.normalize(
        torch.randn(3, 5), dim=1).T
    q = sinkhorn(scores, epsilon=0.5, iterations=100)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(12))  # every sample's code sums to 1
    torch.testing.assert_close(q.sum(dim=0), torch.full((3,), 4.0), atol=1e-3, rtol=0)  # 12 samples, 3 prototypes


def test_swapped_prediction_by_hand():
    from selfsup.methods.swav import swapped_prediction_loss

    scores = [torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]])]
    codes = [torch.tensor([[0.25, 0.75]])]  # the code of crop 0, predicted by crop 1 (T = 1)
    lp = (1 - math.log(math.e + 1), -math.log(math.e + 1))
    assert swapped_prediction_loss(scores, codes, 1.0).item() == pytest.approx(-(0.25 * lp[0] + 0.75 * lp[1]))


def test_swav_queue_and_prototype_freeze():
    from selfsup.methods.base import TrainingContext
    from selfsup.methods.swav import SwAV
    from selfsup.views import Views

    torch.manual_seed(0)
    enc = torch.nn.Linear(6, 5)
    enc.out_dim = 5
    method = SwAV(enc, num_prototypes=4, proj_hidden_dim=8, proj_dim=3, local_crops=1, queue_length=8,
                  queue_start=0.0)
    method.setup(TrainingContext(num_samples=8, batch_size=4))  # 2 steps per epoch: prototypes frozen 2 steps
    views = Views([torch.randn(4, 6), torch.randn(4, 6)], [torch.randn(4, 6)])
    for step in range(3):
        loss, _ = method(views, StepInfo(step, 0.1 * step))
        method.zero_grad()
        loss.backward()
        method.before_optimizer_step(StepInfo(step, 0.1 * step))
        assert (method.prototypes.weight.grad is None) == (step < 2)
        method.after_optimizer_step(StepInfo(step, 0.1 * step))
        torch.testing.assert_close(method.prototypes.weight.norm(dim=1), torch.ones(4))
    assert method.queue_filled == 12 and method.extra_state()["queue_filled"] == 12
    assert float(method.queue.abs().sum()) > 0  # filled with the newest projections, now used in Sinkhorn


def test_spherical_kmeans_by_hand():
    # two groups on the unit circle: {[1,0], [.8,.6]} and {[0,1], [-.6,.8]}; from every start k-means ends there,
    # with each centroid the normalised sum of its members: [1.8,.6]/|.| and [-.6,1.8]/|.|
    from selfsup.methods.pseudo_labels import nearest_prototype, spherical_kmeans

    x = t([[1, 0], [0.8, 0.6], [0, 1], [-0.6, 0.8]])
    for seed in range(6):
        centroids, labels = spherical_kmeans(x, 2, 10, torch.Generator().manual_seed(seed))
        assert labels[0] == labels[1] and labels[2] == labels[3] and labels[0] != labels[2], (seed, labels)
        first, second = centroids[labels[0]], centroids[labels[2]]
        assert torch.allclose(first, t([1.8, 0.6]) / math.sqrt(1.8 ** 2 + 0.6 ** 2), atol=1e-6)
        assert torch.allclose(second, t([-0.6, 1.8]) / math.sqrt(1.8 ** 2 + 0.6 ** 2), atol=1e-6)
        assert torch.equal(nearest_prototype(x, centroids), labels)  # the labels belong to the returned centroids
    with pytest.raises(ValueError, match="at least 5 samples"):
        spherical_kmeans(x, 5, 10, torch.Generator().manual_seed(0))


def test_equipartition_labels_by_hand():
    # every sample prefers class 0 (argmax would put all 4 there); equal class sizes send the two samples with the
    # smallest preference for 0 (rows 1 and 3: margins 0.5 and 0.1) to class 1
    from selfsup.methods.pseudo_labels import equipartition_labels

    scores = t([[2, 1], [2, 1.5], [2, 0], [2, 1.9]])
    assert equipartition_labels(scores, epsilon=1.0).tolist() == [0, 1, 0, 1]
    # scores that already split equally keep their argmax
    balanced = t([[3, 0, 0], [0, 3, 0], [0, 0, 3], [3, 0, 0.1], [0, 3, 0.1], [0.1, 0, 3]])
    assert equipartition_labels(balanced, epsilon=0.04).tolist() == [0, 1, 2, 0, 1, 2]
    # many samples, K classes: the label counts are (about) N / K whatever the scores' bias
    gen = torch.Generator().manual_seed(0)
    skewed = torch.randn(600, 6, generator=gen) + torch.tensor([3.0, 2, 1, 0, 0, 0])
    counts = torch.bincount(equipartition_labels(skewed, epsilon=0.1), minlength=6)
    assert counts.min() >= 90 and counts.max() <= 110, counts


def test_pseudo_label_loss_by_hand():
    # head 0: crop logits [0,0] (CE ln 2) and [ln 3, 0] (CE ln 4/3) for label 0; head 1: the same crops, label 1
    # (CE ln 2 and ln 4); T = 0.5 doubles the logits, so the crops carry logits / 2
    from selfsup.methods.pseudo_labels import pseudo_label_loss

    crops = [t([[0, 0]]), t([[math.log(3) / 2, 0]])]
    loss = pseudo_label_loss([crops, crops], [torch.tensor([0]), torch.tensor([1])], temperature=0.5)
    expected = ((math.log(2) + math.log(4 / 3)) / 2 + (math.log(2) + math.log(4)) / 2) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
