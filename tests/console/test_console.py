"""The console in a real browser (headless chromium) against the real API: logging in, in
Chinese first with an English switch; a fire alarm published over MQTT reaching the queue
without a reload; one seat claiming it while another sees the claim; confirming the fire
(the database's state and the command center's outbox row); a unit's manager seeing only
its own alerts; and the field pages on a phone."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
from playwright.sync_api import expect

from firewatch.core.domain import Severity
from firewatch.core.people import Role
from firewatch.core.settings import Settings
from tests.builders import city
from tests.builders.alerts import new_alert
from tests.builders.payloads import panel_event
from tests.console.conftest import PHONE, MakePerson, OpenSeat
from tests.helpers import publish_all, scalar

pytestmark = pytest.mark.browser

OTHER_UNIT = "U-WD-002"  # the seeded city's hospital


def test_logging_in_shows_chinese_first_and_english_on_request(
    seat: OpenSeat, people: MakePerson
) -> None:
    people("li.wei", Role.OPERATOR, display_name="李伟")
    page = seat().page
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", name="登录")).to_be_visible()
    page.get_by_label("用户名").fill("li.wei")
    page.get_by_label("密码").fill("not the password")
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("alert")).to_contain_text("用户名或密码错误")

    page.get_by_label("密码").fill("correct horse battery")
    page.get_by_role("button", name="登录").click()
    # an operator lands on the queue, with the center's navigation
    expect(page.get_by_role("heading", name="警情队列")).to_be_visible()
    nav = page.locator("#nav")
    expect(nav.get_by_role("link")).to_have_text(["警情队列", "一张图", "设备状态"])
    expect(page.locator("#who")).to_contain_text("李伟")
    expect(page.locator("#live")).to_contain_text("实时")

    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Alert queue")).to_be_visible()
    expect(nav.get_by_role("link")).to_have_text(["Alert queue", "Map", "Device health"])
    # the choice is remembered across a reload
    page.reload()
    expect(page.get_by_role("heading", name="Alert queue")).to_be_visible()
    page.get_by_role("button", name="中文").click()
    expect(page.get_by_role("heading", name="警情队列")).to_be_visible()

    page.get_by_role("button", name="退出").click()
    expect(page.get_by_role("heading", name="登录")).to_be_visible()


def test_a_fire_over_mqtt_is_claimed_by_one_seat_seen_by_another_and_confirmed(
    db: psycopg.Connection[Any],
    seat: OpenSeat,
    people: MakePerson,
    pipeline: Settings,
) -> None:
    people("li.wei", Role.OPERATOR)
    people("wang.fang", Role.OPERATOR)
    a = seat("li.wei").page
    b = seat("wang.fang").page
    for page in (a, b):
        expect(page.locator("#live")).to_contain_text("实时")
        expect(page.locator("#queue-list")).to_contain_text("当前没有未处理的警情")

    assert pipeline.mqtt_url
    publish_all(pipeline.mqtt_url, [(city.topic(city.PANEL, "event"), panel_event(1, 0b11))])

    # both seats see the fire arrive, without a reload
    row_a = a.locator(".alert-row", has_text="火警")
    row_b = b.locator(".alert-row", has_text="火警")
    expect(row_a).to_have_count(1, timeout=60_000)
    expect(row_b).to_have_count(1, timeout=60_000)
    expect(row_a).to_contain_text("许昌万达广场")
    expect(row_a).to_have_attribute("data-state", "open")
    alert_id = int(scalar(db, "SELECT id FROM alerts WHERE type = 'fire_alarm'"))

    # seat A claims it; seat B sees who holds it, live, and cannot claim it
    row_a.get_by_role("button", name="认领").click()
    expect(row_a).to_contain_text("我正在处理")
    expect(row_b).to_contain_text("li.wei 处理中")
    expect(row_b.get_by_role("button", name="认领")).to_have_count(0)
    assert scalar(db, "SELECT claimed_by FROM alerts WHERE id = %s", alert_id) == "li.wei"

    # B opens it: the actions stay closed to a seat that does not hold it
    row_b.click()
    expect(b.locator(".detail .claim-bar")).to_contain_text("li.wei 处理中")
    expect(b.locator("button[data-action=confirm_fire]")).to_be_disabled()

    # A confirms the fire with a note
    row_a.click()
    detail = a.locator(".detail")
    expect(detail).to_have_attribute("data-alert-id", str(alert_id))
    detail.get_by_label("备注").fill("已电话联系消控室，确认起火")
    detail.locator("button[data-action=confirm_fire]").click()
    expect(row_a).to_have_attribute("data-state", "confirmed_fire")
    expect(row_b).to_have_attribute("data-state", "confirmed_fire")
    expect(detail.locator(".history")).to_contain_text("已电话联系消控室，确认起火")

    assert scalar(db, "SELECT state FROM alerts WHERE id = %s", alert_id) == "confirmed_fire"
    actor, note = db.execute(
        "SELECT actor, note FROM alert_transitions WHERE alert_id = %s AND action = 'confirm_fire'",
        (alert_id,),
    ).fetchone() or (None, None)
    assert (actor, note) == ("li.wei", "已电话联系消控室，确认起火")
    assert scalar(db, "SELECT count(*) FROM outbox WHERE alert_id = %s", alert_id) >= 1


def test_a_unit_manager_sees_only_its_own_units_alerts(
    db: psycopg.Connection[Any], seat: OpenSeat, people: MakePerson
) -> None:
    ours = new_alert(db, type_="smoke", severity=Severity.CRITICAL, seen=time.time())
    theirs = new_alert(db, unit=OTHER_UNIT, type_="smoke", seen=time.time())
    people("wd.manager", Role.UNIT, unit_id=city.UNIT)
    page = seat("wd.manager", viewport=PHONE).page
    expect(page.get_by_role("heading", name="许昌万达广场")).to_be_visible()
    cards = page.locator("#my-alerts .card")
    expect(cards).to_have_count(1)
    expect(cards).to_have_attribute("data-alert-id", str(ours.id))
    # a new alert of the other unit does not reach this page; one of its own does, live
    new_alert(db, unit=OTHER_UNIT, type_="port_overheat", seen=time.time())
    mine_too = new_alert(db, type_="fire_alarm", severity=Severity.CRITICAL, seen=time.time())
    expect(cards).to_have_count(2)
    expect(page.locator(f"#my-alerts .card[data-alert-id='{mine_too.id}']")).to_be_visible()
    expect(page.locator(f".card[data-alert-id='{theirs.id}']")).to_have_count(0)
    # the city map is not for this role: the API refuses and the page says so plainly
    page.goto("/console/#/map")
    expect(page.locator("main .error.forbidden")).to_contain_text("无权")
