"""How commands write what they report: result documents (``--json FILE``) and the report
of a CSV import (a line per row, the counts)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from firewatch.core.csv_import import RowResult, summarize


def write_json(path: Path | None, doc: Any, *, ensure_ascii: bool = True) -> None:
    """Write ``doc`` as indented JSON to ``path`` (its directory made if missing); nothing
    when ``path`` is None (the option was not given)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=ensure_ascii) + "\n")


def print_import_report(
    path: Path, results: Sequence[RowResult], *, dry_run: bool, as_json: bool
) -> int:
    """Print an import's report: a line per row and the counts, or (``as_json``) one JSON
    document; the exit code: 1 if a row was rejected (the other rows were written), else 0."""
    counts = summarize(results)
    if as_json:
        doc = {
            "file": str(path),
            "dry_run": dry_run,
            "summary": counts,
            "rows": [r.to_json() for r in results],
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        for r in results:
            detail = r.reason or (", ".join(r.changed) if r.changed else "")
            print(f"line {r.line:>5}  {r.id or '-':<20} {r.outcome:<9} {detail}".rstrip())
        what = ", ".join(f"{n} {k}" for k, n in counts.items())
        print(f"dry run, nothing written: {what}" if dry_run else what)
    return 1 if counts["rejected"] else 0
