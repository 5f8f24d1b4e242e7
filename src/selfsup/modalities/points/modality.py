"""The point-cloud modality: clouds of P points each, stored as float32 [N, P, C]: x, y, z, then any per-point
features (normals, colour, intensity). Read from `npy:` arrays with `--modality points` (or
`selfsup.train(array, modality="points")`); clouds of different sizes are resampled to one P beforehand.

`prepare` centres each cloud on its centroid and scales it into the unit ball (where and how big a scan is are
not its content), and standardises the features with the training statistics. Views (views.py) crop, turn,
scale and jitter whole batches on the device; encoders (encoders.py) are PointNet, DGCNN and a point Transformer
on patches (a token encoder: Point-MAE). The raw-input
baseline is the classic D2 shape distribution (Osada et al. 2002) with the radial distribution.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...data import Dataset, finite_float32
from ...errors import DataError
from ...views import ViewRequest
from ..base import Modality, ViewMaker, arrays_dataset, modalities
from ..npy import register_array_reader
from ..presentation import Neighbours, Presentation, neighbour_grid
from .encoders import point_encoders
from .views import RECIPES, PointViewMaker, recipe, unit_ball

D2_PAIRS = 4096  # point pairs per cloud in the D2 distribution (drawn once, the same for every cloud)
D2_BINS = 32


class PointPresentation(Presentation):
    """How clouds appear in a report: each drawn as its points seen from the side (turned 30 degrees about the up
    axis, tilted 20 degrees towards the viewer), shaded by depth."""

    def render_neighbours(self, x: torch.Tensor, neighbours: Neighbours) -> list[str]:
        """A grid: each query (left column) and its nearest clouds."""
        def draw(axes: Any, row: list[int]) -> None:
            for ax, cloud in zip(axes, side_views(x[row])):
                ax.scatter(cloud[:, 0], cloud[:, 1], c=cloud[:, 2], s=0.5, cmap="viridis")
                ax.set_xlim(-1, 1), ax.set_ylim(-1, 1), ax.set_aspect("equal")

        return neighbour_grid(neighbours, draw)

    def draw_panels(self, pictures: dict[str, torch.Tensor], maps: dict[str, torch.Tensor], spec: dict[str, Any]
                    ) -> Any:
        """One row a cloud, one column a picture (prepared clouds or predictions in that space; points with NaN
        coordinates are not drawn), each seen from the side as in the neighbours grid, on one scale per row so that
        a part and its whole line up. Maps (one value a point) colour the first picture's points."""
        import matplotlib.pyplot as plt

        columns = [(name, t.detach().float().cpu(), None) for name, t in pictures.items()]
        first = next(iter(pictures.values())).detach().float().cpu()
        columns += [(name, first, m.detach().float().cpu()[..., 0]) for name, m in maps.items()]  # shaped like x
        rows = len(first)
        fig, axes = plt.subplots(rows, len(columns), figsize=(1.4 * len(columns), 1.4 * rows), squeeze=False)
        for c, (name, clouds, values) in enumerate(columns):
            axes[0, c].set_title(name, fontsize=7)
            for r, cloud in enumerate(projected(clouds[..., :3].numpy())):
                ax, shown = axes[r, c], ~np.isnan(cloud).any(axis=1)
                colour = cloud[shown, 2] if values is None else values[r].numpy()[shown]
                ax.scatter(cloud[shown, 0], cloud[shown, 1], c=colour, s=0.5, cmap="viridis" if values is None
                           else "RdYlGn", vmin=None if values is None else -1, vmax=None if values is None else 1)
                ax.set_xlim(-1.1, 1.1), ax.set_ylim(-1.1, 1.1), ax.set_aspect("equal"), ax.axis("off")
        return fig


def projected(xyz: np.ndarray) -> np.ndarray:
    """Points [..., 3] -> [..., 3]: screen x, screen y and depth seen from the side (z up): turned 30 degrees about
    the up axis, tilted 20 degrees towards the viewer."""
    turn, tilt = np.radians(30), np.radians(20)
    about_z = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0], [0, 0, 1]])
    about_x = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    xyz = xyz @ about_z.T @ about_x.T
    return np.stack([xyz[..., 0], xyz[..., 2], xyz[..., 1]], axis=-1)


def side_views(x: torch.Tensor) -> np.ndarray:
    """Clouds [N, P, C] -> [N, P, 3]: screen x, screen y and depth of each point of the cloud in the unit ball,
    seen from the side (z up)."""
    return projected(unit_ball(x[..., :3].float()).numpy())


class PointCloudModality(Modality):
    """3-D point clouds with optional per-point features."""

    name = "points"
    summary = "3-D point clouds, float32 N x P x 3 (x F per-point features); PointNet, DGCNN, point Transformer"
    encoders = point_encoders
    view_recipes = tuple(RECIPES)
    presentation = PointPresentation()

    def from_array(self, x: np.ndarray, where: str) -> torch.Tensor:
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] < 3:
            raise DataError(f"{where}: expected point clouds shaped N x P x 3 (x F features), got shape "
                            f"{tuple(x.shape)}")
        if len(x) == 0 or x.shape[1] < 2:
            raise DataError(f"{where}: need at least one cloud of at least 2 points, got shape {tuple(x.shape)}")
        return torch.from_numpy(np.ascontiguousarray(finite_float32(x, where, "float coordinates", "cloud", "values")))

    def fit_spec(self, x: torch.Tensor) -> dict[str, Any]:
        spec = {"points": int(x.shape[1]), "channels": int(x.shape[2]), "feature_mean": [], "feature_std": []}
        if x.shape[2] > 3:
            features = x[:20000, :, 3:].double().flatten(0, 1)  # the first 20,000 clouds' points
            spec.update(feature_mean=features.mean(0).tolist(),
                        feature_std=features.std(0).nan_to_num(1.0).clamp_min(1e-6).tolist())
        return spec

    def default_encoder(self, spec: dict[str, Any]) -> str:
        return "pointnet"

    def view_maker(self, request: ViewRequest, spec: dict[str, Any], strength: float = 1.0,
                   options: dict[str, Any] | None = None) -> ViewMaker:
        return PointViewMaker(request, recipe(request.recipe, strength, options), lambda b: self.prepare(b, spec))

    def conform(self, x: torch.Tensor, spec: dict[str, Any], where: str, resize: bool = False,
                strict: bool = False) -> tuple[torch.Tensor, list[str]]:
        """Channels must match the run's; any number of points is fine (the encoders pool over them)."""
        if x.dim() != 3 or x.shape[2] != spec["channels"]:
            raise DataError(f"{where}: clouds shaped {tuple(x.shape)}, but the run was trained on "
                            f"{spec['channels']} values a point (N x P x {spec['channels']})")
        return x, []

    def prepare(self, x: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
        self.conform(x, spec, "point clouds")
        x = x.float()
        xyz = unit_ball(x[..., :3])
        if x.shape[2] == 3:
            return xyz
        mean = torch.tensor(spec["feature_mean"], dtype=torch.float32, device=x.device)
        std = torch.tensor(spec["feature_std"], dtype=torch.float32, device=x.device)
        return torch.cat([xyz, (x[..., 3:] - mean) / std], dim=2)

    def toy_data(self, n: int, generator: np.random.Generator) -> np.ndarray:
        """`n` clouds of 64 points on the surface of a unit sphere stretched by random factors per axis."""
        points = generator.normal(size=(n, 64, 3))
        points /= np.linalg.norm(points, axis=2, keepdims=True)
        return (points * generator.uniform(0.3, 1.5, (n, 1, 3))).astype(np.float32)

    def dataset_from_arrays(self, x: Any, y: np.ndarray | None, name: str, x_test: Any = None,
                            y_test: np.ndarray | None = None, **info: Any) -> Dataset:
        """A Dataset from raw arrays (labels may be any values; they are encoded to 0..K-1)."""
        return arrays_dataset(self, x, y, name, x_test, y_test, **info)

    def raw_features(self, x: torch.Tensor, spec: dict[str, Any], mask: torch.Tensor | None = None) -> np.ndarray:
        """The classic shape descriptors of Osada et al. 2002 on the prepared clouds: the D2 distribution (a
        histogram of the distances between D2_PAIRS point pairs, the same pairs for every cloud) and the radial
        distribution (a histogram of the points' distances from the centroid), with the features' means."""
        p = self.prepare(x, spec)
        pick = torch.randint(p.shape[1], (2, D2_PAIRS), generator=torch.Generator().manual_seed(0))
        d2 = (p[:, pick[0], :3] - p[:, pick[1], :3]).norm(dim=2)
        radial = p[..., :3].norm(dim=2)
        parts = [histograms(d2, 2.0), histograms(radial, 1.0), p[..., 3:].mean(dim=1)]
        return torch.cat(parts, dim=1).numpy()


def histograms(values: torch.Tensor, top: float) -> torch.Tensor:
    """Per row of values [N, M] in [0, top], the fraction of them in each of D2_BINS equal bins."""
    bins = (values / top * D2_BINS).long().clamp(0, D2_BINS - 1)
    counts = torch.zeros(len(values), D2_BINS).scatter_add_(1, bins, torch.ones_like(values))
    return counts / values.shape[1]


modalities.add("points", PointCloudModality(), PointCloudModality.summary)
register_array_reader("points", "point-cloud array", "point clouds N x P x 3 (x F)")
