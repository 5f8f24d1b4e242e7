"""Reading YAML written by people (configs, option values): one-line errors that say where and what."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import DataError


def yaml_error_line(exc: Exception) -> str:
    """A YAML (or decoding) error in one line: where and what, without the excerpt PyYAML prints."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def read_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """Parse a YAML file; one-line DataError naming the file (and the line) for anything unreadable."""
    p = Path(path)
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{p}: no such {what}") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read {what} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise DataError(f"{p}: not a {what} (not UTF-8 text)") from None
    except yaml.YAMLError as exc:
        raise DataError(f"{p}: not valid YAML ({yaml_error_line(exc)})") from None
