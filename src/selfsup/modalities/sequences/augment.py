"""Batched time-series augmentations on [B, C, L] tensors where NaN marks padding or missing values.

Every op acts on a whole batch with per-sample random parameters drawn from one optional
`torch.Generator` (a seed reproduces the views exactly) and no per-sample Python loops. A series'
*span* runs from its first to its last observed step (a step is observed when any channel is not
NaN); steps outside the span are padding. Views are returned left-aligned: span first, NaN after,
same length L as the input, so views of one batch can be concatenated and encoders that respect NaN
(all of selfsup's series encoders) see only the data.

Ops (Um et al. 2017, "Data augmentation of wearable sensor data"; Eldele et al. 2021, TS-TCC;
Yue et al. 2022, TS2Vec): random crop (a contiguous sub-series, kept at its time scale), jitter
(additive Gaussian noise), scaling (one random factor per channel), magnitude warping (a smooth
random curve multiplies the series), time masking (a random segment becomes missing, NaN) and
segment permutation (the span is cut into 2..k equal segments that are shuffled).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ...views import Overlap, ViewRequest, Views, with_options


@dataclass(frozen=True)
class SeriesAugmentation:
    """Parameters of one view's random augmentation; magnitudes are in z-scored units."""

    crop_scale: tuple[float, float] = (1.0, 1.0)  # crop length as a fraction of the span
    jitter_sigma: float = 0.0  # std of additive Gaussian noise
    scale_sigma: float = 0.0  # std of the per-channel multiplicative factor around 1
    warp_p: float = 0.0  # probability of magnitude warping
    warp_sigma: float = 0.2  # std of the warping curve's knots around 1
    warp_knots: int = 4
    mask_p: float = 0.0  # probability of masking one segment
    mask_max: float = 0.15  # longest masked segment, as a fraction of the span
    permute_p: float = 0.0  # probability of segment permutation
    max_segments: int = 5

    def scaled(self, strength: float) -> SeriesAugmentation:
        """Copy with magnitudes and crop aggressiveness scaled by strength (0 = identity, 1 = as given)."""
        s = max(0.0, float(strength))
        lo, hi = (min(1.0, max(0.05, 1.0 - s * (1.0 - b))) for b in self.crop_scale)
        return replace(self, crop_scale=(lo, max(lo, hi)), jitter_sigma=self.jitter_sigma * s,
                       scale_sigma=self.scale_sigma * s, warp_sigma=self.warp_sigma * s,
                       mask_max=min(0.9, self.mask_max * s))

    @property
    def is_identity(self) -> bool:
        return (self.crop_scale == (1.0, 1.0) and self.jitter_sigma == 0 and self.scale_sigma == 0
                and self.warp_p == 0 and self.mask_p == 0 and self.permute_p == 0)


def observed_steps(x: torch.Tensor) -> torch.Tensor:
    """[B, C, L] -> bool [B, L]: True where at least one channel has a value (not NaN)."""
    return ~torch.isnan(x).all(dim=1)


def span_bounds(observed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First observed index and span length (last - first + 1; 0 when nothing is observed) of each row."""
    b, length = observed.shape
    any_obs = observed.any(dim=1)
    first = observed.int().argmax(dim=1)
    last = length - 1 - observed.flip(1).int().argmax(dim=1)
    span = torch.where(any_obs, last - first + 1, torch.zeros_like(first))
    return first, span


def span_mask(observed: torch.Tensor) -> torch.Tensor:
    """bool [B, L]: True between each row's first and last observed step (inclusive)."""
    first, span = span_bounds(observed)
    t = torch.arange(observed.shape[1], device=observed.device)
    return (t >= first[:, None]) & (t < (first + span)[:, None])


def _gather_steps(x: torch.Tensor, src: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """out[b, :, t] = x[b, :, src[b, t]] where keep[b, t], else NaN."""
    idx = src.clamp(0, x.shape[-1] - 1).unsqueeze(1).expand(-1, x.shape[1], -1)
    out = torch.gather(x, 2, idx)
    return out.masked_fill(~keep.unsqueeze(1), float("nan"))


def left_align(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift each row so its span starts at step 0 (NaN after it); returns (aligned, span lengths)."""
    first, span = span_bounds(observed_steps(x))
    t = torch.arange(x.shape[-1], device=x.device)
    if bool((first == 0).all()):
        keep = t[None, :] < span[:, None]
        return x.masked_fill(~keep.unsqueeze(1), float("nan")), span
    return _gather_steps(x, first[:, None] + t[None, :], t[None, :] < span[:, None]), span


def _uniform(shape: Sequence[int], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    dev = generator.device if generator is not None else like.device
    return torch.rand(tuple(shape), generator=generator, device=dev).to(device=like.device, dtype=like.dtype)


def _normal(shape: Sequence[int], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    dev = generator.device if generator is not None else like.device
    return torch.randn(tuple(shape), generator=generator, device=dev).to(device=like.device, dtype=like.dtype)


def random_crop(x: torch.Tensor, span: torch.Tensor, scale: tuple[float, float],
                generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A random contiguous window of each (left-aligned) row, length in scale x span, left-aligned."""
    b, _, length = x.shape
    u = _uniform((b, 2), generator, x.float())
    frac = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    new = torch.clamp(torch.round(frac * span.float()).long(), min=1)
    new = torch.minimum(new, span.clamp(min=1))
    start = torch.floor(u[:, 1] * (span - new + 1).float()).long().clamp(min=0)
    t = torch.arange(length, device=x.device)
    return _gather_steps(x, start[:, None] + t[None, :], t[None, :] < new[:, None]), new


def segment_permutation(x: torch.Tensor, span: torch.Tensor, max_segments: int, p: float,
                        generator: torch.Generator | None) -> torch.Tensor:
    """Cut each chosen row's span into k ~ U{2..max_segments} near-equal segments and shuffle them."""
    b, _, length = x.shape
    m = max(2, int(max_segments))
    u = _uniform((b, 2 + m), generator, x.float())
    on = (u[:, 0] < p) & (span >= 2)
    k = (2 + torch.floor(u[:, 1] * (m - 1)).long()).clamp(max=m)
    k = torch.minimum(k, span.clamp(min=1))
    j = torch.arange(m + 1, device=x.device)
    bounds = torch.div(j[None, :] * span[:, None], k[:, None], rounding_mode="floor")
    bounds = torch.minimum(bounds, span[:, None])  # segments j >= k are empty
    starts, lens = bounds[:, :-1], bounds[:, 1:] - bounds[:, :-1]
    keys = torch.where(j[None, :m] < k[:, None], u[:, 2:], 2.0 + j[None, :m].to(u.dtype))
    perm = keys.argsort(dim=1)  # new position -> old segment (empty segments stay at the end)
    new_lens = lens.gather(1, perm)
    new_starts = torch.cumsum(new_lens, dim=1) - new_lens
    t = torch.arange(length, device=x.device).expand(b, -1).contiguous()
    q = torch.searchsorted(torch.cumsum(new_lens, dim=1).contiguous(), t, right=True).clamp(max=m - 1)
    src = starts.gather(1, perm.gather(1, q)) + (t - new_starts.gather(1, q))
    src = torch.where(on[:, None], src, t)
    return _gather_steps(x, src, t < span[:, None])


def magnitude_warp(x: torch.Tensor, sigma: float, knots: int, p: float,
                   generator: torch.Generator | None) -> torch.Tensor:
    """Multiply chosen rows by a smooth random curve (knots ~ N(1, sigma), interpolated over the length)."""
    b, c, length = x.shape
    on = _uniform((b,), generator, x) < p
    k = _normal((b, c, max(2, knots) + 2), generator, x) * sigma + 1.0
    curve = F.interpolate(k, size=length, mode="linear", align_corners=True)
    return torch.where(on.view(b, 1, 1), x * curve, x)


def time_mask(x: torch.Tensor, span: torch.Tensor, max_fraction: float, p: float,
              generator: torch.Generator | None) -> torch.Tensor:
    """Set one random segment (up to max_fraction of the span) of chosen rows to NaN (missing)."""
    b, _, length = x.shape
    u = _uniform((b, 3), generator, x.float())
    on = u[:, 0] < p
    n = torch.floor(u[:, 1] * max_fraction * span.float()).long()
    n = torch.minimum(n, (span - 1).clamp(min=0))
    start = torch.floor(u[:, 2] * (span - n + 1).float()).long()
    t = torch.arange(length, device=x.device)
    hole = on[:, None] & (t[None, :] >= start[:, None]) & (t[None, :] < (start + n)[:, None])
    return x.masked_fill(hole.unsqueeze(1), float("nan"))


def augment(x: torch.Tensor, aug: SeriesAugmentation, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random view of a left-aligned float batch [B, C, L] (NaN = padding/missing); same shape out."""
    if x.dim() != 3 or not x.is_floating_point():
        raise ValueError(f"expected a float [B, C, L] batch, got {tuple(x.shape)} {x.dtype}")
    if aug.is_identity:
        return x.clone()
    x, span = left_align(x)
    b, c, _ = x.shape
    if aug.crop_scale != (1.0, 1.0):
        x, span = random_crop(x, span, aug.crop_scale, generator)
    if aug.permute_p > 0:
        x = segment_permutation(x, span, aug.max_segments, aug.permute_p, generator)
    if aug.warp_p > 0 and aug.warp_sigma > 0:
        x = magnitude_warp(x, aug.warp_sigma, aug.warp_knots, aug.warp_p, generator)
    if aug.scale_sigma > 0:
        x = x * (1.0 + aug.scale_sigma * _normal((b, c, 1), generator, x))
    if aug.jitter_sigma > 0:
        x = x + aug.jitter_sigma * _normal(tuple(x.shape), generator, x)
    if aug.mask_p > 0 and aug.mask_max > 0:
        x = time_mask(x, span, aug.mask_max, aug.mask_p, generator)
    return x


def _randint(low: int, high: int, generator: torch.Generator | None, size: tuple[int, ...] = ()) -> torch.Tensor:
    """Uniform integers in [low, high) from `generator` (a 0-d tensor when `size` is empty)."""
    dev = generator.device if generator is not None else torch.device("cpu")
    out = torch.randint(low, high, size or (1,), generator=generator, device=dev)
    return out if size else out[0]


def take_windows(x: torch.Tensor, start: torch.Tensor, length: int) -> torch.Tensor:
    """Per-row windows x[b, ..., start[b] : start[b] + length] along the last axis."""
    idx = start[:, None] + torch.arange(length, device=x.device)
    idx = idx.view(x.shape[0], *([1] * (x.dim() - 2)), length).expand(*x.shape[:-1], length)
    return torch.gather(x, -1, idx)


def overlapping_crops(x: torch.Tensor, generator: torch.Generator | None, mask_p: float = 0.5,
                      max_length: int = 3000, min_length: int = 2) -> Views:
    """TS2Vec's pair of crops (Yue et al. 2022, as in the authors' code) of a left-aligned batch [B, C, L].

    The batch is cut to its longest series, then (beyond `max_length` steps) to a random window of that length.
    A common segment of random length >= `min_length` is drawn, each crop extends it to a random left (first
    crop) or right (second crop) end, and every series is shifted by its own random offset; each crop gets a
    timestamp mask hiding steps with probability `mask_p`. `overlap.valid` marks the common steps that lie in
    a series' first..last observation (padding is left out of the loss).
    """
    valid = span_mask(observed_steps(x))
    longest = int(valid.any(0).nonzero().max()) + 1 if bool(valid.any()) else x.shape[-1]
    x, valid = x[..., :longest], valid[:, :longest]
    ts_l = longest
    if ts_l > max_length:
        off = int(_randint(0, ts_l - max_length + 1, generator))
        x, valid = x[..., off:off + max_length], valid[:, off:off + max_length]
        ts_l = max_length
    if ts_l < min_length:
        raise ConfigError(f"overlapping crops need series of at least {min_length} steps, got {ts_l}")
    b = x.shape[0]
    crop_l = int(_randint(min_length, ts_l + 1, generator))
    crop_left = int(_randint(0, ts_l - crop_l + 1, generator))
    crop_right = crop_left + crop_l
    crop_eleft = int(_randint(0, crop_left + 1, generator))
    crop_eright = int(_randint(crop_right, ts_l + 1, generator))
    offset = _randint(-crop_eleft, ts_l - crop_eright + 1, generator, (b,)).to(x.device)
    first = take_windows(x, offset + crop_eleft, crop_right - crop_eleft)
    second = take_windows(x, offset + crop_left, crop_eright - crop_left)
    keep = [(_uniform((b, v.shape[-1]), generator, v) >= mask_p) for v in (first, second)]
    common = take_windows(valid, offset + crop_left, crop_l)
    return Views([first, second], keep=keep,
                 overlap=Overlap(start_first=first.shape[-1] - crop_l, start_second=0, length=crop_l, valid=common))


def geometric_noise_mask(shape: tuple[int, ...], length: int, ratio: float = 0.15, mean_span: float = 3.0,
                         generator: torch.Generator | None = None, device: torch.device | None = None) -> torch.Tensor:
    """bool [*shape, length], True = masked: alternating runs with geometric lengths (masked mean `mean_span`,
    unmasked mean mean_span (1 - ratio) / ratio), the first state masked with probability `ratio`.

    Equivalent to Zerveas et al.'s per-step Markov chain (p(masked -> unmasked) = 1 / mean_span), sampled as
    run lengths so it needs no loop over time.
    """
    if not 0 < ratio < 1:
        raise ConfigError(f"masking ratio must be in (0, 1), got {ratio}")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    n = int(math.prod(shape))
    p_m = 1.0 / max(mean_span, 1.0)  # leave a masked run
    p_u = p_m * ratio / (1.0 - ratio)  # leave an unmasked run
    mean_pair = 1 / p_m + 1 / p_u
    runs = max(4, int(2 * math.ceil(length / mean_pair) + 8))
    while True:
        u = torch.rand((n, runs), generator=generator, device=gen_device).clamp_(min=1e-12)
        start_masked = torch.rand((n, 1), generator=generator, device=gen_device) < ratio
        j = torch.arange(runs, device=gen_device)
        masked_run = (j[None, :] % 2 == 0) == start_masked  # runs alternate, the first is masked or not
        p = torch.where(masked_run, torch.full_like(u, p_m), torch.full_like(u, p_u))
        lens = torch.floor(torch.log(u) / torch.log1p(-p)).long() + 1  # geometric on {1, 2, ...}
        ends = torch.cumsum(lens, dim=1)
        if bool((ends[:, -1] >= length).all()):
            break
        runs *= 2
    t = torch.arange(length, device=gen_device).expand(n, -1).contiguous()
    which = torch.searchsorted(ends, t, right=True).clamp(max=runs - 1)
    mask = masked_run.gather(1, which)
    return mask.view(*shape, length).to(device) if device is not None else mask.view(*shape, length)



def masked_values(x: torch.Tensor, generator: torch.Generator | None, ratio: float = 0.15,
                  mean_span: float = 3.0) -> Views:
    """Zerveas et al.'s masking of a batch [B, C, L]: geometric segments per channel set to 0 (the z-scored mean);
    values never observed (NaN) stay NaN. The clean batch and the mask (True = masked) come with the view."""
    mask = geometric_noise_mask(tuple(x.shape[:2]), x.shape[-1], ratio, mean_span, generator).to(x.device)
    return Views([x.masked_fill(mask & ~torch.isnan(x), 0.0)], clean=x, corruption_mask=mask)


class SeriesViewMaker:
    """Answers a ViewRequest for a storage batch: z-score with the run's statistics, left-align, then augment.

    'instance'-type recipes give each global view its own augmentation (cycling through the recipe's list) and
    local views a short crop (`local_size` of the length, kept at its time scale) of the first augmentation;
    'overlapping_crops' and 'masked_values' build their special views (see those functions).
    """

    def __init__(self, request: ViewRequest, views: Sequence[SeriesAugmentation], mean: Sequence[float],
                 std: Sequence[float]) -> None:
        self.request = request
        self.views = list(views)
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1)
        self.local = replace(self.views[0], crop_scale=(request.local_size / 2, request.local_size)) \
            if request.local_views and self.views else None

    def normalise(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """z-score [B, C, L] storage with the training statistics; steps with mask False become NaN."""
        x = (x.float() - self._mean.to(x.device)) / self._std.to(x.device)
        if mask is not None:
            x = x.masked_fill(~mask.bool().unsqueeze(1), float("nan"))
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> Views:
        """x: float storage [B, C, L] (NaN = padding/missing) -> Views of float32 [B, C, L'] tensors."""
        xf, _ = left_align(self.normalise(x))
        req = self.request
        if req.recipe in SPECIAL_VIEWS:
            return SPECIAL_VIEWS[req.recipe].make(xf, generator, **req.options)
        views = Views([augment(xf, self.views[i % len(self.views)], generator) for i in range(req.global_views)])
        if self.local is not None:
            length = max(2, round(xf.shape[-1] * req.local_size))
            views.local_views = [augment(xf, self.local, generator)[..., :length] for _ in range(req.local_views)]
        if req.clean:
            views.clean = xf
        return views


_GENERIC = SeriesAugmentation(crop_scale=(0.5, 1.0), jitter_sigma=0.05, scale_sigma=0.1, warp_p=0.5, warp_sigma=0.2,
                              mask_p=0.5, mask_max=0.15, permute_p=0.2, max_segments=5)

RECIPES: dict[str, list[SeriesAugmentation]] = {
    # Invariance recipes (SimCLR, BYOL, MoCo v2, SimSiam, Barlow Twins, VICReg use them): a sub-series
    # crop plus the sensor-data augmentations of Um et al. 2017 / TS-TCC, applied independently per view.
    "instance": [_GENERIC],
    "instance_light": [_GENERIC],
    "asymmetric": [_GENERIC],
    # masked modelling (MAE, data2vec, I-JEPA on the patch Transformer): a sub-series crop, values untouched
    "geometric": [SeriesAugmentation(crop_scale=(0.5, 1.0))],
    # special views (SPECIAL_VIEWS), built from the plain z-scored series
    "overlapping_crops": [],
    "masked_values": [],
}


@dataclass(frozen=True)
class SpecialViews:
    """A recipe whose views are built from the whole plain sequence by `make(x, generator, **request.options)`
    rather than by augmenting it, and which of a request's extras (step masks, a corruption mask) it carries."""
    make: Callable[..., Views]
    keeps: bool = False
    corrupts: bool = False


SPECIAL_VIEWS: dict[str, SpecialViews] = {"overlapping_crops": SpecialViews(overlapping_crops, keeps=True),
                                          "masked_values": SpecialViews(masked_values, corrupts=True)}


def check_extras(request: ViewRequest, what: str) -> None:
    """Refuse a request for step masks or a corruption mask that its recipe does not carry (`what`: the data)."""
    special = SPECIAL_VIEWS.get(request.recipe)
    if request.keep and not (special and special.keeps):
        raise ConfigError(f"the {request.recipe!r} {what} views carry no step masks (keep)")
    if request.corruption_mask and not (special and special.corrupts):
        raise ConfigError(f"the {request.recipe!r} {what} views carry no corruption mask")


def recipe(name: str, strength: float = 1.0, options: dict[str, Any] | None = None) -> list[SeriesAugmentation]:
    """The named recipe, scaled by strength, with field overrides from `options`."""
    if name not in RECIPES:
        raise ConfigError(f"view recipe {name!r} has no time-series version; known: {', '.join(sorted(RECIPES))}")
    views = [v.scaled(strength) if strength != 1.0 else v for v in RECIPES[name]]
    if options:
        views = [with_options(v, options, "time-series") for v in views]
    return views
