"""Masked modelling and pretext tasks (issue 17): the Vision Transformer as a token encoder (hidden patches dropped,
patches cut as MAE cuts them), MAE's loss and masks, RotNet's views and labels, NPID's memory bank; losses by hand,
training from the command line, and exact resume of the bank and of the masks."""
import math

import numpy as np
import pytest
import torch

import selfsup
from selfsup.methods.mae import mae_loss, random_keep
from selfsup.methods.npid import instance_discrimination_loss, updated_bank_rows
from selfsup.methods.rotnet import rotation_labels, rotation_loss
from selfsup.modalities import get_modality
from selfsup.views import ViewRequest
from test_bad_input_corpus import assert_error
from test_bad_inputs import cli
from test_resume import assert_resumed_inside_an_epoch_exactly

TINY_VIT = {"depth": 2}


def vit(channels=1, size=28, **options):
    return get_modality("image").build_encoder("vit_tiny", {"channels": channels, "size": size}, **options)


def test_mae_loss_by_hand():
    pred = torch.zeros(1, 2, 2)
    target = torch.tensor([[[1.0, 3.0], [0.0, 4.0]]])
    hidden = torch.tensor([[True, False]])  # only patch 0 counts
    assert mae_loss(pred, target, hidden, normalise_target=False).item() == pytest.approx((1 + 9) / 2)
    # patch 0 standardised: mean 2, unbiased variance 2 -> (-1, 1) / sqrt(2 + 1e-6); squared mean 1 / (2 + 1e-6)
    assert mae_loss(pred, target, hidden).item() == pytest.approx(1 / (2 + 1e-6), rel=1e-6)
    both = torch.tensor([[True, True]])  # patch 1: mean 2, variance 8 -> squared mean 4 / (8 + 1e-6)
    assert mae_loss(pred, target, both).item() == pytest.approx((1 / (2 + 1e-6) + 4 / (8 + 1e-6)) / 2, rel=1e-6)


def test_masks_keep_a_quarter_uniformly():
    torch.manual_seed(0)
    keep = random_keep(4000, 16, 0.75, torch.device("cpu"))
    assert (keep.sum(dim=1) == 4).all()
    frequency = keep.float().mean(dim=0)  # each position kept with probability 1/4
    assert (frequency - 0.25).abs().max() < 0.03
    assert (random_keep(3, 5, 0.99, torch.device("cpu")).sum(dim=1) == 1).all()  # at least one token stays


def test_vit_drops_hidden_patches_and_cuts_patches_as_mae():
    torch.manual_seed(0)
    encoder = vit(channels=3, size=16, **TINY_VIT).eval()  # 16 px -> 2-px patches, 8 x 8 tokens
    assert encoder.patch_size == 2 and encoder.patch_dim == 12
    x = torch.randn(2, 3, 16, 16)
    assert encoder.token_count(x) == 64 and encoder(x).shape == (2, 192)
    everything = torch.ones(2, 64, dtype=torch.bool)
    assert torch.allclose(encoder.tokens(x, everything), encoder.tokens(x), atol=1e-6)
    keep = random_keep(2, 64, 0.75, x.device)
    assert encoder.tokens(x, keep).shape == (2, 16, 192)
    # a hidden patch's pixels cannot change the visible tokens' outputs (they never enter the blocks)
    changed = x.clone()
    hidden_patch = int((~keep[0]).nonzero()[0])
    r, c = divmod(hidden_patch, 8)
    changed[0, :, 2 * r:2 * r + 2, 2 * c:2 * c + 2] += 5.0
    assert torch.allclose(encoder.tokens(changed, keep), encoder.tokens(x, keep), atol=1e-6)
    # patches: row-major grid, each patch (row, column, channel) flattened
    patches = encoder.patches(x)
    assert torch.equal(patches[1, 8 * 3 + 5], x[1, :, 6:8, 10:12].permute(1, 2, 0).reshape(-1))
    assert encoder.position_table(x, 32).shape == (64, 32)
    with pytest.raises(selfsup.SelfSupError, match="do not divide into 2-pixel patches"):
        encoder(torch.randn(1, 3, 15, 15))


def test_rotation_views_and_labels():
    modality = get_modality("image")
    spec = modality.fit_spec(torch.randint(0, 255, (8, 1, 12, 12), dtype=torch.uint8))
    maker = modality.view_maker(ViewRequest("rotations", global_views=4), spec)
    views = maker(torch.randint(0, 255, (3, 1, 12, 12), dtype=torch.uint8), torch.Generator().manual_seed(0))
    assert len(views.global_views) == 4
    for k, view in enumerate(views.global_views):
        assert torch.equal(view, torch.rot90(views.global_views[0], k, dims=(2, 3)))
    assert rotation_labels(3).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    expected = (-math.log(math.e ** 2 / (math.e ** 2 + 3)) + math.log(4)) / 2
    assert rotation_loss(logits, torch.tensor([0, 1])).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(selfsup.SelfSupError, match="rotations views are 4"):
        modality.view_maker(ViewRequest("rotations", global_views=2), spec)


def test_npid_loss_and_bank_update_by_hand():
    v = torch.tensor([[1.0, 0.0]])
    memory = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = instance_discrimination_loss(v, memory, torch.tensor([0]), temperature=1.0)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    half = instance_discrimination_loss(v, memory, torch.tensor([0]), temperature=0.5)
    assert half.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
    rows = updated_bank_rows(torch.tensor([[0.0, 1.0]]), v, momentum=0.5)
    assert torch.allclose(rows, torch.tensor([[1.0, 1.0]]) / math.sqrt(2))


def test_new_methods_train_from_the_command_line_and_refuse_what_they_cannot(tmp_path):
    run = selfsup.train("digits", method="mae", epochs=1, batch_size=64, encoder_options=TINY_VIT, monitor=False,
                        threads=1, out=tmp_path / "mae")
    assert run.summary["encoder"] == "vit_tiny" and run.resolved["betas"] == [0.9, 0.95]
    assert run.embed(np.zeros((3, 8, 8), np.uint8)).shape == (3, 192)
    assert_error(cli("train", "--data", "digits", "--method", "mae", "--encoder", "convnet4", "--out",
                     tmp_path / "x", "--epochs", "1"), "needs a token encoder", "vit_tiny")
    assert_error(cli("train", "--data", "sklearn:wine", "--method", "rotnet", "--out", tmp_path / "y", "--epochs", "1"),
                 "does not train on tabular data", "'rotations' views", "trains on image data")


@pytest.mark.parametrize("method,options", [("mae", {"decoder_dim": 32, "decoder_depth": 1}), ("npid", {})])
def test_resume_inside_an_epoch_restores_masks_and_memory_bank(method, options, tmp_path, monkeypatch):
    """MAE's masks come from the global generator (checkpointed), NPID's bank is a buffer: a run that dies in its
    third epoch resumes from a checkpoint inside its second and ends with the uninterrupted run's weights."""
    encoder = "vit_tiny" if method == "mae" else "convnet4"
    assert_resumed_inside_an_epoch_exactly(tmp_path, monkeypatch, method=method, encoder=encoder, method_options=options,
                                           encoder_options=TINY_VIT if method == "mae" else {"widths": [16, 32, 32, 32]})
