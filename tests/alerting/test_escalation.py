"""Escalation that ends at a person (firewatch/alerting/escalation.py) on a real PostgreSQL
with a mocked clock (only the clock): an unacknowledged critical alert walks the built-in
ladder — on-duty operators by e-mail, the shift leader by e-mail, the unit's responsible
person by SMS, then by a call, the supervisor's webhook — and stops at the last level;
acknowledging stops it; the roster decides who is on duty; a level that can reach nobody
is recorded and the next one follows at once; the per-unit rate limit holds notifications
back as suppressed rows; a policy file drives the running service; a bad one stops the
command with one line."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from firewatch.alerting.dispatcher import OutboxDispatcher
from firewatch.alerting.escalation import escalate, escalate_due
from firewatch.alerting.service import AlertingService
from firewatch.cli import main
from firewatch.core.alerts import Alert, AlertAction
from firewatch.core.domain import Severity
from firewatch.core.escalation import load_policy
from firewatch.core.people import Role
from firewatch.core.settings import Settings
from firewatch.storage import people
from firewatch.storage import roster as duty_roster
from firewatch.storage.alerts import apply_action, get_alert, raise_alert
from firewatch.storage.escalations import escalations_of
from tests.builders import city
from tests.helpers import FakeClock, ThreadedService, scalar

T0 = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)
UNIT, OTHER_UNIT = city.UNIT, "U-WD-002"
RESPONSIBLE_PHONE = "13800000001"  # U-WD-001's responsible person, 张伟 (the demo city)
LOG = "firewatch.alerting.escalation"


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def staff(
    db: psycopg.Connection[Any],
    username: str,
    role: Role = Role.OPERATOR,
    *,
    email: str | None = "",
    phone: str | None = None,
    shift: tuple[datetime, datetime] | None = (T0 - timedelta(hours=1), T0 + timedelta(hours=11)),
) -> None:
    """A person with contact fields (e-mail ``<username>@example.org`` unless given) and a
    shift (default: covering the tests' first eleven hours)."""
    people.add_person(db, username=username, role=role, actor="admin1")
    address = f"{username}@example.org" if email == "" else email
    duty_roster.set_contact(
        db,
        username,
        email=address,
        phone=phone,
        set_email=True,
        set_phone=True,
        actor="admin1",
    )
    if shift is not None:
        duty_roster.add_shift(db, username, *shift, actor="admin1")


_devices = iter(range(1, 10_000))


def alarm(
    db: psycopg.Connection[Any],
    severity: Severity = Severity.CRITICAL,
    *,
    unit: str = UNIT,
    at: datetime = T0,
) -> Alert:
    alert, created = raise_alert(
        db,
        type="fire_alarm",
        severity=severity,
        unit_id=unit,
        device_id=f"D-ESC-{next(_devices):04d}",
        seen_at=at,
        explanation="fire alarm in zone 3",
    )
    assert created
    return alert


def rows(db: psycopg.Connection[Any], alert_id: int) -> list[dict[str, Any]]:
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, channel, recipient, payload, status, last_error FROM outbox"
            " WHERE alert_id = %s ORDER BY id",
            (alert_id,),
        ).fetchall()


def sent_to(db: psycopg.Connection[Any], alert_id: int) -> list[tuple[str, str, str]]:
    """(channel, recipient's address or role, status) of the alert's notifications."""
    return [
        (r["channel"], r["recipient"].get("to") or r["recipient"].get("role"), r["status"])
        for r in rows(db, alert_id)
    ]


def notes(db: psycopg.Connection[Any], alert_id: int) -> list[str]:
    got = db.execute(
        "SELECT note FROM alert_transitions WHERE alert_id = %s AND action = 'escalate'"
        " ORDER BY id",
        (alert_id,),
    ).fetchall()
    return [str(r[0]) for r in got]


def level(db: psycopg.Connection[Any], alert_id: int) -> int:
    return get_alert(db, alert_id).escalation_level


# --- the ladder ----------------------------------------------------------------------------
def test_an_unacknowledged_critical_alert_walks_every_level_and_stops_at_the_last(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    staff(db, "li.wei")
    staff(db, "wang.fang")
    staff(db, "chen.jie", Role.SHIFT_LEADER)
    alert = alarm(db)
    wait = settings.alert_ack_timeout_s["critical"]
    steps = [
        [("email", "li.wei@example.org", "pending"), ("email", "wang.fang@example.org", "pending")],
        [("email", "chen.jie@example.org", "pending")],
        [("sms", RESPONSIBLE_PHONE, "pending")],
        [("voice", RESPONSIBLE_PHONE, "pending")],
        [("supervisor", "supervisor", "pending")],
    ]
    expected: list[tuple[str, str, str]] = []
    for n, new in enumerate(steps, start=1):
        due = T0 + s(n * wait)
        assert escalate_due(db, settings, now=due - s(1)) == []  # a second early: nothing
        assert level(db, alert.id) == n - 1
        assert escalate_due(db, settings, now=due) == [alert.id]
        assert level(db, alert.id) == n
        expected += new
        assert sent_to(db, alert.id) == expected
    # the end of the ladder: however long nobody acknowledges, nothing more
    assert escalate_due(db, settings, now=T0 + timedelta(days=3)) == []
    up = get_alert(db, alert.id)
    assert (up.state, up.severity, up.escalation_level) == ("open", "critical", 5)
    assert len(rows(db, alert.id)) == 6
    reached = escalations_of(db, alert.id)
    assert [(r["level"], r["audience"], r["channel"], r["outcome"]) for r in reached] == [
        (1, "on_duty_operators", "email", "notified"),
        (2, "on_duty_shift_leaders", "email", "notified"),
        (3, "unit_contact", "sms", "notified"),
        (4, "unit_contact", "voice", "notified"),
        (5, "supervisor", "webhook", "notified"),
    ]
    assert [r["notified"] for r in reached] == [2, 1, 1, 1, 0]  # the webhook is no person
    assert notes(db, alert.id) == [
        "not acknowledged in time: level 1 of 5, on-duty operators by email: "
        "notified li.wei, wang.fang",
        "not acknowledged in time: level 2 of 5, shift leader by email: notified chen.jie",
        "not acknowledged in time: level 3 of 5, unit's responsible person by sms: "
        f"notified unit:{UNIT}:responsible",
        "not acknowledged in time: level 4 of 5, unit's responsible person by voice: "
        f"notified unit:{UNIT}:responsible",
        "not acknowledged in time: level 5 of 5, supervisor by webhook: notified",
    ]


def test_what_a_person_notification_says(db: psycopg.Connection[Any], settings: Settings) -> None:
    staff(db, "li.wei")
    alert = alarm(db)
    escalate_due(db, settings, now=T0 + s(185))
    (row,) = rows(db, alert.id)
    assert row["recipient"] == {
        "to": "li.wei@example.org",
        "name": "li.wei",
        "key": "li.wei",
        "role": "operator",
        "audience": "on_duty_operators",
        "level": 1,
    }
    payload = row["payload"]
    assert payload["subject"] == (
        "[Firewatch] CRITICAL fire alarm at 许昌万达广场 (U-WD-001): not acknowledged"
    )
    assert payload["text"] == (
        f"Firewatch alert #{alert.id}: critical fire alarm at 许昌万达广场 (U-WD-001), device "
        f"{alert.device_id}: fire alarm in zone 3. Not acknowledged for 3 min (escalation "
        "level 1 of 5: on-duty operators)."
    )
    assert payload["alert"]["escalation_level"] == 1
    assert payload["escalation"] == {
        "level": 1,
        "of": 5,
        "name": "on-duty operators",
        "audience": "on_duty_operators",
        "channel": "email",
    }


def test_acknowledging_stops_the_escalation(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    staff(db, "li.wei")
    alert = alarm(db)
    assert escalate_due(db, settings, now=T0 + s(60)) == [alert.id]
    apply_action(db, alert.id, AlertAction.ACKNOWLEDGE, actor="li.wei", now=T0 + s(70))
    for later in (s(120), s(600), timedelta(days=1)):
        assert escalate_due(db, settings, now=T0 + later) == []
    assert level(db, alert.id) == 1
    assert len(rows(db, alert.id)) == 1


def test_the_extra_cap_stops_the_ladder_earlier(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    capped = settings.model_copy(update={"alert_max_escalation_level": 2})
    staff(db, "li.wei")
    staff(db, "chen.jie", Role.SHIFT_LEADER)
    alert = alarm(db)
    for n in range(1, 10):
        escalate_due(db, capped, now=T0 + s(60 * n))
    assert level(db, alert.id) == 2
    assert [ch for ch, _, _ in sent_to(db, alert.id)] == ["email", "email"]


# --- the roster ----------------------------------------------------------------------------
def test_the_roster_picks_the_on_duty_operators(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    staff(db, "li.wei")  # on duty, reachable
    staff(db, "wang.fang", shift=(T0 - timedelta(hours=9), T0 - timedelta(hours=1)))  # off
    staff(db, "zhao.lei")  # on shift, but deactivated
    people.set_active(db, "zhao.lei", False, actor="admin1")
    staff(db, "zhou.jing", email=None)  # on duty without an e-mail address
    staff(db, "chen.jie", Role.SHIFT_LEADER)  # on duty, but not an operator
    staff(db, "sun.li", shift=None)  # never rostered
    alert = alarm(db)
    escalate_due(db, settings, now=T0 + s(60))
    assert sent_to(db, alert.id) == [("email", "li.wei@example.org", "pending")]
    (first,) = escalations_of(db, alert.id)
    assert first["detail"] == {
        "notified": [{"key": "li.wei", "name": "li.wei", "role": "operator"}],
        "suppressed": [],
        "unreachable": [{"key": "zhou.jing", "name": "zhou.jing", "role": "operator"}],
    }
    assert notes(db, alert.id) == [
        "not acknowledged in time: level 1 of 5, on-duty operators by email: notified "
        "li.wei; no e-mail address: zhou.jing"
    ]


def test_nobody_on_duty_skips_to_the_next_level_at_once_and_says_so(
    db: psycopg.Connection[Any], settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    staff(db, "wang.fang", shift=(T0 + timedelta(hours=8), T0 + timedelta(hours=16)))  # later
    staff(db, "zhou.jing", Role.SHIFT_LEADER, email=None)  # on duty, no e-mail address
    alert = alarm(db)
    with caplog.at_level(logging.INFO, logger=LOG):
        assert escalate_due(db, settings, now=T0 + s(60)) == [alert.id]
    assert level(db, alert.id) == 3  # the operators' and the leader's levels passed at once
    assert sent_to(db, alert.id) == [("sms", RESPONSIBLE_PHONE, "pending")]
    assert [r["outcome"] for r in escalations_of(db, alert.id)] == [
        "skipped",
        "skipped",
        "notified",
    ]
    said = notes(db, alert.id)
    assert said[:2] == [
        "not acknowledged in time: level 1 of 5, on-duty operators by email: nobody on duty; "
        "next level at once",
        "not acknowledged in time: level 2 of 5, shift leader by email: nobody on duty has an "
        "e-mail address: zhou.jing; next level at once",
    ]
    logged = [r.getMessage() for r in caplog.records if r.name == LOG]
    assert logged == [f"alert {alert.id}: {note}" for note in said]  # nobody silently skipped
    assert [r.levelname for r in caplog.records if r.name == LOG] == ["WARNING", "WARNING", "INFO"]
    # the next level waits its own time from this escalation
    assert escalate_due(db, settings, now=T0 + s(119)) == []
    assert escalate_due(db, settings, now=T0 + s(120)) == [alert.id]
    assert sent_to(db, alert.id)[-1] == ("voice", RESPONSIBLE_PHONE, "pending")


def test_with_nobody_at_all_the_supervisor_is_next(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    db.execute("UPDATE units SET contacts = '{}' WHERE id = %s", (UNIT,))
    alert = alarm(db)
    assert escalate_due(db, settings, now=T0 + s(60)) == [alert.id]
    assert level(db, alert.id) == 5
    assert sent_to(db, alert.id) == [("supervisor", "supervisor", "pending")]
    assert notes(db, alert.id)[2] == (
        "not acknowledged in time: level 3 of 5, unit's responsible person by sms: the unit "
        "has no responsible person on record; next level at once"
    )


def test_a_ladder_that_reaches_nobody_ends_recorded(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    """Low alerts end with the shift leader: with nobody on duty both levels are skipped,
    recorded, and the escalation is over."""
    alert = alarm(db, Severity.LOW)
    assert escalate_due(db, settings, now=T0 + s(3600)) == [alert.id]
    assert level(db, alert.id) == 2
    assert rows(db, alert.id) == []
    assert notes(db, alert.id)[-1].endswith("nobody on duty; it was the last level")
    assert escalate_due(db, settings, now=T0 + timedelta(days=2)) == []


# --- the rate limit ------------------------------------------------------------------------
def test_the_per_unit_rate_limit_suppresses_and_records(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    limited = settings.model_copy(
        update={"escalation_rate_limit": 3, "escalation_rate_window_s": 600.0}
    )
    for name in ("a.op", "b.op", "c.op", "d.op"):
        staff(db, name)
    staff(db, "chen.jie", Role.SHIFT_LEADER)
    first, second = alarm(db), alarm(db)
    elsewhere = alarm(db, unit=OTHER_UNIT)
    policy = load_policy(None, limited.alert_ack_timeout_s)
    reached = escalate(db, limited, policy, now=T0 + s(60))
    assert [(r.alert_id, r.plan.outcome) for r in reached] == [
        (first.id, "notified"),
        (second.id, "rate_limited"),
        (elsewhere.id, "notified"),  # another unit: a budget of its own
    ]
    assert [st for _, _, st in sent_to(db, first.id)] == ["pending"] * 3 + ["suppressed"]
    assert [st for _, _, st in sent_to(db, second.id)] == ["suppressed"] * 4
    assert [st for _, _, st in sent_to(db, elsewhere.id)] == ["pending"] * 3 + ["suppressed"]
    held = rows(db, second.id)[0]
    assert held["last_error"] == "rate limited: 3 person notifications per 600 s for unit U-WD-001"
    assert held["recipient"]["to"] == "a.op@example.org"  # what would have been sent is kept
    assert notes(db, second.id) == [
        "not acknowledged in time: level 1 of 5, on-duty operators by email: rate limited (3 "
        "person notifications per 600 s for unit U-WD-001): a.op, b.op, c.op, d.op not notified"
    ]
    (counted,) = escalations_of(db, first.id)
    assert (counted["notified"], counted["suppressed"]) == (3, 1)

    # within the window the unit's budget stays spent, after it the next level goes out
    assert escalate_due(db, limited, now=T0 + s(120)) == [first.id, second.id, elsewhere.id]
    assert sent_to(db, first.id)[-1] == ("email", "chen.jie@example.org", "suppressed")
    assert sent_to(db, elsewhere.id)[-1] == ("email", "chen.jie@example.org", "suppressed")
    for a in (first, second, elsewhere):  # seen: out of the way
        apply_action(db, a.id, AlertAction.ACKNOWLEDGE, actor="a.op", now=T0 + s(130))
    late = alarm(db, at=T0 + s(600))
    assert escalate_due(db, limited, now=T0 + s(661)) == [late.id]  # 601 s after the first
    assert sent_to(db, late.id)[:3] == [
        ("email", f"{n}.op@example.org", "pending") for n in ("a", "b", "c")
    ]

    # counted: the dispatcher's gauge reads the suppressed rows, per channel
    with OutboxDispatcher(limited, str(limited.database_url)) as dispatcher:
        dispatcher.pending()
        gauge = dispatcher.metrics.registry.get_sample_value(
            "firewatch_outbox_suppressed", {"channel": "email"}
        )
    assert gauge == scalar(db, "SELECT count(*) FROM outbox WHERE status = 'suppressed'") == 10


# --- the running service -------------------------------------------------------------------
POLICY_FILE = """
high = []
medium = []
low = []

[[critical]]
name = "the operators"
audience = "on_duty_operators"
channel = "email"
after_s = 30

[[critical]]
name = "the supervisor"
audience = "supervisor"
channel = "webhook"
after_s = 90
"""


def test_a_policy_file_drives_the_running_service(
    db: psycopg.Connection[Any], settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "escalation.toml"
    path.write_text(POLICY_FILE, "utf-8")
    configured = settings.model_copy(update={"escalation_policy_file": path})
    staff(db, "li.wei", shift=(T0 - timedelta(hours=1), T0 + timedelta(days=6)))
    clock = FakeClock(T0.timestamp())
    alert = alarm(db)
    high = alarm(db, Severity.HIGH)  # no ladder in this file: never escalates
    assert configured.database_url
    svc = AlertingService(configured, configured.database_url, clock=clock)
    assert svc.policy.source == str(path)
    with ThreadedService(svc, "alerting") as w:
        clock.now += 30
        w.wait(lambda: level(db, alert.id) == 1, 10, "level 1: the operators")
        assert sent_to(db, alert.id) == [("email", "li.wei@example.org", "pending")]
        clock.now += 90
        w.wait(lambda: level(db, alert.id) == 2, 10, "level 2: the supervisor")
        # a day later: the ladder has ended; a fresh alert escalating proves a tick ran
        clock.now += 86_400
        fresh = alarm(db, at=datetime.fromtimestamp(clock.now - 31, UTC))
        w.wait(lambda: level(db, fresh.id) == 1, 10, "a tick a day later")
        assert level(db, alert.id) == 2
        assert level(db, high.id) == 0
        stats = w.stop()
    assert stats.escalated == 3
    assert "3 escalation levels (0 skipped, 0 notifications rate limited)" in stats.summary()


def test_a_bad_policy_file_stops_the_command_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "escalation.toml"
    path.write_text(POLICY_FILE.replace('"webhook"', '"pigeon"'), "utf-8")
    monkeypatch.setenv("FIREWATCH_ESCALATION_POLICY_FILE", str(path))
    monkeypatch.setenv("FIREWATCH_DATA_DIR", str(tmp_path / "nowhere"))
    assert main(["alerting"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"firewatch: FIREWATCH_ESCALATION_POLICY_FILE: escalation policy {path}: critical "
        "level 2: channel 'pigeon' is not one of email, sms, voice, webhook"
    )
    assert not (tmp_path / "nowhere").exists()  # refused before anything started
