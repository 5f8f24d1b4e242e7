"""MSN (with PMSN's prior) and SMoG: losses against values computed by hand from the papers' formulas, the masking
and view wiring of MSN's step, and SMoG's group update after the optimiser step and its periodic reset."""
import math

import pytest
import torch

from selfsup.encoders import Encoder
from selfsup.errors import ConfigError
from selfsup.methods.base import StepInfo, TrainingContext
from selfsup.methods.msn import MSN, msn_loss
from selfsup.methods.pseudo_labels import spherical_kmeans
from selfsup.methods.smog import KMEANS_SEED, SMoG, momentum_grouping, smog_loss
from selfsup.modalities import get_modality, new_encoder
from selfsup.views import Views

E1, E2 = [1.0, 0.0], [0.0, 1.0]


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def softmax2(a: float, b: float) -> tuple[float, float]:
    m = max(a, b)
    ea, eb = math.exp(a - m), math.exp(b - m)
    return ea / (ea + eb), eb / (ea + eb)


# ---- MSN ----

def test_msn_loss_by_hand():
    # prototypes e1, e2; target and anchor both e1: cosines (1, 0); target softmax at 0.025, anchor at 0.1
    q = softmax2(40.0, 0.0)
    p = softmax2(10.0, 0.0)
    ce = -(q[0] * math.log(p[0]) + q[1] * math.log(p[1]))
    me_max = math.log(2) + p[0] * math.log(p[0]) + p[1] * math.log(p[1])  # log K - H(mean prediction)
    loss = msn_loss([t([E1])], t([E1]), t([E1, E2]), 0.1, 0.025, sinkhorn_iterations=0, me_max_weight=1.0)
    assert loss.item() == pytest.approx(ce + me_max, rel=1e-5)
    half = msn_loss([t([E1])], t([E1]), t([E1, E2]), 0.1, 0.025, sinkhorn_iterations=0, me_max_weight=0.5)
    assert half.item() == pytest.approx(ce + 0.5 * me_max, rel=1e-5)


def test_msn_sinkhorn_balances_identical_targets_and_me_max_vanishes_for_a_uniform_mean():
    # two targets both at e1: balanced over the 2 prototypes, each target becomes (1/2, 1/2) exactly; the anchors
    # e1 and e2 predict (p, 1-p) and (1-p, p), so their mean is uniform and the me-max term is 0
    p = softmax2(10.0, 0.0)
    expected = -0.5 * (math.log(p[0]) + math.log(p[1]))
    for weight in (0.0, 1.0):
        loss = msn_loss([t([E1, E2])], t([E1, E1]), t([E1, E2]), 0.1, 0.025, sinkhorn_iterations=3,
                        me_max_weight=weight)
        assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_pmsn_power_law_prior_by_hand():
    # exponent 1 over K = 2 prototypes: prior (1, 1/2) / 1.5; the regulariser is KL(prior || mean prediction)
    prior = (2 / 3, 1 / 3)
    p = softmax2(10.0, 0.0)
    kl = sum(r * math.log(r / m) for r, m in zip(prior, p))
    args = ([t([E1])], t([E1]), t([E1, E2]), 0.1, 0.025, 0)
    with_prior = msn_loss(*args, me_max_weight=1.0, prior="power_law", power_law_exponent=1.0)
    without = msn_loss(*args, me_max_weight=0.0)
    assert (with_prior - without).item() == pytest.approx(kl, rel=1e-5)


def tiny_vit(size=8):
    return new_encoder(get_modality("image"), "vit_tiny", {"channels": 1, "size": size}, depth=1)


def small_msn(**options):
    torch.manual_seed(0)
    return MSN(tiny_vit(), num_prototypes=4, hidden_dim=16, out_dim=8, **options)


def test_msn_unmasked_identical_views_give_the_loss_of_equal_anchor_and_target():
    """With nothing masked, no focal view and the same image as anchor and target, the anchor and the target (the
    EMA copy at initialisation) have the same projection: the wiring adds nothing to the loss function."""
    method = small_msn(mask_ratio=0.0, focal_views=0).eval()
    x = torch.randn(4, 1, 8, 8)
    loss, _ = method(Views([x, x]))
    z = method.head(method.encoder.tokens(x).mean(dim=1))
    expected = msn_loss([z], z, method.prototypes.weight, 0.1, 0.025, 3, 1.0)
    torch.testing.assert_close(loss, expected)


def test_msn_masks_the_anchor_and_cuts_focal_blocks_from_it_never_masking_the_target():
    method = small_msn(mask_ratio=0.5, focal_views=2, focal_scale_min=0.25, focal_scale_max=0.25)
    seen = []
    for name, encoder in (("online", method.encoder), ("target", method.target_encoder)):
        def record(x, keep=None, _tokens=encoder.tokens, _name=name):
            seen.append((_name, x.clone(), keep))
            return _tokens(x, keep)
        encoder.tokens = record
    target, anchor = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8)
    loss, _ = method(Views([target, anchor]))
    loss.backward()
    assert [name for name, _, _ in seen] == ["online", "online", "target"]
    (_, x_anchor, keep_anchor), (_, x_focal, keep_focal), (_, x_target, keep_target) = seen
    assert torch.equal(x_anchor, anchor) and keep_anchor.sum(dim=1).tolist() == [8] * 3  # 16 tokens, half kept
    assert torch.equal(x_focal, torch.cat([anchor, anchor])) and keep_focal.sum(dim=1).tolist() == [2] * 6
    for row in keep_focal.view(6, 4, 4):  # 2 of the 4 tokens of a 2 x 2 block (a quarter of the 4 x 4 grid)
        r, c = row.nonzero().unbind(1)
        assert int(r.max() - r.min()) <= 1 and int(c.max() - c.min()) <= 1
    assert torch.equal(x_target, target) and keep_target is None
    assert method.prototypes.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in method.target_head.parameters())
    assert method.view_request().local_views == 0


def test_msn_options_are_checked():
    with pytest.raises(ConfigError, match="prior"):
        small_msn(prior="zipf")
    with pytest.raises(ConfigError, match="mask_ratio"):
        small_msn(mask_ratio=1.0)


# ---- SMoG ----

def test_momentum_grouping_by_hand():
    # rows [2,0] and [4,1] are nearest to group 0, [0,3] to group 1; group 2 gets none and stays
    groups = t([E1, E2, [-1.0, 0.0]])
    moved = momentum_grouping(groups, t([[2, 0], [4, 1], [0, 3]]), beta=0.9)
    torch.testing.assert_close(moved, t([[0.9 + 0.1 * 3, 0.1 * 0.5], [0.0, 0.9 + 0.1 * 3], [-1.0, 0.0]]))


def test_smog_loss_by_hand():
    # groups e1, e2 at temperature 0.1; t1 belongs to group 0, t2 to group 1
    # p1 = e1 predicts t2's group 1: logits (10, 0) -> log(1 + e^10)
    # p2 = (1, 1) predicts t1's group 0: equal logits -> log 2
    loss = smog_loss([t([E1]), t([[1, 1]])], [t([[3, 0]]), t([[0, 1]])], t([E1, E2]), 0.1)
    assert loss.item() == pytest.approx((math.log(1 + math.exp(10)) + math.log(2)) / 2, rel=1e-6)


class Linear(Encoder):
    out_dim = 5

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(6, 5)

    def forward(self, x):
        return self.fc(x)


def test_smog_groups_move_after_the_optimiser_step_and_reset_by_kmeans():
    torch.manual_seed(0)
    method = SMoG(Linear(), num_groups=2, hidden_dim=8, proj_dim=4, reset_interval=2, kmeans_iterations=3)
    method.setup(TrainingContext(num_samples=64, batch_size=8))
    assert method.bank.shape == (16, 4)  # 2 steps of 8 projections
    views = Views([torch.randn(8, 6), torch.randn(8, 6)])
    before = method.groups.clone()
    loss, logs = method(views)
    assert torch.equal(method.groups, before)  # the loss is scored against the groups as they stand
    z = method.pending[0].clone()
    method.after_optimizer_step(StepInfo(0, 0.1))
    torch.testing.assert_close(method.groups, momentum_grouping(before, z, 0.99))
    assert method.bank_filled == 8 and 1 <= int(logs["groups_used"]) <= 2
    with torch.no_grad():  # the online networks drift from the targets, which the reset brings back
        method.encoder.fc.weight.add_(1.0)
    method(views)
    method.after_optimizer_step(StepInfo(1, 0.2))
    expected, _ = spherical_kmeans(method.bank, 2, 3, torch.Generator().manual_seed(KMEANS_SEED + 2))
    torch.testing.assert_close(method.groups, expected)
    assert torch.equal(method.target_encoder.fc.weight, method.encoder.fc.weight)
    assert method.extra_state() == {"bank_filled": 16}
