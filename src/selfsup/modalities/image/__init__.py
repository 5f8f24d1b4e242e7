"""Image modality: sources, batched augmentations and encoders."""
from . import encoders, modality, sources  # noqa: F401
from .modality import ImageModality

__all__ = ["ImageModality"]
