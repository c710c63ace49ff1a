"""The risk worker on a real database and an injected clock: everything scored at start and
on schedule, unchanged scores not kept again, significant events rescored at once, warnings
on a rise with their notifications, and the history and breakdown a supervisor reads."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from firewatch.core.alerts import AlertAction
from firewatch.core.credit import CreditStatus
from firewatch.core.settings import Settings
from firewatch.risk.service import RiskService
from firewatch.storage.alerts import apply_action
from firewatch.storage.credit import change_credit
from tests.builders import city
from tests.builders.alerts import new_alert
from tests.helpers import FakeClock, ThreadedService, scalar

UNITS = 8  # in the demo city


def fast(settings: Settings) -> Settings:
    """Event checks every 50 ms of the injected clock, so the worker's real sleeps are short
    too (it sleeps until its next check by that clock)."""
    return settings.model_copy(update={"risk_event_check_s": 0.05})


def kept(db: psycopg.Connection[Any], unit: str | None = None) -> int:
    if unit is None:
        return int(scalar(db, "SELECT count(*) FROM risk_scores"))
    return int(scalar(db, "SELECT count(*) FROM risk_scores WHERE unit_id = %s", unit))


def level(db: psycopg.Connection[Any], unit: str) -> str:
    return str(scalar(db, "SELECT level FROM risk_current WHERE unit_id = %s", unit))


def test_every_unit_is_scored_at_start_and_on_schedule_keeping_only_news(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    clock = FakeClock(time.time())
    settings = fast(settings)
    assert settings.database_url
    svc = RiskService(settings, settings.database_url, clock=clock)
    with ThreadedService(svc, "risk") as t:
        t.wait(lambda: kept(db) == UNITS, 20, "every unit scored at start")
        assert int(scalar(db, "SELECT count(*) FROM risk_current")) == UNITS
        row = db.execute(
            "SELECT score, breakdown, config_version, trigger FROM risk_scores LIMIT 1"
        ).fetchone()
        assert row is not None
        score, breakdown, version, trigger = row
        assert trigger == "schedule"
        assert version == svc.config.version
        assert abs(sum(c["points"] for c in breakdown) - score) < 0.011

        clock.now += settings.risk_interval_s  # nothing changed: scored, not kept
        t.wait(lambda: svc.stats.runs == 2, 20, "the second scheduled run")
        assert svc.stats.scored == 2 * UNITS
        assert kept(db) == UNITS

        clock.now += settings.risk_keep_every_s  # a day on: kept again, once per unit
        t.wait(lambda: kept(db) == 2 * UNITS, 20, "a daily point in the history")
    stats = t.stop()
    assert stats.runs >= 3


def test_a_blacklisting_is_rescored_at_once_and_raises_one_warning(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    clock = FakeClock(time.time())
    settings = fast(settings)
    assert settings.database_url
    svc = RiskService(settings, settings.database_url, clock=clock)
    with ThreadedService(svc, "risk") as t:
        t.wait(lambda: kept(db) == UNITS, 20, "every unit scored at start")
        before = level(db, city.UNIT)
        assert before != "red"
        warnings_before = int(scalar(db, "SELECT count(*) FROM risk_warnings"))
        clock.now += 1
        change_credit(
            db,
            city.UNIT,
            CreditStatus.BLACKLISTED,
            rule="manual",
            reason="false self-declaration",
            actor="supervisor-li",
            at=datetime.fromtimestamp(clock.now, UTC),
        )
        clock.now += settings.risk_event_check_s
        t.wait(lambda: level(db, city.UNIT) == "red", 20, "the blacklisted unit red")
        t.wait(lambda: svc.stats.event_runs >= 1, 20, "the event run counted")
    t.stop()
    newest = db.execute(
        "SELECT trigger, forced_by FROM risk_scores WHERE unit_id = %s ORDER BY id DESC LIMIT 1",
        (city.UNIT,),
    ).fetchone()
    assert newest is not None
    assert newest[0] == "event:credit_blacklisted"
    assert "blacklisted" in newest[1]
    warned = db.execute(
        "SELECT from_level, to_level FROM risk_warnings WHERE id > 0 ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert warned == (before, "red")
    assert int(scalar(db, "SELECT count(*) FROM risk_warnings")) == warnings_before + 1
    channels = [
        r[0]
        for r in db.execute(
            "SELECT channel FROM outbox WHERE payload->>'kind' = 'risk_warning'"
            " AND payload->>'unit_id' = %s AND payload->>'to_level' = 'red'",
            (city.UNIT,),
        ).fetchall()
    ]
    assert sorted(channels) == ["notify", "supervisor"]
    # only the blacklisted unit was rescored by the event
    assert kept(db, "U-WD-002") == 1


def test_a_confirmed_fire_forces_red_without_waiting_for_the_rollups(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    clock = FakeClock(time.time())
    settings = fast(settings)
    assert settings.database_url
    svc = RiskService(settings, settings.database_url, clock=clock)
    with ThreadedService(svc, "risk") as t:
        t.wait(lambda: kept(db) == UNITS, 20, "every unit scored at start")
        clock.now += 1
        alert = new_alert(db, type_="fire_alarm", unit="U-JA-001", seen=clock.now)
        apply_action(db, alert.id, AlertAction.CONFIRM_FIRE, actor="op-wang", now=clock.now)
        clock.now += 1  # the alert change wakes the worker; the check runs by its clock
        t.wait(lambda: level(db, "U-JA-001") == "red", 20, "the unit red after the fire")
    t.stop()
    forced = scalar(
        db,
        "SELECT forced_by FROM risk_scores WHERE unit_id = 'U-JA-001' ORDER BY id DESC LIMIT 1",
    )
    assert forced == ["confirmed_fire"]
