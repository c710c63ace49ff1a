"""A duty check (查岗) from the unit card in a real browser: an operator presses the button of
a GB/T panel and sees the check queued, then its outcome once the gateway has recorded it; a
supervisor sees the record without the button (routes/duty_checks.py, js/duty_checks.js)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from playwright.sync_api import expect

from firewatch.core.people import Role
from firewatch.storage import devices as registry
from firewatch.storage import gateway
from tests.builders import city
from tests.console.conftest import MakePerson, OpenSeat
from tests.helpers import scalar

pytestmark = pytest.mark.browser


def test_an_operator_asks_a_panel_for_a_duty_check_and_sees_its_outcome(
    db: psycopg.Connection[Any], seat: OpenSeat, people: MakePerson
) -> None:
    registry.update_device(db, city.PANEL, actor="root", as_vendor=None, gbt_address="00a1b2c3d4e5")
    people("li.wei", Role.OPERATOR)
    page = seat("li.wei", path=f"/console/#/unit/{city.UNIT}").page
    box = page.locator(f".duty-checks[data-device-id='{city.PANEL}']")
    expect(box).to_contain_text("暂无查岗记录")
    # only the GB/T panel has the box: the unit's water sensors and shed have none
    expect(page.locator(".duty-checks")).to_have_count(1)

    box.get_by_role("button", name="查岗").click()
    row = box.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("li.wei")
    expect(row).to_contain_text("等待下发")
    expect(page.locator("#banner")).to_contain_text(f"已向 {city.PANEL} 发起查岗")
    check = int(scalar(db, "SELECT id FROM duty_checks WHERE requested_by = 'li.wei'"))
    assert [p.id for p in gateway.pending_duty_checks(db)] == [check]

    # the gateway sends it and the on-duty person answers: the card shows it when read again
    now = datetime.now(UTC)
    gateway.mark_duty_check(db, check, sent_at=now, answered_at=now, outcome="answered")
    page.reload()
    expect(box.locator("tbody tr")).to_contain_text("已应答")


def test_a_supervisor_sees_the_duty_checks_but_cannot_ask(
    db: psycopg.Connection[Any], seat: OpenSeat, people: MakePerson
) -> None:
    registry.update_device(db, city.PANEL, actor="root", as_vendor=None, gbt_address="00a1b2c3d4e5")
    gateway.request_duty_check(db, city.PANEL, "schedule")
    people("zhao.jun", Role.SUPERVISOR)
    page = seat("zhao.jun", path=f"/console/#/unit/{city.UNIT}", lang="en").page
    box = page.locator(f".duty-checks[data-device-id='{city.PANEL}']")
    expect(box.locator("tbody tr")).to_contain_text("Schedule")
    expect(box.locator("tbody tr")).to_contain_text("Waiting to be sent")
    expect(box.get_by_role("button")).to_have_count(0)
