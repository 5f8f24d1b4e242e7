"""The video modality: clips of T frames, stored as uint8 [N, T, C, H, W] (a quarter of float32's memory; frames are
normalised on the training device). Read from `npy:` arrays with `--modality video` (N x T x H x W grey, N x T x H x
W x C or N x T x C x H x W with C = 1 or 3, uint8 or floats in [0, 1] or [0, 255]) or generated (`sprites`,
sprites.py).

`prepare` scales to [0, 1] and standardises each channel with the training statistics; views (views.py) crop in
time and space, the same crop for every frame of a clip; encoders (encoders.py) are R(2+1)D and a video ViT on tube
tokens. The raw-input baseline is the prepared clip flattened.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...data import Dataset, uint8_pixels
from ...errors import DataError
from ...views import ViewRequest
from ..base import Modality, ViewMaker, arrays_dataset, modalities
from ..exporting import ExportInputs
from ..npy import register_array_reader
from ..presentation import Neighbours, Presentation, neighbour_grid
from .encoders import video_encoders
from .views import RECIPES, ClipViewMaker, recipe

SPEC_CLIPS = 2000  # the statistics are read from the first clips


class VideoPresentation(Presentation):
    """How clips appear in a report: each as one picture of its motion, the first, middle and last thirds of its
    frames (grey, each third's brightest value) in red, green and blue, so a moving object leaves a red-to-blue
    trail."""

    def render_neighbours(self, x: torch.Tensor, neighbours: Neighbours) -> list[str]:
        """A grid: each query (left column) and its nearest clips, each as its motion picture."""
        def draw(axes: Any, row: list[int]) -> None:
            for ax, picture in zip(axes, motion_pictures(x[row])):
                ax.imshow(picture)

        return neighbour_grid(neighbours, draw, "Each clip in one picture: its first, middle and last thirds of "
                                                "frames in red, green and blue.")


def motion_pictures(x: torch.Tensor) -> np.ndarray:
    """Clips [N, T, C, H, W] (uint8) -> [N, H, W, 3] floats in [0, 1]: the frames' grey levels, each third of the clip
    reduced to its brightest value per pixel, as the red, green and blue of one picture."""
    grey = x.float().mean(dim=2) / 255.0  # [N, T, H, W]
    thirds = torch.tensor_split(grey, 3, dim=1) if grey.shape[1] >= 3 else (grey,) * 3
    return torch.stack([part.amax(dim=1) for part in thirds], dim=-1).clamp(0, 1).numpy()


class VideoExportInputs(ExportInputs):
    """Example storage and the prepared input in words, for exporting a video encoder."""

    def example(self, spec: dict[str, Any], n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Uniformly random uint8 clips of the training frames and size."""
        shape = (n, spec["frames"], spec["channels"], spec["height"], spec["width"])
        return torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)

    def described(self, spec: dict[str, Any]) -> str | None:
        h, w = spec["height"], spec["width"]
        return (f"float32 [batch, frames, {spec['channels']}, {h}, {w}] (trained on {spec['frames']} frames; the "
                f"encoders pool over time): pixels / 255 (each frame resized bilinearly to {h}x{w} first if needed), "
                f"minus the per-channel mean {spec['mean']}, divided by the std {spec['std']}")


class VideoModality(Modality):
    """Video clips: T frames of C x H x W pixels."""

    name = "video"
    summary = "video clips, uint8 N x T x H x W (x C); R(2+1)D, video ViT on tube tokens"
    encoders = video_encoders
    view_recipes = tuple(RECIPES)
    presentation = VideoPresentation()
    export_inputs = VideoExportInputs()
    default_array_ranks = (5,)

    def from_array(self, x: np.ndarray, where: str) -> torch.Tensor:
        x = np.asarray(x)
        if x.ndim == 4:
            x = x[:, :, None]
        elif x.ndim == 5 and x.shape[-1] in (1, 3) and x.shape[2] not in (1, 3):
            x = x.transpose(0, 1, 4, 2, 3)
        elif not (x.ndim == 5 and x.shape[2] in (1, 3)):
            raise DataError(f"{where}: expected clips shaped N x T x H x W, N x T x H x W x C or N x T x C x H x W "
                            f"(C = 1 or 3), got shape {tuple(x.shape)}")
        if len(x) == 0 or x.shape[1] < 2 or min(x.shape[3:]) < 4:
            raise DataError(f"{where}: need at least one clip of at least 2 frames of 4x4 pixels, got shape "
                            f"{tuple(x.shape)}")
        return torch.from_numpy(uint8_pixels(x, where, "clip"))

    def fit_spec(self, x: torch.Tensor) -> dict[str, Any]:
        """Shape, and the per-channel mean and (unbiased) std of the first SPEC_CLIPS clips, summed in float64 over
        chunks of 100 clips (no float copy of the sample)."""
        total = torch.zeros(x.shape[2], dtype=torch.float64)
        squares = torch.zeros(x.shape[2], dtype=torch.float64)
        n = 0
        for start in range(0, min(len(x), SPEC_CLIPS), 100):
            chunk = x[start:min(start + 100, SPEC_CLIPS)].double().div_(255)
            total += chunk.sum(dim=(0, 1, 3, 4))
            squares += chunk.square().sum(dim=(0, 1, 3, 4))
            n += chunk.numel() // x.shape[2]
        mean = total / n
        std = ((squares - n * mean.square()) / max(n - 1, 1)).clamp_min(0).sqrt().clamp_min(1e-3)
        return {"frames": int(x.shape[1]), "channels": int(x.shape[2]), "height": int(x.shape[3]),
                "width": int(x.shape[4]), "mean": [round(float(m), 6) for m in mean],
                "std": [round(float(s), 6) for s in std]}

    def spec_for_encoder(self, spec: dict[str, Any], encoder: str, options: dict[str, Any]) -> dict[str, Any]:
        """The fitted spec plus the multiple the views' side must be for the encoder (`view_multiple`: a ViT's
        patch; 1 for convolutions)."""
        multiple = self.encoders.entry(encoder.partition(":")[0]).extra.get("view_multiple")
        return {**spec, "view_multiple": multiple(spec, options) if multiple else 1}

    def default_encoder(self, spec: dict[str, Any]) -> str:
        return "r2plus1d"

    def view_maker(self, request: ViewRequest, spec: dict[str, Any], strength: float = 1.0,
                   options: dict[str, Any] | None = None) -> ViewMaker:
        return ClipViewMaker(request, recipe(request.recipe, strength, options), lambda b: self.prepare(b, spec),
                             spec.get("view_multiple", 1))

    def conform(self, x: torch.Tensor, spec: dict[str, Any], where: str, resize: bool = False,
                strict: bool = False) -> tuple[torch.Tensor, list[str]]:
        """Channels must match the run's; any number of frames is fine (the encoders pool over time); frames of
        another size are resized only when `resize` allows it."""
        if x.dim() != 5 or x.shape[2] != spec["channels"]:
            raise DataError(f"{where}: clips shaped {tuple(x.shape)}, but the run was trained on {spec['channels']}-"
                            f"channel frames (N x T x {spec['channels']} x H x W)")
        size = (spec["height"], spec["width"])
        if tuple(x.shape[-2:]) != size and not resize:
            raise DataError(f"{where}: frames of {x.shape[-2]}x{x.shape[-1]} pixels, but the run was trained on "
                            f"{size[0]}x{size[1]}; resize them (--resize)")
        notes = [f"frames resized to {size[0]}x{size[1]}"] if tuple(x.shape[-2:]) != size else []
        return x, notes

    def prepare(self, x: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        size = (spec["height"], spec["width"])
        if tuple(x.shape[-2:]) != size:
            b, t = x.shape[:2]
            x = F.interpolate(x.flatten(0, 1), size=size, mode="bilinear", align_corners=False).view(b, t, -1, *size)
        mean = torch.tensor(spec["mean"], device=x.device).view(1, 1, -1, 1, 1)
        std = torch.tensor(spec["std"], device=x.device).view(1, 1, -1, 1, 1)
        return (x - mean) / std

    def toy_data(self, n: int, generator: np.random.Generator) -> np.ndarray:
        """`n` grey clips of 8 frames of 8 x 8 pixels: a bright square moving by one pixel a frame, in a random
        direction from a random place, over noise."""
        clips = generator.integers(0, 160, (n, 8, 8, 8)).astype(np.uint8)
        for clip in clips:
            (r, c), (dr, dc) = generator.integers(0, 6, 2), generator.choice([-1, 1], 2)
            for t in range(8):
                rr, cc = (r + dr * t) % 6, (c + dc * t) % 6
                clip[t, rr:rr + 3, cc:cc + 3] = 255
        return clips

    def dataset_from_arrays(self, x: Any, y: np.ndarray | None, name: str, x_test: Any = None,
                            y_test: np.ndarray | None = None, **info: Any) -> Dataset:
        """A Dataset from raw arrays (labels may be any values; they are encoded to 0..K-1)."""
        return arrays_dataset(self, x, y, name, x_test, y_test, **info)


modalities.add("video", VideoModality(), VideoModality.summary)
register_array_reader("video", "video array", "clips N x T x H x W (x C)")
