"""The tabular modality: float64 [N, F] storage (raw numbers, category keys, NaN = missing),
preprocessing learned on the training rows, batched corruption views, MLP / FT-Transformer encoders.

View recipes (rates scale with --aug-strength); every global view is an independently corrupted copy of the
prepared row, `clean` is the prepared row, `corruption_mask` marks global view 0's corrupted input dims:

- 'feature_corruption' (SCARF) and the invariance recipes 'instance', 'instance_light', 'asymmetric':
  features replaced from their empirical marginals at rate 0.3 (the paper's rate is 0.6, 0.3 won on
  validation splits of training data, see methods/scarf.py);
- 'mask_and_replace' (VIME): mask-and-replace with p_m = 0.3;
- 'swap_noise' (denoising): swap noise with p = 0.15.

All tensors are float32 [B, D] in the prepared layout (preprocess.py), masks bool [B, D], a corrupted
column marking all its dims. `TrainConfig.augmentation` may override
{'corruption': 'scarf' | 'vime' | 'swap' | 'gaussian', 'rate': float, 'noise_std': float}.
Local views (multi-crop) are copies corrupted at the higher rate rate + (1 - rate) (1 - local_size), at most
0.9: a table's analogue of a small crop sees less of the row. Tables have no step masks.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...data import Dataset, SourceRequest, Split, encode_labels, load_npy_arrays
from ...errors import ConfigError, DataError
from ...views import ViewMaker, ViewRequest, Views
from ..base import Modality, modalities
from ..exporting import ExportInputs
from ..records import StorageRecord
from ..npy import npy_readers
from .corruptions import CORRUPTIONS, LayoutTensors
from .encoders import tabular_encoders
from .preprocess import Preprocessor, fit_spec, preprocessor
from .table import NUMERIC, attach_schema, build_storage, is_frame, schema_of

# recipe -> (corruption, rate)
RECIPES: dict[str, tuple[str, float]] = {
    "feature_corruption": ("scarf", 0.3),
    "instance": ("scarf", 0.3),
    "instance_light": ("scarf", 0.3),
    "asymmetric": ("scarf", 0.3),
    "mask_and_replace": ("vime", 0.3),
    "swap_noise": ("swap", 0.15),
}
NOISE_STD = 0.1


class TableViewMaker:
    """Storage batch -> prepared, corrupted views answering one request (see the module docstring)."""

    def __init__(self, spec: dict[str, Any], corruption: str, rate: float, request: ViewRequest,
                 noise_std: float = NOISE_STD) -> None:
        if corruption not in CORRUPTIONS:
            raise ConfigError(f"augmentation corruption must be one of {', '.join(CORRUPTIONS)}, got {corruption!r}")
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"corruption rate must be in [0, 1], got {rate}")
        self.spec, self.corruption, self.rate, self.request, self.noise_std = spec, corruption, rate, request, noise_std
        self._layouts: dict[str, LayoutTensors] = {}

    def corrupt(self, xp: torch.Tensor, generator: torch.Generator | None,
                rate: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One corrupted copy of a prepared batch and its per-dim mask (at `rate`, default the view maker's)."""
        rate = self.rate if rate is None else rate
        key = str(xp.device)
        if key not in self._layouts:
            self._layouts[key] = LayoutTensors(preprocessor(self.spec, xp.device).layout, xp.device)
        lt = self._layouts[key]
        if self.corruption == "gaussian":
            out, m = CORRUPTIONS["gaussian"](xp, lt, self.noise_std, rate, generator)
        else:
            out, m = CORRUPTIONS[self.corruption](xp, lt, rate, generator)
        return out, m[:, lt.col_of_dim]

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> Views:
        xp = preprocessor(self.spec, x.device)(x)
        corrupted = [self.corrupt(xp, generator) for _ in range(self.request.global_views)]
        views = Views([c for c, _ in corrupted])
        if self.request.local_views:  # a table's "small crop": more of the row replaced, less of it seen
            rate = min(0.9, self.rate + (1.0 - self.rate) * (1.0 - self.request.local_size))
            views.local_views = [self.corrupt(xp, generator, rate)[0] for _ in range(self.request.local_views)]
        if self.request.clean:
            views.clean = xp
        if self.request.corruption_mask:
            views.corruption_mask = corrupted[0][1] > 0
        return views


class TableRecord(StorageRecord):
    """A prepared table keeps its schema (column names, kinds, category values) beside its array."""

    def of(self, x: torch.Tensor) -> dict[str, Any]:
        return {"schema": schema_of(x)}

    def restore(self, x: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
        return attach_schema(x, record["schema"])


class TableExportInputs(ExportInputs):
    """Example storage and the prepared input in words, for exporting a tabular encoder."""

    def example(self, spec: dict[str, Any], n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Rows drawn from each numeric column's training quantiles and each categorical column's known keys;
        the first row is all missing, the second holds a category unseen in training in every categorical column."""
        x = torch.empty(n, spec["n_columns"], dtype=torch.float64)
        for j, col in enumerate(spec["columns"]):
            values = col["quantiles"] if col["kind"] == NUMERIC else col["keys"] + [max(col["keys"], default=0) + 1]
            pool = torch.tensor(values, dtype=torch.float64)
            x[:, j] = pool[torch.randint(len(pool), (n,), generator=generator)]
            if col["kind"] != NUMERIC and n > 1:
                x[1, j] = pool[-1]
        x[0] = float("nan")
        return x

    def described(self, spec: dict[str, Any]) -> str | None:
        return (f"float32 [batch, {spec['input_dim']}]: the prepared table (preprocess.py; statistics in the run's "
                f"config.yaml, resolved.data_spec): per numeric column its {spec['scaling']}-scaled value (missing -> "
                "the scaled training median) and, if the column had missing training cells, a 0/1 missing indicator; "
                "per categorical column a one-hot block of 2 + K slots (0 missing, 1 unknown, 2.. the known keys in "
                "the spec's order), columns in the spec's order")


class TabularModality(Modality):
    """Tables of numeric and categorical columns with missing values."""

    name = "tabular"
    summary = "tables of numeric and categorical columns (float64 N x F in memory; NaN = missing)"
    encoders = tabular_encoders
    export_inputs = TableExportInputs()
    storage_record = TableRecord()
    view_recipes = tuple(RECIPES)
    default_array_ranks = (2,)

    def from_array(self, x: Any, where: str, categorical: Any = None) -> torch.Tensor:
        """A 2-D array or DataFrame -> storage; kinds detected per column unless `categorical` names some."""
        from .sources import array_table, frame_table

        table = frame_table(x, where) if is_frame(x) else array_table(np.asarray(x), where)
        return build_storage(table.names, table.columns, where, categorical=categorical, kinds=table.kinds,
                             rows=table.rows)

    def toy_data(self, n: int, generator: np.random.Generator) -> Any:
        """A DataFrame: five numeric columns (one with missing cells) and one categorical column of four keys."""
        import pandas as pd

        x = generator.standard_normal((n, 5))
        x[generator.random(n) < 0.1, 1] = np.nan
        frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(5)])
        frame["kind"] = pd.Series(generator.choice(["a", "b", "c", "d"], n), dtype="string")
        return frame

    def to_storage(self, x: Any, where: str, spec: dict[str, Any]) -> torch.Tensor:
        """New rows in the run's input format -> storage aligned to the spec's columns.

        A DataFrame is matched by column name (extra columns, e.g. the label, are ignored); an array must
        have the spec's columns in order. Each column keeps its training kind, so a non-numeric cell in a
        numeric column is an error naming its row and column; unseen categories and missing cells are fine.
        """
        from .sources import array_table, frame_table

        if isinstance(x, torch.Tensor):  # storage already
            return x
        names = [c["name"] for c in spec["columns"]]
        kinds = [c["kind"] for c in spec["columns"]]
        if is_frame(x):
            table = frame_table(x, where).select(names)
        else:
            x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
            if x.ndim == 1 and len(names) == x.shape[0]:
                x = x[None]
            table = array_table(x, where, None)
            if len(table.names) != len(names):
                raise DataError(f"{where}: {len(table.names)} columns, but the run was trained on {len(names)} "
                                f"({', '.join(names)})")
            table.names = names
        return build_storage(names, table.columns, where, kinds=kinds, rows=table.rows)

    def conform(self, x: torch.Tensor, spec: dict[str, Any], where: str, resize: bool = False,
                strict: bool = False) -> tuple[torch.Tensor, list[str]]:
        """Columns matched by name and put in the run's order: a missing column is an error, extra ones are named
        and ignored (refused with `strict`), a column whose kind changed (numeric/categorical) is an error."""
        schema = schema_of(x)
        names, kinds = list(schema["names"]), list(schema["kinds"])
        want = [c["name"] for c in spec["columns"]]
        missing = [n for n in want if n not in names]
        if missing:
            raise DataError(f"{where}: column(s) {', '.join(missing)} missing; the run was trained on "
                            f"{', '.join(want)}")
        extra = [n for n in names if n not in want]
        if extra and strict:
            raise DataError(f"{where}: column(s) {', '.join(extra)} were not in the training data (--strict)")
        for col in spec["columns"]:
            kind = kinds[names.index(col["name"])]
            if kind != col["kind"]:
                raise DataError(f"{where}: column {col['name']!r} is {kind} here but was {col['kind']} in training")
        notes = [f"ignored column(s) not seen in training: {', '.join(extra)}"] if extra else []
        if names == want:
            return x, notes
        idx = [names.index(n) for n in want]
        aligned = x[:, idx]
        attach_schema(aligned, {**schema, "names": want, "kinds": [kinds[i] for i in idx]})
        return aligned, notes

    def fit_spec(self, x: torch.Tensor) -> dict[str, Any]:
        if x.ndim != 2:
            raise DataError(f"tabular storage must be 2-D [N, F], got shape {tuple(x.shape)}")
        return fit_spec(x)

    def default_encoder(self, spec: dict[str, Any]) -> str:
        return "mlp"

    def view_maker(self, request: ViewRequest, spec: dict[str, Any], strength: float = 1.0,
                   options: dict[str, Any] | None = None) -> ViewMaker:
        if request.recipe not in RECIPES:
            raise ConfigError(f"tables have no {request.recipe!r} views; table view recipes: {', '.join(RECIPES)}")
        if request.keep:
            raise ConfigError(f"tables have no step masks ({request.recipe!r} request)")
        corruption, rate = RECIPES[request.recipe]
        opts = dict(options or {})
        unknown = set(opts) - {"corruption", "rate", "noise_std"}
        if unknown:
            raise ConfigError(f"tabular augmentation options: unknown {', '.join(sorted(unknown))}; "
                              "known: corruption, rate, noise_std")
        corruption = opts.get("corruption", corruption)
        rate = min(1.0, float(opts.get("rate", rate)) * float(strength))
        return TableViewMaker(spec, corruption, rate, request, float(opts.get("noise_std", NOISE_STD)))

    def prepare(self, x: torch.Tensor, spec: dict[str, Any]) -> torch.Tensor:
        return preprocessor(spec, x.device)(x)

    def raw_features(self, x: torch.Tensor, spec: dict[str, Any], mask: torch.Tensor | None = None) -> np.ndarray:
        """The raw baseline: numeric columns z-scored with training statistics (missing -> median),
        missing indicators, one-hot categories."""
        return Preprocessor(spec, "cpu")(x.cpu(), scaling="standard").numpy()

    def dataset_from_arrays(self, x: Any, y: Any = None, name: str = "array", categorical: Any = None) -> Dataset:
        """An in-memory tabular Dataset from an array or DataFrame (and optional labels)."""
        storage = self.from_array(x, name, categorical)
        (y,), classes = encode_labels(None if y is None else np.asarray(y))
        if y is not None and len(y) != len(storage):
            raise DataError(f"{name}: {len(y)} labels for {len(storage)} rows")
        info = {"classes": classes, "columns": storage.table_schema["names"],
                "kinds": storage.table_schema["kinds"]}
        return Dataset(name, "tabular", Split(storage, y), None, info)



TABULAR = TabularModality()
modalities.add("tabular", TABULAR, TabularModality.summary)


@npy_readers.register("tabular", "a table N x F (categorical=columns)")
def read_npy(req: SourceRequest) -> Dataset:
    """npy:X.npy[?labels=Y.npy&test=XT.npy&test_labels=YT.npy&categorical=0,3] with --modality tabular."""
    from .sources import array_table, check_options

    check_options(req, {"labels", "test", "test_labels", "categorical"})
    arrays = load_npy_arrays(req, "table array")
    y, y_te = arrays.y, arrays.y_test
    train = TABULAR.from_array(arrays.x, req.path, req.options.get("categorical"))
    test = None
    if arrays.x_test is not None:
        table = array_table(arrays.x_test, req.options["test"])
        if len(table.names) != train.shape[1]:
            raise DataError(f"{req.options['test']}: {len(table.names)} columns, train has {train.shape[1]}")
        test = build_storage(table.names, table.columns, req.options["test"], kinds=train.table_schema["kinds"])
    (y, y_te), classes = encode_labels(y, y_te)
    return Dataset(req.uri, "tabular", Split(train, y), Split(test, y_te) if test is not None else None,
                   {"classes": classes, "columns": train.table_schema["names"]})
