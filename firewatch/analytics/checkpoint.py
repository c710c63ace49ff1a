"""Detector state to bytes and back, without pickle.

The engine's state is a tree of dicts and lists whose leaves are numbers, strings, None
or numpy arrays. :func:`pack` stores the arrays in an ``.npz`` archive (
``allow_pickle=False`` on load) and the rest of the tree as JSON inside the same archive,
so a checkpoint read from the database can never execute code.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

#: Bumped when the layout changes incompatibly; :func:`unpack` refuses other versions.
STATE_FORMAT = 1
_TREE = "__tree__"


class CheckpointError(Exception):
    """A checkpoint could not be read (corrupt, or written by an incompatible version)."""


def pack(state: Any) -> bytes:
    """Serialise a state tree (see the module docstring). Raises ``TypeError`` for a leaf
    that is neither JSON-able nor a numpy array."""
    arrays: dict[str, np.ndarray[Any, Any]] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, np.ndarray):
            name = f"a{len(arrays)}"
            arrays[name] = node
            return {"__nd__": name}
        if isinstance(node, dict):
            return {str(k): walk(v) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [walk(v) for v in node]
        if isinstance(node, np.generic):
            return node.item()
        if node is None or isinstance(node, str | int | float | bool):
            return node
        raise TypeError(f"cannot checkpoint a {type(node).__name__}")

    tree = json.dumps({"format": STATE_FORMAT, "state": walk(state)}, allow_nan=True)
    buf = io.BytesIO()
    arrays[_TREE] = np.frombuffer(tree.encode(), np.uint8)
    # uncompressed: PostgreSQL compresses a large bytea itself (TOAST), and zlib here cost
    # tens of milliseconds per checkpoint inside the transaction that holds the feeds back
    np.savez(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def unpack(data: bytes) -> Any:
    """The state tree of :func:`pack`. Raises :class:`CheckpointError` if unreadable."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            doc = json.loads(bytes(z[_TREE]).decode())
            arrays = {k: z[k] for k in z.files if k != _TREE}
    except Exception as err:  # corrupt data: EOFError, BadZipFile, zlib.error, TypeError …
        raise CheckpointError(f"unreadable checkpoint: {err}") from err
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise CheckpointError(f"checkpoint format {found} is not {STATE_FORMAT} (this release)")

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"__nd__"}:
                return arrays[node["__nd__"]]
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(doc["state"])
