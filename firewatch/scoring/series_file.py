"""``timestamp,value`` CSV files for ``firewatch analytics score``: reading (with errors
that name the line) and writing the scores."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


class SeriesFileError(ValueError):
    """An input file that cannot be read as a ``timestamp,value`` series."""


_MISSING = frozenset({"", "nan", "na", "n/a", "null", "none", "-"})


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch from a number (taken as is), ISO 8601 or
    ``YYYY-MM-DD HH:MM:SS`` (naive times are taken as UTC)."""
    s = text.strip()
    try:
        f = float(s)
    except ValueError:
        pass
    else:
        if math.isfinite(f):
            return f
        raise ValueError(f"timestamp {text!r} is not finite")
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"cannot parse timestamp {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def to_seconds(t: datetime | float | None) -> float | None:
    """Seconds since the epoch of a datetime (naive = UTC) or a number (taken as is);
    ``None`` for ``None`` or a non-finite number."""
    if t is None:
        return None
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return t.timestamp()
    f = float(t)
    return f if math.isfinite(f) else None


def _parse_value(text: str) -> float | None:
    s = text.strip()
    if s.lower() in _MISSING:
        return None
    try:
        f = float(s)
    except ValueError:
        raise ValueError(f"cannot parse value {text!r}") from None
    return f if math.isfinite(f) else None


@dataclass(frozen=True, slots=True)
class SeriesRows:
    """A ``timestamp,value`` file: original text and parsed form, in file order."""

    timestamp_text: list[str]
    value_text: list[str]
    times: list[float]
    values: list[float | None]


def read_series_csv(path: Path) -> SeriesRows:
    """Read a CSV with ``timestamp`` and ``value`` columns (case-insensitive, any order,
    other columns ignored). Raises :class:`SeriesFileError` naming the offending line."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header: list[str] | None = None
            ti = vi = 0
            rows = SeriesRows([], [], [], [])
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                line = reader.line_num
                if header is None:
                    header = [c.strip().lower() for c in row]
                    if "timestamp" not in header or "value" not in header:
                        raise SeriesFileError(
                            f"{path}: line {line}: expected a header with 'timestamp' and "
                            f"'value' columns, got {row!r}"
                        )
                    ti, vi = header.index("timestamp"), header.index("value")
                    continue
                if len(row) <= max(ti, vi):
                    raise SeriesFileError(
                        f"{path}: line {line}: expected {len(header)} fields, got {len(row)}"
                    )
                try:
                    t = parse_timestamp(row[ti])
                    v = _parse_value(row[vi])
                except ValueError as err:
                    raise SeriesFileError(f"{path}: line {line}: {err}") from None
                rows.timestamp_text.append(row[ti])
                rows.value_text.append(row[vi])
                rows.times.append(t)
                rows.values.append(v)
    except csv.Error as err:
        raise SeriesFileError(f"{path}: line {reader.line_num}: {err}") from None
    except UnicodeDecodeError as err:
        raise SeriesFileError(f"{path}: not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise SeriesFileError(f"{path}: {err.strerror or err}") from None
    if header is None:
        raise SeriesFileError(f"{path}: line 1: empty file, expected a 'timestamp,value' header")
    return rows


def write_scores_csv(
    path: Path, rows: SeriesRows, scores: Sequence[float], flags: Sequence[int]
) -> None:
    """Write ``timestamp,value,anomaly_score,is_anomaly`` (original text, input order, scores
    with six decimals). Raises :class:`SeriesFileError` when the file cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["timestamp", "value", "anomaly_score", "is_anomaly"])
            for ts, vs, s, f in zip(
                rows.timestamp_text, rows.value_text, scores, flags, strict=True
            ):
                w.writerow([ts, vs, f"{s:.6f}", f])
    except OSError as err:
        raise SeriesFileError(f"{path}: {err.strerror or err}") from None
