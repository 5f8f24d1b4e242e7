"""DINOv2 and VICRegL: their losses by hand, the masks and matches they build, and a step of each method."""
import math

import pytest
import torch

from selfsup.methods.dinov2 import blank_patches, ibot_patch_loss, koleo_loss, masked_patches
from selfsup.methods.vicreg import vicreg_loss
from selfsup.methods.vicregl import nearest_matches, vicregl_loss
from selfsup.modalities.image.vit import VisionTransformer
from selfsup.modalities.sequences.encoders import PatchTransformerEncoder


def t(x):
    return torch.tensor(x, dtype=torch.float32)


# ---- DINOv2 ----

def test_koleo_by_hand():
    # normalised rows a = (1, 0), b = (0.6, 0.8), c = (-1, 0): a and b are each other's nearest (distance sqrt(0.8)),
    # c's nearest is b (distance sqrt(1.6^2 + 0.8^2) = sqrt(3.2))
    x = t([[2, 0], [3, 4], [-0.5, 0]])
    expected = -(2 * math.log(math.sqrt(0.8)) + math.log(math.sqrt(3.2))) / 3
    assert koleo_loss(x).item() == pytest.approx(expected, rel=1e-5)


def test_koleo_gradient_is_finite_for_duplicate_rows():
    x = t([[1, 0], [1, 0], [0, 1]]).requires_grad_(True)
    loss = koleo_loss(x)
    loss.backward()
    assert loss.item() == pytest.approx(-(2 * math.log(2e-8) + math.log(math.sqrt(2))) / 3, rel=1e-4)
    assert torch.isfinite(x.grad).all()


def test_ibot_patch_loss_by_hand():
    # 3 images: image 0 hides patches A and B, image 1 hides C, image 2 none.
    # A: student softmax (1/2, 1/2), target (1, 0) -> ln 2; B: softmax (3/4, 1/4), target (0, 1) -> ln 4;
    # C: softmax (1/2, 1/2), target (1/2, 1/2) -> ln 2.  Loss = ((ln 2 + ln 4) / 2 + ln 2 + 0) / 3
    student = t([[0, 0], [math.log(3), 0], [0, 0]]) * 0.1  # at the student temperature 0.1
    targets = t([[1, 0], [0, 1], [0.5, 0.5]])
    image = torch.tensor([0, 0, 1])
    expected = ((math.log(2) + math.log(4)) / 2 + math.log(2)) / 3
    assert ibot_patch_loss(student, targets, image, 3, 0.1).item() == pytest.approx(expected, rel=1e-5)


def test_masked_patches_hide_the_paper_shares_in_half_the_rows():
    torch.manual_seed(0)
    hidden, where = masked_patches(8, 100, 0.5, (0.1, 0.5), torch.device("cpu"))
    counts = hidden.sum(dim=1)
    assert int((counts > 0).sum()) == 4  # int(8 x 0.5) rows masked, the others untouched
    # one ratio per stratum of [0.1, 0.5]: 10-20, 20-30, 30-40 and 40-50 of the 100 patches
    for count, (low, high) in zip(sorted(counts[counts > 0].tolist()), [(10, 20), (20, 30), (30, 40), (40, 50)]):
        assert low <= count <= high
    assert torch.equal(where, hidden.flatten().nonzero().squeeze(1))  # the hidden patches, row-major


def test_masked_patches_hide_at_least_one_patch_of_a_tiny_grid():
    torch.manual_seed(0)
    hidden, where = masked_patches(2, 4, 0.5, (0.1, 0.2), torch.device("cpu"))
    assert hidden.sum(dim=1).sort().values.tolist() == [0, 1] and len(where) == 1


def test_blank_patches_zero_the_hidden_patches_only():
    vit = VisionTransformer(channels=1, patch_size=2, dim=8, depth=1, heads=1)
    x = torch.randn(2, 1, 4, 4)
    hidden = torch.tensor([[True, False, False, False], [False, False, False, True]])
    out = blank_patches(vit, x, hidden)
    assert (out[0, 0, :2, :2] == 0).all() and torch.equal(out[0, 0, 2:], x[0, 0, 2:])
    assert (out[1, 0, 2:, 2:] == 0).all() and torch.equal(out[1, 0, :2], x[1, 0, :2])
    series = PatchTransformerEncoder(1, patch_len=2, d_model=8, depth=1, heads=1, out_dim=8)
    s = t([[[1, 2, 3, float("nan")]]])
    out = blank_patches(series, s, torch.tensor([[False, True]]))
    assert out[0, 0, :3].tolist() == [1, 2, 0] and out[0, 0, 3].isnan()  # unobserved stays unobserved


# ---- VICRegL ----

def test_nearest_matches_by_hand():
    a = t([[[0, 0], [10, 0], [0, 5]]])
    b = t([[[0, 1], [10, 3]]])
    # a0 -> b0 at 1, a1 -> b1 at 3, a2 -> b0 at 4: the two closest pairs, closest first
    chosen, partner = nearest_matches(a, b, 2)
    assert chosen[0].tolist() == [[0, 0], [10, 0]] and partner[0].tolist() == [[0, 1], [10, 3]]
    # b0 may not be matched: a1 -> b1 at 3, a2 -> b1 at sqrt(104), a0 -> b1 at sqrt(109)
    chosen, partner = nearest_matches(a, b, 2, valid_b=torch.tensor([[False, True]]))
    assert chosen[0].tolist() == [[10, 0], [0, 5]] and partner[0].tolist() == [[10, 3], [10, 3]]
    # an invalid row of a comes last
    chosen, _ = nearest_matches(a, b, 3, valid_a=torch.tensor([[False, True, True]]))
    assert chosen[0].tolist() == [[10, 0], [0, 5], [0, 0]]


def test_vicreg_loss_takes_per_position_statistics():
    z1, z2 = torch.randn(8, 3, 5), torch.randn(8, 3, 5)
    per_slot = sum(vicreg_loss(z1[:, k], z2[:, k]) for k in range(3)) / 3
    assert vicreg_loss(z1, z2).item() == pytest.approx(per_slot.item(), rel=1e-5)


def test_vicregl_global_term_by_hand():
    # as test_vicreg_hand_computed: invariance 1, variances 0, covariance terms 4 and 16, averaged over the views
    z1, z2 = t([[1, 2], [3, 4]]), t([[1, 2], [3, 6]])
    maps = [torch.randn(2, 3, 4), torch.randn(2, 3, 4)]
    assert vicregl_loss([z1, z2], maps, alpha=1.0).item() == pytest.approx(25 * 1 + 0 + (4 + 16) / 2, rel=1e-5)
    # a local view z3 = z1: pairs (0,1) (0,2) (1,0) (1,2) have MSE 1, 0, 1, 1; covariance terms 4, 16, 4
    maps.append(torch.randn(2, 2, 4))
    assert vicregl_loss([z1, z2, z1.clone()], maps, alpha=1.0).item() == \
        pytest.approx(25 * 0.75 + (4 + 16 + 4) / 3, rel=1e-5)


def test_vicregl_local_term_by_hand():
    # one token per view: every match is that token, local = VICReg with the covariance averaged over the views
    m1, m2 = t([[1, 2], [3, 4]]), t([[1, 2], [3, 6]])
    embeddings = [torch.randn(2, 3), torch.randn(2, 3)]
    loss = vicregl_loss(embeddings, [m1[:, None], m2[:, None]], alpha=0.0)
    assert loss.item() == pytest.approx(25 * 1 + 0 + (4 + 16) / 2, rel=1e-5)
    mixed = vicregl_loss(embeddings, [m1[:, None], m2[:, None]], alpha=0.75)
    assert mixed.item() == pytest.approx(0.75 * vicregl_loss(embeddings, [m1[:, None], m2[:, None]], alpha=1.0)
                                         + 0.25 * loss, rel=1e-5)


def test_vicregl_never_matches_padding_tokens():
    # view 2's second token is padding (zeros, like view 1's second token): without the mask the two zero tokens
    # are each other's best match and the invariance of that pair is 0
    a = torch.stack([torch.randn(4, 3), torch.zeros(4, 3)], dim=1)
    b = torch.stack([torch.randn(4, 3), torch.zeros(4, 3)], dim=1)
    valid = torch.tensor([[True, False]] * 4)
    chosen, partner = nearest_matches(a, b, 1, valid, valid)
    assert torch.equal(chosen[:, 0], a[:, 0]) and torch.equal(partner[:, 0], b[:, 0])
    chosen, partner = nearest_matches(a, b, 1)
    assert torch.equal(chosen[:, 0], a[:, 1]) and torch.equal(partner[:, 0], b[:, 1])


# ---- the methods' steps ----

def small_vit():
    torch.manual_seed(0)
    return VisionTransformer(channels=1, patch_size=2, dim=16, depth=1, heads=2)


def multi_crop_views(locals_=2):
    from selfsup.views import Views
    g = torch.Generator().manual_seed(1)
    return Views([torch.randn(16, 1, 8, 8, generator=g) for _ in range(2)],
                 [torch.randn(16, 1, 4, 4, generator=g) for _ in range(locals_)])


def test_dinov2_step_adds_its_three_terms_and_trains_only_the_student():
    from selfsup.methods.dinov2 import DINOv2
    method = DINOv2(small_vit(), out_dim=16, hidden_dim=16, bottleneck_dim=8, local_crops=2)
    torch.manual_seed(2)
    loss, logs = method(multi_crop_views())
    assert loss.item() == pytest.approx((logs["dino"] + logs["ibot"] + 0.1 * logs["koleo"]).item(), rel=1e-5)
    loss.backward()
    assert method.ibot_head.last_layer.parametrizations.weight.original1.grad.abs().sum() > 0
    assert method.encoder.patch_embed.weight.grad.abs().sum() > 0
    teacher = [*method.teacher_encoder.parameters(), *method.teacher_dino_head.parameters(),
               *method.teacher_ibot_head.parameters()]
    assert all(p.grad is None and not p.requires_grad for p in teacher)
    assert len(method.momentum_pairs()) == 3


def test_dinov2_tied_heads_share_one_module():
    from selfsup.methods.dinov2 import DINOv2
    method = DINOv2(small_vit(), out_dim=16, hidden_dim=16, bottleneck_dim=8, local_crops=0, separate_heads=False)
    assert method.ibot_head is method.dino_head and method.teacher_ibot_head is method.teacher_dino_head
    assert len(method.momentum_pairs()) == 2
    torch.manual_seed(2)
    loss, _ = method(multi_crop_views(0))
    assert torch.isfinite(loss)


def test_vicregl_alpha_one_leaves_the_local_projector_untrained():
    from selfsup.methods.vicregl import VICRegL
    for alpha, local_grad in ((1.0, False), (0.75, True)):
        method = VICRegL(small_vit(), proj_dim=8, proj_hidden_dim=8, maps_proj_dim=8, maps_proj_hidden_dim=8,
                         local_crops=2, alpha=alpha)
        loss, _ = method(multi_crop_views())
        loss.backward()
        grad = method.maps_projector[0].weight.grad
        assert (grad is not None and bool(grad.abs().sum() > 0)) == local_grad
        assert method.projector[0].weight.grad.abs().sum() > 0
