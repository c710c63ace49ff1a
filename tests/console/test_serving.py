"""How the API serves the console and its own reference, without a CDN: ``/`` leads to the
console, its files come from the package with the right types and caching (no path out of
its directory), and ``/docs`` loads Swagger UI from this server alone."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from firewatch.api.app import create_app
from firewatch.api.routes.console import CONSOLE_DIR, asset_path, console_config
from firewatch.api.server import ApiServer
from firewatch.core.settings import Settings
from tests.helpers import ROOT

URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
EXTERNAL = re.compile(r"https?://", re.IGNORECASE)


@pytest.fixture
def web(console: ApiServer) -> Iterator[httpx.Client]:
    """A plain HTTP client of the running server, with nobody logged in: the console's
    files need no one. (Synchronous: Playwright's session in this directory holds the
    thread's event loop, so no test here runs one of its own.)"""
    with httpx.Client(base_url=console.url) as c:
        yield c


def test_the_root_leads_to_the_console_and_its_page_to_its_files(
    web: httpx.Client,
) -> None:
    for path in ("/", "/console"):
        r = web.get(path)
        assert r.status_code == 307
        assert r.headers["location"] == "/console/"
    page = web.get("/console/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert re.search(r'<meta charset="utf-8"\s*/?>', page.text)
    assert '<html lang="zh-CN">' in page.text
    assert page.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert not EXTERNAL.search(page.text), "the page must not name another server"
    refs = [r for r in URL.findall(page.text) if not r.startswith("#")]
    assert refs == ["static/console.css", "static/js/main.js"]
    for ref, kind in zip(refs, ("text/css", "text/javascript"), strict=True):
        r = web.get(f"/console/{ref}")
        assert r.status_code == 200
        assert r.headers["content-type"] == f"{kind}; charset=utf-8"
        assert r.headers["cache-control"] == "no-cache"


def test_every_console_file_names_no_other_server(web: httpx.Client) -> None:
    files = sorted(p for p in CONSOLE_DIR.rglob("*") if p.is_file())
    assert {p.suffix for p in files} == {".html", ".css", ".js"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        # the SVG namespace is a name, not a place anything is loaded from
        text = text.replace("http://www.w3.org/2000/svg", "")
        assert not EXTERNAL.search(text), f"{path.name} names another server"
        if path.name == "index.html":
            continue
        r = web.get(f"/console/static/{path.relative_to(CONSOLE_DIR).as_posix()}")
        assert r.status_code == 200, path
        assert r.content == path.read_bytes()


def test_an_unchanged_file_is_a_304(web: httpx.Client) -> None:
    first = web.get("/console/static/js/main.js")
    etag = first.headers["etag"]
    again = web.get("/console/static/js/main.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag


@pytest.mark.parametrize(
    "path",
    [
        "/console/static/../routes/console.py",
        "/console/static/%2e%2e/routes/console.py",
        "/console/static/..%2froutes%2fconsole.py",
        "/console/static/js/../../routes/console.py",
        "/console/static/.hidden.js",
        "/console/static/js/",
        "/console/static/js/nothing.js",
        "/console/static/console.py",
    ],
)
def test_nothing_outside_the_console_files_is_served(web: httpx.Client, path: str) -> None:
    r = web.get(path)
    assert r.status_code == 404, (path, r.text[:200])


def test_asset_paths_stay_in_their_directory(tmp_path: Path) -> None:
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "a.js").write_text("")
    (tmp_path / "js" / "out.js").symlink_to(Path(__file__))
    assert asset_path("js/a.js", tmp_path) == tmp_path / "js" / "a.js"
    assert asset_path("js/out.js", tmp_path) is None
    assert asset_path("../x.js", tmp_path) is None
    assert asset_path("/etc/passwd", tmp_path) == tmp_path / "etc" / "passwd"  # not found: 404
    assert asset_path("", tmp_path) is None


def test_the_console_config_gives_the_acknowledgement_timeouts(
    web: httpx.Client, settings: Settings
) -> None:
    r = web.get("/console/config.json")
    assert r.status_code == 200
    assert r.json()["ack_timeout_s"] == settings.alert_ack_timeout_s
    assert r.json()["version"]


def test_docs_name_no_other_server_and_their_assets_load(web: httpx.Client) -> None:
    # ReDoc is off: its page loads its vendor's logo from a CDN, whatever it is told.
    assert (web.get("/redoc")).status_code == 404
    for page in ("/docs",):
        r = web.get(page)
        assert r.status_code == 200
        assert not EXTERNAL.search(r.text), f"{page} names another server: {r.text}"
        refs = URL.findall(r.text)
        assert len(refs) >= 2, refs  # script (and style) and icon
        for ref in refs:
            asset = web.get(ref)
            assert asset.status_code == 200, ref
            assert len(asset.content) > 0
    assert "validatorUrl" in (web.get("/docs")).text  # no badge from the public validator


@pytest.mark.browser
def test_docs_render_in_a_browser_from_this_server_alone(
    browser: Browser, console: ApiServer
) -> None:
    context = browser.new_context(base_url=console.url)
    requests: list[str] = []
    failed: list[str] = []
    context.on("request", lambda req: requests.append(req.url))
    context.on("requestfailed", lambda req: failed.append(req.url))
    # Anything not for this server would have to leave the machine: refuse it, and say so.
    context.route(
        re.compile(r"^(?!" + re.escape(console.url) + r")"),
        lambda route: route.abort(),
    )
    try:
        page = context.new_page()
        page.goto("/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("Firewatch")
        expect(page.locator(".opblock-tag").first).to_be_visible()
    finally:
        context.close()
    outside = [u for u in requests if not u.startswith(console.url) and not u.startswith("data:")]
    assert outside == []
    assert failed == []


def test_the_console_config_follows_the_escalation_policy_file(
    settings: Settings, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        (ROOT / "docs" / "examples" / "escalation-policy.toml")
        .read_text("utf-8")
        .replace("after_s = 60", "after_s = 45", 1),
        "utf-8",
    )
    cfg = settings.model_copy(update={"escalation_policy_file": policy})
    # The route reads the settings only: called with the app's context, no server needed.
    app = create_app(cfg, "postgresql://unused")
    got = json.loads(bytes(console_config(app.state.ctx).body))["ack_timeout_s"]
    assert got["critical"] == 45.0  # level 1 of the file's critical ladder
    assert "low" not in got  # `low = []`: low alerts never escalate, no timer colours
