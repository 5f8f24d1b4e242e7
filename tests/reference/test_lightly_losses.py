"""selfsup's losses against LightlySSL 1.6.0's: value and gradients in fp32 at rtol 1e-5, on seeded random embeddings
of realistic shapes. Where selfsup departs from lightly on purpose, the test shows the two differ in exactly the stated
way (and the method's docstring states it)."""
import pytest
import torch
import torch.nn.functional as F
from lightly.loss import (BarlowTwinsLoss, DINOLoss, NegativeCosineSimilarity, NTXentLoss, SwaVLoss,
                          VICRegLoss)
from lightly.loss.swav_loss import sinkhorn as lightly_sinkhorn
from lightly.models.utils import normalize_mean_var

from _compare import assert_close, value_and_grad
from selfsup.methods.barlow_twins import barlow_twins_loss
from selfsup.methods.byol import byol_loss
from selfsup.methods.dino import dino_loss
from selfsup.methods.mae import mae_loss
from selfsup.methods.moco import moco_loss
from selfsup.methods.mocov3 import mocov3_loss
from selfsup.methods.nnclr import nnclr_loss
from selfsup.methods.pseudo_labels import equipartition_labels
from selfsup.methods.simclr import _nt_xent_local_anchors, nt_xent_loss
from selfsup.methods.simsiam import simsiam_loss
from selfsup.methods.swav import sinkhorn, swapped_prediction_loss
from selfsup.methods.vicreg import vicreg_loss

B, D = 64, 128


def gen(seed):
    return torch.Generator().manual_seed(seed)


def embeddings(seed, *shape):
    return torch.randn(*shape, generator=gen(seed))


def assert_all_close(ours, theirs):
    for a, b in zip(ours, theirs, strict=True):
        assert_close(a, b)


def cosines(seed, views, batch, prototypes, dim=D):
    """Prototype scores as SwAV computes them: normalised projections x normalised prototypes, [views, B, K]."""
    z = F.normalize(embeddings(seed, views, batch, dim), dim=-1)
    return z @ F.normalize(embeddings(seed + 1, prototypes, dim), dim=1).T


# ---- SimCLR ----

@pytest.mark.parametrize("temperature", [0.5, 0.1])
def test_nt_xent_equals_lightly_ntxent(temperature):
    z1, z2 = embeddings(0, B, D), embeddings(1, B, D) + 0.5 * embeddings(0, B, D)
    ours = value_and_grad(lambda a, b: nt_xent_loss(a, b, temperature), z1, z2)
    theirs = value_and_grad(NTXentLoss(temperature=temperature), z1, z2)
    assert_close(ours[0], theirs[0])
    assert_all_close(ours[1], theirs[1])


def test_nt_xent_local_anchors_averaged_over_processes_equal_the_full_loss():
    """The distributed form: each of 4 processes scores its 2b anchors against the gathered 2B candidates; the mean
    over processes is lightly's loss on the concatenated batch, value and gradients."""
    world, temperature = 4, 0.5
    b = B // world
    z1, z2 = embeddings(2, B, D), embeddings(3, B, D) + embeddings(2, B, D)

    def mean_over_processes(a, c):
        return sum(_nt_xent_local_anchors(a[r * b:(r + 1) * b], c[r * b:(r + 1) * b], a, c, r * b, temperature)
                   for r in range(world)) / world

    ours = value_and_grad(mean_over_processes, z1, z2)
    theirs = value_and_grad(NTXentLoss(temperature=temperature), z1, z2)
    assert_close(ours[0], theirs[0])
    assert_all_close(ours[1], theirs[1])


# ---- MoCo ----

def test_moco_loss_equals_ntxent_with_a_memory_bank():
    """moco_loss(q, k, queue) is lightly's NTXentLoss with a memory bank holding the queue (negatives = the bank)."""
    size, temperature = 512, 0.2
    q, k = embeddings(4, B, D), embeddings(5, B, D) + embeddings(4, B, D)
    queue = F.normalize(embeddings(6, size, D), dim=1)
    criterion = NTXentLoss(temperature=temperature, memory_bank_size=(size, D))
    criterion.memory_bank.bank = queue.clone()
    ours = value_and_grad(lambda a, c: moco_loss(a, c, queue, temperature), q, k)
    theirs = value_and_grad(criterion, q, k)
    assert_close(ours[0], theirs[0])
    assert_all_close(ours[1], theirs[1])


# ---- BYOL, SimSiam ----

def test_simsiam_equals_negative_cosine_similarity_with_the_target_detached():
    p, z = embeddings(7, B, D), embeddings(8, B, D) + embeddings(7, B, D)
    ours = value_and_grad(simsiam_loss, p, z)
    theirs = value_and_grad(lambda a, c: NegativeCosineSimilarity()(a, c.detach()), p, z)
    assert_close(ours[0], theirs[0])
    assert_all_close(ours[1], theirs[1])
    assert ours[1][1].abs().max() == 0  # stop-gradient on the target branch


def test_byol_is_two_plus_twice_lightlys_negative_cosine():
    """BYOL's 2 - 2 cos is the affine image 2 + 2 x (-cos) of lightly's loss: values map by it, gradients double."""
    p, z = embeddings(9, B, D), embeddings(10, B, D) + embeddings(9, B, D)
    ours = value_and_grad(byol_loss, p, z)
    theirs = value_and_grad(lambda a, c: NegativeCosineSimilarity()(a, c.detach()), p, z)
    assert_close(ours[0], 2 + 2 * theirs[0])
    assert_close(ours[1][0], 2 * theirs[1][0])
    assert ours[1][1].abs().max() == 0


# ---- Barlow Twins, VICReg ----

def test_barlow_twins_equals_lightly():
    z1 = 2 * embeddings(11, 256, 512) + 1
    z2 = 0.5 * z1 + embeddings(12, 256, 512)
    ours = value_and_grad(lambda a, c: barlow_twins_loss(a, c, lambd=0.0051), z1, z2)
    theirs = value_and_grad(BarlowTwinsLoss(lambda_param=0.0051), z1, z2)
    assert_close(ours[0], theirs[0])
    assert_all_close(ours[1], theirs[1])


def test_vicreg_equals_lightly():
    # half the dimensions nearly collapsed (std < 1: the variance hinge is active), half spread
    scale = torch.cat([torch.full((D // 2,), 0.3), torch.full((D // 2,), 2.0)])
    z1 = embeddings(13, B, D) * scale
    z2 = z1 + 0.3 * embeddings(14, B, D)
    ours = value_and_grad(vicreg_loss, z1, z2)
    theirs = value_and_grad(VICRegLoss(), z1, z2)
    assert_close(ours[0], theirs[0])
    assert_all_close(ours[1], theirs[1])


# ---- DINO ----

def test_dino_loss_equals_lightly():
    """Value and the students' gradients equal; selfsup's teacher targets carry no gradient (lightly leaves that to
    the caller's no_grad teacher)."""
    k, globals_, locals_ = 256, 2, 4
    student = 3 * embeddings(15, globals_ + locals_, B, k)
    teacher = 3 * embeddings(16, globals_, B, k) + student[:globals_]
    center = 0.5 * embeddings(17, 1, k)
    criterion = DINOLoss(output_dim=k, teacher_temp=0.04, student_temp=0.1)
    criterion.center = center.view(1, 1, k).clone()
    ours = value_and_grad(lambda s, t: dino_loss(list(s), list(t), center, 0.1, 0.04), student, teacher)
    theirs = value_and_grad(lambda s, t: criterion(list(t), list(s), teacher_temp=0.04), student, teacher)
    assert_close(ours[0], theirs[0])
    assert_close(ours[1][0], theirs[1][0])
    assert ours[1][1].abs().max() == 0


# ---- SwAV ----

def test_sinkhorn_equals_lightly():
    """selfsup also divides by K after the prototype normalisation (as the SwAV code does); lightly leaves it out,
    which the following sample normalisation absorbs: the codes are equal."""
    scores = cosines(18, 1, 256, 300)[0]
    for iterations, epsilon in [(3, 0.05), (10, 0.03)]:
        assert_close(sinkhorn(scores, epsilon, iterations), lightly_sinkhorn(scores, iterations, epsilon))


@pytest.mark.parametrize("queue", [False, True])
def test_swav_loss_equals_lightly(queue):
    """Codes of each global crop by Sinkhorn (over the batch plus, with a queue, the queue's scores), predicted by
    every other crop. selfsup puts the queue's rows first and keeps the last B codes; lightly puts them last and keeps
    the first B: Sinkhorn treats its columns alike, so the codes are the same."""
    k, temperature = 300, 0.1
    high, low = cosines(20, 2, B, k), cosines(22, 4, B, k)
    queue_scores = cosines(24, 2, 384, k) if queue else None

    def ours_fn(h, lo):
        codes = []
        for i in range(len(h)):
            out = h[i].detach() if queue_scores is None else torch.cat([queue_scores[i], h[i].detach()])
            codes.append(sinkhorn(out, 0.05, 3)[-B:])
        return swapped_prediction_loss(list(h) + list(lo), codes, temperature)

    def theirs_fn(h, lo):
        return SwaVLoss(temperature, 3, 0.05)(list(h), list(lo), None if queue_scores is None else list(queue_scores))

    ours, theirs = value_and_grad(ours_fn, high, low), value_and_grad(theirs_fn, high, low)
    assert_close(ours[0], theirs[0].squeeze())
    assert_all_close(ours[1], theirs[1])


# ---- NNCLR ----

def test_nnclr_loss_is_the_papers_infonce_where_lightly_uses_nt_xent():
    """Departure stated in nnclr.py: selfsup's loss is the NNCLR paper's InfoNCE (anchor NN(z_i), candidates the B
    predictions); lightly's NNCLR uses NTXentLoss(NN(z), p), which adds the anchors p_i and the same-side negatives.
    Both are written out explicitly here: selfsup equals the first, lightly the second, and they differ."""
    temperature = 0.1
    nn_z, p = embeddings(26, B, D), embeddings(27, B, D) + embeddings(26, B, D)
    a, c = F.normalize(nn_z, dim=1), F.normalize(p, dim=1)
    cross = a @ c.T / temperature
    off = ~torch.eye(B, dtype=torch.bool)
    paper = (cross.logsumexp(dim=1) - cross.diagonal()).mean()
    same_a = (a @ a.T / temperature)[off].view(B, B - 1)
    same_c = (c @ c.T / temperature)[off].view(B, B - 1)
    from_a = (torch.cat([cross, same_a], dim=1).logsumexp(dim=1) - cross.diagonal()).mean()
    from_c = (torch.cat([cross.T, same_c], dim=1).logsumexp(dim=1) - cross.diagonal()).mean()
    assert_close(nnclr_loss(nn_z, p, temperature), paper)
    lightly_value = NTXentLoss(temperature=temperature)(nn_z, p)
    assert_close(lightly_value, (from_a + from_c) / 2)
    assert (lightly_value - paper).abs() > 1e-3


# ---- MoCo v3 ----

@pytest.mark.parametrize("offset, keys", [(0, B), (B, 2 * B)])
def test_mocov3_is_2t_times_per_row_ntxent_with_the_other_keys_as_bank(offset, keys):
    """Lightly has no MoCo v3 loss. The one NTXentLoss formulation that matches: row i alone, its key as positive
    and every other key as the memory bank; mocov3_loss is 2T x the mean of those (the paper's 2T scaling). Gradients
    with respect to q agree (lightly's bank is detached; MoCo v3's keys carry no gradient anyway)."""
    temperature = 0.2
    q = embeddings(28, B, D)
    k = embeddings(29, keys, D)
    k[offset:offset + B] += q

    def per_row_ntxent(qq):
        kn = F.normalize(k, dim=1)
        total = 0
        for i in range(B):
            bank = torch.cat([kn[:offset + i], kn[offset + i + 1:]])
            criterion = NTXentLoss(temperature=temperature, memory_bank_size=(len(bank), D))
            criterion.memory_bank.bank = bank.clone()
            total = total + criterion(qq[i:i + 1], k[offset + i:offset + i + 1])
        return total / B

    ours = value_and_grad(lambda qq: mocov3_loss(qq, k, temperature, offset), q)
    theirs = value_and_grad(per_row_ntxent, q)
    assert_close(ours[0], 2 * temperature * theirs[0])
    assert_close(ours[1][0], 2 * temperature * theirs[1][0])


# ---- MAE ----

def test_mae_loss_equals_the_norm_pix_loss():
    """MAE's norm_pix_loss (lightly's normalize_mean_var: unbiased variance + 1e-6), squared error averaged per
    patch, then over the hidden patches only."""
    patches, dim = 196, 48
    pred, target = embeddings(30, B, patches, dim), 3 * embeddings(31, B, patches, dim) + 1
    hidden = torch.rand(B, patches, generator=gen(32)) < 0.75

    def reference(pr, ta):
        per_patch = (pr - normalize_mean_var(ta, dim=-1)).square().mean(dim=-1)
        return (per_patch * hidden).sum() / hidden.sum()

    ours = value_and_grad(lambda pr, ta: mae_loss(pr, ta, hidden), pred, target)
    theirs = value_and_grad(reference, pred, target)
    assert_close(ours[0], theirs[0])
    assert_close(ours[1][0], theirs[1][0])


# ---- SeLa (shares Sinkhorn with SwAV) ----

def test_sela_labels_are_the_argmax_of_lightlys_sinkhorn_run_to_convergence():
    """SeLa's equipartition labels are the argmax of the transport plan with row sums 1/N and column sums 1/K; run
    long enough, lightly's SwAV Sinkhorn reaches the same plan (up to scale), so the labels agree."""
    scores = cosines(33, 1, 600, 12)[0].double()
    ours = equipartition_labels(scores, epsilon=0.1, tolerance=1e-9)
    theirs = lightly_sinkhorn(scores, iterations=2000, epsilon=0.1).argmax(dim=1)
    assert torch.equal(ours, theirs)
    counts = torch.bincount(ours, minlength=12)
    assert counts.min() >= 40 and counts.max() <= 60  # about N / K = 50 each (argmax of a soft plan)
