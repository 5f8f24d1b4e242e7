"""Batched image augmentations for self-supervised views (SimCLR, Chen et al. 2020; BYOL, Grill et al. 2020).

Every op acts on a whole batch ``[B, C, H, W]`` at once with per-sample random parameters, on the batch's
device, with no per-sample Python loops: crop + flip + resize is one bilinear ``grid_sample`` call over a
per-sample affine grid, colour ops are batched channel matrices (``baddbmm``), blur is two batched banded matmuls.
All randomness comes from one optional ``torch.Generator``: `sample_params` draws a batch's parameters (a pure
function of the batch size, image shape, recipe and generator), `augment` applies them, so a seed reproduces
the views exactly.

The parameters follow the distributions of torchvision's transforms (RandomResizedCrop, RandomHorizontalFlip,
RandomApply(ColorJitter), RandomGrayscale, RandomApply(GaussianBlur), RandomSolarize) with the same settings,
checked sample against sample in tests/reference/test_view_statistics.py. Departures: the crop box is
continuous (sub-pixel size and offset, where torchvision rounds the size and draws an integer offset); hue
is a rotation of chroma in YIQ space rather than a shift of HSV hue (same hue factor, in turns); the blur
kernel spans 2 * ceil(3 * max sigma) + 1 pixels (SimCLR's spans 10% of the image side).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F

from ...views import Views

_LUMA = (0.299, 0.587, 0.114)
CROP_TRIES = 10  # random resized crop: boxes drawn per sample before the centre-crop fallback (as torchvision)
_OPS = ("brightness", "contrast", "saturation", "hue")  # colour jitter ops; ViewParams.order indexes these


def _hue_basis() -> torch.Tensor:
    """Constant matrices (A, Bc, Bs) with hue_rotation(t) = A + cos(t) Bc + sin(t) Bs, rotating in YIQ space."""
    t = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64)
    ti = torch.linalg.inv(t)
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    return torch.stack([ti[:, :1] @ t[:1], ti[:, 1:] @ t[1:], ti[:, 1:] @ rot @ t[1:]])


_HUE_BASIS = _hue_basis()


@dataclass(frozen=True)
class ImageAugmentation:
    """Parameters of one view's random augmentation (SimCLR/BYOL-style recipe)."""

    crop_scale: tuple[float, float] = (0.08, 1.0)  # random resized crop, area fraction
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio range (sampled log-uniformly)
    flip_p: float = 0.5  # horizontal flip
    jitter_p: float = 0.8  # colour jitter applied with this prob
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4  # ignored for 1-channel images
    hue: float = 0.1  # ignored for 1-channel images
    grayscale_p: float = 0.2  # ignored for 1-channel images
    blur_p: float = 0.0  # Gaussian blur probability
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # in pixels at the output size
    solarize_p: float = 0.0  # solarize (x -> 1-x where x >= 0.5)

    def scaled(self, strength: float) -> ImageAugmentation:
        """Copy with jitter magnitudes and crop aggressiveness scaled by strength (0 = near identity, 1 = as given).

        crop_scale bounds interpolate toward 1.0 and the log aspect-ratio range shrinks toward 1; probabilities and
        blur sigma are unchanged, so strength 0 still flips/greys/blurs/solarizes with the given probabilities.
        """
        s = max(0.0, float(strength))
        lo, hi = (min(1.0, max(1e-3, b + (1.0 - s) * (1.0 - b))) for b in self.crop_scale)
        return replace(
            self,
            crop_scale=(lo, max(lo, hi)),
            crop_ratio=(self.crop_ratio[0] ** s, self.crop_ratio[1] ** s),
            brightness=self.brightness * s,
            contrast=self.contrast * s,
            saturation=self.saturation * s,
            hue=min(0.5, self.hue * s),
        )


@dataclass(frozen=True)
class ViewParams:
    """One batch's drawn augmentation parameters, per sample (leading dimension B).

    centre, extent: the crop box's centre (x, y) in the image's normalised [-1, 1] coordinates and its
    half-extent (x, y) in the same coordinates, which is also the box's width (height) as a fraction of the
    image's: its area fraction is extent.prod(1), its aspect ratio (in pixels) extent_x * W / (extent_y * H).
    factors: brightness, contrast, saturation factors and hue shift (in turns), identity (1, 1, 1, 0) where
    jitter is False; order: each sample's permutation of the jitter ops (indices into _OPS).
    """

    centre: torch.Tensor  # [B, 2]
    extent: torch.Tensor  # [B, 2]
    flip: torch.Tensor  # [B] bool
    jitter: torch.Tensor  # [B] bool
    factors: torch.Tensor  # [B, 4]
    order: torch.Tensor  # [B, 4] int64
    gray: torch.Tensor  # [B] bool
    blur: torch.Tensor  # [B] bool
    sigma: torch.Tensor  # [B], blur sigma in pixels (drawn for every sample, used where blur is True)
    solarize: torch.Tensor  # [B] bool

    def to(self, device: torch.device) -> ViewParams:
        """The same parameters on `device`."""
        return ViewParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def _between(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Map U[0,1) samples to U[lo, hi)."""
    return lo + (hi - lo) * u


def _crop_box(u_area: torch.Tensor, u_ratio: torch.Tensor, u_pos: torch.Tensor, aug: ImageAugmentation,
              height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random resized crop boxes (centre, half-extent) as torchvision's RandomResizedCrop draws them: up to
    CROP_TRIES (area fraction, log-uniform aspect ratio) pairs per sample (u_area, u_ratio: [B, CROP_TRIES]), the
    first that fits inside the image taken at a uniform position (u_pos: [B, 2]); if none fits, the central
    crop of the whole image, or of its largest part whose aspect ratio lies in crop_ratio."""
    area = _between(u_area, *aug.crop_scale)
    lo, hi = min(aug.crop_ratio), max(aug.crop_ratio)
    ratio = torch.exp(_between(u_ratio, math.log(aug.crop_ratio[0]), math.log(aug.crop_ratio[1])))
    cw, ch = torch.sqrt(area * ratio * (height / width)), torch.sqrt(area / ratio * (width / height))
    fits = (cw <= 1) & (ch <= 1)
    first = fits.int().argmax(1, keepdim=True)  # the first fitting try (0 when none fits)
    extent = torch.cat([cw.gather(1, first), ch.gather(1, first)], 1)
    image_ratio = width / height
    fallback = ((1.0, image_ratio / lo) if image_ratio < lo
                else (hi / image_ratio, 1.0) if image_ratio > hi else (1.0, 1.0))
    found = fits.any(1, keepdim=True)
    extent = torch.where(found, extent, extent.new_tensor(fallback))
    centre = torch.where(found, (1 - extent) * (2 * u_pos - 1), 0.0)
    return centre, extent


def sample_params(batch: int, height: int, width: int, aug: ImageAugmentation,
                  generator: torch.Generator | None = None, device: torch.device | str | None = None) -> ViewParams:
    """Draw the augmentation parameters of `batch` images of height x width from one U[0,1) block of the
    generator (on the generator's device; `device` when there is no generator). Jitter factors are
    U[max(0, 1 - m), 1 + m] for magnitude m, the hue shift U[-hue, hue], sigma U[blur_sigma], each op applied
    with its probability, the jitter ops in a random order per sample (as torchvision's per-image ColorJitter)."""
    dev = generator.device if generator is not None else torch.device(device or "cpu")
    widths = [CROP_TRIES, CROP_TRIES, 2, 1, 1, 4, 4, 1, 1, 1, 1]
    u = torch.rand(batch, sum(widths), generator=generator, device=dev)
    u_area, u_ratio, u_pos, u_flip, u_jit, u_fac, u_order, u_gray, u_blur, u_sigma, u_sol = u.split(widths, dim=1)
    centre, extent = _crop_box(u_area, u_ratio, u_pos, aug, height, width)
    jitter = u_jit[:, 0] < aug.jitter_p
    lows = [max(0.0, 1 - m) for m in (aug.brightness, aug.contrast, aug.saturation)] + [-aug.hue]
    highs = [1 + aug.brightness, 1 + aug.contrast, 1 + aug.saturation, aug.hue]
    factors = torch.where(jitter[:, None], _between(u_fac, u.new_tensor(lows), u.new_tensor(highs)),
                          u.new_tensor([1.0, 1.0, 1.0, 0.0]))
    return ViewParams(
        centre=centre, extent=extent, flip=u_flip[:, 0] < aug.flip_p, jitter=jitter, factors=factors,
        order=u_order.argsort(1), gray=u_gray[:, 0] < aug.grayscale_p, blur=u_blur[:, 0] < aug.blur_p,
        sigma=_between(u_sigma[:, 0], *aug.blur_sigma), solarize=u_sol[:, 0] < aug.solarize_p,
    )


def _crop_flip(x: torch.Tensor, p: ViewParams, aug: ImageAugmentation, size: tuple[int, int]) -> torch.Tensor:
    """Crop + horizontal flip + resize to `size` in one bilinear grid_sample."""
    b, _, h, w = x.shape
    if aug.crop_scale == (1.0, 1.0) and tuple(aug.crop_ratio) == (1.0, 1.0) and size == (h, w) and h == w:
        return torch.where(p.flip.view(b, 1, 1, 1), x.flip(-1), x) if aug.flip_p > 0 else x
    (cx, cy), (cw, ch) = p.centre.to(x).unbind(1), p.extent.to(x).unbind(1)
    # Equivalent to F.affine_grid with theta = [[±cw, 0, cx], [0, ch, cy]], but separable (affine_grid is a slow bmm).
    ho, wo = size
    bx = (torch.arange(wo, device=x.device, dtype=x.dtype) * 2 + 1) / wo - 1  # output pixel centres
    by = (torch.arange(ho, device=x.device, dtype=x.dtype) * 2 + 1) / ho - 1
    gx = torch.where(p.flip, -cw, cw)[:, None] * bx + cx[:, None]
    gy = ch[:, None] * by + cy[:, None]
    grid = torch.empty(b, ho, wo, 2, device=x.device, dtype=x.dtype)
    grid[..., 0], grid[..., 1] = gx[:, None, :], gy[:, :, None]
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _mix(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Per-sample linear channel mixing: m [B, C, C] applied to x [B, C, H, W] with one bmm."""
    return torch.bmm(m, x.flatten(2)).view_as(x)


def _jitter(x: torch.Tensor, p: ViewParams, aug: ImageAugmentation) -> torch.Tensor:
    """Colour jitter (brightness, contrast, saturation, hue) in each sample's own order, clamped after each op.

    Every op is a per-sample affine channel map x -> M x + s (s non-zero for contrast only, which blends with the
    image's mean grey level), so one step of the order is one batched `baddbmm` whichever op each sample takes.
    Ops of magnitude 0 (and saturation, hue on 1-channel images) are left out; samples not drawn (prob
    1 - jitter_p) get identity maps, which leave them exactly unchanged.
    """
    b, c = x.shape[:2]
    magnitudes = (aug.brightness, aug.contrast, aug.saturation if c == 3 else 0.0, aug.hue if c == 3 else 0.0)
    ops = [i for i, m in enumerate(magnitudes) if m > 0]
    if not ops:
        return x
    luma = x.new_tensor(_LUMA) if c == 3 else x.new_ones(1)
    eye = torch.eye(c, device=x.device, dtype=x.dtype).expand(b, c, c)
    f = p.factors.to(x).view(b, 4, 1, 1)
    maps = [f[:, 0] * eye, f[:, 1] * eye]
    if c == 3:
        t = f[:, 3].mul(2 * math.pi)
        basis = _HUE_BASIS.to(device=x.device, dtype=x.dtype)
        maps += [f[:, 2] * eye + (1 - f[:, 2]) * luma.expand(3, 3),  # blend with the grey image
                 torch.where(t != 0, basis[0] + t.cos() * basis[1] + t.sin() * basis[2], eye)]  # YIQ chroma rotation
    maps = torch.stack([maps[i] for i in ops], 1)  # [B, len(ops), C, C]
    ranks = p.order.argsort(1)[:, ops].to(x.device)  # where each used op falls in the sample's order
    steps = ranks.argsort(1)  # [B, len(ops)]: indices into `ops`, in the sample's order
    rows = torch.arange(b, device=x.device)
    contrast = ops.index(1) if 1 in ops else -1
    for k in range(len(ops)):
        step = steps[:, k]
        shift = torch.zeros(b, device=x.device, dtype=x.dtype)
        if contrast >= 0:
            shift = torch.where(step == contrast, (1 - f[:, 1, 0, 0]) * (x.mean((2, 3)) @ luma), shift)
        m = maps[rows, step]
        if c == 1:  # a per-sample scalar map: elementwise is faster than a batch of 1 x 1 matmuls
            x = torch.addcmul(shift.view(b, 1, 1, 1), m.view(b, 1, 1, 1), x).clamp_(0, 1)
        else:
            x = torch.baddbmm(shift.view(b, 1, 1), m, x.flatten(2)).view_as(x).clamp_(0, 1)
    return x


def _reflect_conv_matrices(kern: torch.Tensor, n: int) -> torch.Tensor:
    """Per-sample [B, n, n] matrices M with (M @ v) = 1-D correlation of v (length n) with kern [B, K], reflect-padded."""
    k = kern.shape[1]
    src = (torch.arange(n, device=kern.device)[:, None] + torch.arange(k, device=kern.device) - k // 2).abs()
    src = torch.where(src > n - 1, 2 * (n - 1) - src, src)  # reflect without repeating the edge, like F.pad
    return torch.einsum("bk,iks->bis", kern, F.one_hot(src, n).to(kern))


def _blur(x: torch.Tensor, p: ViewParams, aug: ImageAugmentation) -> torch.Tensor:
    """Gaussian blur with per-sample sigma; unselected samples get a delta kernel (an exact no-op).

    The separable per-sample kernels are applied as two batched banded matmuls (rows, then columns) rather than as
    depthwise convs with groups = B*C: same result, faster on CPU (about 1.3-2x in our measurements).
    """
    b, c, h, w = x.shape
    k = min(2 * math.ceil(3 * aug.blur_sigma[1]) + 1, min(h, w) - (1 - min(h, w) % 2))
    if k < 3:
        return x
    sigma = p.sigma.to(x).clamp(min=1e-3).view(b, 1)
    t = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
    kern = torch.exp(-(t**2) / (2 * sigma**2))
    kern = torch.where(p.blur.to(x.device).view(b, 1), kern / kern.sum(1, keepdim=True), (t == 0).to(x.dtype))
    mh = _reflect_conv_matrices(kern, h)
    mw = mh if w == h else _reflect_conv_matrices(kern, w)
    y = torch.bmm(x.reshape(b, c * h, w), mw.transpose(1, 2)).view(b, c, h, w)  # along W
    return torch.matmul(mh.unsqueeze(1), y).clamp_(0, 1)  # along H


def augment(
    x: torch.Tensor, aug: ImageAugmentation, generator: torch.Generator | None = None, *, size: int | None = None
) -> torch.Tensor:
    """x: float [B, C, H, W] in [0, 1] (C = 1 or 3); returns an augmented batch of the same shape/dtype/device, values in [0, 1].

    Order (as SimCLR/BYOL): crop+flip(+resize to `size` x `size` if given), colour jitter, grayscale, blur,
    solarize, with the parameters `sample_params` draws. Saturation, hue and grayscale only apply to 3-channel
    (RGB) images.
    """
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"expected a float [B, C, H, W] batch, got {tuple(x.shape)} {x.dtype}")
    b, c, h, w = x.shape
    p = sample_params(b, h, w, aug, generator, device=x.device).to(x.device)
    x = _crop_flip(x, p, aug, (size, size) if size is not None else (h, w))
    if aug.jitter_p > 0:
        x = _jitter(x, p, aug)
    if c == 3 and aug.grayscale_p > 0:
        gray = x.new_tensor(_LUMA).expand(3, 3)  # every output channel = luminance
        x = _mix(x, torch.where(p.gray.view(b, 1, 1), gray, torch.eye(3).to(x)))
    if aug.blur_p > 0:
        x = _blur(x, p, aug)
    if aug.solarize_p > 0:
        x = torch.where(p.solarize.view(b, 1, 1, 1) & (x >= 0.5), 1 - x, x)
    return x


class ImageViewMaker:
    """Makes a batch's views in one call: converts to float once, augments each view, normalises with mean/std."""

    def __init__(
        self,
        views: Sequence[ImageAugmentation],
        mean: Sequence[float],
        std: Sequence[float],
        out_size: int | None = None,
        local_views: Sequence[ImageAugmentation] = (),
        local_size: int | None = None,
        clean: bool = False,
        layout: Layout | None = None,
    ) -> None:
        """views: one augmentation per global view; mean/std per channel (or one value); out_size: square side of
        the global views; local_views/local_size: the multi-crop views and their side; clean: also the
        un-augmented image (at out_size); layout: the global views are cut from the first view's crop (LAYOUTS:
        turned four ways, or 9 tiles; `views` then holds that one view)."""
        self.views = list(views)
        self.layout = layout
        self.out_size = out_size
        self.local_views, self.local_size = list(local_views), local_size
        self.clean = clean
        self._scale = 1.0 / torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self._shift = -torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * self._scale

    @staticmethod
    def _to_float(x: torch.Tensor) -> torch.Tensor:
        """uint8 [0,255] -> float32 [0,1]; float input is cast to float32 unchanged."""
        return x.float().mul_(1 / 255) if x.dtype == torch.uint8 else x.float()

    def _standardise(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std as x * (1/std) + (-mean/std) (new tensor)."""
        return (x * self._scale.to(x.device)).add_(self._shift.to(x.device))

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> Views:
        """x: uint8 [B, C, H, W] (or float in [0,1]) -> Views of float32 [B, C, S, S] tensors, normalised."""
        xf = self._to_float(x)
        if self.layout is not None:
            crop = self._standardise(augment(xf, self.views[0], generator, size=self.out_size))
            global_views = self.layout.cut(crop, generator)
        else:
            global_views = [self._standardise(augment(xf, v, generator, size=self.out_size)) for v in self.views]
        views = Views(global_views,
                      [self._standardise(augment(xf, v, generator, size=self.local_size)) for v in self.local_views])
        if self.clean:
            views.clean = self.normalise(x)
        return views

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """No augmentation: uint8/float [B,C,H,W] -> float normalised (resized to out_size if set). Used for embedding."""
        xf = self._to_float(x)
        if self.out_size is not None and tuple(xf.shape[-2:]) != (self.out_size, self.out_size):
            s = (self.out_size, self.out_size)
            xf = F.interpolate(xf, size=s, mode="bilinear", align_corners=False, antialias=True)
        return self._standardise(xf)


_JITTER = dict(jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, grayscale_p=0.2, flip_p=0.5)
_MOCO = ImageAugmentation(crop_scale=(0.2, 1.0), blur_p=0.5, **_JITTER)
_BYOL = dict(_JITTER, saturation=0.2)
_GEOMETRIC = ImageAugmentation(crop_scale=(0.2, 1.0), jitter_p=0.0, grayscale_p=0.0)

RECIPES: dict[str, list[ImageAugmentation]] = {
    # SimCLR, Chen et al. 2020, with its colour distortion ColorJitter(0.8 s, 0.8 s, 0.8 s, 0.2 s) at strength
    # s = 0.5, the paper's CIFAR-10 setting (and MoCo v2's values); its ImageNet runs use s = 1, that is
    # `--augment brightness=0.8 contrast=0.8 saturation=0.8 hue=0.2`.
    "instance": [ImageAugmentation(crop_scale=(0.08, 1.0), blur_p=0.5, **_JITTER)],
    "asymmetric": [  # BYOL, Grill et al. 2020; also Barlow Twins / VICReg
        ImageAugmentation(blur_p=1.0, solarize_p=0.0, **_BYOL),
        ImageAugmentation(blur_p=0.1, solarize_p=0.2, **_BYOL),
    ],
    "instance_light": [_MOCO],  # MoCo v2 (Chen et al. 2020), SimSiam (Chen & He 2021)
    "geometric": [_GEOMETRIC],  # MAE, He et al. 2022
    "rotations": [_GEOMETRIC],  # RotNet (Gidaris et al. 2018): the view maker turns it four ways
    "tiles": [_GEOMETRIC],  # jigsaw (Noroozi & Favaro 2016), context (Doersch et al. 2015): the view maker tiles it
}
ROTATIONS = 4  # views of the rotations recipe: k x 90 degrees, k = 0..3
TILES = 9  # views of the tiles recipe: a 3 x 3 grid
TILE_FRACTION = 64 / 75  # a tile's side as a fraction of its cell's (the jigsaw paper's 64-px tiles of 75-px cells)


def tiles(x: torch.Tensor, generator: torch.Generator | None) -> list[torch.Tensor]:
    """The 3 x 3 grid's tiles of images x [B, C, S, S], row-major: from each cell of side S // 3 a square of
    TILE_FRACTION of its side at a random offset (drawn per tile and batch from `generator`)."""
    cell = x.shape[-1] // 3
    side = max(1, round(cell * TILE_FRACTION))
    gdev = generator.device if generator is not None else torch.device("cpu")
    offsets = torch.randint(0, cell - side + 1, (TILES, 2), generator=generator, device=gdev).tolist()
    return [x[..., r * cell + dr:r * cell + dr + side, c * cell + dc:c * cell + dc + side]
            for (r, c), (dr, dc) in zip(((r, c) for r in range(3) for c in range(3)), offsets)]


def turned(crop: torch.Tensor, generator: torch.Generator | None) -> list[torch.Tensor]:
    """The crop turned by 0, 90, 180 and 270 degrees."""
    return [torch.rot90(crop, k, dims=(2, 3)) for k in range(ROTATIONS)]


def tiled(crop: torch.Tensor, generator: torch.Generator | None) -> list[torch.Tensor]:
    return [tile.contiguous() for tile in tiles(crop, generator)]


@dataclass(frozen=True)
class Layout:
    """A recipe whose global views are all cut from one crop: `cut(crop, generator)` gives exactly `views` of
    them (`what` says which, for the refusal of another count); `tiled`: they are tiles (the crop is enlarged so
    that a tile is as large as the encoder takes)."""
    cut: Callable[[torch.Tensor, torch.Generator | None], list[torch.Tensor]]
    views: int
    what: str
    tiled: bool = False


LAYOUTS: dict[str, Layout] = {"rotations": Layout(turned, ROTATIONS, "0, 90, 180, 270 degrees"),
                              "tiles": Layout(tiled, TILES, "a 3 x 3 grid", tiled=True)}


def tiled_size(size: int, smallest_tile: int) -> int:
    """The smallest crop side >= `size` whose tiles (`tiles`) are at least `smallest_tile` pixels wide."""
    while round((size // 3) * TILE_FRACTION) < smallest_tile:
        size += 1
    return size


def recipe(name: str, image_size: int, channels: int, strength: float = 1.0) -> list[ImageAugmentation]:
    """The named recipe (views.RECIPES) adapted to the image size: blur is dropped for images <= 32 px (as
    SimCLR/solo-learn do for CIFAR); view i of a request uses entry i mod len of the list."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {sorted(RECIPES)}")
    changes: dict[str, float] = {}
    if image_size <= 32:
        changes["blur_p"] = 0.0
    if channels == 1:
        changes.update(saturation=0.0, hue=0.0, grayscale_p=0.0)
    return [replace(v.scaled(strength) if strength != 1.0 else v, **changes) for v in RECIPES[name]]
