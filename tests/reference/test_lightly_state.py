"""selfsup's stateful parts against LightlySSL 1.6.0: queues, the DINO centre, the SwAV queue, NNCLR's support set,
run for several training steps on both sides; the EMA update and momentum schedule; MAE's patches and masks; I-JEPA's
block masks (distribution summaries against lightly's IJEPAMaskCollator, the authors' collator)."""
import math

import pytest
import torch
import torch.nn.functional as F
from lightly.data.ijepa_collate import IJEPAMaskCollator
from lightly.loss import DINOLoss, NTXentLoss, SwaVLoss
from lightly.models.modules.center import Center
from lightly.models.modules.memory_bank import MemoryBankModule
from lightly.models.modules.nn_memory_bank import NNMemoryBankModule
from lightly.models.utils import patchify, random_token_mask, update_momentum
from lightly.utils.scheduler import cosine_schedule

from _compare import assert_close
from selfsup.methods.base import TrainingContext, cosine_momentum
from selfsup.methods.dino import DINO, dino_loss
from selfsup.methods.ijepa import IJEPA, block_shape
from selfsup.methods.mae import random_keep
from selfsup.methods.moco import MoCo, moco_loss
from selfsup.methods.nnclr import NNCLR
from selfsup.methods.numerics import recorded_loss_calls
from selfsup.methods.queues import enqueue
from selfsup.methods.swav import SwAV
from selfsup.modalities import get_modality, new_encoder
from selfsup.schedules import Schedule
from selfsup.training.step import ema_update
from selfsup.views import Views
from selfsup.methods.base import StepInfo

B, IN = 32, 12
STEPS = 5


def tiny_encoder():
    encoder = torch.nn.Linear(IN, 24)
    encoder.out_dim = 24
    return encoder


def batch(step, crops=2):
    g = torch.Generator().manual_seed(100 + step)
    return [torch.randn(B, IN, generator=g) for _ in range(crops)]


def forward(method, views):
    """The method's loss on `views` and the full-precision loss calls it made (the tensors the method passed)."""
    with recorded_loss_calls() as calls:
        loss, _ = method(views)
    return loss, calls


def finish(method, loss, optimizer, progress):
    """The rest of selfsup's training step (training/step.py): backward, optimiser step, EMA of the targets, then the
    method's state update."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    method.before_optimizer_step(StepInfo(0, progress))
    optimizer.step()
    for online, target in method.momentum_pairs():
        ema_update(target, online, method.target_momentum(progress))
    method.after_optimizer_step(StepInfo(0, progress))


def sgd(method):
    return torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.05)


# ---- MoCo: the queue ----

def test_moco_queue_and_loss_follow_lightlys_memory_bank_over_steps():
    """Every step the queue holds what lightly's MemoryBankModule holds when fed the same keys (both views' keys,
    L2-normalised, view 1 then view 2, enqueued after the loss), and the symmetrised loss equals lightly's
    NTXentLoss with that bank. The queue wraps within 5 steps."""
    torch.manual_seed(0)
    method = MoCo(tiny_encoder(), queue_size=3 * 2 * B, proj_hidden_dim=32, proj_dim=16)
    method.setup(TrainingContext(num_samples=10_000, batch_size=B))
    bank = MemoryBankModule(size=(3 * 2 * B, 16))
    bank.bank = method.queue.clone()
    criterion = NTXentLoss(temperature=0.2, memory_bank_size=(3 * 2 * B, 16))
    optimizer = sgd(method)
    for step in range(STEPS):
        loss, calls = forward(method, Views(batch(step)))
        (q1, k2, *_), (q2, k1, *_) = (c.args for c in calls)
        criterion.memory_bank.bank = bank.bank.clone()
        theirs = 0.5 * (criterion(q1.detach(), k2) + criterion(q2.detach(), k1))  # detached query: no bank update
        assert_close(loss, theirs)
        bank(F.normalize(torch.cat([k1, k2]), dim=1), update=True)
        finish(method, loss, optimizer, (step + 1) / STEPS)
        assert_close(method.queue, bank.bank)
        assert int(method.queue_ptr) == int(bank.bank_ptr)


def test_lightlys_in_loss_bank_update_lets_the_second_view_see_the_first_views_keys():
    """Queue update order: selfsup scores both views against the same queue and enqueues after the step (the MoCo
    v2 code); lightly's NTXentLoss enqueues inside each call, so in the symmetrised loss its second term already
    has the first term's keys among its negatives: the first terms agree, the second terms differ."""
    g = torch.Generator().manual_seed(1)
    q1, q2, k1, k2 = (torch.randn(B, 16, generator=g) for _ in range(4))
    queue = F.normalize(torch.randn(4 * B, 16, generator=g), dim=1)
    criterion = NTXentLoss(temperature=0.2, memory_bank_size=(4 * B, 16))
    criterion.memory_bank.bank = queue.clone()
    first = criterion(q1.requires_grad_(), k2)  # enqueues k2
    second = criterion(q2.requires_grad_(), k1)
    assert_close(first, moco_loss(q1, k2, queue))
    assert (second - moco_loss(q2, k1, queue)).abs() > 1e-4
    shifted = torch.cat([F.normalize(k2, dim=1), queue[B:]])
    assert_close(second, moco_loss(q2, k1, shifted))


def test_enqueue_wraps_where_lightlys_bank_drops_the_overflow():
    """Departure, harmless as used: when a step's keys run past the end, selfsup's enqueue wraps them to the front,
    lightly's bank writes only up to the end and restarts at 0. selfsup's queues are sized in whole steps of keys
    (queues.capped_queue), where the two coincide (the MoCo test above)."""
    g = torch.Generator().manual_seed(2)
    queue = F.normalize(torch.randn(10, 4, generator=g), dim=1)
    pointer = torch.zeros((), dtype=torch.long)
    bank = MemoryBankModule(size=(10, 4))
    bank.bank = queue.clone()
    keys = [F.normalize(torch.randn(4, 4, generator=g), dim=1) for _ in range(3)]
    for k in keys:
        enqueue(queue, pointer, k)
        bank(k, update=True)
    # writes at 0-3, 4-7, then 8-9 and (selfsup only) 0-1
    assert_close(queue[:8], torch.cat([keys[2][2:], keys[0][2:], keys[1]]))
    assert_close(bank.bank[:8], torch.cat(keys[:2]))
    assert_close(queue[8:], bank.bank[8:])
    assert int(pointer) == 2 and int(bank.bank_ptr) == 0


# ---- NNCLR: the support set ----

def test_nnclr_support_set_and_neighbours_follow_lightlys_nn_memory_bank_over_steps():
    """The first view's projections are enqueued after each step; the neighbours of both views come from the queue
    as it was before. lightly's bank stores the raw projections and returns raw neighbours; selfsup stores them
    L2-normalised, so its neighbours are lightly's normalised (the loss normalises them anyway)."""
    torch.manual_seed(0)
    size = 3 * B
    method = NNCLR(tiny_encoder(), queue_size=size, proj_hidden_dim=32, proj_dim=16, pred_hidden_dim=32)
    method.setup(TrainingContext(num_samples=10_000, batch_size=B))
    support = NNMemoryBankModule(size=(size, 16))
    support.bank = method.queue.clone()
    optimizer = sgd(method)
    for step in range(STEPS):
        views = Views(batch(step))
        loss, calls = forward(method, views)
        (nn1, *_), (nn2, *_) = (c.args for c in calls)
        z1 = method.pending.clone()
        with torch.no_grad():
            z2 = method.projector(method.encoder(views.global_views[1]))
        theirs2 = support(z2, update=False)
        theirs1 = support(z1, update=True)
        assert_close(nn1, F.normalize(theirs1, dim=1))
        assert_close(nn2, F.normalize(theirs2, dim=1))
        finish(method, loss, optimizer, (step + 1) / STEPS)
        assert_close(method.queue, F.normalize(support.bank, dim=1))


# ---- DINO: the centre and the teacher temperature ----

def test_dino_loss_and_centre_follow_lightlys_dino_loss_and_center_over_steps():
    """The loss uses the centre from before the step; after it the centre moves by momentum 0.9 towards the mean
    teacher output over both global views and the batch, as lightly's DINOLoss.update_center and its Center module."""
    torch.manual_seed(0)
    k = 64
    method = DINO(tiny_encoder(), out_dim=k, hidden_dim=32, bottleneck_dim=16, local_crops=2)
    method.setup(TrainingContext(num_samples=10_000, batch_size=B))
    criterion = DINOLoss(output_dim=k, student_temp=0.1, center_momentum=0.9)
    center = Center(size=(1, k), momentum=0.9)
    optimizer = sgd(method)
    for step in range(STEPS):
        crops = batch(step, 4)
        loss, calls = forward(method, Views(crops[:2], crops[2:]))
        student, teacher, _, _, teacher_temp = calls[0].args
        assert_close(loss, criterion([t.detach() for t in teacher], [s.detach() for s in student],
                                     teacher_temp=teacher_temp))
        center.update(torch.cat(teacher).detach())
        finish(method, loss, optimizer, (step + 1) / 100)
        assert_close(method.center, criterion.center.view(1, k))
        assert_close(method.center, center.value)
    assert method.center.abs().max() > 0


def test_dino_teacher_temperature_warm_up_is_lightlys_epoch_schedule_in_progress():
    """Departure stated in dino.py: the warm-up spans a fraction of training (progress) instead of epochs and is
    continuous. At progress = warmup x e / (W - 1) it equals lightly's (the authors') schedule at epoch e of a W-epoch
    warm-up, linspace(0.04, 0.07, W); after it both stay at 0.07."""
    warmup_epochs, warmup = 30, 0.3
    method = DINO(tiny_encoder(), out_dim=8, hidden_dim=8, bottleneck_dim=4, teacher_temp=0.07,
                  warmup_teacher_temp=0.04, teacher_temp_warmup=warmup)
    criterion = DINOLoss(output_dim=8, warmup_teacher_temp=0.04, teacher_temp=0.07,
                         warmup_teacher_temp_epochs=warmup_epochs)
    for epoch in range(warmup_epochs):
        progress = warmup * epoch / (warmup_epochs - 1)
        assert method.teacher_temp(progress) == pytest.approx(float(criterion.teacher_temp_schedule[epoch]), rel=1e-6)
    for progress in (0.31, 0.5, 1.0):
        assert method.teacher_temp(progress) == 0.07
    # the loss under lightly's epoch schedule equals selfsup's at the mapped progress
    g = torch.Generator().manual_seed(3)
    student, teacher = list(torch.randn(4, B, 8, generator=g)), list(torch.randn(2, B, 8, generator=g))
    epoch = 7
    assert_close(dino_loss(student, teacher, torch.zeros(1, 8), 0.1,
                           method.teacher_temp(warmup * epoch / (warmup_epochs - 1))),
                 criterion(teacher, student, epoch=epoch))


# ---- SwAV: the queue ----

def test_swav_queue_and_loss_follow_lightlys_memory_banks_over_steps():
    """selfsup shifts the queue (newest projections in front, as the SwAV code); lightly's example keeps one
    MemoryBankModule per global crop (a ring). After the same steps they hold the same projections in another order,
    which Sinkhorn ignores: once the queue is full the loss with the queue's scores equals lightly's SwaVLoss with
    queue_outputs."""
    torch.manual_seed(0)
    length, k = 2 * B, 40
    method = SwAV(tiny_encoder(), num_prototypes=k, proj_hidden_dim=32, proj_dim=16, local_crops=2,
                  queue_length=length, queue_start=0.0)
    method.setup(TrainingContext(num_samples=10_000, batch_size=B))
    banks = [MemoryBankModule(size=(length, 16)) for _ in range(2)]
    for bank in banks:
        bank.bank = torch.zeros(length, 16)
    criterion = SwaVLoss(temperature=0.1, sinkhorn_iterations=3, sinkhorn_epsilon=0.05)
    optimizer = sgd(method)
    for step in range(STEPS):
        crops = batch(step, 4)
        queue_full = step * B >= length
        with torch.no_grad():
            queue_scores = [method.prototypes(bank.bank) for bank in banks] if queue_full else None
        loss, calls = forward(method, Views(crops[:2], crops[2:]))
        scores = [s.detach() for s in calls[0].args[0]]
        assert_close(loss, criterion(scores[:2], scores[2:], queue_scores).squeeze())
        for bank, z in zip(banks, method.pending):
            bank(z.clone(), update=True)
        finish(method, loss, optimizer, (step + 1) / STEPS)
        for queue, bank in zip(method.queue, banks):  # the same rows, another order
            assert_close(queue[queue[:, 0].argsort()], bank.bank[bank.bank[:, 0].argsort()])
    assert method.queue_filled == STEPS * B


# ---- EMA: update and momentum schedule ----

def test_ema_update_equals_lightlys_update_momentum_on_parameters_and_also_copies_buffers():
    """Parameters: target = m target + (1 - m) online, as lightly's update_momentum. Buffers (BatchNorm's running
    statistics): selfsup copies the online network's (training/step.py states it); lightly leaves them."""
    torch.manual_seed(0)
    online = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16), torch.nn.Linear(16, 4))
    ours, theirs = (torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16), torch.nn.Linear(16, 4))
                    for _ in range(2))
    theirs.load_state_dict(ours.state_dict())
    online(torch.randn(32, 8))  # moves the online running statistics
    for m in (0.99, 0.9, 0.5):
        ema_update(ours, online, m)
        update_momentum(online, theirs, m)
        for a, b in zip(ours.parameters(), theirs.parameters()):
            assert_close(a, b)
    assert_close(ours[1].running_mean, online[1].running_mean)
    assert theirs[1].running_mean.abs().max() == 0


def test_cosine_momentum_schedule_equals_lightlys_cosine_schedule():
    """BYOL's tau = 1 - (1 - base)(cos(pi k / K) + 1) / 2: selfsup's Schedule(base, 1) at progress p is lightly's
    cosine_schedule(step, max_steps, base, 1) at p = step / (max_steps - 1)."""
    for base in (0.99, 0.996):
        for steps in (2, 11, 1000):
            for step in range(0, steps, max(1, steps // 37)):
                p = step / (steps - 1)
                theirs = cosine_schedule(step, steps, base, 1.0)
                assert math.isclose(Schedule(base, 1.0)(p), theirs, rel_tol=1e-12)
                assert math.isclose(cosine_momentum(base, p), theirs, rel_tol=1e-12)


# ---- MAE: patches and masks ----

def test_vit_patches_are_lightlys_patchify():
    encoder = new_encoder(get_modality("image"), "vit_tiny", {"channels": 3, "size": 32}, depth=1)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    assert torch.equal(encoder.patches(x), patchify(x, encoder.patch_size))


def test_mae_masks_keep_as_many_tokens_as_lightlys_random_token_mask_up_to_rounding():
    """Both keep a uniformly random subset of each row's tokens. The count: lightly (and the MAE code) floors
    T x (1 - ratio); selfsup rounds it (stated in mae.py), one token more when the fraction is 0.5 or above."""
    torch.manual_seed(0)
    for tokens, ratio in [(196, 0.75), (49, 0.75), (64, 0.6), (10, 0.4), (50, 0.4), (7, 0.5)]:
        keep = random_keep(2000, tokens, ratio, torch.device("cpu"))
        idx_keep, idx_mask = random_token_mask((2000, tokens), ratio, mask_class_token=True)
        exact = tokens * (1 - ratio)
        floor = int(exact)
        assert idx_keep.shape[1] == floor
        assert (keep.sum(dim=1) == (floor + (exact - floor >= 0.5 - 1e-9))).all()
        theirs = torch.zeros(2000, tokens).scatter_(1, idx_keep, 1.0)
        for frequency, count in ((keep.float().mean(0), keep.sum(1)[0]), (theirs.mean(0), floor)):
            assert (frequency - count / tokens).abs().max() < 0.05  # every position kept equally often


# ---- I-JEPA: block masks ----

def ijepa_summaries_lightly(batches=30, size=32):
    collator = IJEPAMaskCollator(input_size=224, patch_size=16, enc_mask_scale=(0.85, 1.0),
                                 pred_mask_scale=(0.15, 0.2), aspect_ratio=(0.75, 1.5), nenc=1, npred=4, min_keep=10)
    targets, contexts, coverage = [], [], torch.zeros(196)
    for _ in range(batches):
        _, context, blocks = collator([torch.zeros(1)] * size)
        contexts.append(context[0].shape[-1])
        for block in blocks:
            targets.append(block.shape[-1])
            coverage += torch.zeros(size, 196).scatter_(1, block, 1.0).sum(0)
    return torch.tensor(targets).float() / 196, torch.tensor(contexts).float() / 196, coverage.view(14, 14)


def ijepa_summaries_selfsup(batches=30, size=32):
    torch.manual_seed(0)
    method = IJEPA(new_encoder(get_modality("image"), "vit_tiny", {"channels": 3, "size": 224}, depth=1))
    x = torch.zeros(size, 3, 224, 224)
    targets, contexts, coverage = [], [], torch.zeros(196)
    for _ in range(batches):
        context, blocks = method.masks(x)
        contexts.append(int(context[0].sum()))
        for block in blocks:
            targets.append(int(block[0].sum()))
            coverage += block.float().sum(0)
    return torch.tensor(targets).float() / 196, torch.tensor(contexts).float() / 196, coverage.view(14, 14)


def test_ijepa_masks_match_the_authors_collator_in_distribution_except_at_the_grid_edge():
    """On a 14 x 14 grid with the paper's settings (4 targets of 15-20%, aspect 0.75-1.5; a context of 85-100%
    minus the targets) and 32 images a batch: the target blocks have the same mean size; the collator never places
    a block on the last row or column and caps the context block at 13 x 13 (stated in ijepa.py), so selfsup's
    context keeps more tokens and its targets reach the grid's edge."""
    lt, lc, lcov = ijepa_summaries_lightly()
    st, sc, scov = ijepa_summaries_selfsup()
    assert abs(float(lt.mean()) - float(st.mean())) < 0.01 and 0.15 <= float(st.mean()) <= 0.2
    assert 0.12 <= float(lt.min()) and float(lt.max()) <= 0.23 and 0.12 <= float(st.min()) and float(st.max()) <= 0.23
    assert lcov[-1].sum() == 0 and lcov[:, -1].sum() == 0
    assert scov[-1].sum() > 0 and scov[:, -1].sum() > 0
    assert float(lc.mean()) < float(sc.mean()) < 0.5 and float(lc.mean()) > 0.2
    # block shapes: the collator draws area and aspect from one number (correlated once the sides are rounded),
    # selfsup independently (stated in ijepa.py)
    collator = IJEPAMaskCollator(input_size=224, patch_size=16)
    g = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    theirs = torch.tensor([collator._sample_block_size(g, (0.15, 0.2), (0.75, 1.5)) for _ in range(2000)]).float()
    ours = torch.tensor([block_shape((14, 14), (0.15, 0.2), (0.75, 1.5)) for _ in range(2000)]).float()
    for shapes, low, high in ((theirs, 0.4, 1.0), (ours, -0.15, 0.15)):
        corr = torch.corrcoef(torch.stack([shapes.prod(dim=1), shapes[:, 0] / shapes[:, 1]]))[0, 1]
        assert low <= float(corr) <= high
    # both peak in the middle of the grid: the central 4 x 4 is covered far more often than the border
    for cov in (lcov, scov):
        assert cov[5:9, 5:9].mean() > 3 * cov[0].mean()
