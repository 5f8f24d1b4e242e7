"""Text storage: each item's UTF-8 bytes in a row of a uint8 [N, L] tensor, zero-padded (L: the longest item).

Storage is the text itself, not token ids, so that one stored dataset serves any tokenizer (the run's own vocabulary,
or a pretrained encoder's) and a prepared cache or a digest does not depend on the encoder. Items are validated when
they become storage: an item must hold a character other than white space, and no NUL (a sign of binary data); items
over `max_bytes` are cut at the last whole character before it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch

from ...errors import DataError

DEFAULT_MAX_BYTES = 2048


@dataclass
class TextPolicy:
    """What reading text did to it, counted (recorded in the dataset's info and the run)."""

    items: int = 0
    skipped_empty: int = 0  # empty or white-space lines left out (files only; a list's empty item is an error)
    replaced_invalid_utf8: int = 0  # items with bytes that are not UTF-8, each replaced by U+FFFD
    truncated: int = 0  # items cut at max_bytes
    max_bytes: int = DEFAULT_MAX_BYTES
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, int]:
        return {"items": self.items, "skipped_empty": self.skipped_empty,
                "replaced_invalid_utf8": self.replaced_invalid_utf8, "truncated": self.truncated,
                "max_bytes": self.max_bytes}


def cut(data: bytes, max_bytes: int) -> bytes:
    """`data` cut to at most `max_bytes` without splitting a UTF-8 character."""
    if len(data) <= max_bytes:
        return data
    end = max_bytes
    while end > 0 and (data[end] & 0xC0) == 0x80:  # a continuation byte: the character started earlier
        end -= 1
    return data[:end]


def to_storage(texts: Sequence[str], where: str, policy: TextPolicy | None = None,
               rows: Sequence[int | str] | None = None) -> torch.Tensor:
    """Strings -> uint8 [N, L] storage; a DataError naming the item (its row in `rows`) when one cannot be text."""
    policy = policy or TextPolicy()
    if len(texts) == 0:
        raise DataError(f"{where}: no text items")
    encoded = []
    for i, text in enumerate(texts):
        name = rows[i] if rows is not None else i
        if not isinstance(text, str):
            raise DataError(f"{where}: item {name} is {type(text).__name__}, not text")
        if not text.strip():
            raise DataError(f"{where}: item {name} is empty (no character other than white space)")
        data = text.encode("utf-8", errors="replace")
        if b"\x00" in data:
            raise DataError(f"{where}: item {name} holds a NUL character (binary data?)")
        short = cut(data, policy.max_bytes)
        policy.truncated += len(short) < len(data)
        encoded.append(short)
    policy.items = len(encoded)
    out = np.zeros((len(encoded), max(len(e) for e in encoded)), dtype=np.uint8)
    for i, e in enumerate(encoded):
        out[i, :len(e)] = np.frombuffer(e, dtype=np.uint8)
    return torch.from_numpy(out)


def from_storage(x: torch.Tensor) -> list[str]:
    """uint8 [B, L] storage rows -> the strings."""
    arr = x.detach().cpu().numpy()
    return [row.tobytes().rstrip(b"\x00").decode("utf-8", errors="replace") for row in arr]


def read_lines(data: bytes, where: str, policy: TextPolicy) -> tuple[list[str], list[int]]:
    """A text file's non-empty lines (and their 1-based line numbers); invalid UTF-8 replaced, both counted."""
    nul = data.find(b"\x00", 0, 1 << 16)
    if nul >= 0:
        raise DataError(f"{where}: not a text file (a NUL byte at offset {nul}); text: reads UTF-8 text, one item a "
                        "line")
    texts, numbers = [], []
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = raw.decode("utf-8", errors="replace")
            policy.replaced_invalid_utf8 += 1
        if not line.strip():
            policy.skipped_empty += 1
            continue
        texts.append(line.strip())
        numbers.append(number)
    if not texts:
        raise DataError(f"{where}: no text (every line is empty)")
    return texts, numbers


def cell_strings(values: Iterable[object]) -> list[str]:
    """Cells of a column as strings; a missing cell is an empty item (left out and counted by the reader)."""
    return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else v if isinstance(v, str) else str(v)
            for v in values]
