"""Reader for the UCR/UEA `.ts` text format (sktime/aeon), with errors that name the file and line.

Format: comment lines start with `#` or `%`; a header of `@tag value` lines (`@problemName`,
`@timeStamps`, `@missing`, `@univariate`, `@dimensions`, `@equalLength`, `@seriesLength`,
`@classLabel true L1 L2 ...` or `@targetLabel`); then `@data` and one case per line: the
dimensions separated by `:`, the values of one dimension separated by `,`, and the class label
(when `@classLabel true`) as the last `:` field. Missing values are written `?` (or `NaN`).
Timestamped series write each value as `(time,value)`; the times are ignored and the values kept
in order.

Cases of unequal length (and dimensions of unequal length inside a case) are padded at the end
with NaN, so the result is one float32 array [n_cases, n_dimensions, max_length] in which NaN
means "no observation" -- selfsup's convention for both padding and missing values.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...data import existing_file
from ...errors import DataError

_BOOL = {"true": True, "false": False}
_KNOWN_TAGS = {"problemname", "timestamps", "missing", "univariate", "dimensions", "dimension", "equallength",
               "serieslength", "classlabel", "targetlabel", "data"}
_TIMESTAMPED = re.compile(r"\(([^()]*)\)")


@dataclass
class TSFile:
    """The content of one .ts file: values [n, channels, length] (NaN = padding/missing), labels, header."""

    x: np.ndarray
    labels: np.ndarray | None
    lengths: np.ndarray  # observed length of each case (longest dimension, trailing padding excluded)
    header: dict[str, Any] = field(default_factory=dict)
    path: str = ""


def _flag(value: str, tag: str, where: str) -> bool:
    v = value.strip().lower()
    if v not in _BOOL:
        raise DataError(f"{where}: @{tag} must be true or false, got {value.strip()!r}")
    return _BOOL[v]


def _parse_dimension(text: str, where: str, dim: int, timestamped: bool) -> np.ndarray:
    """One dimension's comma-separated values ('?' = missing) as float64."""
    text = text.strip()
    if timestamped or text.startswith("("):
        pairs = _TIMESTAMPED.findall(text)
        if not pairs and text:
            raise DataError(f"{where}: dimension {dim + 1}: expected timestamped values '(time,value),...'")
        tokens = [p.rsplit(",", 1)[-1] for p in pairs]
    else:
        tokens = text.split(",") if text else []
        if tokens and tokens[-1].strip() == "":  # tolerate one trailing comma
            tokens = tokens[:-1]
    clean = ["nan" if t.strip() in ("?", "") else t for t in tokens]
    try:
        return np.array(clean, dtype=np.float64)
    except ValueError:
        for i, t in enumerate(clean):
            try:
                float(t)
            except ValueError:
                raise DataError(f"{where}: dimension {dim + 1}, value {i + 1}: cannot read {t.strip()!r} as a "
                                "number (missing values are written '?')") from None
        raise


@dataclass
class _Header:
    """What a .ts file's header lines have said so far."""

    tags: dict[str, Any] = field(default_factory=dict)
    class_labels: list[str] | None = None
    has_labels: bool = False
    regression: bool = False
    timestamped: bool = False

    def read(self, line: str, where: str) -> bool:
        """Take one header line; True when it is @data (the data follow)."""
        if not line.startswith("@"):
            raise DataError(f"{where}: expected a header line '@tag value' or '@data' before the data, "
                            f"got {line[:40]!r}")
        tag, _, value = line[1:].partition(" ")
        tag_l = tag.lower()
        if tag_l not in _KNOWN_TAGS:
            raise DataError(f"{where}: unknown header tag '@{tag}'")
        if tag_l == "data":
            return True
        if tag_l in ("timestamps", "missing", "univariate", "equallength"):
            self.tags[tag_l] = _flag(value, tag, where)
            self.timestamped = self.tags.get("timestamps", False)
        elif tag_l in ("dimensions", "dimension", "serieslength"):
            try:
                self.tags[tag_l.rstrip("s") if tag_l != "serieslength" else tag_l] = int(value.strip())
            except ValueError:
                raise DataError(f"{where}: @{tag} must be an integer, got {value.strip()!r}") from None
        elif tag_l == "classlabel":
            parts = value.split()
            if not parts:
                raise DataError(f"{where}: @classLabel needs 'true LABELS...' or 'false'")
            self.has_labels = _flag(parts[0], tag, where)
            self.class_labels = parts[1:] if self.has_labels else None
            if self.has_labels and not self.class_labels:
                raise DataError(f"{where}: @classLabel true must list the class labels")
        elif tag_l == "targetlabel":
            self.regression = _flag(value.split()[0] if value.split() else "", tag, where)
        else:
            self.tags[tag_l] = value.strip()
        return False

    def label_of(self, fields: list[str], where: str) -> tuple[list[str], str | None]:
        """The case's dimensions and its label (None when the file declares none)."""
        if not (self.has_labels or self.regression):
            return fields, None
        if len(fields) < 2:
            raise DataError(f"{where}: expected values followed by ':LABEL', found no ':'")
        label = fields[-1].strip()
        if not label:
            raise DataError(f"{where}: empty class label")
        if self.class_labels is not None and label not in self.class_labels:
            raise DataError(f"{where}: class label {label!r} is not one of those declared in @classLabel "
                            f"({' '.join(self.class_labels)})")
        return fields[:-1], label

    def check_dimensions(self, found: int, first: int | None, where: str) -> None:
        """A case's number of dimensions against the header (first case) or the first case (the others)."""
        if first is None:
            declared = self.tags.get("dimension")
            if self.tags.get("univariate") is True and found != 1:
                raise DataError(f"{where}: @univariate true but the case has {found} dimensions "
                                "(dimensions are separated by ':')")
            if declared is not None and declared != found:
                raise DataError(f"{where}: @dimensions {declared} but the case has {found} dimensions")
        elif found != first:
            raise DataError(f"{where}: expected {first} dimensions (as in the first case), found {found}")

    def check_values(self, dims: list[np.ndarray], first: list[np.ndarray] | None, where: str) -> None:
        """A parsed case's values against the header and the first case."""
        longest = max(len(d) for d in dims)
        if longest == 0:
            raise DataError(f"{where}: case has no values")
        if self.tags.get("equallength") is True and first is not None and longest != first[0].shape[0]:
            raise DataError(f"{where}: @equalLength true but this case has {longest} values "
                            f"and the first has {first[0].shape[0]}")
        if "serieslength" in self.tags and self.tags.get("equallength") is not False and \
                any(len(d) != self.tags["serieslength"] for d in dims):
            raise DataError(f"{where}: @seriesLength {self.tags['serieslength']} but a dimension has "
                            f"{min(len(d) for d in dims if len(d) != self.tags['serieslength'])} values")
        if self.tags.get("missing") is False and any(np.isnan(d).any() for d in dims):
            raise DataError(f"{where}: missing value ('?') but the header says @missing false")


def _stacked(cases: list[list[np.ndarray]], case_lines: list[int], p: Path) -> tuple[np.ndarray, np.ndarray]:
    """Cases as one NaN-padded float32 array [cases, dims, longest] and their lengths."""
    length = max(len(d) for dims in cases for d in dims)
    x = np.full((len(cases), len(cases[0]), length), np.nan, dtype=np.float32)
    lengths = np.zeros(len(cases), dtype=np.int64)
    for i, dims in enumerate(cases):
        for j, d in enumerate(dims):
            x[i, j, :len(d)] = d
        lengths[i] = max(len(d) for d in dims)
    with np.errstate(over="ignore"):
        bad = ~np.isfinite(x) & ~np.isnan(x)
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise DataError(f"{p}:{case_lines[i]}: infinite value, or one too large for float32")
    return x, lengths


def read_ts(path: str | Path) -> TSFile:
    """Parse a .ts file into a NaN-padded float32 array and string labels; DataError names file:line."""
    p = existing_file(str(path), ".ts file")
    try:
        lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror})") from None
    header = _Header()
    in_data = False
    cases: list[list[np.ndarray]] = []
    case_lines: list[int] = []
    labels: list[str] = []
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        where = f"{p}:{lineno}"
        if not line or line.startswith("#") or line.startswith("%"):
            continue
        if not in_data:
            in_data = header.read(line, where)
            continue
        if line.startswith("@"):
            raise DataError(f"{where}: header tag {line.split()[0]!r} after @data")
        fields, label = header.label_of(line.split(":"), where)
        header.check_dimensions(len(fields), len(cases[0]) if cases else None, where)
        dims = [_parse_dimension(f, where, i, header.timestamped) for i, f in enumerate(fields)]
        header.check_values(dims, cases[0] if cases else None, where)
        cases.append(dims)
        case_lines.append(lineno)
        if label is not None:
            labels.append(label)
    if not in_data:
        raise DataError(f"{p}: no @data line (not a .ts file?)")
    if not cases:
        raise DataError(f"{p}: no cases after @data")
    x, lengths = _stacked(cases, case_lines, p)
    tags = {**header.tags, "class_labels": header.class_labels, "regression": header.regression}
    y = np.array(labels) if labels else None
    return TSFile(x, y, lengths, tags, str(p))
