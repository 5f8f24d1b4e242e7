"""Name -> factory registries, so the CLI can list methods, encoders, datasets and modalities."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered item: what it is, where it comes from, and how to build it."""

    name: str
    obj: T
    summary: str
    paper: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A named collection of factories (methods, encoders, data sources, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, summary: str, paper: str = "", **extra: Any) -> Callable[[T], T]:
        """Decorator: register `obj` under `name` with a one-line summary and its paper."""

        def deco(obj: T) -> T:
            self.add(name, obj, summary, paper, **extra)
            return obj

        return deco

    def add(self, name: str, obj: T, summary: str, paper: str = "", **extra: Any) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, obj, summary, paper, dict(extra))

    def remove(self, name: str) -> None:
        """Unregister `name` (a plug-in unloading, or a test cleaning up after itself)."""
        self.entry(name)
        del self._entries[name]

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        return sorted(self._entries)
