"""Sources whose items are images or table rows depending on their columns (parquet:, hf:): they read through both
the image and the tabular modality, so they live above both, and the modalities stay independent of each other."""
from __future__ import annotations

import numpy as np

from ..data import Dataset, SourceRequest, sources
from ..shard_readers import class_names
from .image.encoded import hf_files, hf_splits, load_encoded, parquet_modality, parquet_splits
from .tabular.sources import arrow_table_dataset, file_dataset, read_parquet


@sources.register("parquet", "a Parquet table (needs pyarrow): parquet:PATH[?label=COL&categorical=A,B&drop=ID"
                  "&test=TEST.parquet]; with a column of encoded images (or ?image=COL): images, PATH a file, "
                  "folder, glob or range (local or a URL: s3://, https://), row groups streamed beyond "
                  "--memory-budget", modality="tabular, image",
                  modality_of=parquet_modality)
def load_parquet(req: SourceRequest) -> Dataset:
    if req.modality in (None, "image") and req.path:  # a column of encoded images makes it image data
        splits = parquet_splits(req)
        if splits is not None:
            return load_encoded(req, splits)
    return file_dataset(req, read_parquet)


@sources.register("hf", "a Hugging Face datasets folder written by save_to_disk: hf:DIR[?image=COL&label=COL&size=]; "
                  "an image column gives images (streamed beyond --memory-budget), else a table",
                  modality="image, tabular")
def load_hf(req: SourceRequest) -> Dataset:
    files = hf_files(req)
    splits = hf_splits(req, files) if req.modality in (None, "image") else None
    if splits is None:
        return arrow_table_dataset(req, {name: paths for name, (paths, _) in files.items()})
    names = class_names(files["train"][1], req.options.get("label"))
    if names is not None:  # ClassLabel codes -> their names
        for split in splits.values():
            if split.labels is not None:
                split.labels = np.asarray(names, dtype=object)[split.labels.astype(np.int64)].astype(str)
    return load_encoded(req, splits)
