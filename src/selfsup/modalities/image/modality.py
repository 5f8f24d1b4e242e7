"""The image modality: uint8 [N, C, H, W] storage, per-channel normalisation, batched views."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...data import Dataset, Split, encode_labels, uint8_pixels
from ...errors import ConfigError, DataError
from ...views import ViewMaker, ViewRequest
from ..base import Modality, modalities
from ..exporting import ExportInputs
from ..npy import register_array_reader
from ...html_parts import picture_rows
from ..presentation import NEIGHBOUR_NOTES, Neighbours, Presentation, neighbours_html
from .encoders import image_encoders


#: DINO's local crops (Caron et al. 2021): 5-40% of the image area.
LOCAL_CROP_SCALE = (0.05, 0.4)


def fitted_side(side: int, size: int, smallest: int, multiple: int) -> int:
    """`side` raised to at least 4 px and `smallest`, rounded up to a multiple of `multiple`, and at most `size`."""
    side = max(4, smallest, side)
    return min(size, -(-side // multiple) * multiple)


class ImagePresentation(Presentation):
    """How image samples appear in a report."""

    def thumbnails(self, x: torch.Tensor) -> np.ndarray:
        return x.numpy()

    def render_neighbours(self, x: torch.Tensor, neighbours: Neighbours) -> list[str]:
        """A grid: each query (left column) and its nearest images."""
        rows = [list(self.thumbnails(x[row])) for row in neighbours.rows]
        return neighbours_html(picture_rows(rows, 1.0, notes=NEIGHBOUR_NOTES))

    def draw_panels(self, pictures: dict[str, torch.Tensor], maps: dict[str, torch.Tensor], spec: dict[str, Any]
                    ) -> Any:
        """One row a sample, one column a picture (pixels put back from the normalisation; NaN grey) or map (red
        -1 .. green +1, no value grey)."""
        import matplotlib.pyplot as plt

        mean = torch.tensor(spec["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(spec["std"]).view(1, -1, 1, 1)
        columns = [(name, (t.detach().float().cpu() * std + mean).clamp(0, 1), False) for name, t in pictures.items()]
        columns += [(name, t.detach().float().cpu(), True) for name, t in maps.items()]
        rows = len(columns[0][1])
        fig, axes = plt.subplots(rows, len(columns), figsize=(1.25 * len(columns) + 0.6, 1.25 * rows), squeeze=False)
        cmap = plt.get_cmap("RdYlGn").copy()
        cmap.set_bad("lightgrey")
        for c, (name, t, is_map) in enumerate(columns):
            axes[0, c].set_title(name, fontsize=7)
            for r in range(rows):
                ax = axes[r, c]
                ax.axis("off")
                if is_map:
                    shown = ax.imshow(t[r, 0].numpy(), cmap=cmap, vmin=-1, vmax=1)
                else:
                    img = np.nan_to_num(t[r].permute(1, 2, 0).numpy(), nan=0.5)
                    ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=1)
            if is_map:
                fig.colorbar(shown, ax=axes[:, c].tolist(), fraction=0.08, shrink=0.6)
        return fig


class ImageExportInputs(ExportInputs):
    """Example storage and the prepared input in words, for exporting a image encoder."""

    def example(self, spec: dict[str, Any], n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Uniformly random uint8 pixels at the training size."""
        shape = (n, spec["channels"], spec["height"], spec["width"])
        return torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)

    def described(self, spec: dict[str, Any]) -> str | None:
        h, w = spec["height"], spec["width"]
        return (f"float32 [batch, {spec['channels']}, {h}, {w}] (NCHW): pixels / 255 (resized bilinearly to {h}x{w} "
                f"first if needed), minus the per-channel mean {spec['mean']}, divided by the std {spec['std']}")


class ImageModality(Modality):
    """Grayscale or RGB images of any size; stored as uint8 so a whole dataset fits in memory."""

    name = "image"
    presentation = ImagePresentation()
    summary = "grayscale or RGB images (uint8 N x C x H x W in memory)"
    encoders = image_encoders
    export_inputs = ImageExportInputs()
    view_recipes = ("instance", "instance_light", "asymmetric", "geometric", "rotations", "tiles")
    default_array_ranks = (3, 4)
    channels_last = True

    def from_array(self, x: np.ndarray, where: str) -> torch.Tensor:
        x = np.asarray(x)
        given = "x".join(map(str, x.shape[1:]))  # one sample's shape as given, for messages
        if x.ndim == 3:
            x = x[:, None]
        elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = x.transpose(0, 3, 1, 2)
        elif not (x.ndim == 4 and x.shape[1] in (1, 3)):
            raise DataError(f"{where}: expected images shaped N x H x W or N x H x W x C (C = 1 or 3), "
                            f"got shape {tuple(x.shape)}")
        if len(x) == 0:
            raise DataError(f"{where}: no images (array has 0 rows)")
        if x.shape[2] < 4 or x.shape[3] < 4:
            raise DataError(f"{where}: images of shape {given} are too small (need at least 4x4 pixels)")
        return torch.from_numpy(uint8_pixels(x, where, "image"))

    def fit_spec(self, x: torch.Tensor) -> dict[str, Any]:
        # per-channel mean and (unbiased) std of the first 20,000 images, accumulated in float64 over chunks of
        # 1,000: no float copy of the sample (2.2 GB for 96 x 96 RGB images), same figures to 6 decimals
        n = 0
        total = torch.zeros(x.shape[1], dtype=torch.float64)
        squares = torch.zeros(x.shape[1], dtype=torch.float64)
        for start in range(0, min(len(x), 20000), 1000):
            chunk = x[start:min(start + 1000, 20000)].double().div_(255)
            total += chunk.sum(dim=(0, 2, 3))
            squares += chunk.square().sum(dim=(0, 2, 3))
            n += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
        mean = total / n
        std = ((squares - n * mean.square()) / max(n - 1, 1)).clamp_min(0).sqrt().clamp_min(1e-3)
        return {"channels": int(x.shape[1]), "size": int(x.shape[2]), "height": int(x.shape[2]),
                "width": int(x.shape[3]), "mean": [round(float(m), 6) for m in mean],
                "std": [round(float(s), 6) for s in std]}

    def default_encoder(self, spec: dict[str, Any]) -> str:
        return "convnet4" if spec["channels"] == 1 or spec["size"] <= 32 else "resnet18"

    def spec_for_encoder(self, spec: dict[str, Any], encoder: str, options: dict[str, Any]) -> dict[str, Any]:
        """The fitted spec plus the views the encoder takes: their smallest side and the multiple their side must
        be (`min_view`, `view_multiple`; encoders.view_geometry)."""
        from .encoders import view_geometry

        smallest, multiple = view_geometry(encoder, spec, options)
        return {**spec, "min_view": smallest, "view_multiple": multiple}

    def view_maker(self, request: ViewRequest, spec: dict[str, Any], strength: float = 1.0,
                   options: dict[str, Any] | None = None) -> ViewMaker:
        """Global views at `size` (default: the images' size) from the recipe's augmentations (view i uses the
        recipe's view i mod 2); local views (multi-crop) at local_size x size with DINO's local crops of 5-40% of
        the area and the first global view's colour augmentations (option `local_size`: their side in pixels
        instead; by default the request's fraction of `size`, raised to the encoder's smallest view and rounded up
        to its side multiple: 8-px digits on ConvNet-4 get 8-px local crops, not 3-px ones); tiles are cut from a
        crop large enough for the encoder to take them. The clean view is the resized, normalised image. Other
        options override fields of every view's ImageAugmentation (crop_scale only the global views')."""
        from .augment import LAYOUTS, RECIPES, ImageAugmentation, ImageViewMaker, recipe, tiled_size

        if request.recipe not in RECIPES:
            raise ConfigError(f"image data has no {request.recipe!r} views; image view recipes: "
                              f"{', '.join(sorted(RECIPES))}")
        if request.corruption_mask or request.keep:
            raise ConfigError(f"image views carry no {'corruption mask' if request.corruption_mask else 'step masks'}")
        options = dict(options or {})
        size = int(options.pop("size", spec["size"]))  # training views may be smaller than the images (faster)
        if not 4 <= size <= 4 * spec["size"]:
            raise ConfigError(f"augmentation size={size}: must lie between 4 and {4 * spec['size']} pixels")
        smallest, multiple = spec.get("min_view", 1), spec.get("view_multiple", 1)
        local_size = int(options.pop("local_size")) if "local_size" in options else fitted_side(
            round(size * request.local_size), size, smallest, multiple)
        if not 4 <= local_size <= size:
            raise ConfigError(f"augmentation local_size={local_size}: must lie between 4 and the views' size {size}")
        known = set(ImageAugmentation.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown image augmentation option(s) {', '.join(unknown)}; known: size, local_size, "
                              f"{', '.join(sorted(known))}")
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        augs = recipe(request.recipe, spec["size"], spec["channels"], strength)
        layout = LAYOUTS.get(request.recipe)
        if layout is not None and request.global_views != layout.views:
            raise ConfigError(f"the {request.recipe} views are {layout.views} ({layout.what}); "
                              f"{request.global_views} were asked for")
        if layout is not None and layout.tiled:
            if size < 6:
                raise ConfigError(f"tiles need views of at least 6 pixels (3 x 3 cells of 2); the views are {size}")
            size = tiled_size(size, smallest)  # tiles the encoder takes (8-px digits, ConvNet-4: 27-px crop)
        global_views = [replace(augs[i % len(augs)], **options)
                        for i in range(1 if layout is not None else request.global_views)]
        local_options = {k: v for k, v in options.items() if k != "crop_scale"}
        local = replace(augs[0], crop_scale=LOCAL_CROP_SCALE, **local_options)
        return ImageViewMaker(global_views, spec["mean"], spec["std"], out_size=size,
                              local_views=[local] * request.local_views, local_size=local_size,
                              clean=request.clean, layout=layout)

    def toy_data(self, n: int, generator: np.random.Generator) -> np.ndarray:
        """Grayscale 28 x 28 images: a random bright square on noise."""
        x = generator.integers(0, 64, (n, 28, 28)).astype(np.uint8)
        for i, (r, c) in enumerate(generator.integers(0, 20, (n, 2))):
            x[i, r:r + 8, c:c + 8] = 220
        return x

    def dataset_from_arrays(self, x: Any, y: Any, name: str, x_test: Any = None, y_test: Any = None,
                            **info: Any) -> Dataset:
        """Validated image storage for train (and test) arrays, labels encoded to 0..K-1."""
        (y, y_test), classes = encode_labels(None if y is None else np.asarray(y),
                                             None if y_test is None else np.asarray(y_test))
        train = Split(self.from_array(x, name), y)
        test = Split(self.from_array(x_test, name + " (test)"), y_test) if x_test is not None else None
        if test is not None and test.x.shape[1:] != train.x.shape[1:]:
            raise DataError(f"{name}: test images {tuple(test.x.shape[1:])} differ from train "
                            f"{tuple(train.x.shape[1:])}")
        info.setdefault("classes", classes)
        return Dataset(name, "image", train, test, info)

    def conform(self, x: torch.Tensor, spec: dict[str, Any], where: str, resize: bool = False,
                strict: bool = False) -> tuple[torch.Tensor, list[str]]:
        """Channels must match; another image size is refused unless `resize` (then stated)."""
        c, h, w = (int(d) for d in x.shape[1:])
        if c != spec["channels"]:
            raise DataError(f"{where}: {c}-channel images, but the run was trained on {spec['channels']}-channel images")
        if (h, w) == (spec["height"], spec["width"]):
            return x, []
        size = f"{spec['height']}x{spec['width']}"
        if not resize:
            raise DataError(f"{where}: images of {h}x{w} pixels, but the run was trained on {size}; pass --resize "
                            f"(resize=True in Python) to resize them bilinearly")
        return x, [f"images resized from {h}x{w} to {size} pixels (bilinear), as --resize asked"]

    def to_storage(self, x: Any, where: str, spec: dict[str, Any]) -> torch.Tensor:
        """uint8 tensors are storage; float tensors and arrays are pixels to validate and convert."""
        if isinstance(x, torch.Tensor):
            if x.dtype == torch.uint8:
                return x
            x = x.numpy()
        return self.from_array(np.asarray(x), where)

    def prepare(self, x: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if x.shape[-2:] != (spec["height"], spec["width"]):
            x = F.interpolate(x, size=(spec["height"], spec["width"]), mode="bilinear", align_corners=False)
        mean = torch.tensor(spec["mean"], device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(spec["std"], device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std


modalities.add("image", ImageModality(), ImageModality.summary)
register_array_reader("image", "image array", "N x H x W (x C) pixels, uint8 or float")
