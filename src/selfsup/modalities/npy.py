"""The `npy:` data source: .npy arrays read by the modality `--modality` names (images when none is named)."""
from __future__ import annotations

from ..data import Dataset, SourceRequest, sources
from ..errors import ConfigError
from .base import get_modality


@sources.register("npy", "a .npy array: images N x H x W (x C), or with --modality timeseries / tabular series "
                  "N x (C x) L or a table N x F: npy:PATH[?labels=Y.npy&test=XT.npy&test_labels=YT.npy]",
                  modality="image")
def load_npy_source(req: SourceRequest) -> Dataset:
    if not req.path:
        raise ConfigError("--data npy:PATH needs a path")
    return get_modality(req.modality or "image").dataset_from_npy(req)
