"""The supervision worker (firewatch/supervision/service.py) on a real database with an
injected clock: reminders before a hazard's deadline, escalation of an overdue hazard level
by level, credit entry and exit, confirmed faults becoming work orders (once), a confirmed
fire with a known hazard blacklisting its unit, and the alerting dispatcher delivering
these notifications, which carry no alert id."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.alerting.dispatcher import OutboxDispatcher
from firewatch.core.alerts import AlertAction
from firewatch.core.settings import Settings
from firewatch.core.supervision import HazardAction, HazardSource, HazardState
from firewatch.storage import hazards as hazard_store
from firewatch.storage.alerts import apply_action, raise_alert
from firewatch.storage.credit import credit_events, get_credit
from firewatch.supervision.inspections import act_on_hazard, record_inspection
from firewatch.supervision.service import SupervisionService
from tests.alerting.test_dispatcher import SECRET, Receiver
from tests.helpers import FakeClock, ThreadedService
from tests.supervision.builders import T0, inspectors
from tests.supervision.test_inspections import report

D = timedelta(days=1)


def service(settings: Settings, clock: FakeClock | None = None) -> SupervisionService:
    assert settings.database_url
    fast = settings.model_copy(update={"supervision_tick_s": 0.05})
    return SupervisionService(fast, settings.database_url, clock=clock or FakeClock(T0.timestamp()))


def hazard(
    db: psycopg.Connection[Any],
    settings: Settings,
    severity: str = "general",
    category: str = "fire_exits",
    unit: str = "U-WD-001",
) -> int:
    _, (h,) = record_inspection(
        db,
        settings,
        report(
            unit=unit,
            hazards=[{"category": category, "severity": severity, "description": "blocked"}],
        ),
        actor="I-01",
    )
    return h.id


def outbox(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT channel, payload->>'kind', (payload->>'level')::int FROM outbox ORDER BY id"
    ).fetchall()


def test_reminders_escalation_and_credit_on_the_injected_clock(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    inspectors(db)
    hid = hazard(db, settings)  # general: deadline T0 + 15 days
    svc = service(settings)

    def at(days: float) -> list[tuple[Any, ...]]:
        before = len(outbox(db))
        svc.check(db, T0 + days * D)
        return outbox(db)[before:]

    assert at(11) == []
    assert at(12.5) == [("notify", "hazard_reminder", None)]  # 3 days before
    assert at(12.6) == []  # once
    assert at(14.5) == [("notify", "hazard_reminder", None)]  # 1 day before
    assert at(15.5) == [
        ("supervisor", "hazard_escalation", 1),
        ("supervisor", "credit_changed", None),  # overdue: on the watch list
        ("notify", "credit_changed", None),
    ]
    assert get_credit(db, "U-WD-001").status.value == "watch"
    assert at(22.6) == [("notify", "hazard_escalation", 2), ("supervisor", "hazard_escalation", 2)]
    # days later: straight to the last level, and 30 days past the deadline: blacklisted
    assert at(60)[:2] == [
        ("notify", "hazard_escalation", 3),
        ("supervisor", "hazard_escalation", 3),
    ]
    assert get_credit(db, "U-WD-001").status.value == "blacklisted"
    assert at(100) == []
    h = hazard_store.get_hazard(db, hid)
    assert (h.reminders_sent, h.escalation_level) == (2, 3)
    # rectified on day 101: good again after the 90-day clean period, not before
    act_on_hazard(db, hid, HazardAction.SUBMIT, actor="unit", evidence="cleared", at=T0 + 100 * D)
    act_on_hazard(db, hid, HazardAction.VERIFY, actor="s", at=T0 + 101 * D)
    at(101 + 89)
    assert get_credit(db, "U-WD-001").status.value == "blacklisted"
    at(101 + 91)
    assert get_credit(db, "U-WD-001").status.value == "good"
    trail = [
        (e["from_status"], e["to_status"], e["rule"], e["actor"])
        for e in reversed(credit_events(db, "U-WD-001"))
    ]
    assert trail == [
        ("good", "watch", "overdue", "system"),
        ("watch", "blacklisted", "long_overdue", "system"),
        ("blacklisted", "good", "clean_period", "system"),
    ]
    assert svc.stats.reminders == 2
    assert svc.stats.escalations == 3
    assert svc.stats.credit_changes == 3


def test_a_major_hazard_blacklists_at_its_deadline(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    inspectors(db)
    hazard(db, settings, "major")
    svc = service(settings)
    svc.check(db, T0 + 29 * D)
    assert get_credit(db, "U-WD-001").status.value == "good"
    svc.check(db, T0 + 31 * D)
    credit = get_credit(db, "U-WD-001")
    assert credit.status.value == "blacklisted"
    assert "major hazard" in credit.reason


@pytest.fixture
def worker(settings: Settings) -> Iterator[tuple[ThreadedService, FakeClock]]:
    clock = FakeClock(T0.timestamp())
    with ThreadedService(service(settings, clock), "supervision") as running:
        yield running, clock


def confirm(db: psycopg.Connection[Any], device: str, type_: str, action: AlertAction) -> int:
    alert, _ = raise_alert(
        db,
        type=type_,
        severity="high",
        unit_id="U-WD-001",
        device_id=device,
        seen_at=datetime.now().timestamp(),
        explanation=f"{type_} on {device}",
    )
    apply_action(db, alert.id, action, actor="operator 7")
    return alert.id


def test_confirmed_faults_become_work_orders_once(
    db: psycopg.Connection[Any], settings: Settings, worker: tuple[ThreadedService, FakeClock]
) -> None:
    running, _ = worker
    alert_id = confirm(db, "D-WD-001-W1", "low_pressure", AlertAction.CONFIRM_FAULT)
    confirm(db, "D-WD-001-P1", "panel_fault", AlertAction.ACKNOWLEDGE)  # not a decision

    def made() -> list[Any]:
        return db.execute("SELECT alert_id, source, category, severity FROM hazards").fetchall()

    running.wait(lambda: len(made()) == 1, 20, "the fault's work order")
    assert made() == [(alert_id, "device_fault", "fire_water", "general")]
    (h,) = hazard_store.list_hazards(db, unit_id="U-WD-001")
    assert h.source is HazardSource.DEVICE_FAULT
    assert h.deadline - h.found_at == 15 * D
    # the unit's responsible and maintenance contacts get the work order, with the alert id
    rows = db.execute(
        "SELECT alert_id, recipient->>'role' FROM outbox WHERE payload->>'kind' = 'hazard_opened'"
    ).fetchall()
    assert sorted(rows) == [(alert_id, "maintenance"), (alert_id, "responsible")]
    stats = running.stop()
    assert stats.fault_hazards == 1
    # a new worker resumes from the saved cursor: nothing twice
    with ThreadedService(service(settings), "supervision again") as again:
        second = confirm(db, "D-WD-001-W2", "low_pressure", AlertAction.CONFIRM_FAULT)
        again.wait(lambda: len(made()) == 2, 20, "the second work order")
    assert sorted(r[0] for r in made()) == [alert_id, second]


def test_a_fire_with_a_known_hazard_blacklists_the_unit(
    db: psycopg.Connection[Any], settings: Settings, worker: tuple[ThreadedService, FakeClock]
) -> None:
    running, _ = worker
    inspectors(db)
    confirm(db, "D-WD-001-P1", "fire_alarm", AlertAction.CONFIRM_FIRE)  # no hazard yet
    running.wait(lambda: running.service.stats.events >= 2, 20, "the first fire")
    assert get_credit(db, "U-WD-001").status.value == "good"
    hazard(db, settings, category="ebike_charging")
    fire = confirm(db, "D-WD-001-E1", "smoke", AlertAction.CONFIRM_FIRE)
    running.wait(lambda: get_credit(db, "U-WD-001").status.value == "blacklisted", 20, "blacklist")
    (event,) = credit_events(db, "U-WD-001")
    assert (event["rule"], event["alert_id"]) == ("fire_with_hazard", fire)
    assert running.stop().fire_blacklisted == 1


def test_the_worker_ticks_on_its_clock(
    db: psycopg.Connection[Any], settings: Settings, worker: tuple[ThreadedService, FakeClock]
) -> None:
    running, clock = worker
    inspectors(db)
    hid = hazard(db, settings, "major")
    clock.now = (T0 + 31 * D).timestamp()
    running.service.wake()
    running.wait(lambda: hazard_store.get_hazard(db, hid).escalation_level == 1, 20, "escalation")
    running.wait(lambda: get_credit(db, "U-WD-001").status.value == "blacklisted", 20, "credit")
    assert hazard_store.get_hazard(db, hid).state is HazardState.OPEN


def test_history_before_the_first_start_is_not_work(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    confirm(db, "D-WD-001-W1", "low_pressure", AlertAction.CONFIRM_FAULT)
    with ThreadedService(service(settings), "supervision") as running:
        running.wait(lambda: running.service.ready.is_set(), 20, "ready")
        later = confirm(db, "D-WD-001-W2", "low_pressure", AlertAction.CONFIRM_FAULT)
        running.wait(lambda: running.service.stats.fault_hazards == 1, 20, "the new fault")
    assert db.execute("SELECT alert_id FROM hazards").fetchall() == [(later,)]


def test_the_dispatcher_delivers_supervision_notifications(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    inspectors(db)
    hazard(db, settings)
    receiver = Receiver()
    try:
        s = settings.model_copy(
            update={"webhook_secret": SECRET, "webhook_notify_url": receiver.url}
        )
        assert s.database_url
        with OutboxDispatcher(s, s.database_url, metrics_port=0) as dispatcher:
            assert dispatcher.dispatch_once() == 1
        (req,) = receiver.requests
        assert req.verified
        assert req.data["alert_id"] is None
        assert req.data["payload"]["kind"] == "hazard_opened"
        assert req.data["recipient"]["role"] == "responsible"
        assert db.execute("SELECT status FROM outbox").fetchall() == [("delivered",)]
    finally:
        receiver.close()
