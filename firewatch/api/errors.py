"""Error bodies that can always be rendered and never echo large input.

FastAPI's own 422 handler puts each error's ``input`` into the response as it came, which
made three kinds of request answer 500 or echo megabytes: a 50 MB field came back whole in
the 422, a lone surrogate (``"\\ud800"``) cannot be encoded as UTF-8, and ``NaN`` (which
Python's JSON parser accepts) or non-UTF-8 bytes cannot be rendered as JSON at all.
:func:`validation_error` keeps FastAPI's shape (``{"detail": [{"type", "loc", "msg",
"input", "ctx"?}]}``) and makes every value safe: strings with unpaired surrogates
escaped (``"\\ud800"`` as the six characters ``\\ud800``), bytes decoded with escapes,
non-finite floats as text, ``input`` cut to :data:`INPUT_CHARS` characters and ``msg`` to
:data:`MSG_CHARS`, at most :data:`MAX_ERRORS` errors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

#: ``input`` of a validation error is cut to this many characters (strings, or the JSON
#: text of a list or object that is longer).
INPUT_CHARS = 200
#: ``msg`` is cut to this many characters (a validator may quote the value it refused).
MSG_CHARS = 1000
#: ``loc`` items (field names, object keys a client chose) are cut to this many.
LOC_CHARS = 100
#: At most this many errors are listed (a list of 1,000 bad items is 1,000 errors).
MAX_ERRORS = 50


def safe_text(text: str) -> str:
    """``text`` with unpaired surrogates (which UTF-8 cannot encode) as ``\\udxxx`` escapes."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def clip(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters and how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def plain(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps(..., allow_nan=False)`` can render and UTF-8
    can encode: str (surrogates escaped), bytes (decoded, invalid bytes escaped), finite
    numbers, bool, None, lists and string-keyed dicts of those; anything else through
    FastAPI's ``jsonable_encoder`` (exceptions become ``{}`` as in FastAPI's handler)."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, Mapping):
        return {safe_text(str(k)): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    try:
        encoded = jsonable_encoder(value)
    except Exception:  # an object FastAPI cannot encode: its text is enough for an error
        return safe_text(str(value))
    return plain(encoded) if encoded is not value else safe_text(str(value))


def clip_input(value: Any) -> Any:
    """The ``input`` of an error as we echo it: at most :data:`INPUT_CHARS` characters."""
    value = plain(value)
    if isinstance(value, str):
        return clip(value, INPUT_CHARS)
    if isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return value if len(text) <= INPUT_CHARS else clip(text, INPUT_CHARS)
    return value


def safe_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic/FastAPI error dicts made safe to send (see the module docstring)."""
    out: list[dict[str, Any]] = []
    for error in errors[:MAX_ERRORS]:
        item: dict[str, Any] = {}
        for key, value in error.items():
            if key == "input":
                item[key] = clip_input(value)
            elif key == "msg":
                item[key] = clip(safe_text(str(value)), MSG_CHARS)
            elif key == "loc":
                item[key] = [
                    clip(safe_text(p), LOC_CHARS) if isinstance(p, str) else plain(p) for p in value
                ]
            else:
                item[key] = plain(value)
        out.append(item)
    return out


def unprocessable(errors: Sequence[Mapping[str, Any]]) -> JSONResponse:
    """The 422 response for ``errors`` (FastAPI's shape, made safe)."""
    return JSONResponse(status_code=422, content={"detail": safe_errors(errors)})


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """The app's ``RequestValidationError`` handler."""
    assert isinstance(exc, RequestValidationError)
    return unprocessable(exc.errors())


def error_response(
    status: int, detail: str, *, retry_after: int | None = None, close: bool = False
) -> JSONResponse:
    """``{"detail": ...}`` (the API's ``ErrorOut``) with ``Retry-After`` when given, and
    ``Connection: close`` when the request's body is left unread."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if close:
        headers["Connection"] = "close"
    return JSONResponse(status_code=status, content={"detail": detail}, headers=headers)
