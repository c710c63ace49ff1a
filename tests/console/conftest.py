"""Console fixtures: a real headless chromium (Debian's, driven by Playwright), the real API
as a uvicorn server on a free port over this test's seeded database, people who log in, and
for the end-to-end tests the pipeline (Mosquitto, ingest, analytics, alerting) on threads.

* ``browser`` (this package): chromium at :data:`CHROMIUM` (``scripts/bootstrap.sh`` installs it
  as root; Playwright's own browser downloads are not used: no network for them).
* ``console``: the API server with the console; its ``url``.
* ``people``: a factory making a person with a password (:data:`PASSWORD`).
* ``seat``: a factory of logged-in pages, each in its own browser context (its own cookies:
  one operator's seat); ``viewport`` for the phone pages.
* ``pipeline``: ingest, analytics and alerting on threads over ``mqtt_settings``.

Waiting is Playwright's ``expect(...)`` (it retries until its timeout), never a sleep.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from firewatch.alerting.service import AlertingService
from firewatch.analytics.service import AnalyticsService
from firewatch.api.server import ApiServer
from firewatch.core.passwords import hash_password
from firewatch.core.people import Role
from firewatch.core.settings import Settings
from firewatch.storage import people as store
from tests.api.conftest import TEST_OPTIONS
from tests.helpers import ThreadedIngest, ThreadedService

CHROMIUM = os.environ.get("FIREWATCH_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct horse battery"
WALL: ViewportSize = {"width": 1920, "height": 1080}
PHONE: ViewportSize = {"width": 390, "height": 844}
#: Longest wait for something to show in the page (the CI machine is shared and slow).
UI_TIMEOUT_MS = 20_000
expect.set_options(timeout=UI_TIMEOUT_MS)


# Package scope, not session: Playwright's sync API keeps an event loop marked running on
# this thread while it lives, and the async tests elsewhere (anyio) could not start their
# own. It ends when the last test of tests/console has run.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    path = shutil.which(CHROMIUM) or CHROMIUM
    if not os.path.exists(path):
        pytest.fail(
            f"no chromium at {CHROMIUM}: `apt-get install chromium` (scripts/bootstrap.sh does "
            "it as root) or set FIREWATCH_CHROMIUM"
        )
    # --no-sandbox: chromium's sandbox refuses to run as root (CI runs as root).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    b = playwright.chromium.launch(executable_path=path, headless=True, args=args)
    yield b
    b.close()


@pytest.fixture
def console(settings: Settings, db: psycopg.Connection[Any]) -> Iterator[ApiServer]:
    """The API (and the console) on a free loopback port. Chromium treats
    http://127.0.0.1 as a secure origin, so the production cookies (Secure) work."""
    assert settings.database_url
    with ApiServer(settings, settings.database_url, options=TEST_OPTIONS) as server:
        yield server


MakePerson = Callable[..., str]


@pytest.fixture
def people(db: psycopg.Connection[Any]) -> MakePerson:
    """``people("li.wei", Role.OPERATOR, unit_id=...)``: a person with :data:`PASSWORD`;
    returns the username."""
    hashed = hash_password(PASSWORD)  # argon2 costs ~0.1 s: once per test

    def make(username: str, role: Role, **scope: Any) -> str:
        store.add_person(
            db,
            username=username,
            role=role,
            actor="test",
            display_name=scope.pop("display_name", username),
            password_hash=hashed,
            **scope,
        )
        return username

    return make


@dataclass
class Seat:
    """One person's browser: its own context (cookies), one page."""

    context: BrowserContext
    page: Page


OpenSeat = Callable[..., Seat]


@pytest.fixture
def seat(browser: Browser, console: ApiServer) -> Iterator[OpenSeat]:
    """``seat("li.wei")``: a page logged in as that person (through ``POST /auth/login`` in
    its own context) at the console's home; ``seat()``: at the login page. Any uncaught
    script error in a seat's page fails the test."""
    with ExitStack() as stack:

        def open_seat(
            username: str | None = None,
            *,
            viewport: ViewportSize | None = None,
            lang: str | None = None,
            path: str = "/console/",
        ) -> Seat:
            context = browser.new_context(
                base_url=console.url,
                viewport=viewport or WALL,
                locale="zh-CN",
            )
            stack.callback(context.close)
            context.set_default_timeout(UI_TIMEOUT_MS)
            if lang is not None:
                context.add_init_script(f"localStorage.setItem('firewatch.lang', '{lang}')")
            if username is not None:
                r = context.request.post(
                    "/auth/login", data={"username": username, "password": PASSWORD}
                )
                assert r.status == 200, r.text()
            page = context.new_page()
            page.on("pageerror", lambda err: errors.append(f"{username}: {err}"))
            page.goto(path)
            return Seat(context, page)

        errors: list[str] = []
        yield open_seat
        # A script error in the console fails the test that caused it, whatever it checked.
        assert errors == [], f"uncaught errors in the console: {errors}"


@pytest.fixture
def pipeline(db: psycopg.Connection[Any], mqtt_settings: Settings) -> Iterator[Settings]:
    """Ingest, analytics and alerting on threads: a panel's fire event published to the
    broker becomes an alert on the stream. Yields the settings (with the broker URL)."""
    conninfo = mqtt_settings.database_url
    assert conninfo
    with (
        ThreadedIngest(mqtt_settings),
        ThreadedService(AnalyticsService(mqtt_settings, conninfo), "analytics"),
        ThreadedService(AlertingService(mqtt_settings, conninfo), "alerting"),
    ):
        yield mqtt_settings
