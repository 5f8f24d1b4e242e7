"""The time-series modality: float32 [N, C, L] storage with NaN for padding/missing, TS2Vec z-scoring.

Mask convention (one, used everywhere): *NaN in storage means "no observation"*. Series shorter than
the longest are padded at the end with NaN; missing values are NaN. Nothing is dropped. The view
maker keeps NaN in the views and every series encoder respects it (see `encoders.py`): unobserved
steps are zeroed after the input projection, padding outside a series' first..last observation is
kept at zero through the network and excluded from pooling, so padding never changes an embedding.
`Split.mask` stays None for series; a `mask` [N, L] passed anyway (to `Run.embed`, the view maker or
an encoder) is ANDed with the NaN pattern: False there means the same as NaN.

Normalisation follows TS2Vec: a z-score with the training split's statistics per channel, ignoring
NaN (TS2Vec's UCR loader uses the global mean/std of the univariate training set, its UEA loader a
per-channel StandardScaler: the same thing for one channel). The statistics are stored in the run
(`resolved.data_spec`) and applied by `prepare` and the view maker.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...data import Dataset, Split, encode_labels
from ...errors import ConfigError, DataError
from ...encoders import SequenceEncoder
from ...storage import Storage, TensorStorage
from ...views import ViewRequest
from ..base import Modality, ViewMaker, modalities
from ..exporting import ExportInputs
from ..npy import register_array_reader
from ..presentation import Presentation
from .encoders import series_encoders


def pad_ragged(items: list[Any], where: str) -> np.ndarray:
    """A list of [L_i] or [C, L_i] arrays -> float [N, C, max L] padded at the end with NaN."""
    arrays = []
    for i, a in enumerate(items):
        a = np.asarray(a, dtype=np.float64) if not isinstance(a, np.ndarray) or a.dtype.kind in "fiub" else a
        if a.dtype.kind not in "fiu":
            raise DataError(f"{where}: series {i} is not numeric (dtype {a.dtype})")
        if a.ndim == 1:
            a = a[None]
        if a.ndim != 2:
            raise DataError(f"{where}: series {i} must be 1-D (length) or 2-D (channels x length), "
                            f"got shape {tuple(a.shape)}")
        arrays.append(a.astype(np.float32))
    channels = {a.shape[0] for a in arrays}
    if len(channels) != 1:
        raise DataError(f"{where}: series have different numbers of channels {sorted(channels)}")
    length = max(a.shape[1] for a in arrays)
    out = np.full((len(arrays), channels.pop(), length), np.nan, dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, :, :a.shape[1]] = a
    return out


class SeriesPresentation(Presentation):
    """How series samples appear in a report."""

    def draw_panels(self, pictures: dict[str, torch.Tensor], maps: dict[str, torch.Tensor], spec: dict[str, Any]
                    ) -> Any:
        """One panel a sample: channel 0 of each picture as a line (z-scored; NaN: a gap), each map on a second
        axis from -1 to 1."""
        import matplotlib.pyplot as plt

        rows = len(next(iter(pictures.values())))
        fig, axes = plt.subplots(rows, 1, figsize=(7.5, 1.5 * rows), squeeze=False)
        for r in range(rows):
            ax = axes[r, 0]
            for k, (name, t) in enumerate(pictures.items()):
                ax.plot(t[r, 0].detach().float().cpu().numpy(), lw=2.2 - 0.6 * k, label=name, alpha=0.85)
            for name, t in maps.items():
                twin = ax.twinx()
                twin.plot(t[r, 0].detach().float().cpu().numpy(), color="tab:green", lw=0.9, ls=":", label=name)
                twin.set_ylim(-1.05, 1.05)
                if r == 0:
                    twin.legend(loc="upper right", fontsize=6)
            ax.tick_params(labelsize=6)
        axes[0, 0].legend(loc="upper left", fontsize=6)
        axes[0, 0].set_title("channel 0 (z-scored)", fontsize=7)
        fig.tight_layout()
        return fig


class SeriesExportInputs(ExportInputs):
    """Example storage and the prepared input in words, for exporting a timeseries encoder."""

    def example(self, spec: dict[str, Any], n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Gaussian series of the training length with the training statistics; the first is NaN-padded after half
        its length, the second misses one step in every channel and one value in channel 0 (padding and missing
        values take their own paths through an encoder)."""
        c, length = spec["channels"], spec["length"]
        mean = torch.tensor(spec["mean"], dtype=torch.float32).view(1, -1, 1)
        std = torch.tensor(spec["std"], dtype=torch.float32).view(1, -1, 1)
        x = torch.randn(n, c, length, generator=generator) * std + mean
        x[0, :, max(1, length // 2):] = float("nan")
        if n > 1:
            x[1, :, length // 3] = float("nan")
            x[1, 0, (2 * length) // 3] = float("nan")
        return x

    def described(self, spec: dict[str, Any]) -> str | None:
        c, length = spec["channels"], spec["length"]
        return (f"float32 [batch, {c}, {length}] (channels first): each channel z-scored with the training mean "
                f"{spec['mean']} and std {spec['std']}; NaN marks a missing value or padding (a shorter series is "
                f"padded at the end with NaN to {length} steps, which leaves its embedding unchanged)")


class TimeSeriesModality(Modality):
    """Univariate or multivariate series of equal or unequal length, with missing values."""

    name = "timeseries"
    presentation = SeriesPresentation()
    summary = "univariate/multivariate series (float32 N x C x L in memory; NaN = padding or missing)"
    encoders = series_encoders
    export_inputs = SeriesExportInputs()
    view_recipes = ("instance", "instance_light", "asymmetric", "overlapping_crops", "masked_values", "geometric")
    encoder_kind = SequenceEncoder

    def from_array(self, x: Any, where: str) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        if isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.dtype == object):
            if len(x) == 0:
                raise DataError(f"{where}: no series (0 rows)")
            x = pad_ragged(list(x), where)
        x = np.asarray(x)
        if x.dtype.kind not in "fiu" or x.dtype == np.bool_:
            raise DataError(f"{where}: expected numeric series, got dtype {x.dtype}")
        if x.ndim == 2:
            x = x[:, None, :]
        if x.ndim != 3:
            raise DataError(f"{where}: expected series shaped N x L (univariate) or N x C x L (channels first), "
                            f"got shape {tuple(x.shape)}")
        if len(x) == 0:
            raise DataError(f"{where}: no series (array has 0 rows)")
        if x.shape[1] == 0 or x.shape[2] < 2:
            raise DataError(f"{where}: series need at least 1 channel and 2 time steps, got shape {tuple(x.shape)}")
        with np.errstate(over="ignore"):
            x = x.astype(np.float32)
        inf = np.isinf(x)
        if inf.any():
            n, c, t = np.argwhere(inf)[0]
            raise DataError(f"{where}: series {n} has an infinite value (channel {c}, step {t}); "
                            "use NaN for missing values")
        empty = np.isnan(x).reshape(len(x), -1).all(axis=1)
        if empty.any():
            raise DataError(f"{where}: series {int(np.argmax(empty))} has no observed value (all NaN)")
        return torch.from_numpy(np.ascontiguousarray(x))

    def toy_data(self, n: int, generator: np.random.Generator) -> np.ndarray:
        """Random walks of 2 channels and 32 steps; the first is shorter (NaN-padded after step 20)."""
        x = generator.standard_normal((n, 2, 32)).astype(np.float32).cumsum(-1)
        x[0, :, 20:] = np.nan
        return x

    def to_storage(self, x: Any, where: str, spec: dict[str, Any]) -> torch.Tensor:
        """New series for a trained run (arrays or ragged lists; a tensor is storage already); channels must match
        the run's."""
        if isinstance(x, torch.Tensor):
            return x
        if spec.get("channels") == 1 and isinstance(x, np.ndarray) and x.ndim == 1:
            x = x[None]  # one univariate series
        storage = self.from_array(x, where)
        self._check_channels(storage, spec)
        return storage

    def fit_spec(self, x: torch.Tensor) -> dict[str, Any]:
        arr = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        flat = arr.transpose(1, 0, 2).reshape(arr.shape[1], -1).astype(np.float64)
        counts = (~np.isnan(flat)).sum(axis=1)
        if (counts == 0).any():
            raise DataError(f"channel {int(np.argmax(counts == 0))} has no observed value in the training data")
        mean = np.nanmean(flat, axis=1)
        std = np.nanstd(flat, axis=1)
        std = np.where(std > 1e-8, std, 1.0)
        lengths = (~np.isnan(arr).all(axis=1)).sum(axis=1)
        return {"channels": int(arr.shape[1]), "length": int(arr.shape[2]), "min_length": int(lengths.min()),
                "missing": bool(np.isnan(arr).any()),
                "mean": [float(m) for m in mean], "std": [float(s) for s in std],
                "normalisation": "z-score per channel with training statistics, NaN ignored (TS2Vec)"}

    def default_encoder(self, spec: dict[str, Any]) -> str:
        return "dilated_cnn"

    def view_maker(self, request: ViewRequest, spec: dict[str, Any], strength: float = 1.0,
                   options: dict[str, Any] | None = None) -> ViewMaker:
        from ..sequences.augment import SPECIAL_VIEWS, SeriesViewMaker, check_extras, recipe

        views = recipe(request.recipe, strength, options)
        if request.recipe in SPECIAL_VIEWS and (request.local_views or options):
            raise ConfigError(f"the {request.recipe!r} series views take no local crops and no augmentation options")
        check_extras(request, "series")
        return SeriesViewMaker(request, views, spec["mean"], spec["std"])

    def storage(self, split: Split, spec: dict[str, Any]) -> Storage:
        """The split's series; a validity mask, if the split has one, becomes NaN (the one mask convention)."""
        if split.mask is None:
            return super().storage(split, spec)  # a tensor, or a prepared file read batch by batch
        return TensorStorage(split.x.masked_fill(~split.mask.bool().unsqueeze(1), float("nan")))

    def conform(self, x: torch.Tensor, spec: dict[str, Any], where: str, resize: bool = False,
                strict: bool = False) -> tuple[torch.Tensor, list[str]]:
        """Channels must match the run's; any length is fine (padding never changes an embedding)."""
        if x.shape[1] != spec["channels"]:
            raise DataError(f"{where}: series with {x.shape[1]} channel(s), but the run was trained on "
                            f"{spec['channels']}")
        return x, []

    def _check_channels(self, x: torch.Tensor, spec: dict[str, Any]) -> None:
        if x.dim() != 3 or x.shape[1] != spec["channels"]:
            raise DataError(f"series shaped {tuple(x.shape)} do not match the run's {spec['channels']} channel(s) "
                            "(expected N x C x L)")

    def prepare(self, x: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
        self._check_channels(x, spec)
        mean = torch.tensor(spec["mean"], dtype=torch.float32, device=x.device).view(1, -1, 1)
        std = torch.tensor(spec["std"], dtype=torch.float32, device=x.device).view(1, -1, 1)
        return (x.float() - mean) / std

    def raw_features(self, x: torch.Tensor, spec: dict[str, Any], mask: torch.Tensor | None = None) -> np.ndarray:
        """z-scored values flattened (missing -> 0, cut or NaN-padded to the training length)."""
        z = self.prepare(x, spec)
        if mask is not None:
            z = z.masked_fill(~mask.bool().unsqueeze(1), float("nan"))
        length = spec["length"]
        z = z[..., :length] if z.shape[-1] >= length else torch.nn.functional.pad(z, (0, length - z.shape[-1]),
                                                                                     value=float("nan"))
        return torch.nan_to_num(z, nan=0.0).reshape(len(z), -1).numpy()

    # ---- datasets from arrays and files (used by the api and by the npy/CSV sources) ----
    def dataset_from_arrays(self, x: Any, y: np.ndarray | None, name: str, x_test: Any = None,
                            y_test: np.ndarray | None = None, **info: Any) -> Dataset:
        """A Dataset from raw arrays (labels may be any values; they are encoded to 0..K-1)."""
        (y, y_test), classes = encode_labels(None if y is None else np.asarray(y),
                                             None if y_test is None else np.asarray(y_test))
        train = Split(self.from_array(x, name), y)
        test = None
        if x_test is not None:
            test = Split(self.from_array(x_test, name + " (test)"), y_test)
            if test.x.shape[1] != train.x.shape[1]:
                raise DataError(f"{name}: test series have {test.x.shape[1]} channels, train {train.x.shape[1]}")
            train, test = equalise_lengths(train, test)
        info.setdefault("classes", classes)
        return Dataset(name, "timeseries", train, test, info)



#: The one time-series configuration used for every data set by benchmarks/ucr.py (and the preset of `ucr:`, `ts:`
#: and `tscsv:` sources): TS2Vec's objective and training recipe (batch 8, AdamW 1e-3 at a constant rate, 200
#: iterations, weights averaged over all iterations) on the dilated CNN (width 32, see encoders.DEFAULT_HIDDEN),
#: without TS2Vec's timestamp mask (mask_p 0; the crops are the only augmentation). Chosen by cross-validation of
#: the SVM protocol inside the training splits of the five benchmark problems (test splits never scored;
#: benchmarks/ucr_ablation.py, results/ucr_ablation.json and ucr_ablation_confirm.json): against the paper's
#: configuration (width 64, mask 0.5) at 0.939 / 0.954 (seeds 0-2 / 3-5), no timestamp mask scored 0.952 / 0.958
#: and no mask at width 32 0.961 (seeds 3-5); widths 32, 64 and 128 within noise of each other, batch 16 0.947,
#: the instance or temporal term alone, 2x iterations, warm-up + cosine and the last iterate instead of the
#: average did not help. Earlier measurements: TS2Vec beat masked reconstruction and SimCLR on series views, the
#: non-causal encoder beat the causal one, max-pooling beat mean and max+mean pooling, jitter/scaling did not help.
#: The paper's own ablation over 128 UCR problems found the mask helpful on average; the method
#: keeps the paper's mask_p=0.5 for a user who chooses ts2vec with options of their own.
DEFAULT_CONFIG: dict[str, Any] = {"method": "ts2vec", "encoder": "dilated_cnn", "batch_size": 8,
                                  "warmup_fraction": 0.0, "method_options": {"mask_p": 0.0}}


def ts2vec_schedule(n_series: int, n_values: int, batch_size: int = 8) -> dict[str, int]:
    """TS2Vec's training length: 200 iterations (600 beyond 100,000 values), as epochs of the trainer's loop."""
    iters = 200 if n_values <= 100_000 else 600
    batch = min(batch_size, n_series)
    steps_per_epoch = max(1, n_series // batch)
    return {"iterations": iters, "epochs": max(1, round(iters / steps_per_epoch)), "batch_size": batch}


def equalise_lengths(train: Split, test: Split) -> tuple[Split, Split]:
    """Pad the shorter split with NaN so both have the same length L (storage of one dataset is one L)."""
    lt, le = train.x.shape[-1], test.x.shape[-1]
    if lt == le:
        return train, test
    pad = torch.nn.functional.pad
    if lt < le:
        train = Split(pad(train.x, (0, le - lt), value=float("nan")), train.y, train.mask)
    else:
        test = Split(pad(test.x, (0, lt - le), value=float("nan")), test.y, test.mask)
    return train, test

modalities.add("timeseries", TimeSeriesModality(), TimeSeriesModality.summary)
register_array_reader("timeseries", "series array", "series N x L or N x C x L")
