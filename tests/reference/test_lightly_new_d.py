"""MSN (and PMSN) and SMoG against LightlySSL 1.6: losses' values and gradients, heads, and SMoG's group assignment
and synchronous momentum update over several steps (fp32, rtol 1e-5)."""
import pytest
import torch
import torch.nn.functional as F
from _compare import assert_close, value_and_grad
from lightly.loss import MSNLoss, PMSNLoss
from lightly.models.modules import heads

from selfsup.methods.base import mlp
from selfsup.methods.msn import MSNHead, msn_loss
from selfsup.methods.smog import assign_groups, momentum_grouping, smog_loss

B, V, D, K = 8, 3, 16, 12


def msn_inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(V * B, D, generator=g), torch.randn(B, D, generator=g), torch.randn(K, D, generator=g))


@pytest.mark.parametrize("sinkhorn_iterations", [0, 3])
@pytest.mark.parametrize("weight", [0.0, 1.0, 0.5])
def test_msn_loss_value_and_gradients_match_lightly(sinkhorn_iterations, weight):
    anchors, target, prototypes = msn_inputs(0)
    theirs_fn = MSNLoss(temperature=0.1, sinkhorn_iterations=sinkhorn_iterations, regularization_weight=weight)

    def ours(a, t, p):  # lightly's anchors are the views stacked view after view
        return msn_loss(list(a.chunk(V)), t, p, 0.1, 0.025, sinkhorn_iterations, weight)

    def theirs(a, t, p):  # sharpening 0.25 of the softmax at 0.1 = our target temperature 0.025
        return theirs_fn(a, t, p, target_sharpen_temperature=0.25)

    value, grads = value_and_grad(ours, anchors, target, prototypes)
    ref_value, ref_grads = value_and_grad(theirs, anchors, target, prototypes)
    assert_close(value, ref_value)
    for g, r in zip(grads, ref_grads):
        assert_close(g, r)
    assert grads[2].abs().sum() > 0 and grads[1].abs().sum() == 0  # prototypes learn; the target has no gradient


def test_msn_me_max_term_alone_matches_lightly():
    """The regulariser on its own (the difference of the loss with and without it), where it is the whole gradient
    of a loss whose cross-entropy part is constant."""
    anchors, target, prototypes = msn_inputs(1)
    ours = msn_loss([anchors], target[:1].expand(len(anchors), -1), prototypes, me_max_weight=1.0) - \
        msn_loss([anchors], target[:1].expand(len(anchors), -1), prototypes, me_max_weight=0.0)
    probs = F.softmax(F.normalize(anchors, dim=1) @ F.normalize(prototypes, dim=1).T / 0.1, dim=1)
    assert_close(ours, MSNLoss().regularization_loss(probs.mean(dim=0)))


@pytest.mark.parametrize("sinkhorn_iterations", [0, 3])
def test_pmsn_power_law_prior_matches_lightly(sinkhorn_iterations):
    anchors, target, prototypes = msn_inputs(2)
    theirs_fn = PMSNLoss(temperature=0.1, sinkhorn_iterations=sinkhorn_iterations, power_law_exponent=0.25)

    def ours(a, t, p):
        return msn_loss(list(a.chunk(V)), t, p, 0.1, 0.025, sinkhorn_iterations, 1.0, "power_law", 0.25)

    value, grads = value_and_grad(ours, anchors, target, prototypes)
    ref_value, ref_grads = value_and_grad(lambda a, t, p: theirs_fn(a, t, p, 0.25), anchors, target, prototypes)
    assert_close(value, ref_value)
    for g, r in zip(grads, ref_grads):
        assert_close(g, r)


def copy_linear_and_norm_layers(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """Give `ours` the parameters and buffers of `theirs`, matched in module order (same architecture)."""
    mine = [m for m in ours.modules() if isinstance(m, (torch.nn.Linear, torch.nn.BatchNorm1d))]
    ref = [m for m in theirs.modules() if isinstance(m, (torch.nn.Linear, torch.nn.BatchNorm1d))]
    assert [type(m) for m in mine] == [type(m) for m in ref]
    for a, b in zip(mine, ref):
        a.load_state_dict(b.state_dict())


@pytest.mark.parametrize("ours,theirs", [
    (lambda: MSNHead(24, 32, 16), lambda: heads.MSNProjectionHead(24, 32, 16)),
    (lambda: mlp(24, 32, 16, last_bn=True, last_bn_affine=False), lambda: heads.SMoGProjectionHead(24, 32, 16)),
    (lambda: mlp(16, 32, 16), lambda: heads.SMoGPredictionHead(16, 32, 16)),
], ids=["msn_projection", "smog_projection", "smog_prediction"])
def test_heads_match_lightly(ours, theirs):
    torch.manual_seed(0)
    a, b = ours(), theirs()
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())
    copy_linear_and_norm_layers(a, b)
    x = torch.randn(10, a[0].in_features)
    assert_close(a(x), b(x))  # training mode: batch statistics


def smog_step_inputs(g: torch.Generator, dim: int = 6):
    return [torch.randn(B, dim, generator=g) for _ in range(5)]  # z1, p1, p2, t1, t2


def test_smog_assignment_update_and_loss_match_lightly_over_steps():
    """Five steps: each step's target assignments and loss (values and gradients) against the groups as they stand,
    then the synchronous momentum update by the online projections, ours and lightly's SMoGPrototypes side by side."""
    g = torch.Generator().manual_seed(3)
    groups = F.normalize(torch.rand(5, 6, generator=g), dim=1)
    ref = heads.SMoGPrototypes(groups.clone(), beta=0.9)
    ours_groups = groups.clone()
    criterion = torch.nn.CrossEntropyLoss()
    for step in range(5):
        z1, p1, p2, t1, t2 = smog_step_inputs(g)
        assert torch.equal(assign_groups(t1, ours_groups), ref.assign_groups(t1))
        value, grads = value_and_grad(lambda a, b: smog_loss([a, b], [t1, t2], ours_groups, 0.1), p1, p2)

        def theirs(a, b):
            fixed = ref.group_features.detach()  # the groups before this step's update
            return 0.5 * (criterion(ref(a, fixed, 0.1), ref.assign_groups(t2))
                          + criterion(ref(b, fixed, 0.1), ref.assign_groups(t1)))

        ref_value, ref_grads = value_and_grad(theirs, p1, p2)
        assert_close(value, ref_value)
        for ours_g, ref_g in zip(grads, ref_grads):
            assert_close(ours_g, ref_g)
        ours_groups = momentum_grouping(ours_groups, z1, 0.9)
        ref.set_group_features(ref.get_updated_group_features(z1).detach())
        assert_close(ours_groups, ref.group_features)
    assert not torch.allclose(ours_groups, groups)


def test_smog_departure_lightly_scores_against_the_moved_groups():
    """LightlySSL's example scores the predictions against the groups already moved by the batch (and
    back-propagates into the online projections through that move); here the loss uses the groups before the
    update, which follows the optimiser step. The two differ whenever the batch moves a group."""
    g = torch.Generator().manual_seed(4)
    groups = F.normalize(torch.randn(4, 6, generator=g), dim=1)
    z1, p1, _, _, t2 = smog_step_inputs(g)
    ref = heads.SMoGPrototypes(groups.clone(), beta=0.5)
    moved = ref.get_updated_group_features(z1)
    theirs = torch.nn.functional.cross_entropy(ref(p1, moved, 0.1), ref.assign_groups(t2))
    ours = smog_loss([p1, p1], [t2, t2], groups, 0.1)  # one direction, twice
    assert_close(momentum_grouping(groups, z1, 0.5), moved)  # the same update ...
    assert not torch.allclose(ours, theirs)  # ... applied at a different time
