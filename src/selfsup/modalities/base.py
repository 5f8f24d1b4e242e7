"""The Modality interface: how a kind of data is validated, stored, viewed and encoded.

Methods see typed views (`selfsup.views`) and encoders (`selfsup.encoders`); the trainer sees a storage
object (`selfsup.storage`), a view maker and encoders. Everything that knows what an image, a series or a
table is lives behind this interface.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import torch

from ..data import Dataset, SourceRequest, Split
from ..encoders import Encoder
from ..errors import ConfigError
from ..registry import Registry
from ..storage import FileRowStorage, Storage, TensorStorage
from ..views import ViewMaker, ViewRequest
from .presentation import Presentation


class Modality(ABC):
    """A data modality: storage format, input statistics, view-making and encoders."""

    name: ClassVar[str]
    summary: ClassVar[str]
    encoders: ClassVar[Registry[Callable[..., Encoder]]]
    view_recipes: ClassVar[tuple[str, ...]]  # the recipes its view maker makes (views.RECIPES, or its own)
    # options of its "instance" views for label-free criteria (selfsup.search): views that differ from their item
    criterion_view_options: ClassVar[dict[str, Any]] = {}
    encoder_kind: ClassVar[type[Encoder]] = Encoder  # the protocol every one of its registered encoders implements
    channels_last: ClassVar[bool] = False  # whether views can be made in the channels-last memory format
    default_array_ranks: ClassVar[tuple[int, ...]] = ()  # plain arrays of these ranks are this modality's by default
    presentation: ClassVar[Presentation] = Presentation()  # how its samples appear in a report (none: not shown)

    def claims(self, x: Any) -> bool:
        """Whether in-memory data `x` is this modality's whatever its array rank (a list of graph objects is a
        graph data set); default: no, the rank decides (`default_array_ranks`)."""
        return False

    @abstractmethod
    def from_array(self, x: np.ndarray, where: str) -> torch.Tensor:
        """Validate a raw array and convert it to this modality's storage tensor; `where` names its origin."""

    @abstractmethod
    def fit_spec(self, x: torch.Tensor) -> dict[str, Any]:
        """Input statistics and shape learned from training storage (JSON/YAML-serialisable)."""

    def spec_for_encoder(self, spec: dict[str, Any], encoder: str, options: dict[str, Any]) -> dict[str, Any]:
        """The input spec the named encoder (with its options) reads, from the one fitted on the data: a pretrained
        encoder may bring its own input processing (a text model its tokenizer). Default: `spec` unchanged."""
        return spec

    @abstractmethod
    def default_encoder(self, spec: dict[str, Any]) -> str:
        """The encoder used when none is named."""

    @abstractmethod
    def view_maker(self, request: ViewRequest, spec: dict[str, Any], strength: float = 1.0,
                   options: dict[str, Any] | None = None) -> ViewMaker:
        """A batched view maker answering `request` (a recipe from views.RECIPES this modality supports, the
        numbers of global and local views, the extras); a ConfigError in one line when it cannot."""

    def storage(self, split: Split, spec: dict[str, Any]) -> Storage:
        """The split's training storage under the run's input spec (default: its tensor; a validity mask is this
        modality's to interpret)."""
        if split.mask is not None:
            raise ConfigError(f"the {self.name} modality takes no validity mask on a split")
        if split.stream is not None:  # too large for memory: decoded while training
            return split.stream
        if split.rows is not None and tuple(split.x.shape) == split.rows.shape:  # a file: read batch by batch
            split.rows.release()  # what loading touched (statistics of the first samples) leaves the resident set
            return FileRowStorage(split.rows, split.x)
        return TensorStorage(split.x)

    def storage_info(self, x: torch.Tensor) -> dict[str, Any]:
        """What storage `x` carries beyond its array (a table's schema), as JSON, kept in a prepared cache's
        manifest (default: nothing)."""
        return {}

    def restore_storage(self, x: torch.Tensor, info: dict[str, Any]) -> torch.Tensor:
        """Storage from a prepared cache's array and what `storage_info` recorded (default: the array as it is)."""
        return x

    @abstractmethod
    def prepare(self, x: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
        """Storage batch -> normalised float encoder input, without augmentation (for embedding)."""

    @abstractmethod
    def toy_data(self, n: int, generator: np.random.Generator) -> Any:
        """`n` random raw samples this modality accepts in `from_array` (small: contract tests and demos)."""

    def example_storage(self, spec: dict[str, Any], n: int, generator: torch.Generator) -> torch.Tensor:
        """`n` synthetic storage rows consistent with `spec` that reach every path of an encoder (padding, missing
        values, unknown categories, ...): exporting an encoder traces and checks it on them."""
        raise ConfigError(f"the {self.name} modality makes no example inputs, which exporting an encoder needs")

    def prepared_input(self, spec: dict[str, Any]) -> str:
        """What `prepare` hands the encoder, in words: shape, dtype and normalisation (written beside an export)."""
        return f"the float32 batch that the {self.name} modality's `prepare` makes from storage"

    def conform(self, x: torch.Tensor, spec: dict[str, Any], where: str, resize: bool = False,
                strict: bool = False) -> tuple[torch.Tensor, list[str]]:
        """New storage checked against a trained run's `spec`: the storage to encode (aligned when needed) and
        notes on what was adapted; a one-line DataError when it cannot be used. `resize` allows resizing images,
        `strict` refuses what would otherwise be ignored (extra table columns). Default: nothing to check."""
        return x, []

    def is_storage(self, x: torch.Tensor, spec: dict[str, Any]) -> bool:
        """Whether a tensor handed to `Run.embed` is already in storage format (default: every tensor is)."""
        return True

    def to_storage(self, x: Any, where: str, spec: dict[str, Any]) -> torch.Tensor:
        """New data for a trained run -> storage consistent with the run's `spec` (default: `from_array`)."""
        return self.from_array(np.asarray(x), where)

    def encoder_kinds(self) -> dict[str, type[Encoder]]:
        """The protocol of each registered encoder: what it was registered with (`kind=`), else `encoder_kind`."""
        return {e.name: e.extra.get("kind", self.encoder_kind) for e in self.encoders}

    def default_encoder_for(self, spec: dict[str, Any], kind: type[Encoder]) -> str | None:
        """`default_encoder(spec)` when it implements `kind`, else the registered encoder of that kind marked
        `preferred`, else the first (None when none does): a method that needs a token encoder gets a Vision
        Transformer without being told."""
        kinds = self.encoder_kinds()
        default = self.default_encoder(spec)
        if issubclass(kinds.get(default.partition(":")[0], self.encoder_kind), kind):
            return default
        qualified = [e.name for e in self.encoders if issubclass(kinds[e.name], kind)]
        preferred = [name for name in qualified if self.encoders.entry(name).extra.get("preferred")]
        return (preferred or qualified or [None])[0]

    def build_encoder(self, name: str, spec: dict[str, Any], /, **options: Any) -> Encoder:
        """Instantiate a registered encoder for inputs described by `spec` (an `encoders.Encoder`)."""
        return self.encoders.get(name)(spec, **options)

    def dataset_from_arrays(self, x: Any, y: np.ndarray | None, name: str) -> Dataset:
        """An in-memory Dataset from raw samples and encoded labels (0..K-1 or None)."""
        return Dataset(name, self.name, Split(self.from_array(x, name), y))

    def dataset_from_npy(self, req: SourceRequest) -> Dataset:
        """The `npy:` source for this modality (`--modality NAME`): arrays from .npy files named in the URI."""
        raise ConfigError(f"the {self.name} modality reads no .npy arrays")

    def encoding_order(self, x: torch.Tensor) -> torch.Tensor | None:
        """The order in which a frozen encoder is best applied to in-memory storage `x` (items of similar cost in the
        same batch: text by length, so that a batch is padded little); None: as given. Outputs come back in the
        original order either way."""
        return None

    def raw_features(self, x: torch.Tensor, spec: dict[str, Any],
                     mask: torch.Tensor | None = None) -> np.ndarray:
        """The raw-input baseline: normalised inputs flattened to vectors."""
        return self.prepare(x, spec).reshape(len(x), -1).float().numpy()


modalities: Registry[Modality] = Registry("modality")


def get_modality(name: str) -> Modality:
    """The registered modality instance by name."""
    return modalities.get(name)


def batched(n: int, batch_size: int) -> Sequence[slice]:
    """Slices covering range(n) in order, batch_size at a time."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
