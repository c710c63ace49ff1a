"""The operators' console (issue 12): a static single-page app served by the API itself.

``GET /`` redirects to ``/console/``; ``/console/`` is ``index.html``; its scripts, styles
and language tables are under ``/console/static/...``; ``/console/config.json`` gives the
script the few settings it shows (the acknowledgement timeouts its timers are coloured
against). The files live in the package (``firewatch/api/console/``), so the console needs
no build step, no CDN and no network beyond the API: it works on a monitoring center's
isolated network.

Caching: every file is served ``Cache-Control: no-cache`` with an ``ETag``, so a browser
revalidates each time and gets a cheap 304 while nothing changed. The scripts are ES
modules importing each other by plain names (no build step, so no content hashes in the
names): a long ``max-age`` could leave a browser running a mix of two versions after an
upgrade. A Content-Security-Policy keeps the page to its own origin, so no file can load
anything from elsewhere even by mistake.

None of these routes are in the OpenAPI schema: they are a client of the API, not part of
it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from firewatch import __version__
from firewatch.api.deps import Context
from firewatch.core.domain import Severity
from firewatch.core.escalation import load_policy

router = APIRouter(include_in_schema=False)

#: Where the console's files are (package data; pyproject.toml).
CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"

#: What may be served, by suffix, with its content type. Anything else is a 404: the
#: directory may hold files (a README, editor leftovers) that are not the console's.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

CACHE_CONTROL = "no-cache"

#: Only this origin: scripts, styles, fetches, the event stream, images (``data:`` for
#: none yet, but SVG icons inlined by the browser); no frames (clickjacking of the action
#: buttons).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

_HEADERS = {
    "Cache-Control": CACHE_CONTROL,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _etag(path: Path) -> str:
    """A strong validator from the file's size and modification time (as Starlette's static
    files do), without reading it."""
    st = path.stat()
    return '"' + hashlib.sha256(f"{st.st_mtime_ns}-{st.st_size}".encode()).hexdigest()[:32] + '"'


def _serve(request: Request, path: Path) -> Response:
    content_type = CONTENT_TYPES.get(path.suffix.lower())
    if content_type is None or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such console file")
    etag = _etag(path)
    headers = {**_HEADERS, "ETag": etag}
    sent = request.headers.get("if-none-match", "")
    if etag in (tag.strip() for tag in sent.split(",")):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return FileResponse(path, media_type=content_type, headers=headers)


def asset_path(name: str, base: Path = CONSOLE_DIR) -> Path | None:
    """The file under ``base`` that ``name`` (a URL path below ``/console/static/``) names,
    or None when it would leave ``base`` (``..``, an absolute path) or has a hidden part."""
    parts = [p for p in name.split("/") if p]
    if not parts or any(p.startswith(".") or "\\" in p or "\0" in p for p in parts):
        return None
    root = base.resolve()
    candidate = root.joinpath(*parts).resolve()
    if not candidate.is_relative_to(root):
        return None  # a symlink out of the directory
    return candidate


@router.get("/")
def root() -> RedirectResponse:
    """The console is what a person opening the API's address wants."""
    return RedirectResponse("/console/", status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("/console")
def console_no_slash() -> RedirectResponse:
    # Relative URLs in index.html resolve against /console/, so the slash matters.
    return RedirectResponse("/console/", status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("/console/")
def console_index(request: Request) -> Response:
    """The single page; the hash part of the URL (``#/queue``) picks the view."""
    return _serve(request, CONSOLE_DIR / "index.html")


@router.get("/console/config.json")
def console_config(ctx: Context) -> JSONResponse:
    """What the console shows from the settings: by severity, how long an alert may stay
    unacknowledged before its first escalation (level 1 of the escalation policy in force:
    ``FIREWATCH_ESCALATION_POLICY_FILE`` or the built-in one of
    ``FIREWATCH_ALERT_ACK_TIMEOUT_S``), which the queue's timers are coloured against, and
    the version (shown in the footer). Nothing secret: the page is public, its data is
    not."""
    s = ctx.settings
    policy = load_policy(s.escalation_policy_file, s.alert_ack_timeout_s)
    first = {sev: policy.level(sev, 1) for sev in Severity}
    body = {
        "ack_timeout_s": {sev.value: lvl.after_s for sev, lvl in first.items() if lvl},
        "version": __version__,
    }
    return JSONResponse(body, headers=dict(_HEADERS))


@router.get("/console/static/{name:path}")
def console_asset(request: Request, name: Annotated[str, PathParam(max_length=200)]) -> Response:
    """A script, style sheet or language table of the console."""
    path = asset_path(name)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such console file")
    return _serve(request, path)
