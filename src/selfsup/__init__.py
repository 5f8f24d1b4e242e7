"""selfsup: self-supervised representation learning with one API across modalities and built-in evaluation.

Importing the package is light (the command line installs its Ctrl-C handling before torch loads); the public
names below load their modules on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import SelfSupError
from .version import __version__

_PUBLIC = {"train": "api", "load": "api", "SelfSupervisedEmbedder": "api", "dataset_from_array": "api",
           "load_dataset": "loading", "Run": "run", "cluster_run": "cluster",
           "prepare": "preparation"}

__all__ = ["train", "load", "Run", "SelfSupervisedEmbedder", "SelfSupError", "dataset_from_array", "load_dataset",
           "cluster_run", "prepare", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    try:  # a submodule by attribute (selfsup.api, selfsup.views, ...)
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":  # the submodule exists but needs something missing
            raise
        raise AttributeError(f"module 'selfsup' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
