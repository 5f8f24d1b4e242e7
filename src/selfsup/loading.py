"""Datasets by URI (`digits`, `fashion-mnist`, `folder:PATH`, `npy:PATH?labels=Y.npy`, ...), with every built-in
data source registered: the modalities register their sources in `data.sources` when they are imported, and
this module imports them, so `data` itself stays below the modalities."""
from __future__ import annotations

from .modalities import modalities as builtin_modalities  # noqa: F401 -- importing registers their sources
from .data import Dataset, parse_uri, sources
from .errors import ConfigError, DataError, SelfSupError


def load_dataset(uri: str, data_dir: str | None = None, modality: str | None = None) -> Dataset:
    """Load a dataset by URI; raises DataError/ConfigError with a one-line message on bad input."""
    req = parse_uri(uri, data_dir, modality)
    if req.scheme not in sources:
        known = ", ".join(e.name for e in sources)
        raise ConfigError(f"--data {uri!r}: unknown source {req.scheme!r}; known: {known}")
    try:  # the boundary where data meets third-party readers: their errors name the source
        return sources.get(req.scheme)(req)
    except SelfSupError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError, RuntimeError, UnicodeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise DataError(f"--data {uri}: cannot read it ({type(exc).__name__}: {first})") from None
