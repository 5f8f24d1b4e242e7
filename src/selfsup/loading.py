"""Datasets by URI (`digits`, `fashion-mnist`, `folder:PATH`, `npy:PATH?labels=Y.npy`, ...), with every built-in
data source registered: the modalities register their sources in `data.sources` when they are imported, and
this module imports them, so `data` itself stays below the modalities."""
from __future__ import annotations

from .modalities import modalities as builtin_modalities  # noqa: F401 -- importing registers their sources
from .data import Dataset, parse_uri, sources
from .errors import ConfigError, DataError, SelfSupError


def load_dataset(uri: str, data_dir: str | None = None, modality: str | None = None,
                 memory_budget: int | None = None) -> Dataset:
    """Load a dataset by URI; raises DataError/ConfigError with a one-line message on bad input. `memory_budget`
    (bytes) bounds what a source of encoded samples decodes into memory; beyond it, training streams the data."""
    req = parse_uri(uri, data_dir, modality, memory_budget)
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


def source_modality(uri: str, modality: str | None = None) -> str | None:
    """The modality `uri` reads as, before reading it: `modality` when the caller chose one, else what the source
    answers from a glance at the data (sources that read several modalities declare `modality_of`), else the
    source's one declared modality; None when that is not known without reading (an unknown or unreadable source:
    the loader reports it)."""
    try:
        req = parse_uri(uri, modality=modality)
        if req.modality:
            return req.modality
        entry = sources.entry(req.scheme)
        probe = entry.extra.get("modality_of")
        return probe(req) if probe is not None else entry.extra.get("modality")
    except (SelfSupError, OSError, ValueError):
        return None
