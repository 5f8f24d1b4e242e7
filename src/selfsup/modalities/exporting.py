"""What exporting a modality's encoder needs to know of its inputs: synthetic storage to trace and check the encoder
on, and the prepared input in words for the export's manifest.

A modality declares one `ExportInputs` (`Modality.export_inputs`); export.py asks it, and only it. The default
makes no examples (an encoder of such a modality cannot be exported) and describes nothing.
"""
from __future__ import annotations

from typing import Any

import torch


class ExportInputs:
    """The export inputs of a modality that makes none: every answer None."""

    def example(self, spec: dict[str, Any], n: int, generator: torch.Generator) -> torch.Tensor | None:
        """`n` synthetic storage rows consistent with `spec` that reach every path of an encoder (padding, missing
        values, unknown categories, ...): exporting an encoder traces and checks it on them (None: none)."""
        return None

    def described(self, spec: dict[str, Any]) -> str | None:
        """What the modality's `prepare` hands the encoder, in words: shape, dtype and normalisation (None: not
        described)."""
        return None
