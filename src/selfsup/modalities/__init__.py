"""Modalities. Importing this package registers the built-in ones and their data sources: every module and
sub-package in it is imported (a new modality is one sub-package here, no list to edit)."""
import importlib
import pkgutil

from .base import (Modality, default_encoder_for, encoder_kinds, get_modality, modalities, new_encoder,
                   small_encoder_options)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Modality", "default_encoder_for", "encoder_kinds", "get_modality", "modalities", "new_encoder",
           "small_encoder_options"]
