"""Views checked by their statistics: the augmentation parameters selfsup draws (`sample_params`, the function
`augment` itself uses) against torchvision.transforms.v2 configured with the same settings, 10,000 draws a side.

Continuous quantities (crop area fraction, log aspect ratio, crop centre, jitter factors, blur sigma) get a
two-sample Kolmogorov-Smirnov test, rates (flip, jitter, grayscale, blur, solarize) Fisher's exact test against
torchvision's draws and a binomial test against the nominal probability, the colour jitter's order a chi-square
test over the 24 permutations; each passes at p > 0.001. Every family has a negative control: a deliberately
different setting is rejected by the same test. Images are 2048 px a side, so that torchvision's rounding of the
crop to whole pixels (selfsup's crop is continuous) is far below what 10,000 draws resolve.
"""
from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache

import numpy as np
import pytest
import torch
from scipy import stats

v2 = pytest.importorskip("torchvision.transforms.v2")  # conftest.py: a failure instead when references are required

from selfsup.modalities.image.augment import CROP_TRIES, RECIPES, ImageAugmentation, sample_params

N = 10_000
ALPHA = 1e-3
SIDE = 2048
CONTINUOUS = ("area", "log_ratio", "centre_x", "centre_y", "brightness", "contrast", "saturation", "hue", "sigma")
RATES = ("flip", "jitter", "gray", "blur", "solarize")
JITTER_FIELDS = ("brightness", "contrast", "saturation", "hue")
VIEWS = {f"{name}[{i}]": aug for name in sorted(RECIPES) for i, aug in enumerate(RECIPES[name])
         if name not in ("rotations", "tiles")}  # those two are the geometric recipe's view, turned or tiled
assert RECIPES["rotations"] == RECIPES["tiles"] == RECIPES["geometric"]


def _box_stats(area, log_ratio, centre_x, centre_y) -> dict[str, np.ndarray]:
    return {"area": np.asarray(area, dtype=np.float64), "log_ratio": np.asarray(log_ratio, dtype=np.float64),
            "centre_x": np.asarray(centre_x, dtype=np.float64), "centre_y": np.asarray(centre_y, dtype=np.float64)}


@lru_cache(maxsize=None)
def ours(aug: ImageAugmentation, height: int = SIDE, width: int = SIDE, seed: int = 0) -> dict[str, np.ndarray]:
    """selfsup's draws for N images: box quantities in the image's fractions, factors where jitter applies."""
    p = sample_params(N, height, width, aug, torch.Generator().manual_seed(seed))
    (ex, ey), (cx, cy) = p.extent.double().unbind(1), p.centre.double().unbind(1)
    out = _box_stats(ex * ey, torch.log(ex * width / (ey * height)), (cx + 1) / 2, (cy + 1) / 2)
    out.update({k: getattr(p, k).numpy() for k in RATES})
    out.update({k: p.factors[p.jitter, i].double().numpy() for i, k in enumerate(JITTER_FIELDS)})
    out["order"] = (p.order[p.jitter] * 4 ** torch.arange(4)).sum(1).numpy()
    out["sigma"] = p.sigma[p.blur].double().numpy()
    return out


class _Record(torch.nn.Module):
    """Counts its calls: tells whether RandomApply applied what it wraps."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x


def _applied(transform, probe: torch.Tensor) -> bool:
    return not torch.equal(transform(probe), probe)


@lru_cache(maxsize=None)
def theirs(aug: ImageAugmentation, height: int = SIDE, width: int = SIDE, seed: int = 1) -> dict[str, np.ndarray]:
    """torchvision.transforms.v2's draws for N images from the transforms a SimCLR/BYOL pipeline chains."""
    crop = v2.RandomResizedCrop(224, scale=aug.crop_scale, ratio=aug.crop_ratio)
    flip, gray = v2.RandomHorizontalFlip(aug.flip_p), v2.RandomGrayscale(aug.grayscale_p)
    solarize = v2.RandomSolarize(0.5, aug.solarize_p)
    jitter = v2.ColorJitter(aug.brightness, aug.contrast, aug.saturation, aug.hue)
    blur = v2.GaussianBlur(2 * math.ceil(3 * aug.blur_sigma[1]) + 1, aug.blur_sigma)
    jitter_on, blur_on = _Record(), _Record()
    apply_jitter, apply_blur = v2.RandomApply([jitter_on], aug.jitter_p), v2.RandomApply([blur_on], aug.blur_p)
    image, pixel = torch.empty(3, height, width), torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    rows: dict[str, list] = {k: [] for k in ("box", *RATES, *JITTER_FIELDS, "order", "sigma")}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for _ in range(N):
            box = crop.make_params([image])
            rows["box"].append((box["height"], box["width"], box["top"], box["left"]))
            rows["flip"].append(_applied(flip, torch.tensor([[[0.0, 1.0]]])))
            calls = jitter_on.calls
            apply_jitter(pixel)
            rows["jitter"].append(jitter_on.calls > calls)
            if rows["jitter"][-1]:
                params = jitter.make_params([pixel])
                for k in JITTER_FIELDS:
                    value = params[f"{k}_factor"]
                    rows[k].append((0.0 if k == "hue" else 1.0) if value is None else value)
                rows["order"].append(int((params["fn_idx"] * 4 ** torch.arange(4)).sum()))
            rows["gray"].append(_applied(gray, pixel))
            calls = blur_on.calls
            apply_blur(pixel)
            rows["blur"].append(blur_on.calls > calls)
            if rows["blur"][-1]:
                rows["sigma"].append(blur.make_params([pixel])["sigma"][0])
            rows["solarize"].append(_applied(solarize, torch.full((1, 1, 1), 0.8)))
    h, w, top, left = np.asarray(rows.pop("box"), dtype=np.float64).T
    out = _box_stats(h * w / (height * width), np.log(w / h), (left + w / 2) / width, (top + h / 2) / height)
    out.update({k: np.asarray(v) for k, v in rows.items()})
    return out


def ks(a: dict, b: dict, key: str) -> tuple[float, float]:
    result = stats.ks_2samp(a[key], b[key])
    return float(result.statistic), float(result.pvalue)


def fisher(a: dict, b: dict, key: str) -> float:
    ka, kb = int(a[key].sum()), int(b[key].sum())
    return float(stats.fisher_exact([[ka, len(a[key]) - ka], [kb, len(b[key]) - kb]]).pvalue)


def order_test(a: dict, b: dict) -> float:
    codes = np.union1d(a["order"], b["order"])
    table = [[int((s["order"] == c).sum()) for c in codes] for s in (a, b)]
    return float(stats.chi2_contingency(table).pvalue)


def comparisons(aug: ImageAugmentation, a: dict, b: dict) -> list[tuple[str, float, float]]:
    """(quantity, statistic, p-value) of every check of one view's draws a (selfsup) against b (torchvision);
    a quantity fixed by the settings (a rate of 0 or 1, a jitter magnitude of 0) is compared for equality."""
    rows = []
    magnitude = {"brightness": aug.brightness, "contrast": aug.contrast, "saturation": aug.saturation,
                 "hue": aug.hue, "sigma": aug.blur_p * (aug.blur_sigma[1] - aug.blur_sigma[0])}
    for key in CONTINUOUS:
        if len(a[key]) and len(b[key]) and magnitude.get(key, 1.0) > 0:
            rows.append((key, *ks(a, b, key)))
        else:
            rows.append((key, 0.0, 1.0 if np.array_equal(np.unique(a[key]), np.unique(b[key])) else 0.0))
    nominal = {"flip": aug.flip_p, "jitter": aug.jitter_p, "gray": aug.grayscale_p, "blur": aug.blur_p,
               "solarize": aug.solarize_p}
    for key in RATES:
        k, p = int(a[key].sum()), nominal[key]
        if 0 < p < 1:
            rows.append((f"{key} rate", k / N, min(fisher(a, b, key), stats.binomtest(k, N, p).pvalue)))
        else:
            rows.append((f"{key} rate", k / N, float(k == int(b[key].sum()) == round(p * N))))
    if aug.jitter_p > 0:
        rows.append(("jitter order", len(np.unique(a["order"])), order_test(a, b)))
    return rows


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_recipe_parameters_match_torchvision(view: str) -> None:
    aug = VIEWS[view]
    rows = comparisons(aug, ours(aug), theirs(aug))
    failed = [r for r in rows if not r[2] > ALPHA]
    assert not failed, failed


def test_crop_on_a_wide_image_matches_torchvision() -> None:
    """Height 1536, width 2048: the box's pixel aspect ratio, area and position still follow torchvision's."""
    aug = VIEWS["instance[0]"]
    a, b = ours(aug, 1536, SIDE), theirs(aug, 1536, SIDE)
    for key in ("area", "log_ratio", "centre_x", "centre_y"):
        assert ks(a, b, key)[1] > ALPHA, key


def test_crop_that_rarely_fits_falls_back_to_the_whole_image_as_torchvision() -> None:
    """Crops of 90-100% of the area with aspect ratios in (1/2, 2) seldom fit a square image: after CROP_TRIES
    misses both sides take the whole image (about 45% of draws); the misses are not clamped into the image."""
    aug = ImageAugmentation(crop_scale=(0.9, 1.0), crop_ratio=(0.5, 2.0))
    a, b = ours(aug), theirs(aug)
    whole_a, whole_b = a["area"] == 1.0, b["area"] == 1.0
    assert 0.35 < whole_a.mean() < 0.55 and CROP_TRIES == 10
    assert stats.fisher_exact([[whole_a.sum(), N - whole_a.sum()], [whole_b.sum(), N - whole_b.sum()]]).pvalue > ALPHA
    for key in ("area", "log_ratio", "centre_x", "centre_y"):
        assert ks(a, b, key)[1] > ALPHA, key
    assert np.allclose(a["centre_x"][whole_a], 0.5) and np.allclose(a["log_ratio"][whole_a], 0.0)


@pytest.mark.parametrize("height, width", [(1024, 3 * 1024), (3 * 1024, 1024)])
def test_crop_that_never_fits_takes_torchvision_central_crop(height: int, width: int) -> None:
    """An image three times wider (taller) than crop_ratio allows never fits a crop of 90-100% of its area: the
    central crop of its largest part at the range's extreme aspect ratio (4/3 or 3/4), 4/9 of the area."""
    aug = ImageAugmentation(crop_scale=(0.9, 1.0))
    a, b = ours(aug, height, width), theirs(aug, height, width)
    assert np.allclose(a["area"], 4 / 9) and np.allclose(b["area"], 4 / 9, atol=1 / 1024)
    assert np.allclose(a["log_ratio"], b["log_ratio"], atol=1e-3)
    assert np.allclose(a["centre_x"], 0.5) and np.allclose(a["centre_y"], 0.5)
    assert np.allclose(b["centre_x"], 0.5, atol=1 / 1024) and np.allclose(b["centre_y"], 0.5, atol=1 / 1024)


NEGATIVE = [  # (a quantity's check, the setting changed on selfsup's side only)
    ("area", dict(crop_scale=(0.2, 1.0))),
    ("log_ratio", dict(crop_ratio=(0.5, 2.0))),
    ("flip rate", dict(flip_p=0.45)),
    ("brightness", dict(brightness=0.35)),
    ("contrast", dict(contrast=0.45)),
    ("saturation", dict(saturation=0.35)),
    ("hue", dict(hue=0.09)),
    ("jitter rate", dict(jitter_p=0.77)),
    ("gray rate", dict(grayscale_p=0.23)),
    ("blur rate", dict(blur_p=0.47)),
    ("sigma", dict(blur_sigma=(0.1, 1.8))),
    ("solarize rate", dict(solarize_p=0.23)),
]


@pytest.mark.parametrize("quantity, change", NEGATIVE, ids=[q for q, _ in NEGATIVE])
def test_negative_control_a_different_setting_is_rejected(quantity: str, change: dict) -> None:
    aug = replace(VIEWS["instance[0]"], solarize_p=0.2)  # every op on, at rates strictly between 0 and 1
    honest = dict((q, p) for q, _, p in comparisons(aug, ours(aug), theirs(aug)))
    changed = replace(aug, **change)
    rejected = dict((q, p) for q, _, p in comparisons(aug, ours(changed), theirs(aug)))
    assert honest[quantity] > ALPHA and rejected[quantity] < ALPHA


def test_negative_control_misplaced_crops_and_one_order_per_batch_are_rejected() -> None:
    """A crop centre drawn over the whole image (boxes leaving it) and one jitter order for a whole batch (each
    image's own order in torchvision) are rejected."""
    aug = VIEWS["instance[0]"]
    a, b = ours(aug), theirs(aug)
    anywhere = dict(a, centre_x=np.random.default_rng(0).uniform(size=N))
    assert ks(a, b, "centre_x")[1] > ALPHA and ks(anywhere, b, "centre_x")[1] < ALPHA
    one_order = dict(a, order=np.full_like(a["order"], a["order"][0]))
    assert order_test(a, b) > ALPHA and order_test(one_order, b) < ALPHA
