"""Every role's pages in the browser: each page its navigation offers loads without an error
(the console and the API agree on paths, shapes and permissions), a page the role may not
use says so plainly, a shift leader takes over another seat's alert, and the field pages
(an inspector's day, a unit manager's page) fit a phone's 390x844 screen."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Page, expect

from firewatch.core.domain import Severity
from firewatch.core.people import Role
from firewatch.core.settings import Settings
from firewatch.storage.alert_claims import claim
from firewatch.storage.inspectors import add_inspector
from firewatch.storage.people import set_active
from firewatch.supervision.inspections import InspectionReport, record_inspection
from tests.builders import city
from tests.builders.alerts import new_alert
from tests.console.conftest import PHONE, MakePerson, OpenSeat

pytestmark = pytest.mark.browser

#: What each role's navigation offers (firewatch/api/console/js/roles.js), in order.
NAV = {
    Role.OPERATOR: ["queue", "map", "devices"],
    Role.SHIFT_LEADER: ["queue", "map", "devices"],
    Role.ADMIN: ["queue", "map", "devices", "risk", "supervision"],
    Role.SUPERVISOR: ["map", "risk", "supervision"],
    Role.INSPECTOR: ["myday"],
    Role.UNIT: ["mine"],
    Role.VENDOR: ["devices"],
}
SCOPE: dict[Role, dict[str, str]] = {
    Role.UNIT: {"unit_id": city.UNIT},
    Role.VENDOR: {"vendor": "acme"},
}


def fits_the_width(page: Page) -> bool:
    """No horizontal scrolling: nothing wider than the viewport."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def no_errors(page: Page) -> None:
    expect(page.locator(".loading")).to_have_count(0)
    expect(page.locator("main .error")).to_have_count(0)


@pytest.mark.parametrize("role", list(NAV), ids=[r.value for r in NAV])
def test_every_page_a_role_is_offered_loads_without_an_error(
    db: psycopg.Connection[Any], seat: OpenSeat, people: MakePerson, role: Role
) -> None:
    new_alert(db, type_="fire_alarm", severity=Severity.CRITICAL, seen=time.time())
    people("someone", role, **SCOPE.get(role, {}))
    page = seat("someone").page
    nav = page.locator("#nav a")
    expect(nav).to_have_count(len(NAV[role]))
    assert [nav.nth(i).get_attribute("data-view") for i in range(len(NAV[role]))] == NAV[role]
    for view in NAV[role]:
        page.locator(f"#nav a[data-view={view}]").click()
        expect(page.locator("body")).to_have_attribute("data-view", view)
        no_errors(page)
    if role in (Role.SUPERVISOR, Role.ADMIN):
        for tab in ("inspections", "hazards", "credit"):
            page.goto(f"/console/#/supervision/{tab}")
            no_errors(page)
    # the unit card opens for everyone who may read the unit
    if role not in (Role.VENDOR, Role.INSPECTOR):
        page.goto(f"/console/#/unit/{city.UNIT}")
        expect(page.locator(".unit-card h2")).to_contain_text("许昌万达广场")
        expect(page.locator(".unit-card .chart-box, .unit-card .unit-charts p")).not_to_have_count(
            0
        )
        no_errors(page)


def test_a_page_the_role_may_not_use_says_so(seat: OpenSeat, people: MakePerson) -> None:
    people("acme.rep", Role.VENDOR, vendor="acme")
    page = seat("acme.rep", lang="en").page
    expect(page.locator("body")).to_have_attribute("data-view", "devices")
    page.goto("/console/#/risk")
    expect(page.locator("main .error.forbidden").first).to_contain_text(
        "Not allowed for your role (Vendor)"
    )
    # the queue lives on the alert stream, which a vendor does not get: the page says so too
    page.goto("/console/#/queue")
    expect(page.locator("main .error.forbidden")).to_contain_text("Not allowed for your role")


def test_a_shift_leader_takes_over_an_alert_another_seat_holds(
    db: psycopg.Connection[Any], seat: OpenSeat, people: MakePerson
) -> None:
    alert = new_alert(db, type_="smoke", severity=Severity.CRITICAL, seen=time.time())
    people("li.wei", Role.OPERATOR)
    people("zhao.lead", Role.SHIFT_LEADER)
    claim(db, alert.id, actor="li.wei")
    page = seat("zhao.lead", path=f"/console/#/queue/{alert.id}").page
    bar = page.locator(".detail .claim-bar")
    expect(bar).to_contain_text("li.wei 处理中")
    bar.get_by_role("button", name="接管").click()
    expect(bar).to_contain_text("我正在处理")
    expect(page.locator("button[data-action=acknowledge]")).to_be_enabled()
    expect(page.locator(".detail .history")).to_contain_text("接管")
    assert db.execute("SELECT claimed_by FROM alerts WHERE id = %s", (alert.id,)).fetchone() == (
        "zhao.lead",
    )


def test_an_inspectors_day_on_a_phone(
    db: psycopg.Connection[Any], settings: Settings, seat: OpenSeat, people: MakePerson
) -> None:
    add_inspector(db, code="zhou.min", name="周敏")
    add_inspector(db, code="wu.gang", name="吴刚")
    today = datetime.now(UTC) - timedelta(hours=1)
    hazard = {"category": "fire_exits", "severity": "major", "description": "安全出口上锁"}
    mine = InspectionReport.model_validate(
        {"unit": city.UNIT, "inspected_at": today.isoformat(), "inspectors": ["zhou.min"],
         "hazards": [hazard]}
    )  # fmt: skip
    other = InspectionReport.model_validate(
        {"unit": "U-WD-002", "inspected_at": today.isoformat(), "inspectors": ["wu.gang"]}
    )
    record_inspection(db, settings, mine, actor="zhou.min")
    record_inspection(db, settings, other, actor="wu.gang")
    people("zhou.min", Role.INSPECTOR)
    page = seat("zhou.min", viewport=PHONE).page
    expect(page.get_by_role("heading", name="今日检查")).to_be_visible()
    cards = page.locator(".cards .card")
    expect(cards).to_have_count(1)
    expect(cards).to_contain_text("许昌万达广场")
    expect(cards).to_contain_text("疏散通道和安全出口")
    no_errors(page)
    assert fits_the_width(page)
    # the unit card from there is readable on the phone too
    cards.get_by_role("link", name="许昌万达广场").click()
    expect(page.locator(".unit-card h2")).to_contain_text("许昌万达广场")
    no_errors(page)
    assert fits_the_width(page)


def test_a_unit_managers_page_on_a_phone(
    db: psycopg.Connection[Any], settings: Settings, seat: OpenSeat, people: MakePerson
) -> None:
    add_inspector(db, code="zhou.min", name="周敏")
    report = InspectionReport.model_validate(
        {
            "unit": city.UNIT,
            "inspected_at": (datetime.now(UTC) - timedelta(days=40)).isoformat(),
            "inspectors": ["zhou.min"],
            "hazards": [
                {"category": "electrical", "severity": "general", "description": "私拉电线"}
            ],
        }
    )
    record_inspection(db, settings, report, actor="zhou.min")
    new_alert(db, type_="smoke", severity=Severity.CRITICAL, seen=time.time())
    people("wd.manager", Role.UNIT, unit_id=city.UNIT)
    page = seat("wd.manager", viewport=PHONE).page
    expect(page.locator("#my-alerts .card")).to_have_count(1)
    hazard = page.locator("[data-hazard-id]")
    expect(hazard).to_have_count(1)
    expect(hazard).to_contain_text("私拉电线")
    expect(hazard).to_contain_text("已逾期")  # 15 days for a general hazard, 40 days ago
    no_errors(page)
    assert fits_the_width(page)


def test_an_ended_session_brings_back_the_login(
    db: psycopg.Connection[Any], seat: OpenSeat, people: MakePerson
) -> None:
    new_alert(db, type_="smoke", severity=Severity.CRITICAL, seen=time.time())
    people("li.wei", Role.OPERATOR)
    page = seat("li.wei").page
    row = page.locator(".alert-row")
    expect(row).to_have_count(1)
    set_active(db, "li.wei", False, actor="test")  # ends the person's sessions
    row.get_by_role("button", name="认领").click()
    expect(page.get_by_role("heading", name="登录")).to_be_visible()
    expect(page.locator(".login .error")).to_contain_text("会话已结束")
    expect(page.locator("#live")).to_be_hidden()
