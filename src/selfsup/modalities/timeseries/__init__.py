"""Time-series modality: UCR/UEA (.ts), CSV and npy sources, batched series views and encoders.

Storage is float32 [N, C, L]; NaN marks padding and missing values (see `modality.py`).
"""
from . import encoders, modality, sources  # noqa: F401
from .modality import TimeSeriesModality

__all__ = ["TimeSeriesModality"]
