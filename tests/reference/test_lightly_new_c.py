"""DINOv2's KoLeo and iBOT patch losses and VICRegL's loss against LightlySSL 1.6 (values and gradients, fp32)."""
import torch
import torch.nn.functional as F
from _compare import assert_close, value_and_grad
from lightly.loss import KoLeoLoss, VICRegLLoss
from lightly.loss.ibot_loss import IBOTPatchLoss

from selfsup.methods.dinov2 import ibot_patch_loss, koleo_loss
from selfsup.methods.vicregl import vicregl_loss


def compare(ours, theirs, *inputs):
    value, grads = value_and_grad(ours, *inputs)
    ref_value, ref_grads = value_and_grad(theirs, *inputs)
    assert_close(value, ref_value.reshape(value.shape))
    for g, r in zip(grads, ref_grads):
        assert_close(g, r)


def test_koleo_equals_lightly():
    torch.manual_seed(0)
    compare(koleo_loss, KoLeoLoss(), torch.randn(32, 16))


def test_ibot_patch_loss_equals_lightly():
    """lightly centres the teacher with a running mean inside the loss; selfsup's loss takes the teacher's targets
    (Sinkhorn-Knopp codes in the method). With lightly's centre given a value and the same centring done before
    selfsup's loss, the two agree, gradients through the teacher's softmax included."""
    torch.manual_seed(0)
    mask = torch.rand(6, 3, 4) < 0.3
    mask[2] = False  # an image with nothing hidden counts in the mean with 0
    m, k, teacher_temp, student_temp = int(mask.sum()), 10, 0.04, 0.1
    center = torch.randn(1, k) * 0.1
    criterion = IBOTPatchLoss(output_dim=k, teacher_temp=teacher_temp, student_temp=student_temp)
    criterion.center.center.copy_(center)
    image = mask.flatten(1).nonzero()[:, 0]

    def ours(teacher, student):
        targets = F.softmax((teacher - center) / teacher_temp, dim=-1)
        return ibot_patch_loss(student, targets, image, mask.shape[0], student_temp)

    compare(ours, lambda teacher, student: criterion(teacher, student, mask), torch.randn(m, k), torch.randn(m, k))


def test_vicregl_equals_lightly_without_the_location_term():
    """selfsup's views carry no crop geometry, so VICRegL's local term is the feature-space matching alone: equal to
    lightly's global loss and its feature-space (L2) local loss, averaged over the same view pairs, which its
    forward adds to the location-matched one."""
    torch.manual_seed(0)
    b, d, e = 8, 12, 6
    shapes = [(6, 6), (6, 6), (3, 3), (3, 4)]  # 2 global + 2 local views: more tokens than the 20 and 4 matches
    criterion = VICRegLLoss(alpha=0.75)
    inputs = [torch.randn(b, d) for _ in shapes] + [torch.randn(b, h, w, e) for h, w in shapes]

    def ours(*xs):
        return vicregl_loss(list(xs[:4]), [m.flatten(1, 2) for m in xs[4:]], 2, 0.75)

    def theirs(*xs):
        views = list(zip(xs[:4], xs[4:]))
        global_loss = criterion._global_loss(views[:2], views[2:])
        pairs = [(a, c) for i, a in enumerate(views[:2]) for j, c in enumerate(views) if j != i]
        local = sum(criterion._local_l2_loss(a[1], c[1]) for a, c in pairs) / len(pairs)
        return (0.75 * global_loss + 0.25 * local).squeeze()

    compare(ours, theirs, *inputs)
