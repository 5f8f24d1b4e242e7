"""User-facing errors: one clear line that names the file, row or argument at fault."""
from __future__ import annotations


class SelfSupError(Exception):
    """An error caused by the user's input or environment; the CLI prints it as one line, no traceback."""


class DataError(SelfSupError):
    """Unreadable or malformed input data (names the file, row or argument)."""


class ConfigError(SelfSupError):
    """An invalid option or combination of options."""


class TrainingError(SelfSupError):
    """Training cannot go on (non-finite loss, ...)."""


class ExportError(SelfSupError):
    """An encoder cannot be exported faithfully (an unsupported operation, or outputs that differ from PyTorch)."""
