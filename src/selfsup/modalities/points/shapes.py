"""The `shapes` source: generated 3-D shapes, the point-cloud modality's embedded data set (no file, no download).

Ten classes of solids, each a cloud of P points on its surface: sphere, box, cylinder, cone, torus, square
pyramid, table (a top on four legs), dumbbell (two balls on a bar), jack (three crossed bars) and mushroom (a cap
on a stem). Every cloud gets its own proportions (each part's sizes drawn from a range, then the whole stretched
by 0.75-1.33 along each axis), a turn about the vertical axis, a shift and a jitter of 1% of its size, so the class
is the arrangement of surfaces, not a size, a place or an orientation. With `scan=1` a cloud is what a depth sensor
sees of the solid from one random side (hidden point removal), as a single scan of an object is: the far side and
self-occluded parts are missing, so one class gives very different clouds. Points go to the parts of a composite in
proportion to their areas; on a part they are uniform in its own parameters (exactly uniform by area on planes,
spheres, cylinders and cones; the torus leans to its outer side). Draws are fixed by the seed: the training set uses
seed 0, the test set seed 1, so every reading gives the same clouds.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.spatial import ConvexHull

from ...data import Dataset, SourceRequest, sources
from ...errors import ConfigError
from ..base import get_modality

TURNS = ("up", "any")
CLASSES = ("sphere", "box", "cylinder", "cone", "torus", "pyramid", "table", "dumbbell", "jack", "mushroom")
Rng = np.random.Generator


def unit_vectors(rng: Rng, m: int) -> np.ndarray:
    v = rng.normal(size=(m, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def box_surface(rng: Rng, m: int, size: np.ndarray) -> np.ndarray:
    """m points uniform by area on the surface of an axis-aligned box of edge lengths `size`, centred at 0."""
    areas = np.array([size[1] * size[2], size[0] * size[2], size[0] * size[1]])
    axis = rng.choice(3, m, p=areas / areas.sum())
    p = rng.uniform(-0.5, 0.5, (m, 3))
    p[np.arange(m), axis] = rng.choice([-0.5, 0.5], m)
    return p * size


def cylinder_surface(rng: Rng, m: int, radius: float, height: float) -> np.ndarray:
    """Side and both caps, uniform by area; axis along z, centred at 0."""
    side, cap = 2 * np.pi * radius * height, np.pi * radius ** 2
    where = rng.choice(3, m, p=np.array([side, cap, cap]) / (side + 2 * cap))
    angle = rng.uniform(0, 2 * np.pi, m)
    r = np.where(where == 0, radius, radius * np.sqrt(rng.uniform(0, 1, m)))
    z = np.select([where == 0, where == 1], [rng.uniform(-0.5, 0.5, m) * height, np.full(m, 0.5 * height)],
                  -0.5 * height)
    return np.stack([r * np.cos(angle), r * np.sin(angle), z], 1)


def cone_surface(rng: Rng, m: int, radius: float, height: float) -> np.ndarray:
    """Slanted side and base, uniform by area; base at z = 0, apex at z = height."""
    side, base = np.pi * radius * np.hypot(radius, height), np.pi * radius ** 2
    on_side = rng.uniform(0, 1, m) < side / (side + base)
    s = np.sqrt(rng.uniform(0, 1, m))  # distance from the apex, as a fraction: uniform by area on the side
    r = np.where(on_side, radius * s, radius * np.sqrt(rng.uniform(0, 1, m)))
    z = np.where(on_side, height * (1 - s), 0.0)
    angle = rng.uniform(0, 2 * np.pi, m)
    return np.stack([r * np.cos(angle), r * np.sin(angle), z], 1)


def triangle(rng: Rng, m: int, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    u, v = rng.uniform(0, 1, (2, m, 1))
    flip = (u + v) > 1
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    return a + u * (b - a) + v * (c - a)


def sphere(rng: Rng, m: int) -> np.ndarray:
    return unit_vectors(rng, m)


def box(rng: Rng, m: int) -> np.ndarray:
    return box_surface(rng, m, rng.uniform(1.2, 2.0, 3))


def cylinder(rng: Rng, m: int) -> np.ndarray:
    return cylinder_surface(rng, m, rng.uniform(0.5, 0.8), rng.uniform(1.4, 2.2))


def cone(rng: Rng, m: int) -> np.ndarray:
    return cone_surface(rng, m, rng.uniform(0.7, 1.0), rng.uniform(1.4, 2.2))


def torus(rng: Rng, m: int) -> np.ndarray:
    big, small = rng.uniform(0.8, 1.0), rng.uniform(0.2, 0.35)
    u, v = rng.uniform(0, 2 * np.pi, (2, m))
    return np.stack([(big + small * np.cos(v)) * np.cos(u), (big + small * np.cos(v)) * np.sin(u), small * np.sin(v)],
                    1)


def pyramid(rng: Rng, m: int) -> np.ndarray:
    half, height = rng.uniform(0.7, 1.0), rng.uniform(1.2, 2.0)
    corners = np.array([[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0]])
    apex = np.array([0.0, 0.0, height])
    faces = [(corners[i], corners[(i + 1) % 4], apex) for i in range(4)]
    faces += [(corners[0], corners[1], corners[2]), (corners[0], corners[2], corners[3])]
    areas = np.array([np.linalg.norm(np.cross(b - a, c - a)) for a, b, c in faces])
    counts = rng.multinomial(m, areas / areas.sum())
    return np.concatenate([triangle(rng, n, *f) for n, f in zip(counts, faces)])


def parts(rng: Rng, m: int, pieces: list[tuple[float, Callable[[int], np.ndarray]]]) -> np.ndarray:
    """m points shared among parts in proportion to their areas (weight, sampler of n points)."""
    weights = np.array([w for w, _ in pieces])
    counts = rng.multinomial(m, weights / weights.sum())
    return np.concatenate([sample(n) for n, (_, sample) in zip(counts, pieces)])


def box_area(size: np.ndarray) -> float:
    return 2 * float(size[0] * size[1] + size[0] * size[2] + size[1] * size[2])


def table(rng: Rng, m: int) -> np.ndarray:
    top = np.array([rng.uniform(1.6, 2.2), rng.uniform(1.0, 1.6), rng.uniform(0.08, 0.15)])
    leg = np.array([0.12, 0.12, rng.uniform(0.9, 1.4)])
    corners = [(sx * (top[0] / 2 - 0.1), sy * (top[1] / 2 - 0.1)) for sx in (-1, 1) for sy in (-1, 1)]
    pieces = [(box_area(top), lambda n: box_surface(rng, n, top) + [0, 0, leg[2] + top[2] / 2])]
    pieces += [(box_area(leg), lambda n, x=x, y=y: box_surface(rng, n, leg) + [x, y, leg[2] / 2]) for x, y in corners]
    return parts(rng, m, pieces)


def dumbbell(rng: Rng, m: int) -> np.ndarray:
    ball, length = rng.uniform(0.45, 0.65), rng.uniform(1.6, 2.4)
    bar = rng.uniform(0.08, 0.15)
    pieces = [(4 * np.pi * ball ** 2, lambda n, s=s: unit_vectors(rng, n) * ball + [s * length / 2, 0, 0])
              for s in (-1, 1)]
    pieces.append((2 * np.pi * bar * length, lambda n: cylinder_surface(rng, n, bar, length)[:, [2, 1, 0]]))
    return parts(rng, m, pieces)


def jack(rng: Rng, m: int) -> np.ndarray:
    length, width = rng.uniform(1.6, 2.4), rng.uniform(0.15, 0.3)
    pieces = []
    for axis in range(3):
        size = np.full(3, width)
        size[axis] = length
        pieces.append((box_area(size), lambda n, size=size: box_surface(rng, n, size)))
    return parts(rng, m, pieces)


def mushroom(rng: Rng, m: int) -> np.ndarray:
    cap, stem_r, stem_h = rng.uniform(0.8, 1.1), rng.uniform(0.15, 0.3), rng.uniform(0.8, 1.3)

    def dome(n: int) -> np.ndarray:
        v = unit_vectors(rng, n)
        v[:, 2] = np.abs(v[:, 2])
        return v * cap + [0, 0, stem_h]

    return parts(rng, m, [(2 * np.pi * cap ** 2, dome),
                          (2 * np.pi * stem_r * stem_h, lambda n: cylinder_surface(rng, n, stem_r, stem_h)
                           + [0, 0, stem_h / 2])])


MAKERS: tuple[Callable[[Rng, int], np.ndarray], ...] = (sphere, box, cylinder, cone, torus, pyramid, table, dumbbell,
                                                         jack, mushroom)


def rotation(rng: Rng, turn: str) -> np.ndarray:
    """A turn about the vertical axis ("up"), or a rotation uniform over all of them ("any"); row-vector form."""
    if turn == "any":
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        q = q * np.sign(np.diag(r))
        return q if np.linalg.det(q) > 0 else q * [1, 1, -1]
    angle = rng.uniform(0, 2 * np.pi)
    return np.array([[np.cos(angle), np.sin(angle), 0], [-np.sin(angle), np.cos(angle), 0], [0, 0, 1]])


def visible(points: np.ndarray, eye: np.ndarray) -> np.ndarray:
    """Indices of the points seen from `eye`: hidden point removal (Katz, Tal & Basri 2007, "Direct visibility of
    point sets"). Seen from the eye, every point is flipped about a sphere far larger than the cloud (radius 100 x
    its farthest point); a point is visible when its flipped image is a vertex of the convex hull of the flipped
    images and the eye."""
    p = points - eye
    norm = np.linalg.norm(p, axis=1, keepdims=True)
    flipped = p + 2 * (100 * norm.max() - norm) * p / norm
    hull = ConvexHull(np.concatenate([flipped, np.zeros((1, 3))]))
    return hull.vertices[hull.vertices < len(points)]


def scanned(rng: Rng, cloud: np.ndarray, points: int) -> np.ndarray:
    """`points` of the cloud's points that a sensor sees from a random direction, three times its size away (drawn
    with replacement when fewer are seen)."""
    radius = np.linalg.norm(cloud, axis=1).max()
    seen = visible(cloud, unit_vectors(rng, 1)[0] * 3 * radius)
    return cloud[rng.choice(seen, points, replace=len(seen) < points)]


def generate(n: int, seed: int, points: int = 256, turn: str = "up", scan: bool = False
             ) -> tuple[np.ndarray, np.ndarray]:
    """(clouds float32 [n, points, 3], labels int64 [n]): classes drawn uniformly, each cloud varied as the module
    says, turned about the vertical axis (`turn="up"`) or in any direction (`"any"`); with `scan`, each cloud is
    the part of its surface seen from one side (`scanned`: 4 x `points` drawn on the whole surface first)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CLASSES), n)
    clouds = np.empty((n, points, 3), dtype=np.float32)
    for i, label in enumerate(y):
        c = MAKERS[label](rng, 4 * points if scan else points)
        c = c - c.mean(0)
        c = (c * np.exp(rng.uniform(np.log(0.75), np.log(4 / 3), 3))) @ rotation(rng, turn)
        if scan:
            c = scanned(rng, c, points)
        scale = np.linalg.norm(c, axis=1).max()
        clouds[i] = c + rng.normal(0, 2, 3) + rng.normal(0, 0.01 * scale, c.shape)
    return clouds, y


@sources.register("shapes", "generated 3-D shapes: 10 classes of solids (sphere, box, ..., mushroom) sampled on their "
                  "surfaces, each with its own proportions, turn and place: "
                  "shapes[?n=4000&test=1000&points=256&turn=up|any&scan=0|1]",
                  modality="points")
def load_shapes(req: SourceRequest) -> Dataset:
    req.check_options({"n", "test", "points", "turn", "scan"})
    turn = req.options.get("turn", "up")
    if turn not in TURNS:
        raise ConfigError(f"--data {req.uri}: turn={turn!r}; choose one of {', '.join(TURNS)}")
    points = req.whole("points", 256, 16, 100_000)
    scan = bool(req.whole("scan", 0, 0, 1))
    x, y = generate(req.whole("n", 4000, 10, 1_000_000), 0, points, turn, scan)
    x_test, y_test = generate(req.whole("test", 1000, 10, 1_000_000), 1, points, turn, scan)
    # clouds turned in any direction are learnt with views turned in any direction (the modality's default turns
    # them about the vertical axis only)
    views = {"rotation": "so3"} if turn == "any" else {}
    return get_modality("points").dataset_from_arrays(x, y, "shapes", x_test, y_test, classes=list(CLASSES),
                                                      view_options=views)
