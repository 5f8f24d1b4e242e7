"""Epoch hooks: work done at every epoch end (monitoring), with state a checkpoint keeps, declared here."""
from __future__ import annotations

from typing import Any

import torch

from ..methods.base import Method


class EpochHook:
    """Called at every epoch end; returns metrics merged into that epoch's record in metrics.jsonl.

    A hook with state (the monitor's best-RankMe encoder) returns it from `state` as JSON plus tensors and takes
    it back in `load_state`; a hook that keeps another encoder than the last offers it in `selected_encoder`.
    """

    def __call__(self, epoch: int, method: Method) -> dict[str, Any]:
        raise NotImplementedError

    def state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        return {}, {}

    def load_state(self, doc: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """Restore what `state` returned."""

    def selected_encoder(self) -> tuple[dict[str, torch.Tensor], str] | None:
        """Encoder weights to keep instead of the last ones, and why (None: keep the last)."""
        return None
