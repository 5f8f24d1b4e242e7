"""Views of video clips, made on the training device for a whole batch, every draw from the loop's generator.

An augmentation (ClipAugmentation) of a batch of prepared clips [B, T, C, H, W] (normalised floats), in this order:
  1. a temporal crop: `frames` frames (at most T) taken every `stride` frames (a stride drawn from `strides` for the
     whole batch, the largest that fits used when none does), from an offset drawn per clip where the crop fits:
     two views of one clip are two moments of it (the positives of time-contrastive learning: CVRL, Qian et al.
     2021; rho-BYOL, Feichtenhofer et al. 2021);
  2. a random resized crop of `crop` of the frame's area with an aspect ratio in `aspect`, the same for every frame
     of the clip (temporally consistent, as both papers), resized back to H x W; a horizontal flip with probability
     `flip` (0 by default: a flip turns a leftward motion into a rightward one, which a video's content may depend
     on; CVRL flips, with motion-symmetric labels);
  3. brightness and contrast: each clip's values times a factor within 1 +- `contrast` plus an offset within
     +- `brightness` (in units of the data's standard deviation), the same for every frame;
  4. Gaussian noise of std `noise`.

Recipes (views.RECIPES names and two of video's own):
- `instance`: half the clip's frames at a random offset, crops of 30-100% of the area, brightness and contrast
  jitter, a little noise (time-contrastive views); `instance_light` milder (60-100%, half the jitter);
  `asymmetric` the instance recipe for both views (clips have no analogue of BYOL's blur and solarisation);
- `geometric`: the whole clip, a crop of 50-100% of the area, no change of values (VideoMAE's input);
- `frame_order`: global view 0 a `geometric` crop of `frames` frames in order, view 1 the same frames with two of
  them at least two apart swapped (Shuffle and Learn's negatives, Misra et al. 2016: a frame out of place, not a
  reversed clip, which is a valid clip of the opposite motion);
- `paces`: global view k the clip at stride k + 1 (k = 0 .. views - 1), each the same number of frames (as many
  as the fastest pace fits), at its own offset and crop (pace prediction, Wang et al. 2020).
Local views (multi-crop) are `local_size` x H crops of 10-40% of the area over the same frames as a global view, their
side rounded up to a multiple of the encoder's patch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ...views import ViewRequest, Views, with_options


@dataclass(frozen=True)
class ClipAugmentation:
    frames: float = 0.5  # frames of a view: a fraction of the clip's (<= 1) or a count (> 1)
    strides: tuple[int, ...] = (1,)
    crop: tuple[float, float] = (0.3, 1.0)  # fraction of the frame's area
    aspect: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.0
    brightness: float = 0.4
    contrast: float = 0.4
    noise: float = 0.05

    def scaled(self, strength: float) -> ClipAugmentation:
        """Milder (strength < 1) or stronger (> 1): the crop's lower bound moves towards (away from) the whole
        frame, the jitter and noise shrink (grow)."""
        low = min(1.0, max(0.05, 1.0 - (1.0 - self.crop[0]) * strength))
        return replace(self, crop=(low, self.crop[1]), brightness=self.brightness * strength,
                       contrast=min(0.95, self.contrast * strength), noise=self.noise * strength)

    def view_frames(self, t: int) -> int:
        """How many frames a view of a T-frame clip holds."""
        wanted = round(self.frames * t) if self.frames <= 1 else int(self.frames)
        return max(1, min(t, wanted))


INSTANCE = ClipAugmentation()
RECIPES: dict[str, ClipAugmentation] = {
    "instance": INSTANCE,
    "instance_light": replace(INSTANCE, crop=(0.6, 1.0), brightness=0.2, contrast=0.2, noise=0.02),
    "asymmetric": INSTANCE,
    "geometric": ClipAugmentation(frames=1.0, crop=(0.5, 1.0), brightness=0.0, contrast=0.0, noise=0.0),
    "frame_order": ClipAugmentation(frames=1.0, crop=(0.5, 1.0), brightness=0.0, contrast=0.0, noise=0.0),
    "paces": ClipAugmentation(frames=1.0, crop=(0.5, 1.0), brightness=0.2, contrast=0.2, noise=0.0),
}
LOCAL_CROP = (0.1, 0.4)


def uniform(n: int, low: float, high: float, device: torch.device, generator: torch.Generator | None
            ) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def temporal_crop(x: torch.Tensor, frames: int, stride: int, generator: torch.Generator | None) -> torch.Tensor:
    """[B, T, ...] -> [B, frames, ...]: every `stride`-th frame from a random offset per clip (the crop must fit:
    (frames - 1) x stride < T)."""
    b, t = x.shape[:2]
    span = (frames - 1) * stride + 1
    start = torch.randint(t - span + 1, (b, 1), generator=generator, device=x.device)
    index = start + stride * torch.arange(frames, device=x.device)[None]  # [B, frames]
    return torch.gather(x, 1, index.view(b, frames, *[1] * (x.dim() - 2)).expand(-1, -1, *x.shape[2:]))


def fitting_stride(aug: ClipAugmentation, frames: int, t: int, device: torch.device,
                   generator: torch.Generator | None) -> int:
    """A stride drawn (for the whole batch) from aug.strides among those whose crop of `frames` fits in T frames
    (else the largest that fits; 1 always does)."""
    fits = [s for s in aug.strides if (frames - 1) * s < t] or [max(1, (t - 1) // max(1, frames - 1))]
    return fits[int(torch.randint(len(fits), (), generator=generator, device=device))]


def spatial_crop(x: torch.Tensor, aug: ClipAugmentation, size: tuple[int, int], generator: torch.Generator | None,
                 crop: tuple[float, float] | None = None) -> torch.Tensor:
    """[B, T, C, H, W] -> [B, T, C, *size]: one random resized crop (and flip) per clip, the same for its frames."""
    b, t, c, h, w = x.shape
    lo, hi = crop or aug.crop
    area = uniform(b, lo, hi, x.device, generator)
    log_ratio = uniform(b, math.log(aug.aspect[0]), math.log(aug.aspect[1]), x.device, generator)
    ratio = log_ratio.exp()
    sx, sy = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)  # crop's half-extents / 1
    cx, cy = (1 - sx) * uniform(b, -1, 1, x.device, generator), (1 - sy) * uniform(b, -1, 1, x.device, generator)
    flip = torch.where(torch.rand(b, generator=generator, device=x.device) < aug.flip, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx * flip, cx, sy, cy
    grid = F.affine_grid(theta.repeat_interleave(t, dim=0), [b * t, c, *size], align_corners=False)
    return F.grid_sample(x.reshape(b * t, c, h, w), grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False).view(b, t, c, *size)


def jitter_values(x: torch.Tensor, aug: ClipAugmentation, generator: torch.Generator | None) -> torch.Tensor:
    b = len(x)
    shape = (b, *[1] * (x.dim() - 1))
    if aug.contrast or aug.brightness:
        gain = uniform(b, 1 - aug.contrast, 1 + aug.contrast, x.device, generator).view(shape)
        offset = uniform(b, -aug.brightness, aug.brightness, x.device, generator).view(shape)
        x = x * gain + offset
    if aug.noise:
        x = x + aug.noise * torch.randn(x.shape, generator=generator, device=x.device)
    return x


def augment(x: torch.Tensor, aug: ClipAugmentation, generator: torch.Generator | None,
            size: tuple[int, int] | None = None, frames: int | None = None, stride: int | None = None,
            crop: tuple[float, float] | None = None) -> torch.Tensor:
    """One view of every clip of x [B, T, C, H, W] (prepared)."""
    t = x.shape[1]
    frames = frames or aug.view_frames(t)
    stride = stride or fitting_stride(aug, frames, t, x.device, generator)
    view = temporal_crop(x, frames, stride, generator) if (frames, stride) != (t, 1) else x
    view = spatial_crop(view, aug, size or tuple(x.shape[-2:]), generator, crop)
    return jitter_values(view, aug, generator)


def swap_two_frames(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Each clip of x [B, T, ...] (T >= 3) with frames i < j, j - i >= 2, swapped (a pair drawn per clip)."""
    b, t = x.shape[:2]
    i = torch.randint(t - 2, (b,), generator=generator, device=x.device)
    j = i + 2 + (torch.rand(b, generator=generator, device=x.device) * (t - 2 - i)).long().clamp(max=t - 3 - i)
    order = torch.arange(t, device=x.device).repeat(b, 1)
    rows = torch.arange(b, device=x.device)
    order[rows, i], order[rows, j] = j, i
    return torch.gather(x, 1, order.view(b, t, *[1] * (x.dim() - 2)).expand(-1, -1, *x.shape[2:]))


def recipe(name: str, strength: float = 1.0, options: dict[str, Any] | None = None) -> ClipAugmentation:
    """The named recipe, scaled by strength, with field overrides from `options`."""
    if name not in RECIPES:
        raise ConfigError(f"video makes no {name!r} views; it makes: {', '.join(RECIPES)}")
    aug = RECIPES[name].scaled(strength) if strength != 1.0 else RECIPES[name]
    aug = with_options(aug, options, "video") if options else aug
    if not 0 < aug.crop[0] <= aug.crop[1] <= 1 or not 0 < aug.aspect[0] <= aug.aspect[1]:
        raise ConfigError(f"video augmentation crop={aug.crop}, aspect={aug.aspect}: crop two fractions with "
                          "0 < low <= high <= 1, aspect two ratios with 0 < low <= high")
    if not aug.strides or any(int(s) != s or s < 1 for s in aug.strides) or aug.frames <= 0:
        raise ConfigError(f"video augmentation strides={aug.strides}, frames={aug.frames}: strides are whole numbers "
                          ">= 1, frames a fraction of the clip (<= 1) or a count")
    return aug


def independent_views(x: torch.Tensor, aug: ClipAugmentation, views: int, generator: torch.Generator | None
                      ) -> list[torch.Tensor]:
    return [augment(x, aug, generator) for _ in range(views)]


def ordered_and_swapped(x: torch.Tensor, aug: ClipAugmentation, views: int, generator: torch.Generator | None
                        ) -> list[torch.Tensor]:
    """The `frame_order` views: a crop of the clip in order, and the same crop with two frames swapped."""
    if views != 2 or x.shape[1] < 4:
        raise ConfigError(f"'frame_order' video views are two (asked for {views}) of clips of at least 4 frames (got "
                          f"{x.shape[1]}): the clip in order and with two frames swapped (in 3 frames the only such "
                          "swap reverses the clip)")
    ordered = augment(x, aug, generator, frames=max(4, aug.view_frames(x.shape[1])))
    return [ordered, swap_two_frames(ordered, generator)]


def at_paces(x: torch.Tensor, aug: ClipAugmentation, views: int, generator: torch.Generator | None
             ) -> list[torch.Tensor]:
    """The `paces` views: view k every (k+1)-th frame, all of the length the fastest pace fits."""
    t = x.shape[1]
    frames = min(aug.view_frames(t), (t - 1) // views + 1)
    if frames < 2:
        raise ConfigError(f"{views} paces need clips of at least {views + 1} frames, got {t}")
    return [augment(x, aug, generator, frames=frames, stride=k + 1) for k in range(views)]


#: how a recipe's global views relate to each other (default: independent draws)
VIEW_SETS: dict[str, Callable[..., list[torch.Tensor]]] = {"frame_order": ordered_and_swapped, "paces": at_paces}


class ClipViewMaker:
    """Answers a ViewRequest for a batch of clips (the modality prepares storage first)."""

    def __init__(self, request: ViewRequest, aug: ClipAugmentation, prepare: Callable[[torch.Tensor], torch.Tensor],
                 multiple: int = 1) -> None:
        if request.corruption_mask or request.keep:
            raise ConfigError(f"the {request.recipe!r} video views carry no corruption mask and no token masks")
        self.request, self.aug, self.prepare, self.multiple = request, aug, prepare, int(multiple)
        self.global_views = VIEW_SETS.get(request.recipe, independent_views)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> Views:
        x = self.prepare(batch)
        req = self.request
        views = Views(self.global_views(x, self.aug, req.global_views, generator))
        if req.local_views:
            m = self.multiple  # (a ViT's patch: local views whole patches too)
            side = tuple(min(s, -(-max(4, round(s * req.local_size)) // m) * m) for s in x.shape[-2:])
            views.local_views = [augment(x, self.aug, generator, size=side, crop=LOCAL_CROP)
                                 for _ in range(req.local_views)]
        if req.clean:
            views.clean = x
        return views
