"""Masked modelling and pretext tasks: the Vision Transformer as a token encoder (hidden patches dropped,
patches cut as MAE cuts them), MAE's loss and masks, RotNet's views and labels, NPID's memory bank; losses by hand,
training from the command line, and exact resume of the bank and of the masks."""
import math

import numpy as np
import pytest
import torch

import selfsup
from selfsup.methods.data2vec import data2vec_loss, data2vec_targets
from selfsup.methods.ijepa import IJEPA, block_shape, place_blocks
from selfsup.methods.mae import chamfer_distance, chamfer_loss, mae_loss, random_keep
from selfsup.methods.occo import completion_loss, fine_weight
from selfsup.methods.npid import instance_discrimination_loss, updated_bank_rows
from selfsup.methods.pretext import pretext_loss
from selfsup.methods.rotnet import rotation_labels
from selfsup.modalities import get_modality, new_encoder
from selfsup.views import ViewRequest
from test_bad_input_corpus import assert_error
from test_bad_inputs import cli
from test_resume import assert_resumed_inside_an_epoch_exactly

TINY_VIT = {"depth": 2}


def vit(channels=1, size=28, **options):
    return new_encoder(get_modality("image"), "vit_tiny", {"channels": channels, "size": size}, **options)


def test_mae_loss_by_hand():
    pred = torch.zeros(1, 2, 2)
    target = torch.tensor([[[1.0, 3.0], [0.0, 4.0]]])
    hidden = torch.tensor([[True, False]])  # only patch 0 counts
    assert mae_loss(pred, target, hidden, normalise_target=False).item() == pytest.approx((1 + 9) / 2)
    # patch 0 standardised: mean 2, unbiased variance 2 -> (-1, 1) / sqrt(2 + 1e-6); squared mean 1 / (2 + 1e-6)
    assert mae_loss(pred, target, hidden).item() == pytest.approx(1 / (2 + 1e-6), rel=1e-6)
    both = torch.tensor([[True, True]])  # patch 1: mean 2, variance 8 -> squared mean 4 / (8 + 1e-6)
    assert mae_loss(pred, target, both).item() == pytest.approx((1 / (2 + 1e-6) + 4 / (8 + 1e-6)) / 2, rel=1e-6)


def test_chamfer_loss_by_hand():
    # one hidden patch of two 1-D points: true {0, 4}, predicted {1, 1}; true -> nearest predicted: 1, 9 (mean 5);
    # predicted -> nearest true: 1, 1 (mean 1); a visible patch with any error does not count
    pred = torch.tensor([[[1.0, 1.0], [9.0, 9.0]]])
    target = torch.tensor([[[0.0, 4.0], [0.0, 0.0]]])
    assert chamfer_loss(pred, target, torch.tensor([[True, False]]), 1).item() == pytest.approx(6.0)
    # the order of a set's points does not matter; 2-D points: (0, 0), (3, 4) against (3, 4), (0, 0)
    swapped = torch.tensor([[[3.0, 4.0, 0.0, 0.0]]])
    assert chamfer_loss(swapped, torch.tensor([[[0.0, 0.0, 3.0, 4.0]]]), torch.tensor([[True]]), 2).item() == 0.0
    # read as four 1-D points instead, {3, 4, 0, 0} against {0, 0, 3, 4} is the same set too; as pairs by value
    # order (MSE) it would not be
    assert chamfer_loss(swapped, torch.tensor([[[0.0, 0.0, 3.0, 4.0]]]), torch.tensor([[True]]), 1).item() == 0.0
    assert mae_loss(swapped, torch.tensor([[[0.0, 0.0, 3.0, 4.0]]]), torch.tensor([[True]]), False).item() > 0


def test_occlusion_completion_loss_by_hand():
    # predicted {(0,0,0), (1,0,0)}, true {(0,0,0), (0,2,0)}: true -> nearest predicted 0, 2 (mean 1); predicted ->
    # nearest true 0, 1 (mean 0.5): Chamfer 1.5 on distances, 2 + 0.5 = 2.5 on squared ones
    pred = torch.tensor([[[0.0, 0, 0], [1, 0, 0]]])
    true = torch.tensor([[[0.0, 0, 0], [0, 2, 0]]])
    assert chamfer_distance(pred, true, squared=False).tolist() == [1.5]
    assert chamfer_distance(pred, true).tolist() == [2.5]
    # OcCo: halved Chamfer of the coarse points plus alpha x that of the fine ones (here the true set exactly: 0)
    assert completion_loss(pred, true, true, 0.1).item() == pytest.approx(0.75)
    assert completion_loss(true, pred, true, 0.1).item() == pytest.approx(0.075)
    # PCN's alpha steps at 10k, 20k, 50k of 300k steps, as fractions of the run
    assert [fine_weight(p) for p in (0.0, 0.03, 0.04, 0.1, 0.2, 1.0)] == [0.01, 0.01, 0.1, 0.5, 1.0, 1.0]


def test_mae_loss_leaves_unobserved_values_out():
    pred = torch.zeros(1, 3, 3)
    nan = float("nan")
    target = torch.tensor([[[1.0, 3.0, nan], [nan, nan, nan], [2.0, nan, nan]]])
    hidden = torch.ones(1, 3, dtype=torch.bool)
    # patch 0 as (1, 3) alone; patch 1 has no observed value and leaves the mean; patch 2: one value, error 4
    assert mae_loss(pred, target, hidden, normalise_target=False).item() == pytest.approx((5 + 4) / 2)
    # normalised: patch 0 as in the hand test above; patch 2's one value minus its own mean is 0
    assert mae_loss(pred, target, hidden).item() == pytest.approx((1 / (2 + 1e-6) + 0) / 2, rel=1e-6)


def test_data2vec_targets_and_loss_by_hand():
    a = torch.tensor([[[1.0, 0.0], [3.0, 4.0]]])  # [B=1, T=2, D=2]
    b = torch.tensor([[[0.0, 2.0], [2.0, 0.0]]])
    # instance norm over the 2 tokens, per feature: each feature becomes (-1, +1) or (+1, -1) (eps 1e-5 aside)
    s = 1 / math.sqrt(1 + 1e-5)
    only_top = data2vec_targets([a, b], top_k=1)  # b normalised: [[-1, 1], [1, -1]] x s; layer norm keeps it
    assert torch.allclose(only_top, torch.tensor([[[-1.0, 1.0], [1.0, -1.0]]]) * s / math.sqrt(s * s + 1e-5),
                          atol=1e-5)
    both = data2vec_targets([a, b], top_k=2)  # a: [[-1, -1], [1, 1]]; mean with b: [[-1, 0], [1, 0]] x s
    mean = torch.tensor([[[-1.0, 0.0], [1.0, 0.0]]]) * s  # then layer norm over the 2 features: (-1, 1), (1, -1)
    assert torch.allclose(both, torch.nn.functional.layer_norm(mean, (2,)), atol=1e-6)
    assert torch.allclose(both, torch.tensor([[[-1.0, 1.0], [1.0, -1.0]]]), atol=1e-4)
    # an unobserved token leaves the statistics: only token 0 counts, so it normalises to 0 everywhere
    alone = data2vec_targets([a], top_k=1, observed=torch.tensor([[True, False]]))
    assert torch.allclose(alone[0, 0], torch.zeros(2), atol=1e-6)
    pred = torch.zeros(1, 2, 4)
    target = torch.tensor([[[1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 0.0, 0.0]]])
    hidden = torch.tensor([[True, True]])
    assert data2vec_loss(pred, target, hidden).item() == pytest.approx((4 / 2 + 4 / 2) / 2)
    assert data2vec_loss(pred, target, torch.tensor([[False, True]])).item() == pytest.approx(4 / 2)


def test_the_series_patch_transformer_is_a_token_encoder():
    from selfsup.encoders import TokenEncoder

    encoder = new_encoder(get_modality("timeseries"), "patch_transformer", {"channels": 2}, dropout=0.0).eval()
    assert isinstance(encoder, TokenEncoder) and encoder.patch_dim == 16 and encoder.layer_dim == 128
    torch.manual_seed(0)
    x = torch.randn(3, 2, 30)  # 4 patches of 8 steps, the last one 6 steps long
    x[0, :, 20:] = float("nan")  # padding
    x[1, 0, 5] = float("nan")  # a missing value
    assert encoder.token_grid(x) == (4,) and encoder.tokens(x).shape == (3, 4, 320)
    patches = encoder.patches(x)
    assert patches.shape == (3, 4, 16)
    assert torch.equal(patches[2, 1], x[2, :, 8:16].reshape(-1))  # channel by channel
    assert patches[2, 3, 6:8].isnan().all() and patches[2, 3, 14:].isnan().all()  # beyond the end: unobserved
    assert patches[1, 0, 5].isnan() and patches[1, 0].isnan().sum() == 1
    assert patches[0, 3].isnan().all() and patches[0, 2, :4].isnan().sum() == 0
    assert len(encoder.layer_outputs(x)) == 3 and encoder.layer_outputs(x)[0].shape == (3, 4, 128)
    everything = torch.ones(3, 4, dtype=torch.bool)
    assert torch.allclose(encoder.tokens(x, everything), encoder.tokens(x), atol=1e-5)
    keep = torch.tensor([[True, False, True, False]] * 3)
    changed = x.clone()
    changed[:, :, 8:16] += 5.0  # patch 1 is hidden: the kept tokens cannot see it
    assert torch.allclose(encoder.tokens(changed, keep), encoder.tokens(x, keep), atol=1e-5)
    assert not torch.allclose(encoder.tokens(changed), encoder.tokens(x), atol=1e-3)


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
    assert encoder.position_table(x, 32).shape == (1, 64, 32)
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
    assert pretext_loss(logits, torch.tensor([0, 1])).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(selfsup.SelfSupError, match="rotations views are 4"):
        modality.view_maker(ViewRequest("rotations", global_views=2), spec)


def test_rotnet_head_depth_is_an_option():
    from selfsup.methods.rotnet import RotNet

    encoder = new_encoder(get_modality("image"), "convnet4", {"channels": 1, "size": 8}, widths=[8, 8, 8, 8])
    assert [type(m).__name__ for m in RotNet(encoder, head_layers=1).head] == ["Linear"]
    assert len([m for m in RotNet(encoder, head_layers=3).head if isinstance(m, torch.nn.Linear)]) == 3
    with pytest.raises(selfsup.SelfSupError, match="head_layers"):
        RotNet(encoder, head_layers=0)


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
    assert run.summary["encoder"] == "vit_tiny" and run.resolved.betas == [0.9, 0.95]
    assert run.embed(np.zeros((3, 8, 8), np.uint8)).shape == (3, 192)
    assert_error(cli("train", "--data", "digits", "--method", "mae", "--encoder", "convnet4", "--out",
                     tmp_path / "x", "--epochs", "1"), "needs a token encoder", "vit_tiny")
    series = tmp_path / "series.npy"
    np.save(series, np.random.default_rng(0).standard_normal((40, 2, 32)).astype(np.float32))
    for method in ("data2vec2", "mae"):
        out = tmp_path / f"series-{method}"
        result = cli("train", "--data", f"npy:{series}", "--modality", "timeseries", "--method", method, "--epochs", "1",
                     "--batch-size", "16", "--out", out, "--no-monitor", "--threads", "1")
        assert result.returncode == 0, result.stderr
        run = selfsup.load(out)
        assert run.summary["encoder"] == "patch_transformer" and run.embed(np.zeros((2, 2, 32))).shape == (2, 320)
    assert_error(cli("train", "--data", "sklearn:wine", "--method", "rotnet", "--out", tmp_path / "y", "--epochs", "1"),
                 "does not train on tabular data", "'rotations' views", "trains on image data")


def test_ijepa_blocks_have_the_papers_statistics():
    torch.manual_seed(0)
    shapes = [block_shape((14, 14), (0.15, 0.2), (0.75, 1.5)) for _ in range(2000)]
    areas = np.array([h * w for h, w in shapes]) / 196
    ratios = np.array([h / w for h, w in shapes])
    assert 0.12 <= areas.min() and areas.max() <= 0.23 and abs(areas.mean() - 0.175) < 0.01  # sides rounded
    assert 0.6 <= ratios.min() and ratios.max() <= 1.8 and ratios.min() < 0.9 and ratios.max() > 1.2
    assert {block_shape((50,), (0.15, 0.2), (1, 1))[0] for _ in range(200)} <= set(range(7, 11))
    blocks = place_blocks(3000, (7, 7), (2, 3), torch.device("cpu"))
    assert (blocks.sum(dim=1) == 6).all()
    grid = blocks.view(-1, 7, 7)
    rows, cols = grid.any(dim=2).sum(dim=1), grid.any(dim=1).sum(dim=1)
    assert (rows == 2).all() and (cols == 3).all()  # one 2 x 3 rectangle per image
    left = grid.any(dim=1).float().argmax(dim=1)  # each block's first column
    counts = torch.bincount(left, minlength=5)
    assert len(counts) == 5 and (counts > 3000 / 5 * 0.8).all()  # every left edge 0..4 about equally often
    method = IJEPA(vit(size=28, **TINY_VIT))
    x = torch.randn(8, 1, 28, 28)
    context, targets = method.masks(x)
    assert len(targets) == 4 and len(set(context.sum(dim=1).tolist())) == 1
    for block in targets:
        assert len(set(block.sum(dim=1).tolist())) == 1 and not (block & context).any()


@pytest.mark.parametrize("method,options", [("mae", {"decoder_dim": 32, "decoder_depth": 1}), ("npid", {}),
                                            ("ijepa", {"predictor_dim": 32, "predictor_depth": 1}),
                                            ("data2vec2", {"decoder_dim": 32, "decoder_depth": 1, "clones": 2})])
def test_resume_inside_an_epoch_restores_masks_and_memory_bank(method, options, tmp_path, monkeypatch):
    """MAE's and I-JEPA's masks come from the global generator (checkpointed), NPID's bank is a buffer, I-JEPA's
    target encoder follows by EMA: a run that dies in its third epoch resumes from a checkpoint inside its second
    and ends with the uninterrupted run's weights; so does data2vec 2.0's EMA teacher."""
    encoder = "vit_tiny" if method in ("mae", "ijepa", "data2vec2") else "convnet4"
    assert_resumed_inside_an_epoch_exactly(tmp_path, monkeypatch, method=method, encoder=encoder, method_options=options,
                                           encoder_options=TINY_VIT if encoder == "vit_tiny" else {"widths": [16, 32, 32, 32]})


def test_jigsaw_permutations_tiles_and_shuffling():
    from selfsup.methods.jigsaw import maximal_hamming_permutations

    orders = maximal_hamming_permutations(100)
    assert orders.shape == (100, 9) and len({tuple(o) for o in orders}) == 100
    assert all(sorted(o) == list(range(9)) for o in orders.tolist())
    distances = (orders[:, None, :] != orders[None, :, :]).sum(axis=2)
    assert distances[~np.eye(100, dtype=bool)].min() >= 6  # greedy maximal distance (random pairs: ~8 on average)
    assert np.array_equal(maximal_hamming_permutations(100, seed=2016), orders)  # a fixed set
    modality = get_modality("image")
    spec = modality.fit_spec(torch.randint(0, 255, (8, 1, 30, 30), dtype=torch.uint8))
    maker = modality.view_maker(ViewRequest("tiles", global_views=9), spec, options={"crop_scale": [1.0, 1.0], "crop_ratio": [1.0, 1.0],
                                                                                     "flip_p": 0.0})
    x = torch.arange(900, dtype=torch.float32).view(1, 1, 30, 30).repeat(2, 1, 1, 1) / 900  # each pixel unique
    views = maker(x, torch.Generator().manual_seed(0))
    whole = maker.normalise(x)
    assert len(views.global_views) == 9 and {tuple(v.shape) for v in views.global_views} == {(2, 1, 9, 9)}
    for k, tile in enumerate(views.global_views):  # tile k lies inside cell k of the 3 x 3 grid of 10-px cells
        r, c = divmod(k, 3)
        cell = whole[..., 10 * r:10 * r + 10, 10 * c:10 * c + 10]
        found = [(dr, dc) for dr in range(2) for dc in range(2)
                 if torch.allclose(cell[..., dr:dr + 9, dc:dc + 9], tile, atol=1e-5)]
        assert found, k
    with pytest.raises(selfsup.SelfSupError, match="tiles views are 9"):
        modality.view_maker(ViewRequest("tiles", global_views=4), spec)


def classifier_inputs(method, classes: int, tiles: list, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What `method`'s classifier receives for `tiles` (heads replaced by identities) and the labels it drew."""
    from selfsup.views import Views

    method.tile_head = torch.nn.Identity()
    seen = []
    del method.classifier
    method.classifier = lambda z: (seen.append(z), torch.zeros(z.shape[0], classes))[1]
    torch.manual_seed(seed)
    method(Views(tiles))
    torch.manual_seed(seed)
    return seen[0], torch.randint(0, classes, (tiles[0].shape[0],))


def test_jigsaw_and_context_prediction_pick_the_tiles_they_say():
    from selfsup.methods.jigsaw import Jigsaw
    from selfsup.methods.relative_position import NEIGHBOURS, RelativePosition

    class Identity(torch.nn.Module):  # an "encoder" whose feature is the tile's single value
        out_dim = 1

        def forward(self, x):
            return x.flatten(1)[:, :1]

    tiles = [torch.full((2, 1), float(k)) for k in range(9)]  # tile k carries the value k
    jigsaw = Jigsaw(Identity(), permutations=10, tile_dim=1)
    seen, labels = classifier_inputs(jigsaw, 10, tiles, seed=0)
    assert torch.equal(seen, jigsaw.orders[labels].float())  # position j shows tile order[j]
    pairs, labels = classifier_inputs(RelativePosition(Identity(), tile_dim=1), 8, tiles, seed=1)
    assert pairs[:, 0].tolist() == [4.0, 4.0]  # the centre tile first
    assert pairs[:, 1].tolist() == [float(NEIGHBOURS[i]) for i in labels.tolist()]


def test_masked_methods_illustrate_what_they_predict(tmp_path):
    """MAE shows the visible patches and a reconstruction that keeps them; I-JEPA and data2vec 2.0 a similarity in
    [-1, 1] exactly where they predict; the report draws them for images and series."""
    from selfsup.methods.data2vec import Data2Vec2
    from selfsup.methods.mae import MAE
    from selfsup.report import illustration_section

    torch.manual_seed(0)
    x = torch.randn(3, 1, 12, 12)  # 2-px patches: 6 x 6 tokens
    mae = MAE(vit(size=12, depth=1), decoder_dim=32, decoder_depth=1).eval()
    with torch.no_grad():
        shown = mae.illustrate(x)
    visible, reconstruction = shown.pictures["visible (25%)"], shown.pictures["reconstruction"]
    hidden = visible.isnan()
    assert hidden.float().mean().item() == pytest.approx(27 / 36)  # 9 of 36 patches stay visible
    assert torch.equal(reconstruction[~hidden], x[~hidden]) and not reconstruction.isnan().any()
    assert not torch.allclose(reconstruction[hidden], x[hidden])
    for method in (IJEPA(vit(size=12, depth=1), predictor_dim=32, predictor_depth=1),
                   Data2Vec2(vit(size=12, depth=1), decoder_dim=32, decoder_depth=1)):
        with torch.no_grad():
            shown = method.eval().illustrate(x)
        similarity = next(iter(shown.maps.values()))
        assert similarity.shape == x.shape and similarity.isnan().any() and not similarity.isnan().all()
        values = similarity[~similarity.isnan()]
        assert (values.abs() <= 1 + 1e-5).all()
        # shown where the method predicts, never where the encoder saw the input
        assert (similarity.isnan() | shown.pictures["visible"].isnan()).all()
    for data, method, options in (("digits", "mae", TINY_VIT), ("digits", "data2vec2", TINY_VIT)):
        run = selfsup.train(data, method=method, epochs=1, batch_size=128, encoder_options=options, monitor=False,
                            threads=1, out=tmp_path / method, method_options={"decoder_dim": 32})
        parts = illustration_section(run, selfsup.load_dataset(data).test.x[:4])
        assert parts[0] == "<h2>What the method predicts</h2>" and "data:image/png;base64," in parts[-1]
    series = get_modality("timeseries").dataset_from_arrays(np.random.default_rng(0).standard_normal((40, 1, 32)),
                                                            None, "noise")
    run = selfsup.train(series, method="mae", epochs=1, batch_size=16, monitor=False, threads=1,
                        out=tmp_path / "series")
    assert "data:image/png;base64," in illustration_section(run, series.train.x[:3])[-1]
    assert illustration_section(selfsup.load(tmp_path / "series"), series.train.x[:3])[0].startswith("<h2>")
