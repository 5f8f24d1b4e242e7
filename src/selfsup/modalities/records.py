"""What a prepared cache keeps of a modality's storage beyond its array (a table's schema), so that reading the cache
gives back the storage that was written.

A modality declares one `StorageRecord` (`Modality.storage_record`); preparation writes `of(x)` into the cache's
manifest (and its checksum), and the `prepared:` source hands it back to `restore`. The default keeps nothing.
"""
from __future__ import annotations

from typing import Any

import torch


class StorageRecord:
    """The record of storage that is its array alone: nothing kept, the array restored as it is."""

    def of(self, x: torch.Tensor) -> dict[str, Any]:
        """What storage `x` carries beyond its array, as JSON."""
        return {}

    def restore(self, x: torch.Tensor, record: dict[str, Any]) -> torch.Tensor:
        """Storage from a cache's array and what `of` recorded."""
        return x
