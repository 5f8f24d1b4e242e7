"""Tabular modality: CSV/Parquet/DataFrame/array tables, learned preprocessing, corruption views, encoders."""
from . import encoders, modality, sources  # noqa: F401
from .modality import TabularModality

__all__ = ["TabularModality"]
