"""Modalities. Importing this package registers the built-in ones and their data sources: every module and
sub-package in it is imported (a new modality is one sub-package here, no list to edit)."""
import importlib
import pkgutil

from .base import Modality, get_modality, modalities

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Modality", "get_modality", "modalities"]
