"""The view contract between methods and modalities: a method declares a `ViewRequest`, the modality's view
maker answers every training batch with a typed `Views`.

A method never sees a positional list of tensors whose meaning depends on a convention: it reads
`views.global_views`, `views.local_views`, `views.clean`, `views.corruption_mask`, `views.keep` and
`views.overlap` by name, and the request says which of them it needs; `views.indices` (the samples' positions in
the training set, for memory banks and pseudo-labels) comes from the loop, not the modality, when requested. All randomness (crops, corruptions,
timestamp masks) comes from the loop's generator, so a seed and a checkpoint reproduce the views exactly.

Recipes are named for what the views are, never for a method; every modality maps the names it supports
to its own augmentations and refuses the others in one line (listing the ones it has):

- ``instance``: independent strong augmentations of the same sample (SimCLR's recipe: random resized crop
  of 8-100% of the area, colour jitter, blur; series: crop, jitter, scaling, warping, masking,
  permutation; tables: random feature corruption);
- ``instance_light``: the same with milder crops (20-100%: MoCo v2, SimSiam);
- ``asymmetric``: two different augmentation distributions for the two global views (BYOL's: blur
  always/rarely, solarisation never/sometimes; Barlow Twins and VICReg use it too);
- ``feature_corruption``, ``mask_and_replace``, ``swap_noise``: a row with features replaced from their
  empirical marginals (SCARF), masked-and-replaced (VIME) or swapped with other rows' values (denoising);
- ``overlapping_crops``: two crops of each series that overlap in a common segment, with random
  timestamp masks (TS2Vec); ``views.overlap`` says where the common steps are in each crop;
- ``masked_values``: geometric segments of values masked (Zerveas et al.), ``views.corruption_mask`` True
  on them;
- ``geometric``: where and how big, never the values (masked modelling needs them as they are): images a random
  resized crop of 20-100% of the area and a horizontal flip (MAE's views); series a crop of 50-100% of the span
  (PatchTST pre-trains on the plain series);
- ``rotations``: one ``geometric`` view turned by 0, 90, 180 and 270 degrees, as global views 0-3 (RotNet);
- ``tiles``: one ``geometric`` view cut into a 3 x 3 grid of cells, and from each cell a smaller tile (so that edges
  do not continue from tile to tile), as global views 0-8 in row-major order (jigsaw puzzles, context prediction);
- ``spans``: contiguous spans of the same item at random places: global view 0 a long one (the anchor), the others
  shorter ones that may overlap it, sit beside it or inside it (DeCLUTR's anchors and positives; text);
- ``masked_tokens``: BERT's corruption of a sequence of vocabulary ids: 15% of the real tokens chosen
  (``views.corruption_mask``), 80% of those replaced by the mask id, 10% by a random id, 10% left; ``views.clean``
  the original ids (masked language modelling; text).
- ``unchanged``: the samples as they are, normalised (InfoGraph's, GraphMAE's and DGI's input: the method itself decides
  what to hide or contrast);
- ``node_aligned``: views that keep every node of a graph in place, so node i of one view is node i of the other:
  edges dropped and feature columns masked (GRACE, BGRL; graphs).

Multi-crop: ``local_views`` smaller crops (side or length ``local_size`` times the global one) come after
the global views; `Method.encode` runs one forward per group of equal shape (see there for BatchNorm).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Iterator, Mapping, Protocol

import torch

from .errors import ConfigError

# The built-in recipes; a modality defined elsewhere may make others (tests/test_extension.py defines one).
RECIPES = ("instance", "instance_light", "asymmetric", "feature_corruption", "mask_and_replace", "swap_noise",
           "overlapping_crops", "masked_values", "geometric", "rotations", "tiles", "spans",
           "masked_tokens", "unchanged", "node_aligned")


@dataclass(frozen=True)
class ViewRequest:
    """What a method needs from each training batch."""

    recipe: str  # what the views are (RECIPES: the built-in names); a modality's view_recipes say which it makes
    global_views: int = 2  # views at the training resolution
    local_views: int = 0  # multi-crop: further, smaller crops
    local_size: float = 96 / 224  # a local crop's side (images) or length (series) as a fraction of a global view's
    clean: bool = False  # also the input without augmentation (normalised like the views)
    corruption_mask: bool = False  # which values of global view 0 were corrupted (bool, same shape as the view)
    keep: bool = False  # per global view, which steps/tokens the encoder should see (bool [B, T], False = hide)
    indices: bool = False  # the samples' positions in the training set (memory banks, per-sample pseudo-labels)
    options: Mapping[str, float] = field(default_factory=dict)  # the recipe's parameters the method owns

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (recorded in the run's config)."""
        return {"recipe": self.recipe, "global_views": self.global_views, "local_views": self.local_views,
                "local_size": self.local_size, "clean": self.clean, "corruption_mask": self.corruption_mask,
                "keep": self.keep, "indices": self.indices, "options": dict(self.options)}


@dataclass(frozen=True)
class Overlap:
    """Steps that two global views share: view 0's steps start_first.. and view 1's start_second.. are the same
    time steps for `length` steps; `valid` [B, length] is False where a step is padding in a series."""

    start_first: int
    start_second: int
    length: int
    valid: torch.Tensor


@dataclass
class Views:
    """One batch's views, typed; only what the request asked for is set."""

    global_views: list[torch.Tensor]
    local_views: list[torch.Tensor] = field(default_factory=list)
    clean: torch.Tensor | None = None
    corruption_mask: torch.Tensor | None = None
    keep: list[torch.Tensor] | None = None
    overlap: Overlap | None = None
    indices: torch.Tensor | None = None  # int64 [B]: each sample's position in the training set

    @property
    def crops(self) -> list[torch.Tensor]:
        """Global then local views, the order `Method.encode` keeps."""
        return [*self.global_views, *self.local_views]

    def map(self, fn: Any) -> Views:
        """The same views with `fn` applied to every view tensor (e.g. a memory format); masks untouched."""
        return Views([fn(v) for v in self.global_views], [fn(v) for v in self.local_views],
                     fn(self.clean) if self.clean is not None else None, self.corruption_mask, self.keep,
                     self.overlap, self.indices)


class ViewMaker(Protocol):
    """A modality's answer to a ViewRequest: storage batch (on the training device) -> Views."""

    def __call__(self, batch: Any, generator: torch.Generator | None = None) -> Views: ...


class DatasetPass(Protocol):
    """Every training sample once, as views with `indices` set (the global views; local crops may be left out), in
    batches of consecutive positions: what a method may read in `Method.before_epoch` (DeepCluster's memory bank
    is filled from it). Iterating draws the views; not iterating costs nothing."""

    num_samples: int

    def __iter__(self) -> Iterator[Views]: ...


def with_options(augmentation: Any, options: Mapping[str, Any], what: str) -> Any:
    """A modality's augmentation dataclass with fields overridden by `--augment` options (lists become tuples); a
    ConfigError in one line naming the unknown ones and the known fields."""
    known = {f.name for f in fields(augmentation)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown {what} augmentation option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return replace(augmentation, **{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})


def with_indices(views: Views, indices: torch.Tensor, request: ViewRequest) -> Views:
    """`views` carrying the samples' positions in the training set when `request.indices` asks for them."""
    return replace(views, indices=indices) if request.indices else views


def check_views(request: ViewRequest, views: Views, who: str) -> None:
    """Raise if a view maker's answer lacks what the request asked for (a modality's bug, caught at step 1)."""
    missing = []
    if len(views.global_views) != request.global_views:
        missing.append(f"{request.global_views} global views (got {len(views.global_views)})")
    if len(views.local_views) != request.local_views:
        missing.append(f"{request.local_views} local views (got {len(views.local_views)})")
    for name in ("clean", "corruption_mask"):
        if getattr(request, name) and getattr(views, name) is None:
            missing.append(name)
    if request.indices and views.indices is None:
        missing.append("indices")
    if request.keep and (views.keep is None or len(views.keep) != request.global_views):
        missing.append("keep masks")
    if missing:
        raise ValueError(f"{who} answered the {request.recipe!r} view request without {', '.join(missing)}")
