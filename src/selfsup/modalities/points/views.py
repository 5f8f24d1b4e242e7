"""Views of point clouds, made on the training device for a whole batch, every draw from the loop's generator.

An augmentation (PointAugmentation) of a batch of prepared clouds [B, P, C] (xyz centred in the unit ball, then
the standardised per-point features), in this order:
  1. a crop: the points nearest to a random point of the cloud (a ball), a random fraction `crop` of them
     (PointContrast's and CrossPoint's partial views), resampled to the view's number of points (with repetition
     where the crop holds fewer), then centred and scaled into the unit ball again;
  1a. with `dropout` > 0, point dropout (PointNet++'s random input dropout): a fraction drawn uniformly in
     [0, dropout] of the points left out, the rest resampled to the view's number of points;
  1b. with `occlude`, only the points a camera sees from a random direction, three unit-ball radii away
     (`seen_from`: a z-buffer), resampled to the view's number of points; the pose stays that of the whole cloud
     (OcCo's partial view, completed back to the whole cloud);
  2. a rotation about the up axis (`rotation="up"`, clouds stored upright, as ModelNet and ShapeNet), about a
     uniformly random axis (`"so3"`: clouds in arbitrary orientations), or none;
  3. an anisotropic scaling (each axis by a factor in `scale`) and a translation (each axis within +-`shift`);
  4. jitter: Gaussian noise of std `jitter` on every coordinate, clipped at `jitter_clip`.
Features after the coordinates are carried with their points, unchanged. With `pose="pca"` (`--augment pose=pca`)
every view is then put in its own principal axes (`encoders.principal_frame`) and the whole cloud (`clean`) in those
of the first global view: for clouds in any orientation, a part and its whole in one canonical pose, the pose an
encoder with `align=pca` sees.

Recipes (views.RECIPES names): `instance` (crops of 40-100% of the points: independent views for contrastive and
distillation methods), `instance_light` (70-100%, milder), `asymmetric` (the instance recipe for both views: clouds
have no analogue of BYOL's asymmetric blur and solarisation), `geometric` (the whole cloud turned, scaled and
shifted; no crop, no jitter), `occluded` (what a camera sees of the cloud from a random direction, in the cloud's own
pose and nothing else changed: OcCo's input, beside the whole cloud as `clean`). Local views (multi-crop) are crops
of 5-30% of the points, `local_size` x P points each.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from ...errors import ConfigError
from ...views import ViewRequest, Views, with_options
from .encoders import ALIGNMENTS, aligned, in_frame, principal_frame

ROTATIONS = ("up", "so3", "none")


@dataclass(frozen=True)
class PointAugmentation:
    crop: tuple[float, float] = (0.4, 1.0)  # fraction of the points kept by the ball crop
    rotation: str = "up"
    up_axis: int = 2  # the coordinate that points up (z)
    scale: tuple[float, float] = (0.8, 1.25)
    shift: float = 0.1
    jitter: float = 0.01
    jitter_clip: float = 0.05
    dropout: float = 0.0  # the most points left out by point dropout, a fraction (step 1a)
    occlude: bool = False  # keep only the points seen from a random direction (step 1b)
    pose: str = ""  # "pca": every view in its own principal axes, and `clean` in those of the first global view

    def scaled(self, strength: float) -> PointAugmentation:
        """Milder (strength < 1) or stronger (> 1): the crop's lower bound moves towards (away from) keeping every
        point, the scaling range, shift and jitter shrink (grow)."""
        low = min(1.0, max(0.01, 1.0 - (1.0 - self.crop[0]) * strength))
        lo_scale, hi_scale = (math.exp(math.log(s) * strength) for s in self.scale)
        return replace(self, crop=(low, self.crop[1]), scale=(lo_scale, hi_scale), shift=self.shift * strength,
                       jitter=self.jitter * strength)


RECIPES: dict[str, PointAugmentation] = {
    "instance": PointAugmentation(),
    "instance_light": PointAugmentation(crop=(0.7, 1.0), scale=(0.9, 1.1), shift=0.05, jitter=0.005),
    "asymmetric": PointAugmentation(),
    "geometric": PointAugmentation(crop=(1.0, 1.0), jitter=0.0, jitter_clip=0.0),
    "occluded": PointAugmentation(crop=(1.0, 1.0), rotation="none", scale=(1.0, 1.0), shift=0.0, jitter=0.0,
                                  jitter_clip=0.0, occlude=True),
}
CAMERA_DISTANCE = 3.0  # an occluding camera's distance from the centre, in unit-ball radii
LOCAL_CROP = (0.05, 0.3)


def unit_ball(xyz: torch.Tensor) -> torch.Tensor:
    """Each cloud [B, P, 3] centred on its centroid and scaled so that its farthest point is at distance 1."""
    xyz = xyz - xyz.mean(dim=1, keepdim=True)
    return xyz / xyz.norm(dim=2).amax(dim=1).clamp_min(1e-8)[:, None, None]


def ball_crop(x: torch.Tensor, fraction: torch.Tensor, points: int, generator: torch.Generator | None
              ) -> torch.Tensor:
    """For each cloud of x [B, P, C], the ceil(fraction * P) points nearest to one of its points drawn at random,
    resampled to `points` points (a random draw among them; every one when there are as many)."""
    b, p, c = x.shape
    centre = torch.gather(x[..., :3], 1, torch.randint(p, (b, 1, 1), generator=generator, device=x.device)
                          .expand(-1, -1, 3))
    order = (x[..., :3] - centre).norm(dim=2).argsort(dim=1)  # nearest first
    kept = (fraction * p).ceil().clamp(1, p).long()  # [B]
    return resampled(x, order, kept, points, generator)


def resampled(x: torch.Tensor, order: torch.Tensor, kept: torch.Tensor, points: int,
              generator: torch.Generator | None) -> torch.Tensor:
    """[B, points, C]: for each cloud of x [B, P, C], `points` of its points order[:kept] (indices [B, P], counts
    [B]): a random draw without repetition when all P are kept and no more are asked for, else spread evenly over the
    kept ones (repeated where they are fewer), in random order."""
    b, p, c = x.shape
    if points <= p and bool((kept == p).all()):
        pick = torch.rand(b, p, generator=generator, device=x.device).argsort(dim=1)[:, :points]
    else:
        draws = torch.rand(b, points, generator=generator, device=x.device).argsort(dim=1).float() / points
        pick = (draws * kept[:, None]).long()
    chosen = torch.gather(order, 1, pick)
    return torch.gather(x, 1, chosen[..., None].expand(-1, -1, c))


def seen_from(xyz: torch.Tensor, direction: torch.Tensor, grid: int) -> torch.Tensor:
    """[B, P] bool: the points of clouds xyz [B, P, 3] (in the unit ball) that a pinhole camera sees from
    CAMERA_DISTANCE x `direction` [B, 3] (unit vectors), looking at the centre. A z-buffer of grid x grid square
    pixels over the cloud's image holds each pixel's nearest depth, spread to its 3 x 3 neighbours (a point is a
    sample of a surface, and a pixel may miss the front surface's samples); a point is seen when it lies less than
    2.5 pixel widths behind its pixel's depth. On spheres of 256 points and an 8 x 8 grid over 99.9% of the points
    kept lie on the near half, and all of the cap that a camera at 3 radii truly sees (above 1/3 of the radius) is
    kept."""
    forward = -direction
    axes = torch.eye(3, device=xyz.device, dtype=xyz.dtype)
    helper = torch.where(forward[:, 2:].abs() > 0.9, axes[0], axes[2])  # any axis not along the line of sight
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, helper), dim=1)
    up = torch.linalg.cross(right, forward)
    rel = xyz - CAMERA_DISTANCE * direction[:, None]
    depth = (rel * forward[:, None]).sum(dim=2)
    screen = torch.stack([(rel * right[:, None]).sum(dim=2), (rel * up[:, None]).sum(dim=2)], dim=2) / depth[..., None]
    low = screen.amin(dim=1, keepdim=True)
    span = (screen.amax(dim=1, keepdim=True) - low).amax(dim=2, keepdim=True).clamp_min(1e-8)  # square pixels
    cell = ((screen - low) / span * grid).long().clamp(0, grid - 1)
    pixel = cell[..., 0] * grid + cell[..., 1]
    nearest = torch.full((len(xyz), grid * grid), float("inf"), device=xyz.device, dtype=depth.dtype)
    nearest = nearest.scatter_reduce(1, pixel, depth, "amin").view(-1, 1, grid, grid)
    nearest = -torch.nn.functional.max_pool2d(-nearest, 3, stride=1, padding=1).view(len(xyz), -1)
    width = span[:, :, 0] * CAMERA_DISTANCE / grid  # a pixel's width at the cloud's centre, [B, 1]
    return depth <= torch.gather(nearest, 1, pixel) + 2.5 * width


def dropped(x: torch.Tensor, most: float, points: int, generator: torch.Generator | None) -> torch.Tensor:
    """[B, points, C]: for each cloud of x [B, P, C], a random fraction in [0, most] of its points left out and the
    others resampled to `points`."""
    b, p, _ = x.shape
    fraction = most * torch.rand(b, generator=generator, device=x.device)
    order = torch.rand(b, p, generator=generator, device=x.device).argsort(dim=1)
    return resampled(x, order, ((1 - fraction) * p).ceil().clamp(1, p).long(), points, generator)


def occluded(x: torch.Tensor, points: int, generator: torch.Generator | None) -> torch.Tensor:
    """[B, points, C]: for each cloud of x [B, P, C], the points a camera sees from a uniformly random direction
    (`seen_from` on a grid of about sqrt(P / 4) pixels a side: a few of a surface's points to a pixel), resampled to
    `points`."""
    b, p, _ = x.shape
    direction = torch.nn.functional.normalize(torch.randn(b, 3, generator=generator, device=x.device), dim=1)
    seen = seen_from(x[..., :3].float(), direction, max(2, round(math.sqrt(p / 4))))
    jitter = torch.rand(b, p, generator=generator, device=x.device)
    order = (jitter - seen.to(jitter.dtype)).argsort(dim=1)  # the seen points first, in random order
    return resampled(x, order, seen.sum(dim=1).clamp_min(1), points, generator)


def random_rotation(b: int, aug: PointAugmentation, device: torch.device, generator: torch.Generator | None
                    ) -> torch.Tensor | None:
    """[B, 3, 3] rotations (row-vector convention: xyz @ R), or None for none."""
    if aug.rotation == "none":
        return None
    if aug.rotation == "so3":  # a uniformly random rotation: QR of a Gaussian matrix, signs fixed
        q, r = torch.linalg.qr(torch.randn(b, 3, 3, generator=generator, device=device))
        q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2))[:, None, :]
        det = torch.linalg.det(q)
        return q * torch.stack([torch.ones_like(det), torch.ones_like(det), det], dim=1)[:, None, :]
    angle = 2 * math.pi * torch.rand(b, generator=generator, device=device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    a, c = [i for i in range(3) if i != aug.up_axis]  # the plane turned about the up axis
    rot = torch.eye(3, device=device).repeat(b, 1, 1)
    rot[:, a, a], rot[:, a, c], rot[:, c, a], rot[:, c, c] = cos, -sin, sin, cos
    return rot


def augment(x: torch.Tensor, aug: PointAugmentation, points: int, generator: torch.Generator | None
            ) -> torch.Tensor:
    """One view of every cloud of x [B, P, C] (prepared), `points` points each."""
    b = len(x)
    lo, hi = aug.crop
    fraction = lo + (hi - lo) * torch.rand(b, generator=generator, device=x.device)
    view = ball_crop(x, fraction, points, generator)
    xyz = unit_ball(view[..., :3])
    if aug.dropout > 0 or aug.occlude:  # these pick points: the features go with them
        view = torch.cat([xyz, view[..., 3:]], dim=2)
        view = dropped(view, aug.dropout, points, generator) if aug.dropout > 0 else view
        view = occluded(view, points, generator) if aug.occlude else view
        xyz = view[..., :3]
    rot = random_rotation(b, aug, x.device, generator)
    if rot is not None:
        xyz = xyz @ rot
    log_lo, log_hi = math.log(aug.scale[0]), math.log(aug.scale[1])
    xyz = xyz * torch.exp(log_lo + (log_hi - log_lo) * torch.rand(b, 1, 3, generator=generator, device=x.device))
    xyz = xyz + aug.shift * (2 * torch.rand(b, 1, 3, generator=generator, device=x.device) - 1)
    if aug.jitter > 0:
        noise = aug.jitter * torch.randn(xyz.shape, generator=generator, device=x.device)
        xyz = xyz + noise.clamp(-aug.jitter_clip, aug.jitter_clip)
    return torch.cat([xyz, view[..., 3:]], dim=2)


def recipe(name: str, strength: float = 1.0, options: dict[str, Any] | None = None) -> PointAugmentation:
    """The named recipe, scaled by strength, with field overrides from `options`."""
    if name not in RECIPES:
        raise ConfigError(f"point clouds make no {name!r} views; they make: {', '.join(RECIPES)}")
    aug = RECIPES[name].scaled(strength) if strength != 1.0 else RECIPES[name]
    aug = with_options(aug, options, "point-cloud") if options else aug
    if aug.pose not in ALIGNMENTS:
        raise ConfigError(f"point-cloud augmentation pose={aug.pose!r}: give pose=pca, or leave it out for views "
                          "in the pose the augmentation gives them")
    if aug.rotation not in ROTATIONS or aug.up_axis not in (0, 1, 2):
        raise ConfigError(f"point-cloud augmentation rotation={aug.rotation!r}, up_axis={aug.up_axis}: rotation is "
                          f"one of {', '.join(ROTATIONS)} and up_axis 0, 1 or 2")
    if not 0 <= aug.dropout < 1:
        raise ConfigError(f"point-cloud augmentation dropout={aug.dropout}: the most points left out, a fraction in "
                          "[0, 1)")
    if not 0 < aug.crop[0] <= aug.crop[1] <= 1:
        raise ConfigError(f"point-cloud augmentation crop={aug.crop}: two fractions with 0 < low <= high <= 1")
    return aug


class PointViewMaker:
    """Answers a ViewRequest for a batch of prepared clouds (the modality prepares storage first)."""

    def __init__(self, request: ViewRequest, aug: PointAugmentation, prepare) -> None:
        if request.corruption_mask or request.keep:
            raise ConfigError(f"the {request.recipe!r} point-cloud views carry no corruption mask and no token masks")
        self.request, self.aug, self.prepare = request, aug, prepare
        self.local = replace(aug, crop=LOCAL_CROP)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> Views:
        x = self.prepare(batch)
        points, req = x.shape[1], self.request
        views = Views([augment(x, self.aug, points, generator) for _ in range(req.global_views)])
        if req.local_views:
            small = max(8, round(points * req.local_size))
            views.local_views = [augment(x, self.local, small, generator) for _ in range(req.local_views)]
        if req.clean:
            views.clean = x
        return posed(views) if self.aug.pose else views


def posed(views: Views) -> Views:
    """`views` with every view in its own principal axes (`principal_frame`) and `clean`, the whole clouds, in those
    of the first global view: a part and its whole in one canonical pose (OcCo's completion target)."""
    frames = [principal_frame(v[..., :3]) for v in views.global_views]
    views.global_views = [in_pose(v, *frame) for v, frame in zip(views.global_views, frames)]
    views.local_views = [aligned(v, "pca") for v in views.local_views]
    if views.clean is not None:
        views.clean = in_pose(views.clean, *frames[0])
    return views


def in_pose(x: torch.Tensor, centroid: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    return torch.cat([in_frame(x[..., :3], centroid, axes), x[..., 3:]], dim=2)
