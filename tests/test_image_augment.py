"""Tests for batched image augmentations (selfsup.modalities.image.augment)."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from selfsup.errors import ConfigError
from selfsup.views import ViewRequest
from selfsup.modalities.image.augment import RECIPES, ImageAugmentation, ImageViewMaker, augment, recipe

OFF = ImageAugmentation(
    crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0
)
EXTREME = ImageAugmentation(
    crop_scale=(0.01, 1.0), crop_ratio=(0.1, 10.0), flip_p=1.0, jitter_p=1.0, brightness=5.0, contrast=5.0,
    saturation=5.0, hue=0.5, grayscale_p=1.0, blur_p=1.0, blur_sigma=(0.1, 10.0), solarize_p=1.0,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch(b: int = 16, c: int = 3, s: int = 28, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, s, s, generator=gen(seed))


def check(y: torch.Tensor, like: torch.Tensor) -> None:
    assert y.shape == like.shape and y.dtype == like.dtype and y.device == like.device
    assert torch.isfinite(y).all() and y.min() >= 0.0 and y.max() <= 1.0


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("name", sorted(RECIPES))
@pytest.mark.parametrize("size", [28, 64])
def test_recipes_shape_dtype_range(name: str, c: int, size: int) -> None:
    x = batch(8, c, size)
    for aug in recipe(name, size, c):
        check(augment(x, aug, gen()), x)


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("aug", [EXTREME, EXTREME.scaled(0.0), EXTREME.scaled(3.0), OFF, ImageAugmentation()])
def test_extreme_settings(aug: ImageAugmentation, c: int) -> None:
    x = batch(16, c, 9)
    check(augment(x, aug, gen()), x)
    x64 = x.double()
    check(augment(x64, aug, gen()), x64)


def test_bad_input_rejected() -> None:
    with pytest.raises(ValueError):
        augment(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), OFF)


def test_determinism() -> None:
    x = batch(32, 3, 32)
    aug = dataclasses.replace(RECIPES["asymmetric"][1], blur_p=0.5)
    a, b, c = augment(x, aug, gen(1)), augment(x, aug, gen(1)), augment(x, aug, gen(2))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("c", [1, 3])
def test_identity(c: int) -> None:
    x = batch(8, c, 28)
    torch.testing.assert_close(augment(x, OFF, gen()), x, atol=1e-5, rtol=0)


def test_flip_only() -> None:
    x = batch(8, 3, 28)
    flip = dataclasses.replace(OFF, flip_p=1.0)
    torch.testing.assert_close(augment(x, flip, gen()), torch.flip(x, dims=[-1]), atol=1e-5, rtol=0)


def test_resize_path_matches_interpolate() -> None:
    """The grid_sample crop/resize path: full crop resized to 2x equals bilinear interpolation (and its flip)."""
    x = batch(4, 3, 14)
    ref = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    torch.testing.assert_close(augment(x, OFF, gen(), size=28), ref, atol=1e-5, rtol=0)
    flip = dataclasses.replace(OFF, flip_p=1.0)
    torch.testing.assert_close(augment(x, flip, gen(), size=28), ref.flip(-1), atol=1e-5, rtol=0)


def test_crop_zooms_in() -> None:
    """A small crop of a smooth horizontal ramp has a smaller value range than the full image."""
    ramp = torch.linspace(0, 1, 32).expand(64, 1, 32, 32).contiguous()
    crop = dataclasses.replace(OFF, crop_scale=(0.1, 0.1))
    y = augment(ramp, crop, gen())
    span = y.amax((1, 2, 3)) - y.amin((1, 2, 3))
    assert (span < 0.5).all()


def test_grayscale() -> None:
    x = batch(8, 3, 16)
    y = augment(x, dataclasses.replace(OFF, grayscale_p=1.0), gen())
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])
    lum = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    torch.testing.assert_close(y[:, 0], lum, atol=1e-5, rtol=0)
    x1 = batch(8, 1, 16)  # ignored for one channel
    assert torch.equal(augment(x1, dataclasses.replace(OFF, grayscale_p=1.0), gen()), x1)


def test_solarize() -> None:
    x = torch.tensor([0.0, 0.2, 0.49, 0.5, 0.7, 1.0]).view(1, 1, 1, 6).expand(2, 1, 6, 6).contiguous()
    y = augment(x, dataclasses.replace(OFF, solarize_p=1.0), gen())
    expect = torch.tensor([0.0, 0.2, 0.49, 0.5, 0.3, 0.0]).view(1, 1, 1, 6).expand(2, 1, 6, 6)
    torch.testing.assert_close(y, expect, atol=1e-6, rtol=0)


@pytest.mark.parametrize("c", [1, 3])
def test_blur_smooths_checkerboard(c: int) -> None:
    i = torch.arange(32)
    board = ((i[:, None] + i[None, :]) % 2).float().expand(4, c, 32, 32).contiguous()
    y = augment(board, dataclasses.replace(OFF, blur_p=1.0, blur_sigma=(1.0, 2.0)), gen())

    def tv(z: torch.Tensor) -> torch.Tensor:
        return (z[..., 1:, :] - z[..., :-1, :]).abs().sum() + (z[..., 1:] - z[..., :-1]).abs().sum()

    assert tv(y) < 0.1 * tv(board)
    assert abs(y.mean().item() - board.mean().item()) < 0.02


def test_jitter_probability() -> None:
    x = 0.2 + 0.6 * batch(2000, 3, 6)
    y = augment(x, dataclasses.replace(OFF, jitter_p=0.3), gen())
    changed = (y - x).abs().flatten(1).amax(1) > 1e-6
    assert abs(changed.float().mean().item() - 0.3) < 0.05


def test_other_probabilities() -> None:
    x = batch(2000, 3, 6)
    for field, p in [("flip_p", 0.5), ("grayscale_p", 0.2), ("solarize_p", 0.2)]:
        y = augment(x, dataclasses.replace(OFF, **{field: p}), gen())
        frac = ((y - x).abs().flatten(1).amax(1) > 1e-6).float().mean().item()
        assert abs(frac - p) < 0.05, field


def test_jitter_changes_colour_statistics() -> None:
    x = 0.25 + 0.5 * batch(256, 3, 8)
    y = augment(x, dataclasses.replace(OFF, jitter_p=1.0), gen())
    assert (y.mean((1, 2, 3)) - x.mean((1, 2, 3))).abs().mean() > 0.01  # brightness
    hue_only = dataclasses.replace(OFF, jitter_p=1.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.5)
    z = augment(x, hue_only, gen())
    assert (z - x).abs().mean() > 0.01  # hue rotation actually moves colours


def test_scaled() -> None:
    base = ImageAugmentation()
    assert base.scaled(1.0) == base
    zero = base.scaled(0.0)
    assert zero.crop_scale == (1.0, 1.0) and zero.crop_ratio == (1.0, 1.0)
    assert zero.brightness == zero.contrast == zero.saturation == zero.hue == 0.0
    half = base.scaled(0.5)
    assert half.crop_scale[0] == pytest.approx(0.54) and half.brightness == pytest.approx(0.2)


def test_recipe_adaptation() -> None:
    assert all(v.blur_p == 0.0 for v in recipe("instance", 32, 3))
    assert all(v.blur_p == 0.5 for v in recipe("instance", 64, 3))
    assert [v.blur_p for v in recipe("asymmetric", 96, 3)] == [1.0, 0.1]
    assert [v.solarize_p for v in recipe("asymmetric", 28, 1)] == [0.0, 0.2]
    assert all(v.saturation == v.hue == v.grayscale_p == 0.0 for v in recipe("instance_light", 28, 1))
    assert recipe("instance_light", 28, 1, strength=0.5)[0].brightness == pytest.approx(0.2)
    with pytest.raises(ValueError):
        recipe("nope", 28, 1)


def test_view_maker_arithmetic() -> None:
    x = torch.full((8, 3, 20, 20), 128, dtype=torch.uint8)
    views = [dataclasses.replace(v, jitter_p=0.0) for v in RECIPES["instance"]] * 4  # constant image stays constant
    mean, std = [0.1, 0.5, 0.9], [0.2, 0.25, 0.5]
    out = ImageViewMaker(views, mean, std)(x, gen()).global_views
    assert len(out) == 4
    for v in out:
        assert v.shape == x.shape and v.dtype == torch.float32
        for ch in range(3):
            torch.testing.assert_close(v[:, ch], torch.full_like(v[:, ch], (128 / 255 - mean[ch]) / std[ch]))


def test_view_maker_views_differ_and_float_input() -> None:
    vm = ImageViewMaker(recipe("instance", 28, 1) * 2, [0.5], [0.5])
    x = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8, generator=gen())
    a, b = vm(x, gen()).global_views
    assert not torch.allclose(a, b)
    c, d = vm(x.float() / 255, gen()).global_views
    torch.testing.assert_close(a, c)


def test_view_maker_out_size_and_normalise() -> None:
    vm = ImageViewMaker(RECIPES["asymmetric"], [0.5] * 3, [0.5] * 3, out_size=16)
    x = torch.randint(0, 256, (8, 3, 28, 28), dtype=torch.uint8, generator=gen())
    assert [tuple(v.shape) for v in vm(x, gen()).global_views] == [(8, 3, 16, 16)] * 2
    n1, n2 = vm.normalise(x), vm.normalise(x)
    assert n1.shape == (8, 3, 16, 16) and torch.equal(n1, n2)
    const = torch.full((2, 3, 28, 28), 255, dtype=torch.uint8)
    torch.testing.assert_close(vm.normalise(const), torch.ones(2, 3, 16, 16))
    plain = ImageViewMaker(RECIPES["asymmetric"], [0.5] * 3, [0.5] * 3)
    torch.testing.assert_close(plain.normalise(x), (x.float() / 255 - 0.5) / 0.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_with_cpu_generator() -> None:
    x = batch(8, 3, 32).cuda()
    aug = dataclasses.replace(RECIPES["instance"][0], solarize_p=0.5)
    y = augment(x, aug, gen())
    check(y, x)
    torch.testing.assert_close(y.cpu(), augment(x.cpu(), aug, gen()), atol=1e-4, rtol=0)


def test_modality_view_size_option() -> None:
    from selfsup.errors import ConfigError
    from selfsup.modalities.image.modality import ImageModality

    spec = {"channels": 1, "size": 28, "height": 28, "width": 28, "mean": [0.3], "std": [0.3]}
    x = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8, generator=gen())
    request = ViewRequest("instance")
    vm = ImageModality().view_maker(request, spec, 0.5, {"size": 16, "crop_scale": [0.5, 1.0]})
    views = vm(x, gen()).global_views
    assert [tuple(v.shape) for v in views] == [(8, 1, 16, 16)] * 2 and views[0].dtype == torch.float32
    assert all(v.crop_scale == (0.5, 1.0) for v in vm.views)
    with pytest.raises(ConfigError, match="size=2"):
        ImageModality().view_maker(request, spec, 1.0, {"size": 2})
    with pytest.raises(ConfigError, match="unknown image augmentation option.*bogus"):
        ImageModality().view_maker(request, spec, 1.0, {"bogus": 1})
    with pytest.raises(ConfigError, match="image data has no 'overlapping_crops' views.*asymmetric"):
        ImageModality().view_maker(ViewRequest("overlapping_crops"), spec)


def test_multi_crop_views_and_clean_input() -> None:
    """2 global views at the training size, 4 local ones at local_size of it (DINO's 5-40% crops), the clean image."""
    from selfsup.modalities.image.modality import LOCAL_CROP_SCALE, ImageModality

    spec = {"channels": 1, "size": 28, "height": 28, "width": 28, "mean": [0.3], "std": [0.3]}
    x = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8, generator=gen())
    vm = ImageModality().view_maker(ViewRequest("instance", 2, local_views=4, local_size=12 / 28, clean=True), spec)
    views = vm(x, gen())
    assert [tuple(v.shape) for v in views.global_views] == [(8, 1, 28, 28)] * 2
    assert [tuple(v.shape) for v in views.local_views] == [(8, 1, 12, 12)] * 4
    assert all(v.crop_scale == LOCAL_CROP_SCALE for v in vm.local_views)
    assert not torch.equal(views.local_views[0], views.local_views[1])
    torch.testing.assert_close(views.clean, ImageModality().prepare(x, spec))
    # training views at 16 px with 8-px local crops (a fraction of 16 would give 7 px, too small for ConvNet-4)
    small = ImageModality().view_maker(ViewRequest("instance", 2, local_views=2), spec, 1.0,
                                       {"size": 16, "local_size": 8})(x, gen())
    assert [tuple(v.shape[2:]) for v in small.crops] == [(16, 16)] * 2 + [(8, 8)] * 2
    with pytest.raises(ConfigError, match="local_size=20: must lie between 4 and the views' size 16"):
        ImageModality().view_maker(ViewRequest("instance", 2, local_views=2), spec, 1.0, {"size": 16, "local_size": 20})


def test_convnet4_out_norm_standardises_the_feature() -> None:
    from selfsup.modalities.image.encoders import ConvNet4

    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28, generator=gen())
    plain, normed = ConvNet4(1, (8, 8, 8, 8)), ConvNet4(1, (8, 8, 8, 8), out_norm=True)
    assert (plain(x) >= 0).all()  # post-ReLU average: all-positive
    z = normed(x)  # training mode: batch statistics
    torch.testing.assert_close(z.mean(0), torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(0, unbiased=False), torch.ones(8), atol=1e-2, rtol=0)
    assert "out_norm.running_mean" in normed.state_dict() and "out_norm.running_mean" not in plain.state_dict()


def test_convnet4_pools_its_last_map_by_average_max_or_both() -> None:
    """pool="avg" is the protocol's global average; "max" the global maximum; "avgmax" both, concatenated (twice the
    width, average first); an unknown pooling is refused in one line."""
    from selfsup.modalities.image.encoders import ConvNet4

    x = torch.rand(4, 1, 28, 28, generator=gen())
    nets = {pool: ConvNet4(1, (8, 8, 8, 8), pool=pool).eval() for pool in ("avg", "max", "avgmax")}
    for net in nets.values():
        net.load_state_dict(nets["avg"].state_dict())  # same weights: the poolings of one feature map
    with torch.no_grad():
        h = nets["avg"].features(x)
        assert nets["avg"].out_dim == nets["max"].out_dim == 8 and nets["avgmax"].out_dim == 16
        torch.testing.assert_close(nets["avg"](x), h.mean(dim=(2, 3)))
        torch.testing.assert_close(nets["max"](x), h.amax(dim=(2, 3)))
        torch.testing.assert_close(nets["avgmax"](x), torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], 1))
    assert ConvNet4(1, (8, 8, 8, 8), pool="avgmax", out_norm=True).out_norm.num_features == 16
    with pytest.raises(ConfigError, match="pool='sum': choose one of avg, max, avgmax"):
        ConvNet4(1, pool="sum")


def test_spatial_mean_is_the_mean_with_the_same_gradient_in_either_layout():
    """The encoders' global average (a sum over height and width divided by their count) gives mean's value and
    gradient, in fp32 and in bf16, for NCHW and channels_last maps."""
    from selfsup.modalities.image.encoders import spatial_mean

    for dtype in (torch.float32, torch.bfloat16):
        for layout in (torch.contiguous_format, torch.channels_last):
            h = torch.randn(4, 6, 3, 5, generator=gen()).to(dtype).contiguous(memory_format=layout)
            weights = torch.linspace(-1, 1, 24).view(4, 6)
            grads = []
            for pool in (spatial_mean, lambda t: t.mean(dim=(2, 3))):
                x = h.clone().requires_grad_(True)
                out = pool(x)
                torch.testing.assert_close(out, h.mean(dim=(2, 3)))
                (out.float() * weights).sum().backward()
                grads.append(x.grad)
            torch.testing.assert_close(*grads)
            assert torch.allclose(grads[0].float(), weights[:, :, None, None].expand(4, 6, 3, 5) / 15, atol=1e-3)


def test_convnet4_pools_before_its_relu_exactly_as_the_published_block():
    """The protocol's block is Conv-BN-ReLU-MaxPool; ConvNet4 runs the ReLU after the max-pool (a quarter of the
    values). Forward values and every gradient are bit-identical to the published order, in training mode (batch
    statistics) and in bf16 autocast; negative control: pooling by average before the ReLU is not the same."""
    from torch import nn

    from selfsup.modalities.image.encoders import ConvNet4

    def published(pool=nn.MaxPool2d):
        layers, c = [], 1
        for i, w in enumerate((8, 16, 16, 16)):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
            layers += [pool(2)] if i < 3 else []
            c = w
        return nn.Sequential(*layers)

    ours = ConvNet4(1, (8, 16, 16, 16))
    for dtype in (torch.float32, torch.bfloat16):
        for reference, same in ((published(), True), (published(nn.AvgPool2d), False)):
            reference.load_state_dict(ours.features.state_dict())
            x = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
            outs, grads = [], []
            for net in (ours.features, reference):
                xi = x.clone().requires_grad_(True)
                with torch.autocast("cpu", dtype=dtype, enabled=dtype == torch.bfloat16):
                    out = net(xi)
                (out.float() * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
                outs.append(out.detach())
                grads.append([xi.grad] + [p.grad for p in net.parameters()])
                net.zero_grad(set_to_none=True)
            identical = torch.equal(*outs) and all(torch.equal(a, b) for a, b in zip(*grads))
            assert identical == same, (dtype, same)
