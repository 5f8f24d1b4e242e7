"""The Python API: `train`, `load`, and a scikit-learn transformer. The CLI calls the same functions."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .data import Dataset, encode_labels
from .errors import ConfigError
from .modalities import get_modality, modalities
from .modalities.tabular.table import is_frame
from .presets import with_preset
from .run import Run, load
from .config import TrainConfig
from .training.session import train as train_config

__all__ = ["train", "load", "SelfSupervisedEmbedder", "dataset_from_array"]


def as_array(x: Any) -> np.ndarray:
    """np.asarray(x), or for a list of items of different lengths (clips, series) a 1-D object array of them."""
    try:
        return np.asarray(x)
    except ValueError:
        items = np.empty(len(x), dtype=object)
        items[:] = [np.asarray(item) for item in x]
        return items


def dataset_from_array(x: Any, y: Any = None, modality: str | None = None, name: str = "array") -> Dataset:
    """An in-memory Dataset from an array or DataFrame and optional labels.

    Without `modality`, the modality whose `default_array_ranks` holds the array's rank takes it (images: N x H x W
    or N x H x W x C; 2-D arrays and DataFrames: tables; series always need modality='timeseries'); a list of networkx
    graphs or PyTorch Geometric Data objects is graphs, one such graph alone the nodes of a graph (modality.claims).
    """
    claimed = [m.name for m in (e.obj for e in modalities) if m.claims(x)]
    if claimed and modality in (None, claimed[0]):  # objects a modality recognises (graphs) stay as they are
        (y,), _ = encode_labels(None if y is None else np.asarray(y))
        return get_modality(claimed[0]).dataset_from_arrays(x, y, name)
    frame = is_frame(x)  # a pandas DataFrame keeps its column names and dtypes
    x = x.numpy() if isinstance(x, torch.Tensor) else x if frame else as_array(x)
    if modality is None:
        rank = 2 if frame else x.ndim
        takers = [m.name for m in (e.obj for e in modalities) if rank in m.default_array_ranks]
        if len(takers) != 1:
            raise ConfigError(f"{name}: say which modality this {rank}-D array holds (modality= one of "
                              f"{', '.join(modalities.names())})")
        modality = takers[0]
    (y,), _ = encode_labels(None if y is None else np.asarray(y))
    return get_modality(modality).dataset_from_arrays(x, y, name)


def train(data: str | Dataset | Any = "digits", method: str | None = None, out: str | Path | None = None,
          progress: bool = False, overwrite: bool = False, cache: str | Path | None = None,
          search: float | None = None, search_criterion: str | None = None, **options: Any) -> Run:
    """Train an encoder on `data` (a source URI, a Dataset or an array) with `method`; options as TrainConfig.

    With neither `method` nor `encoder` given, a dataset with a measured preset (selfsup.presets, e.g.
    fashion-mnist) uses it; otherwise the method defaults to SimCLR.
    `search=MINUTES` (a data source URI and `out` required, no method): choose the method without labels within
    MINUTES and train it, as `selfsup train --search` (selfsup.search; the record is out/search.json), ranked by
    `search_criterion` (default: the modality's `Modality.search_criterion`).
    `cache`: a folder for `data` (folder:PATH) decoded once into a memory-mapped cache (selfsup.prepare), made on
    first use, reused after; training then reads `prepared:CACHE`.
    Example: ``run = selfsup.train("digits", method="byol", epochs=20, out="runs/byol")``.
    """
    names = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; options: {', '.join(sorted(names))}")
    if search_criterion is not None and search is None:
        raise ConfigError("search_criterion= goes with search=MINUTES")
    if search is not None:
        if not isinstance(data, str) or out is None or method is not None or cache is not None:
            raise ConfigError("search= takes a data source URI and out=, and chooses the method itself (no method= "
                              "or cache=)")
        from .search import search_and_train

        return search_and_train({"data": data, **options}, Path(out), search, search_criterion,
                                progress=progress, overwrite=overwrite)[0]
    dataset = None
    if cache is not None:
        if not isinstance(data, str):
            raise ConfigError("cache= prepares a data source (folder:PATH); it cannot take an array or Dataset")
        from .preparation import prepare

        prepare(data, cache, progress=progress, option="cache=")
        data = f"prepared:{cache}"
    if not isinstance(data, str):
        dataset = data if isinstance(data, Dataset) else dataset_from_array(data, modality=options.get("modality"))
        options.setdefault("modality", dataset.modality)
        data = dataset.name
    if method is not None:
        options["method"] = method
    options, _ = with_preset(data, options)
    cfg = TrainConfig(data=data, **options)
    return train_config(cfg, out, progress=progress, dataset=dataset, overwrite=overwrite)


class SelfSupervisedEmbedder(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: `fit` pre-trains on X without labels, `transform` returns embeddings.

    Follows the estimator contract (parameters stored unchanged in __init__, learned state with a
    trailing underscore), so it works in Pipelines, clone() and grid searches.
    """

    def __init__(self, method: str = "simclr", encoder: str | None = None, epochs: int | None = 20,
                 minutes: float | None = None, batch_size: int = 256, seed: int = 0, modality: str | None = None,
                 device: str = "auto", method_options: dict | None = None, with_raw: bool = False) -> None:
        self.method = method
        self.encoder = encoder
        self.epochs = epochs
        self.minutes = minutes
        self.batch_size = batch_size
        self.seed = seed
        self.modality = modality
        self.device = device
        self.method_options = method_options
        self.with_raw = with_raw

    def fit(self, X: Any, y: Any = None) -> "SelfSupervisedEmbedder":
        """Pre-train on X; y is ignored (self-supervised)."""
        ds = dataset_from_array(X, modality=self.modality)
        epochs = None if self.minutes is not None else self.epochs
        self.run_ = train(ds, method=self.method, encoder=self.encoder, epochs=epochs, minutes=self.minutes,
                          batch_size=self.batch_size, seed=self.seed, device=self.device,
                          method_options=dict(self.method_options or {}), monitor=False)
        self.n_features_in_ = int(np.prod(np.asarray(X).shape[1:]))
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Embeddings of X from the fitted encoder; with `with_raw`, X's raw features first, then the embedding
        (`Run.embed(with_raw=True)`), for a downstream model that should see both."""
        check_is_fitted(self, "run_")
        return self.run_.embed(X, with_raw=self.with_raw)
