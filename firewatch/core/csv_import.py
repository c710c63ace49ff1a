"""What every registry CSV import shares (units: ``unit_import``; devices:
``device_import``): the file's encoding, its header, and reading it row by row into valid
rows and rejected ones with the reason (pure: no database).

A file is UTF-8 (with or without a byte-order mark: Excel's "CSV UTF-8"), comma-separated,
with a header row whose names are case-insensitive and in any order. A problem with the
file itself raises :class:`ImportFileError` and nothing is read; a problem with one row
makes it a :class:`Rejected` and the other rows go on.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

T = TypeVar("T")


class ImportFileError(ValueError):
    """The file cannot be imported at all (encoding, header); nothing was read."""


@dataclass(frozen=True)
class Rejected:
    """A row that was not imported, and why (one line a person can act on)."""

    line: int
    id: str
    reason: str


Outcome = Literal["created", "updated", "unchanged", "rejected"]


@dataclass(frozen=True)
class RowResult:
    """What became of one row of an import (a unit's or a device's, by ``id``)."""

    line: int
    id: str
    outcome: Outcome
    reason: str = ""  # why it was rejected
    changed: list[str] = field(default_factory=list)  # what an update changed

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "id": self.id, "outcome": self.outcome}
        if self.reason:
            out["reason"] = self.reason
        if self.changed:
            out["changed"] = self.changed
        return out


def summarize(results: Sequence[RowResult]) -> dict[str, int]:
    """How many rows had each outcome."""
    out = {"created": 0, "updated": 0, "unchanged": 0, "rejected": 0}
    for r in results:
        out[r.outcome] += 1
    return out


def decode(data: bytes) -> str:
    """The file's text: UTF-8, with or without a byte-order mark."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ImportFileError(
            f"not UTF-8 (byte {err.start}): save the file as 'CSV UTF-8' (Excel) or convert "
            "it, e.g. iconv -f GBK -t UTF-8"
        ) from None


def check_header(
    names: Sequence[str] | None,
    required: Sequence[str],
    optional: Sequence[str],
    pairs: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """The header's column names (stripped, lower case) if every ``required`` one is there,
    none is unknown or repeated, and the columns of each of ``pairs`` come together; else
    :class:`ImportFileError` naming the problem."""
    if not names:
        raise ImportFileError("the file is empty: expected a header row")
    header = [n.strip().lower() for n in names]
    seen: set[str] = set()
    for n in header:
        if n in seen:
            raise ImportFileError(f"column {n[:40]!r} appears twice in the header")
        seen.add(n)
    known = (*required, *optional)
    unknown = [n for n in header if n not in known]
    if unknown:
        raise ImportFileError(
            f"unknown column(s) {', '.join(repr(u[:40]) for u in unknown[:5])}; "
            f"known: {', '.join(known)}"
        )
    missing = [c for c in required if c not in seen]
    if missing:
        raise ImportFileError(f"missing column(s): {', '.join(missing)}")
    for a, b in pairs:
        if (a in seen) != (b in seen):
            raise ImportFileError(f"columns {a} and {b} go together: give both or neither")
    return header


def read_rows(
    text: str,
    *,
    required: Sequence[str],
    optional: Sequence[str],
    parse: Callable[[int, dict[str, str]], T],
    invalid: type[Exception],
    pairs: Sequence[tuple[str, str]] = (),
    max_rows: int | None = None,
    nul_is_binary: bool = False,
) -> tuple[list[T], list[Rejected], list[str]]:
    """Every row of ``text`` (a CSV file with an ``id`` column): ``parse(line, cells)`` for
    each (cells by column, stripped), a :class:`Rejected` for a row with the wrong number of
    fields, an ``id`` already on an earlier line (only an id's first row is considered) or
    a row ``parse`` refuses with ``invalid`` (its message is the reason). Blank lines are
    skipped. Returns the valid rows, the rejected ones and the header.
    :class:`ImportFileError` for a file without a usable header, one that is not CSV, one
    with more than ``max_rows`` rows, or (``nul_is_binary``: an upload may be any file) one
    holding a NUL character; without it a NUL is the row's problem (``parse`` refuses it)."""
    if nul_is_binary and "\x00" in text:
        raise ImportFileError("the file holds NUL characters: it is not a CSV text file")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = check_header(next(reader, None), required, optional, pairs)
    except csv.Error as err:
        raise ImportFileError(f"line 1: {err}") from None
    at = header.index("id")
    rows: list[T] = []
    rejected: list[Rejected] = []
    first: dict[str, int] = {}
    try:
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if max_rows is not None and len(rows) + len(rejected) >= max_rows:
                raise ImportFileError(f"more than {max_rows} rows: split the file")
            row_id = fields[at].strip()[:64] if len(fields) > at else ""
            if len(fields) != len(header):
                rejected.append(
                    Rejected(line, row_id, f"{len(fields)} fields, the header has {len(header)}")
                )
                continue
            cells = {name: value.strip() for name, value in zip(header, fields, strict=True)}
            if row_id in first:
                rejected.append(
                    Rejected(line, row_id, f"duplicate id: already on line {first[row_id]}")
                )
                continue
            if row_id:
                first[row_id] = line
            try:
                rows.append(parse(line, cells))
            except invalid as err:
                rejected.append(Rejected(line, row_id, str(err)))
    except csv.Error as err:
        raise ImportFileError(f"line {reader.line_num}: {err}") from None
    return rows, rejected, header


def limited_text(value: str, what: str, limit: int, error: type[Exception] = ValueError) -> str:
    """``value`` unless it holds a NUL character or is longer than ``limit`` (``error``
    with the reason)."""
    if "\x00" in value:
        raise error(f"{what} contains a NUL character")
    if len(value) > limit:
        raise error(f"{what} is longer than {limit} characters")
    return value
