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

from ..data import Dataset, Split, encode_labels
from ..encoders import Encoder
from ..errors import ConfigError
from ..registry import Registry
from ..storage import FileRowStorage, Storage, TensorStorage
from ..views import ViewMaker, ViewRequest
from .exporting import ExportInputs
from .presentation import Presentation
from .records import StorageRecord


class Modality(ABC):
    """A data modality: storage format, input statistics, view-making and encoders."""

    name: ClassVar[str]
    summary: ClassVar[str]
    encoders: ClassVar[Registry[Callable[..., Encoder]]]
    view_recipes: ClassVar[tuple[str, ...]]  # the recipes its view maker makes (views.RECIPES, or its own)
    # options of its "instance" views for label-free criteria (selfsup.search): views that differ from their item
    criterion_view_options: ClassVar[dict[str, Any]] = {}
    # the label-free criterion (selfsup.evaluation.criteria) `train --search` ranks by on it unless told another;
    # benchmarks/selection.py measures each criterion against validation accuracy, modality by modality
    search_criterion: ClassVar[str] = "view_retrieval"
    encoder_kind: ClassVar[type[Encoder]] = Encoder  # the protocol every one of its registered encoders implements
    channels_last: ClassVar[bool] = False  # whether views can be made in the channels-last memory format
    default_array_ranks: ClassVar[tuple[int, ...]] = ()  # plain arrays of these ranks are this modality's by default
    presentation: ClassVar[Presentation] = Presentation()  # how its samples appear in a report (none: not shown)
    export_inputs: ClassVar[ExportInputs] = ExportInputs()  # what exporting its encoders needs (none: no export)
    storage_record: ClassVar[StorageRecord] = StorageRecord()  # what a prepared cache keeps beyond the array

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

    @abstractmethod
    def prepare(self, x: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
        """Storage batch -> normalised float encoder input, without augmentation (for embedding)."""

    @abstractmethod
    def toy_data(self, n: int, generator: np.random.Generator) -> Any:
        """`n` random raw samples this modality accepts in `from_array` (small: contract tests and demos)."""

    def conform(self, x: torch.Tensor, spec: dict[str, Any], where: str, resize: bool = False,
                strict: bool = False) -> tuple[torch.Tensor, list[str]]:
        """New storage checked against a trained run's `spec`: the storage to encode (aligned when needed) and
        notes on what was adapted; a one-line DataError when it cannot be used. `resize` allows resizing images,
        `strict` refuses what would otherwise be ignored (extra table columns). Default: nothing to check."""
        return x, []

    def to_storage(self, x: Any, where: str, spec: dict[str, Any]) -> torch.Tensor:
        """New data handed to a trained run (`Run.embed`) -> storage consistent with the run's `spec`; a tensor already
        in storage format is returned as it is (default: every tensor is; anything else goes through `from_array`)."""
        return x if isinstance(x, torch.Tensor) else self.from_array(np.asarray(x), where)

    def dataset_from_arrays(self, x: Any, y: np.ndarray | None, name: str) -> Dataset:
        """An in-memory Dataset from raw samples and encoded labels (0..K-1 or None)."""
        return Dataset(name, self.name, Split(self.from_array(x, name), y))

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


def encoder_kinds(modality: Modality) -> dict[str, type[Encoder]]:
    """The protocol of each of a modality's registered encoders: what it was registered with (`kind=`), else the
    modality's `encoder_kind`."""
    return {e.name: e.extra.get("kind", modality.encoder_kind) for e in modality.encoders}


def default_encoder_for(modality: Modality, spec: dict[str, Any], kind: type[Encoder]) -> str | None:
    """The modality's `default_encoder(spec)` when it implements `kind`, else its registered encoder of that kind
    marked `preferred`, else the first (None when none does): a method that needs a token encoder gets a Vision
    Transformer without being told."""
    kinds = encoder_kinds(modality)
    default = modality.default_encoder(spec)
    if issubclass(kinds.get(default.partition(":")[0], modality.encoder_kind), kind):
        return default
    qualified = [e.name for e in modality.encoders if issubclass(kinds[e.name], kind)]
    preferred = [name for name in qualified if modality.encoders.entry(name).extra.get("preferred")]
    return (preferred or qualified or [None])[0]


def new_encoder(modality: Modality, name: str, spec: dict[str, Any], /, **options: Any) -> Encoder:
    """A registered encoder of the modality, instantiated for inputs described by `spec`."""
    return modality.encoders.get(name)(spec, **options)


def small_encoder_options(modality: Modality, name: str) -> dict[str, Any]:
    """The options that build the registered encoder `name` at the small size its registration declares (`small=`):
    the same architecture and code paths, a fraction of the width and depth; {} where it declares none. For the
    contract tests generated from the registries and for quick checks, never for results."""
    return dict(modality.encoders.entry(name).extra.get("small", {}))


def arrays_dataset(modality: Modality, x: Any, y: np.ndarray | None, name: str, x_test: Any = None,
                   y_test: np.ndarray | None = None, **info: Any) -> Dataset:
    """A Dataset of `modality` from raw arrays with any label values (encoded to 0..K-1, the classes in `info`); the
    test split is checked against the training split's spec."""
    (y, y_test), classes = encode_labels(None if y is None else np.asarray(y),
                                         None if y_test is None else np.asarray(y_test))
    train = Split(modality.from_array(x, name), y)
    test = None if x_test is None else Split(modality.from_array(x_test, name + " (test)"), y_test)
    if test is not None:
        modality.conform(test.x, modality.fit_spec(train.x), name + " (test)")
    info.setdefault("classes", classes)
    return Dataset(name, modality.name, train, test, info)


def batched(n: int, batch_size: int) -> Sequence[slice]:
    """Slices covering range(n) in order, batch_size at a time."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
