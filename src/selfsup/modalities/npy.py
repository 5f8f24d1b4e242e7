"""The `npy:` data source: .npy arrays read by the modality `--modality` names (images when none is named)."""
from __future__ import annotations

from ..data import Dataset, SourceRequest, load_npy_arrays, sources
from ..errors import ConfigError
from ..registry import Registry
from .base import get_modality

#: Each modality's reader of `npy:` sources, registered under the modality's name beside it.
npy_readers: Registry = Registry("npy reader")


def register_array_reader(name: str, what: str, summary: str) -> None:
    """Register, for the modality `name`, the reader that hands the arrays (train, labels, test, test labels) to its
    `dataset_from_arrays`; `what` names the array in errors ("image array")."""
    def read(req: SourceRequest) -> Dataset:
        arrays = load_npy_arrays(req, what)
        return get_modality(name).dataset_from_arrays(arrays.x, arrays.y, req.uri, arrays.x_test, arrays.y_test)

    npy_readers.add(name, read, summary)


@sources.register("npy", "a .npy array: images N x H x W (x C), or with --modality timeseries / tabular / points "
                  "series N x (C x) L, a table N x F or point clouds N x P x 3 (x F): "
                  "npy:PATH[?labels=Y.npy&test=XT.npy&test_labels=YT.npy]",
                  modality="image")
def load_npy_source(req: SourceRequest) -> Dataset:
    if not req.path:
        raise ConfigError("--data npy:PATH needs a path")
    name = req.modality or "image"
    if name not in npy_readers:
        raise ConfigError(f"the {name} modality reads no .npy arrays")
    return npy_readers.get(name)(req)
