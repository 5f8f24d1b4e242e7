"""The fine-tuning protocol (selfsup.finetune): it really updates a copy of the encoder, it is a measurement one can
trust on digits (all labels beat the frozen linear probe; more labels never give less), and its parts (the head
started at the linear probe, layer-wise learning-rate decay, the rate chosen on validation) do what they say."""
import numpy as np
import torch

import selfsup
from selfsup.evaluate import holdout_test_split
from selfsup.evaluation import linear_probe
from selfsup.evaluation.linear import fit_softmax
from selfsup.finetune import choose_lr, few_label_finetune, fit_head, parameter_groups, training_steps
from selfsup.modalities.image.encoders import ConvNet4
from selfsup.modalities.image.vit import VisionTransformer


def test_few_label_finetune_leaves_the_run_untouched(digits_run):
    run = selfsup.load(digits_run)
    before = {k: v.clone() for k, v in run.encoder.state_dict().items()}
    train, test, _ = holdout_test_split(selfsup.load_dataset("digits"))
    res = few_label_finetune(run, train, test, fractions=(0.1,), seeds=(0, 1), epochs=5, min_steps=30)
    for name in ("selfsup", "random_encoder"):
        r = res[name]["0.1"]
        assert len(r["accs"]) == 2 and r["mean"] > 0.3 and r["steps"] == 30, (name, r)  # chance is 0.1
    assert all(np.array_equal(before[k].numpy(), v.numpy()) for k, v in run.encoder.state_dict().items())


def test_fine_tuning_beats_the_linear_probe_and_grows_with_labels(digits_run):
    """On digits' own test split: fine-tuning with every label >= the frozen encoder's linear probe, and the mean
    over two labelled subsets does not fall as labels grow from 1% to 10% to 100% (0.01 of noise allowed)."""
    run = selfsup.load(digits_run)
    ds = selfsup.load_dataset("digits")
    probe = linear_probe(run.embed(ds.train.x), ds.train.y, run.embed(ds.test.x), ds.test.y)["acc"]
    # measured (2026-12-06): probe 0.947; fine-tuned 0.446 / 0.863 / 0.968 at 1% / 10% / 100% of the labels (with
    # 120 or 180 steps instead of 250, 0.944 or 0.959 at 100%: the margin needs the steps); 100% with seeds 0-3
    # (2026-12-08): 0.971, 0.964, 0.962, 0.962
    res = few_label_finetune(run, ds.train, ds.test, fractions=(0.01, 0.1, 1.0), seeds=(0, 1), epochs=10,
                             max_steps=250, baseline=False)["selfsup"]
    means = [res[f]["mean"] for f in ("0.01", "0.1", "1.0")]
    assert res["1.0"]["mean"] >= probe, (res["1.0"], probe)
    assert means[0] <= means[1] + 0.01 and means[1] <= means[2] + 0.01, means
    assert res["1.0"]["validation"][0] and len(res["1.0"]["lr"]) == 2  # the rate was chosen on validation


def test_the_head_starts_at_the_linear_probe():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    head = fit_head(x, y, 2)
    assert (head(x).argmax(1) == y).float().mean() > 0.97


def test_the_head_standardises_features_that_share_one_large_direction():
    """A ViT's pooled features can be one large common vector plus small differences (MAE on digits): the head's
    BatchNorm makes the linear probe's start independent of that, in eval and in training mode, where the same
    regression on the raw features stays near chance (the negative control)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    shifted = 100 + 1e-3 * x
    head = fit_head(shifted, y, 2, standardise=True)
    assert (head(shifted).argmax(1) == y).float().mean() > 0.97
    assert (head.train()(shifted).argmax(1) == y).float().mean() > 0.97
    assert VisionTransformer.fine_tuning.head_norm and not ConvNet4.fine_tuning.head_norm
    w, b = fit_softmax(shifted, y, 2, C=1.0 / (2 * 1e-4 * len(y)), max_iter=100)
    assert ((shifted @ w.T + b).argmax(1) == y).float().mean() < 0.7


def test_layer_wise_decay_of_a_vit():
    vit = VisionTransformer(1, 4, 16, 3, 2)
    head = torch.nn.Linear(16, 3)
    groups = parameter_groups(vit, head, 1.0, 0.5)
    rates = [g["lr"] for g in groups]
    assert rates == [0.5 ** 4, 0.5 ** 3, 0.5 ** 2, 0.5, 1.0, 1.0]  # embedding, 3 blocks, final norm, head
    assert sum(len(g["params"]) for g in groups) == len(list(vit.parameters())) + 2
    depths, deepest = vit.parameter_depths()
    assert depths["blocks.2.attn.qkv.weight"] == 3 and deepest == 4


def test_steps_follow_the_labelled_set():
    assert training_steps(13, 30, 100, 1000) == 100
    assert training_steps(1347, 30, 100, 1000) == 632
    assert training_steps(60000, 30, 100, 1000) == 1000


def test_no_rate_search_on_a_handful_of_labels(digits_run):
    run = selfsup.load(digits_run)
    ds = selfsup.load_dataset("digits")
    lr, scores = choose_lr(run.encoder, run.resolved, ds.train.x[:50], ds.train.y[:50], 10, 5, (0.5, 1.0), 0)
    assert lr == run.encoder.fine_tuning.lr and scores == {}


def test_tables_fine_tune_on_their_rows_as_they_are_and_beat_the_probe():
    """The tabular encoders declare their recipe (AdamW, no corrupted rows, up to 3,000 steps); on digits read as a
    table, fine-tuning with every label beats the frozen encoder's linear probe."""
    ds = selfsup.load_dataset("sklearn:digits", modality="tabular")
    torch.manual_seed(0)
    run = selfsup.train(ds, method="scarf", epochs=5, batch_size=128, monitor=False, device="cpu",
                        encoder_options={"width": 64, "depth": 2})
    assert run.encoder.fine_tuning.view_strength == 0.0 and run.encoder.fine_tuning.max_steps == 3000
    probe = linear_probe(run.embed(ds.train.x), ds.train.y, run.embed(ds.test.x), ds.test.y)["acc"]
    res = few_label_finetune(run, ds.train, ds.test, fractions=(1.0,), seeds=(0,), baseline=False)["selfsup"]["1.0"]
    assert res["steps"] == training_steps(len(ds.train), 30, 100, 3000)
    assert res["mean"] >= probe, (res, probe)
