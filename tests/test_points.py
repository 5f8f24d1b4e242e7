"""3-D point clouds: views checked by hand (ball crops keep the nearest points, rotations about the up axis keep
heights and distances, features travel with their points), order-invariant encoders, the D2 baseline, one-line
errors, `npy:` with --modality points and `meshes:` folders, and training that beats the untrained encoder on clouds
whose class is their shape, with the report drawing their nearest neighbours."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import selfsup
from selfsup.evaluation.knn import knn_accuracy
from selfsup.modalities import get_modality
from selfsup.methods.mae import random_keep
from selfsup.methods.occo import FoldingDecoder
from selfsup.modalities.points.encoders import DGCNN, PointNet, PointTransformer, farthest_points, principal_axes
from selfsup.modalities.points.views import (PointAugmentation, augment, ball_crop, random_rotation, recipe, seen_from,
                                           unit_ball)
from selfsup.views import ViewRequest
from test_bad_inputs import cli

MODALITY = get_modality("points")


def shapes(n: int, seed: int, points: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Clouds sampled on the surface of a sphere, a cube, a cylinder or a cone (the class), each stretched by a
    random factor per axis, turned about z, shifted and jittered: the class is the shape, not its size or place."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    clouds = []
    for label in y:
        u = rng.uniform(-1, 1, (points, 3))
        if label == 0:
            c = u / np.linalg.norm(u, axis=1, keepdims=True)
        elif label == 1:
            c = u.copy()
            face = rng.integers(0, 3, points)
            c[np.arange(points), face] = np.sign(rng.uniform(-1, 1, points))
        elif label == 2:
            angle = np.pi * u[:, 0]
            c = np.stack([np.cos(angle), np.sin(angle), u[:, 1]], 1)
        else:
            angle, h = np.pi * u[:, 0], (u[:, 1] + 1) / 2
            c = np.stack([(1 - h) * np.cos(angle), (1 - h) * np.sin(angle), h], 1)
        turn = rng.uniform(0, 2 * np.pi)
        rot = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0], [0, 0, 1]])
        c = (c * rng.uniform(0.7, 1.4, 3)) @ rot + rng.normal(0, 3, 3)
        clouds.append(c + rng.normal(0, 0.01, c.shape))
    return np.stack(clouds).astype(np.float32), y


def test_unit_ball_crop_and_rotation_by_hand():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 50, 3) * 4 + 7
    ball = unit_ball(x)
    assert torch.allclose(ball.mean(1), torch.zeros(5, 3), atol=1e-5)
    assert torch.allclose(ball.norm(dim=2).amax(1), torch.ones(5))
    # a crop of 20% holds the 10 points nearest to one of the cloud's points: nothing outside their radius
    crop = ball_crop(ball, torch.full((5,), 0.2), 10, g)
    for cloud, kept in zip(ball, crop):
        members = set(torch.nonzero((cloud[:, None] - kept[None]).norm(dim=2).amin(dim=1) == 0).flatten().tolist())
        assert len(members) == 10
        nearest = [set((cloud - c).norm(dim=1).argsort()[:10].tolist()) for c in cloud]
        assert members in nearest  # the 10 points nearest to one point of the cloud
    # rotations about the up axis keep heights and distances; SO(3) draws are proper rotations
    up = random_rotation(5, PointAugmentation(rotation="up", up_axis=2), torch.device("cpu"), g)
    turned = ball @ up
    assert torch.allclose(turned[..., 2], ball[..., 2], atol=1e-6)
    def distances(a):
        return (a[:, :, None] - a[:, None]).norm(dim=3)

    assert torch.allclose(distances(turned), distances(ball), atol=1e-5)
    any_axis = random_rotation(200, PointAugmentation(rotation="so3"), torch.device("cpu"), g)
    assert torch.allclose(any_axis @ any_axis.transpose(1, 2), torch.eye(3).expand(200, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(any_axis), torch.ones(200), atol=1e-5)
    assert random_rotation(3, PointAugmentation(rotation="none"), torch.device("cpu"), g) is None


def test_views_carry_features_with_their_points_and_the_geometric_recipe_keeps_every_point():
    g = torch.Generator().manual_seed(1)
    xyz = torch.randn(4, 30, 3)
    x = torch.cat([xyz, xyz.norm(dim=2, keepdim=True)], dim=2)  # a feature that names each point
    view = augment(x, recipe("instance"), 30, g)
    assert view.shape == (4, 30, 4)
    assert all(set(v.tolist()) <= set(c.tolist()) for v, c in zip(view[..., 3], x[..., 3]))
    whole = augment(x, recipe("geometric"), 30, g)
    assert all(sorted(w.tolist()) == sorted(c.tolist()) for w, c in zip(whole[..., 3], x[..., 3]))
    assert recipe("instance", strength=0.5).crop[0] == pytest.approx(0.7)
    with pytest.raises(selfsup.SelfSupError, match="point-cloud augmentation rotation='sideways'"):
        recipe("instance", options={"rotation": "sideways"})
    with pytest.raises(selfsup.SelfSupError, match="point clouds make no 'tiles' views"):
        recipe("tiles")


@pytest.mark.parametrize("encoder", [PointNet(4, (16, 32)), DGCNN(4, k=5, widths=(8, 8), embed=16),
                                     PointTransformer(4, groups=8, group_size=6, dim=24, depth=1, heads=2)],
                         ids=["pointnet", "dgcnn", "point_transformer"])
def test_encoders_ignore_the_order_and_the_number_of_points(encoder):
    encoder.eval()
    x = torch.randn(3, 40, 4)
    with torch.no_grad():
        out = encoder(x)
        assert out.shape == (3, encoder.out_dim)
        assert torch.allclose(out, encoder(x[:, torch.randperm(40)]), atol=1e-5)
        assert encoder(x[:, :25]).shape == (3, encoder.out_dim)


def test_principal_axes_give_one_pose_whatever_the_turn_and_place():
    """A cloud put in its principal axes comes out the same after any rotation and shift (its variances 9, 2.25 and
    0.25 apart, a skewed cloud: no ambiguity of order or sign); PointNet(align="pca") and the point Transformer with
    align="pca" so embed it the same, and the Transformer cuts the same patches; the plain encoders do not (the
    controls); a grid is read off by hand."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 256, 3, generator=g) * torch.tensor([3.0, 1.5, 0.5]) + 0.3 * torch.randn(4, 256, 3,
                                                                                                 generator=g) ** 2
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g))
    q = q * torch.sign(torch.diagonal(r)) * torch.sign(torch.det(q))  # a rotation
    turned = x @ q + torch.tensor([5.0, -2.0, 1.0])
    torch.testing.assert_close(principal_axes(turned), principal_axes(x), atol=1e-5, rtol=0)
    aligned, plain = PointNet(3, (16, 32), align="pca").eval(), PointNet(3, (16, 32)).eval()
    with torch.no_grad():
        torch.testing.assert_close(aligned(turned), aligned(x), atol=1e-4, rtol=0)
        assert not torch.allclose(plain(turned), plain(x), atol=1e-2)
        pose, plain = PointTransformer(3, 8, 16, 32, 1, 2, align="pca").eval(), PointTransformer(3, 8, 16, 32, 1, 2)
        plain.load_state_dict(pose.state_dict())  # the same weights: only the alignment differs
        torch.testing.assert_close(pose(turned), pose(x), atol=1e-4, rtol=0)
        torch.testing.assert_close(pose.patches(turned), pose.patches(x), atol=1e-5, rtol=0)
        assert not torch.allclose(plain.eval()(turned), plain(x), atol=1e-2)
    # by hand: the grid of (x, y, z) = (2a, 3b, c) for a, b, c in {-1, -1, 2} has uncorrelated axes of variance 8, 18
    # and 2, each skewed to its positive side: the principal axes are y, x, z, each as it was
    steps = torch.tensor([-1.0, -1.0, 2.0])
    grid = torch.cartesian_prod(2 * steps, 3 * steps, steps)[None]
    torch.testing.assert_close(principal_axes(grid), grid[..., [1, 0, 2]], atol=1e-6, rtol=0)
    with pytest.raises(selfsup.SelfSupError, match="align='pcb'"):
        PointNet(3, (16,), align="pcb")
    with pytest.raises(selfsup.SelfSupError, match="point_transformer option align='xyz'"):
        PointTransformer(3, align="xyz")


def test_farthest_point_sampling_by_hand():
    # x = 0, 1, 2, 3, 10: the centroid is at 3.2, so 10 comes first, then the farthest from it (0), then the point
    # farthest from both (3: 3 from 0, 7 from 10; 2 is only 2 from 0); in any order of the points
    line = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0], [10, 0, 0]]])
    assert farthest_points(line, 3).tolist() == [[4, 0, 3]]
    order = torch.tensor([3, 0, 4, 1, 2])
    assert line[0, order[farthest_points(line[:, order], 3)[0]], 0].tolist() == [10.0, 0.0, 3.0]


def test_point_transformer_patches_are_sets_around_centres_and_masks_drop_tokens():
    encoder = PointTransformer(4, groups=8, group_size=6, dim=24, depth=2, heads=2).eval()
    x = torch.randn(2, 40, 4)
    patches = encoder.patches(x)
    assert encoder.patch_points == 3 and patches.shape == (2, 8, 18) and encoder.token_count(x) == 8
    # unpatch is the inverse on the points the patches hold: their xyz come back, features and other points NaN
    back = encoder.unpatch(patches, x)
    held = ~back[..., 0].isnan()
    assert back.shape == x.shape and torch.allclose(back[held][:, :3], x[held][:, :3], atol=1e-5)
    assert back[..., 3].isnan().all() and held.sum(dim=1).min() >= 6
    # `covered` by the hidden patches: exactly the points those patches hold
    hidden = torch.zeros(2, 8, dtype=torch.bool)
    hidden[:, 0] = True
    near = encoder.grouped(x)[2]  # [B, G, k] the points each patch holds
    for b in range(2):
        inside = torch.zeros(40, dtype=torch.bool)
        inside[near[b, 0]] = True
        assert torch.equal(encoder.covered(x, hidden)[b], inside[:, None].expand(-1, 4))
    assert encoder.position_table(x, 30).shape == (2, 8, 30)
    keep = random_keep(2, 8, 0.6, x.device)
    with torch.no_grad():
        assert encoder.tokens(x, keep).shape == (2, 3, 24)


def test_a_batch_is_grouped_once_and_a_changed_or_new_batch_anew(monkeypatch):
    from selfsup.modalities.points import encoders
    calls = []
    real = encoders.point_groups
    monkeypatch.setattr(encoders, "point_groups", lambda *a: calls.append(1) or real(*a))
    enc = PointTransformer(3, groups=8, group_size=4, dim=12, depth=1, heads=2)
    x = torch.randn(2, 32, 3)
    first = enc.patches(x)
    enc.tokens(x)
    enc.position_table(x, 12)
    assert len(calls) == 1  # one step's three questions, one grouping
    x[:, 0] += 5.0  # in place: the version counter moves, so the cached grouping is not used
    assert not torch.equal(enc.patches(x), first) and len(calls) == 2
    copy = x.clone()
    assert torch.equal(enc.patches(copy), enc.patches(x)) and len(calls) == 4  # another tensor: grouped anew
    del copy, x
    assert enc.patches(torch.randn(2, 32, 3)).shape == (2, 8, 12) and len(calls) == 5


def test_point_mae_trains_from_the_cli_and_is_listed(tmp_path):
    proc = cli("train", "--data", "shapes?n=64&test=32&points=64", "--method", "point_mae", "--epochs", "1",
               "--batch-size", "32", "--encoder-option", "groups=8", "--encoder-option", "group_size=8",
               "--encoder-option", "depth=1", "--threads", "1", "--out", tmp_path / "run", "--quiet", "--no-eval")
    assert proc.returncode == 0, proc.stderr
    run = selfsup.load(tmp_path / "run")
    assert run.resolved.encoder == "point_transformer" and run.embed(shapes(3, 0, 64)[0]).shape == (3, 192)
    assert "point_mae" in cli("methods").stdout and "point_transformer" in cli("encoders").stdout
    # the report draws what it predicts: the cloud, its visible patches and the rebuilt hidden ones, side by side
    from selfsup.report import illustration_section
    parts = illustration_section(run, torch.from_numpy(shapes(3, 0, 64)[0]))
    assert parts[0] == "<h2>What the method predicts</h2>" and "data:image/png;base64," in parts[-1]
    x = MODALITY.prepare(torch.from_numpy(shapes(2, 0, 64)[0]), run.resolved.data_spec)
    half = torch.where(torch.arange(64)[None, :, None] < 32, x, float("nan"))
    figure = MODALITY.presentation.draw_panels({"cloud": x, "half": half}, {"score": half.nan_to_num(0.5)}, {})
    drawn = [len(ax.collections[0].get_offsets()) for ax in figure.axes]  # row by row
    assert drawn == [64, 32, 64, 64, 32, 64]  # NaN points are not drawn; a map colours the first picture's points


def test_d2_baseline_tells_shapes_apart_whatever_their_place_and_turn():
    x, y = shapes(160, 0)
    spec = MODALITY.fit_spec(MODALITY.from_array(x, "shapes"))
    feats = MODALITY.raw_features(MODALITY.from_array(x, "shapes"), spec)
    assert feats.shape == (160, 64)
    moved = x @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32) * 3 + 5
    # (a distance on a bin's edge may change bins after rounding: one pair or point in a thousand at most)
    assert np.abs(MODALITY.raw_features(MODALITY.from_array(moved, "moved"), spec) - feats).mean() < 1e-3
    assert knn_accuracy(feats[:100], y[:100], feats[100:], y[100:], k=10) > 0.5


def test_bad_point_clouds_are_refused_in_one_line(tmp_path):
    for bad, message in ((np.zeros((4, 10)), "expected point clouds shaped N x P x 3"),
                         (np.zeros((4, 10, 2)), "expected point clouds shaped N x P x 3"),
                         (np.full((2, 5, 3), np.nan), "cloud 0 has NaN"),
                         (np.zeros((2, 5, 3), dtype=bool), "expected float coordinates")):
        with pytest.raises(selfsup.SelfSupError, match=message):
            MODALITY.from_array(bad, "clouds.npy")
    run = selfsup.train(shapes(32, 0, 16)[0], modality="points", method="simclr", epochs=1, batch_size=16,
                        monitor=False, progress=False, threads=1, out=tmp_path / "run")
    with pytest.raises(selfsup.SelfSupError, match="trained on 3 values a point"):
        run.embed(np.zeros((2, 16, 4), np.float32))


def test_training_on_shapes_beats_the_untrained_encoder_and_npz_with_modality_points(tmp_path):
    (x, y), (x_test, y_test) = shapes(512, 1), shapes(256, 2)
    np.savez(tmp_path / "clouds.npz", clouds=x)  # .npz (one array) reads as .npy does
    np.save(tmp_path / "labels.npy", y)
    np.save(tmp_path / "test.npy", x_test)
    np.save(tmp_path / "test_labels.npy", y_test)
    data = (f"npy:{tmp_path / 'clouds.npz'}?labels={tmp_path / 'labels.npy'}&test={tmp_path / 'test.npy'}"
            f"&test_labels={tmp_path / 'test_labels.npy'}")
    proc = cli("train", "--data", data, "--modality", "points", "--method", "simclr", "--epochs", "12",
               "--batch-size", "64", "--encoder-option", "widths=[32,64,128]", "--threads", "1", "--seed", "0",
               "--out", tmp_path / "run", "--quiet", "--no-monitor")
    assert proc.returncode == 0, proc.stderr
    assert "<h2>Nearest neighbours</h2>" in (tmp_path / "run" / "report.html").read_text()  # clouds drawn
    run = selfsup.load(tmp_path / "run")
    z, z_test = run.embed(x), run.embed(x_test)
    untrained = PointNet(3, (32, 64, 128)).eval()
    with torch.no_grad():
        r, r_test = (untrained(MODALITY.prepare(torch.from_numpy(a), run.resolved.data_spec)).numpy()
                     for a in (x, x_test))
    trained, random = knn_accuracy(z, y, z_test, y_test, k=10), knn_accuracy(r, y, r_test, y_test, k=10)
    assert trained > random + 0.05, (trained, random)


def test_meshes_folder_is_sampled_on_surfaces_with_labels_and_bad_files_named(tmp_path):
    """meshes:FOLDER: a mesh is sampled on its surface (a unit cube's samples lie on its faces), a vertex-only .ply
    gives its own points, sub-folders are labels, reading again gives the same clouds; a broken file is named."""
    trimesh = pytest.importorskip("trimesh")
    for label, make in (("boxes", lambda i: trimesh.creation.box(extents=(1, 1 + i / 10, 1))),
                        ("balls", lambda i: trimesh.creation.icosphere(subdivisions=2, radius=1 + i / 10))):
        (tmp_path / "shapes" / label).mkdir(parents=True)
        for i in range(3):
            make(i).export(tmp_path / "shapes" / label / f"{i}.{('off', 'obj', 'stl')[i]}")
    scan = np.random.default_rng(0).normal(size=(40, 3))
    trimesh.PointCloud(scan).export(tmp_path / "shapes" / "balls" / "scan.ply")
    ds = selfsup.load_dataset(f"meshes:{tmp_path / 'shapes'}?points=64")
    assert ds.modality == "points" and tuple(ds.train.x.shape) == (7, 64, 3)
    assert ds.info["classes"] == ["balls", "boxes"] and sorted(ds.train.y.tolist()) == [0, 0, 0, 0, 1, 1, 1]
    box = ds.train.x[-3].numpy()  # boxes/0.off: a unit cube centred at the origin
    assert np.allclose(np.abs(box).max(axis=1), 0.5, atol=1e-5)  # every sample on a face
    scan_cloud = ds.train.x[3].numpy()  # balls/scan.ply (after 0.off, 1.obj, 2.stl)
    assert all(np.isclose(scan, p, atol=1e-5).all(axis=1).any() for p in scan_cloud)
    assert torch.equal(selfsup.load_dataset(f"meshes:{tmp_path / 'shapes'}?points=64").train.x, ds.train.x)
    (tmp_path / "shapes" / "boxes" / "broken.off").write_text("OFF\nnot numbers\n")
    with pytest.raises(selfsup.SelfSupError, match="broken.off: cannot read a mesh or point cloud"):
        selfsup.load_dataset(f"meshes:{tmp_path / 'shapes'}")
    with pytest.raises(selfsup.SelfSupError, match="points='ten' is not a whole number"):
        selfsup.load_dataset(f"meshes:{tmp_path / 'shapes'}?points=ten")


def test_the_shapes_source_gives_ten_classes_of_surfaces_the_same_at_every_reading():
    """`shapes`: ten named classes, fixed draws (train seed 0, test seed 1), each cloud centred near its shift with
    its points on surfaces (a sphere's at one distance from its centre before the stretch); `turn=any` asks the views
    to turn in any direction; options are checked in one line."""
    from selfsup.errors import ConfigError
    from selfsup.loading import load_dataset
    from selfsup.modalities.points.shapes import CLASSES, generate, rotation

    ds = load_dataset("shapes?n=60&test=30&points=64")
    assert ds.modality == "points" and tuple(ds.train.x.shape) == (60, 64, 3) and tuple(ds.test.x.shape) == (30, 64, 3)
    assert ds.info["classes"] == list(CLASSES) and len(CLASSES) == 10 and ds.info["view_options"] == {}
    again = load_dataset("shapes?n=60&test=30&points=64")
    assert torch.equal(ds.train.x, again.train.x) and not torch.equal(ds.train.x[:30], ds.test.x)
    assert load_dataset("shapes?n=20&test=10&turn=any").info["view_options"] == {"rotation": "so3"}
    rng = np.random.default_rng(0)
    for turn in ("up", "any"):
        r = rotation(rng, turn)
        assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)
    assert np.allclose(rotation(rng, "up")[:, 2], [0, 0, 1])  # heights are kept
    clouds, y = generate(200, 3, points=128)
    spheres = clouds[y == CLASSES.index("sphere")]
    radii = np.linalg.norm(spheres - spheres.mean(1, keepdims=True), axis=2)
    # on a stretched sphere's surface, not in a filled ball: a ball stretched alike spreads 0.28 of its mean radius
    assert (radii.std(1) / radii.mean(1)).mean() < 0.15
    for uri, words in (("shapes?turn=sideways", "turn='sideways'"), ("shapes?n=5", "n='5'"),
                       ("shapes?colour=red", "unknown option")):
        with pytest.raises(ConfigError, match=words):
            load_dataset(uri)


def test_scans_keep_the_side_of_each_solid_that_faces_the_sensor():
    """Hidden point removal keeps the near half of a sphere seen from far (and nothing of its far side), the cap in
    front of a near eye only; `shapes?scan=1` clouds are one-sided: seen from their own centre, a whole sphere's
    points point every way (mean direction ~0), a scanned sphere's mostly one way; the same at every reading."""
    from selfsup.errors import ConfigError
    from selfsup.loading import load_dataset
    from selfsup.modalities.points.shapes import CLASSES, generate, unit_vectors, visible

    ball = unit_vectors(np.random.default_rng(0), 2000)
    far = ball[visible(ball, np.array([0.0, 0.0, 50.0]))]
    assert 900 < len(far) < 1100 and far[:, 2].min() > -0.1
    near = ball[visible(ball, np.array([0.0, 0.0, 3.0]))]
    assert len(near) < 0.8 * len(far) and near[:, 2].min() > 0.15  # an eye at 3 radii has its horizon at z = 1/3

    def one_sidedness(scan: bool) -> float:
        clouds, y = generate(100, 3, points=128, turn="any", scan=scan)
        spheres = clouds[y == CLASSES.index("sphere")]
        directions = spheres - _centre_of_sphere(spheres)
        directions /= np.linalg.norm(directions, axis=2, keepdims=True)
        return float(np.linalg.norm(directions.mean(1), axis=1).mean())

    assert one_sidedness(False) < 0.1 and one_sidedness(True) > 0.3
    ds = load_dataset("shapes?n=20&test=10&points=64&scan=1")
    assert tuple(ds.train.x.shape) == (20, 64, 3)
    assert torch.equal(ds.train.x, load_dataset("shapes?n=20&test=10&points=64&scan=1").train.x)
    assert not torch.equal(ds.train.x, load_dataset("shapes?n=20&test=10&points=64").train.x)
    with pytest.raises(ConfigError, match="scan"):
        load_dataset("shapes?scan=2")


def _centre_of_sphere(clouds: np.ndarray) -> np.ndarray:
    """Least-squares centre of the (stretched) sphere each cloud lies on: |p|^2 = 2 p.c + k, linear in c and k."""
    a = np.concatenate([2 * clouds, np.ones(clouds.shape[:2] + (1,))], axis=2)
    b = (clouds ** 2).sum(2)
    return np.stack([np.linalg.lstsq(a_i, b_i, rcond=None)[0][:3] for a_i, b_i in zip(a, b)])[:, None, :]


def test_the_point_transformer_pools_by_mean_or_by_mean_and_max():
    from selfsup.errors import ConfigError
    from selfsup.modalities.points.encoders import PointTransformer

    x = torch.randn(3, 64, 3)
    mean = PointTransformer(3, groups=8, group_size=8, dim=24, depth=1, heads=2).eval()
    both = PointTransformer(3, groups=8, group_size=8, dim=24, depth=1, heads=2, pool="mean_max").eval()
    both.load_state_dict(mean.state_dict())
    tokens = mean.tokens(x)
    assert mean.out_dim == 24 and both.out_dim == 48 and both.token_dim == 24
    assert torch.allclose(mean(x), tokens.mean(1)) and torch.allclose(both(x), torch.cat([mean(x), tokens.amax(1)], 1))
    with pytest.raises(ConfigError, match="pool='sum'"):
        PointTransformer(3, pool="sum")
    # the methods that read tokens (token_dim) and the pooled vector (out_dim) train on the wider embedding
    options = {"groups": 8, "group_size": 8, "dim": 24, "depth": 1, "heads": 2, "pool": "mean_max"}
    for method in ("point_mae", "dinov2"):
        run = selfsup.train(x, modality="points", method=method, encoder="point_transformer", encoder_options=options,
                            epochs=1, batch_size=3, monitor=False)
        assert run.embed(x).shape == (3, 48)


def test_a_camera_sees_the_near_side_of_a_sphere_and_occluded_views_keep_the_pose():
    g = torch.Generator().manual_seed(0)
    sphere = torch.nn.functional.normalize(torch.randn(16, 256, 3, generator=g), dim=2)
    direction = torch.nn.functional.normalize(torch.randn(16, 3, generator=g), dim=1)
    seen = seen_from(sphere, direction, 8)
    facing = (sphere * direction[:, None]).sum(dim=2)  # cosine of each point's direction with the camera's
    assert (facing[seen] > 0).float().mean() > 0.99  # the far half is hidden
    assert seen[facing > 1 / 3].all()  # the cap a camera at 3 radii sees is kept
    assert 0.3 < seen.float().mean() < 0.5
    # the occluded recipe: a part of each cloud as it stands (no turn, no scaling), resampled to every point
    x = MODALITY.prepare(sphere, MODALITY.fit_spec(sphere))
    view = augment(x, recipe("occluded"), 256, g)
    assert view.shape == x.shape
    exact = "donot_use_mm_for_euclid_dist"
    members = torch.cdist(view, x, compute_mode=exact).amin(dim=2)  # each view point's distance to its cloud
    assert members.max() < 1e-5
    kept = torch.tensor([len(set(map(tuple, v.tolist()))) for v in view])
    assert (kept < 0.55 * 256).all() and (kept > 0.25 * 256).all()
    assert (view.mean(dim=1).norm(dim=1) > 0.3).all()  # one-sided: the centroid moves towards the camera
    # pose=pca: the part in its own principal axes and the whole (clean) in the same frame, points still shared
    request = ViewRequest("occluded", global_views=1, clean=True)
    views = MODALITY.view_maker(request, MODALITY.fit_spec(sphere), options={"pose": "pca"})(sphere, g)
    part, whole = views.global_views[0], views.clean
    assert torch.allclose(principal_axes(part), part, atol=1e-4)
    assert torch.cdist(part, whole, compute_mode=exact).amin(dim=2).max() < 1e-5
    assert not torch.allclose(principal_axes(whole), whole, atol=1e-2)  # the whole's own frame is another one
    # point dropout: up to 90% of the points left out, the rest repeated to fill the view
    thinned = augment(x, recipe("geometric", options={"dropout": 0.9}), 256, g)
    distinct = torch.tensor([len(set(map(tuple, v.tolist()))) for v in thinned])
    assert (distinct >= 0.1 * 256 - 1).all() and (distinct < 0.9 * 256).any() and thinned.shape == x.shape
    with pytest.raises(selfsup.SelfSupError, match="dropout=1.0"):
        recipe("instance", options={"dropout": 1.0})
    with pytest.raises(selfsup.SelfSupError, match="pose='sideways'"):
        recipe("occluded", options={"pose": "sideways"})


def test_occo_trains_from_the_cli_and_completes_what_it_does_not_see(tmp_path):
    proc = cli("train", "--data", "shapes?n=64&test=32&points=64", "--method", "occo", "--epochs", "1",
               "--batch-size", "32", "--encoder-option", "widths=[16,32]", "--method-option", "coarse=16",
               "--threads", "1", "--out", tmp_path / "run", "--quiet", "--no-eval")
    assert proc.returncode == 0, proc.stderr
    assert selfsup.load(tmp_path / "run").embed(shapes(3, 0, 64)[0]).shape == (3, 32)
    assert "occo" in cli("methods").stdout
    # the decoder's split first folding layer is the paper's one layer on (global vector, coarse point, grid offset)
    decoder = FoldingDecoder(8, coarse=5, grid_size=2, hidden=16, folding=12)
    g = torch.randn(3, 8)
    coarse, fine = decoder(g)
    assert coarse.shape == (3, 5, 3) and fine.shape == (3, 20, 3)
    joint = torch.nn.Linear(8 + 5, 12)
    with torch.no_grad():
        joint.weight.copy_(torch.cat([decoder.from_global.weight, decoder.from_point.weight], dim=1))
        joint.bias.copy_(decoder.from_global.bias)
    inputs = torch.cat([g[:, None, None].expand(-1, 5, 4, -1), decoder.grid[None, None].expand(3, 5, -1, -1),
                        coarse[:, :, None].expand(-1, -1, 4, -1)], dim=3)
    paper = coarse[:, :, None] + decoder.folding(joint(inputs))
    assert torch.allclose(paper.reshape(3, 20, 3), fine, atol=1e-6)
