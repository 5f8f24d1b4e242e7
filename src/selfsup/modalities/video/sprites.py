"""The `sprites` source: generated clips of a moving digit, the video modality's embedded data set (no file, no
download). The label is the motion, never the sprite: a model must see how the frames follow each other.

Eight classes in four pairs, each pair one motion and its reverse in time: speeding up / slowing down along a straight
path, turning clockwise / anticlockwise on the spot, orbiting clockwise / anticlockwise about a point, and moving
then stopping / waiting then moving. Played backwards, a clip of one motion is a clip of its partner drawn from the
same distribution (paths in uniformly random directions, placed where they fit), so the set of a clip's frames says
nothing of which of the pair it is: an encoder of single frames, averaged over the clip, cannot tell the two apart
(at most 50% accuracy). Every motion goes every way with the same probability, so every class has the same mean
clip and a linear map of the pixels has little to go on; a random start place, angle and size leave one frame no
clue to the motion either.

The sprite is one of scikit-learn's 1,797 8 x 8 handwritten digits (bundled with it), drawn about 40% of the frame's
side, rotated and scaled by bilinear sampling; a second, dimmer digit wanders at random (a distractor that moves in
every clip), and noise of 3% is added. Motions: paths of 30-45% of the frame's side; a turn of 120-200 degrees; an
orbit of 180-270 degrees on a circle of radius 15-22% of the side. Draws are fixed by the seed: the training
set uses seed 0, the test set seed 1.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ...data import Dataset, SourceRequest, sources
from ..base import get_modality

CLASSES = ("speeding_up", "slowing_down", "turning_clockwise", "turning_anticlockwise", "orbiting_clockwise",
           "orbiting_anticlockwise", "moving_then_stopping", "waiting_then_moving")
SPRITE_SIDE = 0.4  # the sprite's side at size 1, as a fraction of the frame's
ROOM = 1 - SPRITE_SIDE * 1.2  # how far the sprite's centre may go from the frame's middle (in half-sides)


def digit_sprites() -> torch.Tensor:
    """scikit-learn's digits [1797, 1, 8, 8] scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    return torch.from_numpy(load_digits().images / 16.0).float()[:, None]


def segments(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n straight paths (start [n, 2], end [n, 2]) in a uniformly random direction, 0.6-0.9 long (in the frame's
    [-1, 1] coordinates), placed at random where they fit: start and end are alike in distribution."""
    direction = rng.uniform(0, 2 * math.pi, n)
    length = rng.uniform(0.6, 0.9, n)[:, None]
    step = length * np.stack([np.cos(direction), np.sin(direction)], 1)
    low, high = -ROOM - np.minimum(step, 0), ROOM - np.maximum(step, 0)
    start = low + (high - low) * rng.uniform(0, 1, (n, 2))
    return start, start + step


def trajectories(rng: np.random.Generator, y: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per clip and frame: centre [n, frames, 2] (x, y in [-1, 1] of the frame), angle [n, frames] (radians) and
    size [n, frames] (times the sprite's side), for the motions `y` (pairs 2k, 2k + 1 reverse each other in time)."""
    n = len(y)
    f = np.repeat(np.linspace(0.0, 1.0, frames)[None], n, axis=0)  # progress along the motion
    pair, backwards = y // 2, y % 2 == 1
    size = np.repeat(rng.uniform(0.85, 1.15, (n, 1)), frames, axis=1)
    angle = np.repeat(rng.uniform(-math.pi, math.pi, (n, 1)), frames, axis=1)
    start, end = segments(rng, n)
    # pace along the segment: speeding up f^2 (reversed: slowing down); moving then stopping (reversed: waiting)
    pace = np.select([(pair == 0)[:, None], (pair == 3)[:, None]],
                     [np.where(backwards[:, None], 1 - (1 - f) ** 2, f ** 2),
                      np.where(backwards[:, None], np.clip(2 * f - 1, 0, None), np.clip(2 * f, None, 1))], 0.0)
    centre = start[:, None] + (end - start)[:, None] * pace[..., None]
    sign = np.where(backwards, -1.0, 1.0)[:, None]
    turn = rng.uniform(math.radians(120), math.radians(200), (n, 1))
    angle = np.where((pair == 1)[:, None], angle + sign * turn * f, angle)
    radius = rng.uniform(0.3, 0.45, (n, 1))
    middle = rng.uniform(-1, 1, (n, 1, 2)) * (ROOM - radius)[..., None]
    around = rng.uniform(0, 2 * math.pi, (n, 1)) + sign * rng.uniform(math.radians(180), math.radians(270), (n, 1)) * f
    orbit = middle + radius[..., None] * np.stack([np.cos(around), np.sin(around)], -1)
    centre = np.where((pair == 2)[:, None, None], orbit, np.where((pair == 1)[:, None, None], start[:, None], centre))
    return centre, angle, size


def render(sprites: torch.Tensor, centre: np.ndarray, angle: np.ndarray, size: np.ndarray, side: int) -> torch.Tensor:
    """Frames [n, frames, side, side] in [0, 1]: each sprite [n, 1, 8, 8] drawn at its centres, angles and sizes."""
    n, frames = angle.shape
    a, s = torch.from_numpy(angle).float().flatten(), torch.from_numpy(size).float().flatten() * SPRITE_SIDE
    c = torch.from_numpy(centre).float().flatten(0, 1)
    cos, sin = torch.cos(a) / s, torch.sin(a) / s  # frame coordinates -> the sprite's ([-1, 1] across it)
    theta = torch.stack([torch.stack([cos, sin, -(cos * c[:, 0] + sin * c[:, 1])], 1),
                         torch.stack([-sin, cos, sin * c[:, 0] - cos * c[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, [n * frames, 1, side, side], align_corners=False)
    drawn = F.grid_sample(sprites.repeat_interleave(frames, dim=0), grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    return drawn.view(n, frames, side, side)


def generate(n: int, seed: int, frames: int = 16, side: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(clips uint8 [n, frames, side, side], labels int64 [n]): motions drawn uniformly, as the module says."""
    rng = np.random.default_rng(seed)
    digits = digit_sprites()
    y = rng.integers(0, len(CLASSES), n)
    main = render(digits[rng.integers(0, len(digits), n)], *trajectories(rng, y, frames), side)
    steps = rng.normal(0, 0.04, (n, frames, 2)).cumsum(axis=1)  # the distractor's random walk
    start = rng.uniform(-0.6, 0.6, (n, 1, 2))
    wander = np.clip(start + steps - steps[:, :1], -0.8, 0.8)
    distractor = render(digits[rng.integers(0, len(digits), n)], wander,
                        np.repeat(rng.uniform(-math.pi, math.pi, (n, 1)), frames, axis=1),
                        np.full((n, frames), 0.7), side)
    clips = torch.maximum(main, 0.5 * distractor) + 0.03 * torch.from_numpy(rng.normal(size=main.shape)).float()
    return (clips.clamp(0, 1) * 255).round().to(torch.uint8).numpy(), y.astype(np.int64)


@sources.register("sprites", "generated clips of a moving handwritten digit: 8 classes of motion (speeding up, "
                  "slowing down, turning and orbiting either way, moving then stopping, waiting then moving) with a "
                  "wandering distractor: "
                  "sprites[?n=2000&test=1000&frames=16&size=32]", modality="video")
def load_sprites(req: SourceRequest) -> Dataset:
    req.check_options({"n", "test", "frames", "size"})
    frames, side = req.whole("frames", 16, 4, 256), req.whole("size", 32, 16, 256)
    x, y = generate(req.whole("n", 2000, 10, 1_000_000), 0, frames, side)
    x_test, y_test = generate(req.whole("test", 1000, 10, 1_000_000), 1, frames, side)
    return get_modality("video").dataset_from_arrays(x, y, "sprites", x_test, y_test, classes=list(CLASSES))
