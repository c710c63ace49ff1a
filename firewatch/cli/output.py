"""How commands write the result documents they print (``--json FILE``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(path: Path | None, doc: Any, *, ensure_ascii: bool = True) -> None:
    """Write ``doc`` as indented JSON to ``path`` (its directory made if missing); nothing
    when ``path`` is None (the option was not given)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=ensure_ascii) + "\n")
