"""The alert store (firewatch/storage/alerts.py, alert_checks.py) on a real PostgreSQL:
raise with dedup (also under concurrent writers), the audited lifecycle with its outbox side
effects, escalation and the offline/patrol checks driven by an injected clock, and the read
side."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from firewatch.alerting.decide import escalation_due
from firewatch.alerting.escalation import escalate_due
from firewatch.core.alerts import (
    ACTIVE_STATES,
    TRANSITIONS,
    Alert,
    AlertAction,
    AlertState,
    IllegalTransition,
)
from firewatch.core.anomalies import Origin
from firewatch.core.domain import Severity
from firewatch.core.escalation import (
    Audience,
    EscalationLevel,
    EscalationPolicy,
    Medium,
    default_policy,
)
from firewatch.core.settings import Settings
from firewatch.storage.alert_checks import check_offline, overdue_alerts
from firewatch.storage.alerts import (
    SYSTEM,
    AlertNotFound,
    alert_detail,
    apply_action,
    escalate,
    get_alert,
    list_alerts,
    raise_alert,
)
from tests.builders.alerts import add_anomaly, anomaly
from tests.conftest import Connect
from tests.helpers import scalar

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
PANEL, WATER, UNIT = "D-WD-001-P1", "D-WD-001-W1", "U-WD-001"
RESPONSIBLE = {"name": "张伟", "phone": "13800000001"}
MAINTENANCE = {"name": "李强", "phone": "13800000002"}
A = AlertAction


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


# --- helpers ------------------------------------------------------------------------------
def fire(
    db: psycopg.Connection[Any],
    *,
    device: str = PANEL,
    type_: str = "fire_alarm",
    severity: Severity = Severity.CRITICAL,
    at: datetime = T0,
    unit: str = UNIT,
    **kw: Any,
) -> tuple[Alert, bool]:
    return raise_alert(
        db,
        type=type_,
        severity=severity,
        unit_id=unit,
        device_id=device,
        seen_at=at,
        explanation=f"{type_} on {device}",
        **kw,
    )


def audit(db: psycopg.Connection[Any], alert_id: int) -> list[dict[str, Any]]:
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT action, from_state, to_state, actor, note, at FROM alert_transitions"
            " WHERE alert_id = %s ORDER BY id",
            (alert_id,),
        ).fetchall()


def events(db: psycopg.Connection[Any], alert_id: int) -> list[str]:
    rows = db.execute(
        "SELECT event FROM alert_events WHERE alert_id = %s ORDER BY id", (alert_id,)
    ).fetchall()
    return [r[0] for r in rows]


def outbox(db: psycopg.Connection[Any], alert_id: int | None = None) -> list[dict[str, Any]]:
    with db.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT channel, recipient, payload, status FROM outbox"
            " WHERE %s::bigint IS NULL OR alert_id = %s ORDER BY id",
            (alert_id, alert_id),
        ).fetchall()


def count(db: psycopg.Connection[Any], table: str) -> int:
    return int(scalar(db, f"SELECT count(*) FROM {table}"))


def alerts_of_all(db: psycopg.Connection[Any]) -> list[Alert]:
    with db.cursor(row_factory=dict_row) as cur:
        return [Alert.of(r) for r in cur.execute("SELECT * FROM alerts ORDER BY id").fetchall()]


def alerts_of(db: psycopg.Connection[Any], device: str, type_: str) -> list[Alert]:
    with db.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM alerts WHERE device_id = %s AND type = %s ORDER BY id", (device, type_)
        ).fetchall()
    return [Alert.of(r) for r in rows]


def fire_episode(db: psycopg.Connection[Any], device: str = PANEL, unit: str = UNIT) -> int:
    """A fire alarm episode (a zone of its own) stored the real way; returns its id."""
    zone = f"zone-{count(db, 'anomalies')}"
    return add_anomaly(
        db,
        anomaly(
            device,
            T0.timestamp(),
            unit_id=unit,
            detector="rule.fire_alarm",
            kind="fire_alarm",
            metric="status",
            component=zone,
            origin=Origin.REPORTED,
            severity=Severity.CRITICAL,
            score=1.0,
            explanation="fire alarm in zone 3",
        ),
    )


def seen(db: psycopg.Connection[Any], device: str, last_rx: datetime) -> None:
    db.execute(
        "INSERT INTO device_last_seen (device_id, last_rx) VALUES (%s, %s)"
        " ON CONFLICT (device_id) DO UPDATE SET last_rx = EXCLUDED.last_rx",
        (device, last_rx),
    )


def status(db: psycopg.Connection[Any], device: str, state: str, at: datetime) -> None:
    db.execute(
        "INSERT INTO device_state (device_id, state, ts, seq, updated_at)"
        " VALUES (%s, %s, %s, 0, %s)"
        " ON CONFLICT (device_id) DO UPDATE SET state = EXCLUDED.state,"
        " updated_at = EXCLUDED.updated_at",
        (device, state, at, at),
    )


class CountingCursor(psycopg.Cursor[Any]):
    """Counts the statements sent through cursors of the connection it is installed on."""

    statements = 0

    def execute(self, *args: Any, **kwargs: Any) -> Self:
        CountingCursor.statements += 1
        return super().execute(*args, **kwargs)


def statements(db: psycopg.Connection[Any], fn: Callable[[], Any]) -> tuple[int, Any, float]:
    """(statements sent, result, seconds) of ``fn()`` on ``db``."""
    saved = db.cursor_factory
    db.cursor_factory = CountingCursor
    CountingCursor.statements = 0
    started = time.perf_counter()
    try:
        result = fn()
    finally:
        db.cursor_factory = saved
    return CountingCursor.statements, result, time.perf_counter() - started


def run_threads(n: int, target: Callable[[int], None], timeout: float = 60.0) -> None:
    """Run ``target(i)`` on ``n`` threads; re-raise the first failure."""
    errors: list[BaseException] = []

    def wrap(i: int) -> None:
        try:
            target(i)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=wrap, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "threads did not finish in time"
    if errors:
        raise errors[0]


# --- raise and dedup ----------------------------------------------------------------------
def test_raise_creates_an_open_alert_with_audit_row_and_event(
    db: psycopg.Connection[Any],
) -> None:
    alert, created = fire(db)
    assert created
    assert alert.state == "open"
    assert (alert.type, alert.category, alert.severity) == ("fire_alarm", "fire", "critical")
    assert (alert.device_id, alert.unit_id) == (PANEL, UNIT)
    assert alert.first_seen == alert.last_seen == T0
    assert alert.occurrences == 1
    assert alert.condition_active
    assert alert.escalation_level == 0
    assert alert.acknowledged_at is None
    assert audit(db, alert.id) == [
        {
            "action": "raise",
            "from_state": None,
            "to_state": "open",
            "actor": SYSTEM,
            "note": f"fire_alarm on {PANEL}",
            "at": T0,
        }
    ]
    assert events(db, alert.id) == ["created"]
    payload = scalar(db, "SELECT payload FROM alert_events WHERE alert_id = %s", alert.id)
    assert payload["event"] == "created"
    assert payload["alert"]["id"] == alert.id
    assert payload["alert"]["first_seen"] == T0.isoformat()
    assert outbox(db) == []  # a fire alarm waits for the operator's confirmation
    assert get_alert(db, alert.id) == alert


def test_repeats_count_occurrences_and_keep_the_higher_severity(
    db: psycopg.Connection[Any],
) -> None:
    first, _ = fire(db, type_="low_pressure", device=WATER, severity=Severity.HIGH)
    again, created = fire(
        db, type_="low_pressure", device=WATER, severity=Severity.CRITICAL, at=T0 + s(10)
    )
    assert not created
    assert again.id == first.id
    assert (again.occurrences, again.severity, again.last_seen) == (2, "critical", T0 + s(10))
    assert again.first_seen == T0
    lower, _ = fire(db, type_="low_pressure", device=WATER, severity=Severity.LOW, at=T0 + s(20))
    assert (lower.occurrences, lower.severity) == (3, "critical")  # never lowered
    late, _ = fire(db, type_="low_pressure", device=WATER, severity=Severity.MEDIUM, at=T0 + s(5))
    assert (late.occurrences, late.last_seen) == (4, T0 + s(20))  # last_seen never goes back
    update, created = fire(
        db, type_="low_pressure", device=WATER, severity=Severity.HIGH, at=T0 + s(30), repeat=False
    )
    assert not created
    assert update.occurrences == 4  # an update of an occurrence already counted
    assert update.last_seen == T0 + s(30)
    assert events(db, first.id) == ["created", "occurrence", "occurrence", "occurrence", "updated"]
    assert [r["action"] for r in audit(db, first.id)] == ["raise"]  # creation only
    assert count(db, "alerts") == 1


def test_a_repeat_reactivates_the_condition_and_takes_the_new_explanation(
    db: psycopg.Connection[Any],
) -> None:
    alert, _ = fire(db)
    db.execute("UPDATE alerts SET condition_active = false WHERE id = %s", (alert.id,))
    again, _ = raise_alert(
        db,
        type="fire_alarm",
        severity="critical",
        unit_id=UNIT,
        device_id=PANEL,
        seen_at=T0.timestamp() + 3,
        explanation="zone 4",
    )
    assert again.condition_active
    assert again.explanation == "zone 4"
    assert again.last_seen == T0 + s(3)  # Unix seconds are accepted too


@pytest.mark.parametrize(
    ("path", "end"),
    [
        ([A.RESOLVE], "resolved"),
        ([A.RESOLVE, A.CLOSE], "closed"),
        ([A.MARK_FALSE_ALARM], "false_alarm"),
        ([A.MARK_FALSE_ALARM, A.CLOSE], "closed"),
        ([A.CONFIRM_FAULT, A.RESOLVE], "resolved"),
    ],
)
def test_after_the_alert_ended_a_new_raise_creates_a_new_alert(
    db: psycopg.Connection[Any], path: list[AlertAction], end: str
) -> None:
    old, _ = fire(db)
    for act in path:
        apply_action(db, old.id, act, actor="op", now=T0 + s(1))
    new, created = fire(db, at=T0 + s(2))
    assert created
    assert new.id != old.id
    assert (new.state, new.occurrences, new.first_seen) == ("open", 1, T0 + s(2))
    stale = get_alert(db, old.id)
    assert stale.state == end  # the old one stays as it was
    assert end not in ACTIVE_STATES
    assert stale.occurrences == 1
    assert [a.id for a in alerts_of(db, PANEL, "fire_alarm")] == [old.id, new.id]
    assert fire(db, at=T0 + s(3))[0].id == new.id  # repeats go to the new one


def test_different_types_or_devices_are_separate_alerts(db: psycopg.Connection[Any]) -> None:
    a, c1 = fire(db)
    b, c2 = fire(db, type_="panel_fault", severity=Severity.HIGH)
    c, c3 = fire(db, device="D-WD-002-P1", unit="U-WD-002")
    assert [c1, c2, c3] == [True, True, True]
    assert len({a.id, b.id, c.id}) == 3
    assert b.category == "fault"
    assert fire(db)[0].occurrences == 2
    assert get_alert(db, b.id).occurrences == 1
    assert get_alert(db, c.id).occurrences == 1


def test_evidence_is_linked_once_per_anomaly(db: psycopg.Connection[Any]) -> None:
    n1, n2 = fire_episode(db), fire_episode(db)
    alert, _ = fire(db, anomaly_id=n1)
    fire(db, anomaly_id=n1, repeat=False)  # the same episode again: no second link
    fire(db, anomaly_id=n2)
    rows = db.execute(
        "SELECT anomaly_id FROM alert_evidence WHERE alert_id = %s ORDER BY anomaly_id",
        (alert.id,),
    ).fetchall()
    assert [r[0] for r in rows] == [n1, n2]


# --- dedup under concurrency --------------------------------------------------------------
def test_concurrent_repeats_make_one_alert_that_counts_every_raise(
    db: psycopg.Connection[Any], connect: Connect
) -> None:
    n, m = 8, 25
    conns = [connect() for _ in range(n)]
    barrier = threading.Barrier(n, timeout=30)
    created: list[bool] = []

    def raiser(i: int) -> None:
        barrier.wait()  # all at once, on a pair that has no alert yet
        for k in range(m):
            sev = [Severity.LOW, Severity.MEDIUM, Severity.HIGH][(i + k) % 3]
            _, c = fire(
                conns[i], type_="low_pressure", device=WATER, severity=sev, at=T0 + s(i * m + k)
            )
            created.append(c)

    run_threads(n, raiser)
    (alert,) = alerts_of(db, WATER, "low_pressure")
    assert alert.state == "open"
    assert alert.occurrences == n * m
    assert alert.severity == "high"
    assert alert.last_seen == T0 + s(n * m - 1)
    assert created.count(True) == 1
    assert len(created) == n * m
    evs = events(db, alert.id)
    assert evs.count("created") == 1
    assert evs.count("occurrence") == n * m - 1
    assert [r["action"] for r in audit(db, alert.id)] == ["raise"]


def test_racing_creation_on_fresh_pairs_makes_exactly_one_row(
    db: psycopg.Connection[Any], connect: Connect
) -> None:
    n, rounds = 12, 15
    conns = [connect() for _ in range(n)]
    barrier = threading.Barrier(n, timeout=30)
    created: dict[int, list[bool]] = {r: [] for r in range(rounds)}

    def raiser(i: int) -> None:
        for r in range(rounds):
            barrier.wait()  # every thread raises on the same fresh pair at the same moment
            _, c = fire(conns[i], device=f"D-RACE-{r:03d}")
            created[r].append(c)

    run_threads(n, raiser)
    for r in range(rounds):
        (alert,) = alerts_of(db, f"D-RACE-{r:03d}", "fire_alarm")
        assert alert.occurrences == n
        assert created[r].count(True) == 1
        assert [x["action"] for x in audit(db, alert.id)] == ["raise"]
    assert count(db, "alerts") == rounds


def test_raises_racing_a_resolve_are_each_counted_once(
    db: psycopg.Connection[Any], connect: Connect
) -> None:
    n, m = 6, 30
    first, _ = fire(db, type_="panel_fault", severity=Severity.HIGH)
    conns = [connect() for _ in range(n + 1)]
    barrier = threading.Barrier(n + 1, timeout=30)
    done = threading.Condition()
    raised = [0]

    def worker(i: int) -> None:
        barrier.wait()
        if i == n:  # the resolver: acts once a quarter of the raises went in
            with done:
                assert done.wait_for(lambda: raised[0] >= n * m // 4, timeout=30)
            apply_action(conns[i], first.id, A.RESOLVE, actor="op", now=T0 + s(1))
            return
        for _ in range(m):
            fire(conns[i], type_="panel_fault", severity=Severity.HIGH, at=T0 + s(2))
            with done:
                raised[0] += 1
                done.notify_all()

    run_threads(n + 1, worker)
    fire(db, type_="panel_fault", severity=Severity.HIGH, at=T0 + s(3))  # after the race
    old, new = alerts_of(db, PANEL, "panel_fault")
    assert old.id == first.id
    assert old.state == "resolved"
    assert new.state == "open"
    assert old.occurrences > n * m // 4  # the raises before the resolve went to the old one
    assert old.occurrences + new.occurrences == 1 + n * m + 1  # none lost, none twice
    assert [x["action"] for x in audit(db, old.id)] == ["raise", "resolve"]
    assert [x["action"] for x in audit(db, new.id)] == ["raise"]


# --- the lifecycle ------------------------------------------------------------------------
#: How to bring a fresh alert into each state.
PATH_TO: dict[AlertState, list[AlertAction]] = {
    AlertState.OPEN: [],
    AlertState.ACKNOWLEDGED: [A.ACKNOWLEDGE],
    AlertState.CONFIRMED_FIRE: [A.CONFIRM_FIRE],
    AlertState.CONFIRMED_FAULT: [A.CONFIRM_FAULT],
    AlertState.FALSE_ALARM: [A.MARK_FALSE_ALARM],
    AlertState.RESOLVED: [A.RESOLVE],
    AlertState.CLOSED: [A.RESOLVE, A.CLOSE],
    AlertState.MERGED: [A.MERGE],
}


def test_every_action_from_every_state_moves_or_leaves_the_alert_untouched(
    db: psycopg.Connection[Any],
) -> None:
    parent, _ = fire(db, type_="likely_real_fire", device="D-PARENT")
    at = T0 + s(100)
    for n, (state, act) in enumerate(itertools.product(AlertState, AlertAction)):
        alert, _ = fire(db, device=f"D-LIFE-{n:03d}")
        for step in PATH_TO[state]:
            apply_action(db, alert.id, step, actor="setup", now=T0 + s(1), parent_id=parent.id)
        before = get_alert(db, alert.id)
        assert before.state == state
        trail, evs, sent = audit(db, alert.id), events(db, alert.id), outbox(db, alert.id)
        sources, target = TRANSITIONS[act]
        if state not in sources:
            with pytest.raises(IllegalTransition, match=f"cannot {act.value}"):
                apply_action(db, alert.id, act, actor="ana", now=at, parent_id=parent.id)
            after = get_alert(db, alert.id)
            assert (after.state, after.updated_at) == (before.state, before.updated_at)
            assert after == before
            assert audit(db, alert.id) == trail
            assert events(db, alert.id) == evs
            assert outbox(db, alert.id) == sent
            continue
        moved = apply_action(
            db, alert.id, act, actor="ana", note=f"n{n}", now=at, parent_id=parent.id
        )
        assert moved.state == (target or state)
        assert moved == get_alert(db, alert.id)
        assert moved.updated_at > before.updated_at
        assert audit(db, alert.id) == [
            *trail,
            {
                "action": act.value,
                "from_state": state.value,
                "to_state": moved.state,
                "actor": "ana",
                "note": f"n{n}",
                "at": at,
            },
        ]
        assert events(db, alert.id) == [*evs, act.value]


def test_unknown_alert_or_action(db: psycopg.Connection[Any]) -> None:
    alert, _ = fire(db)
    with pytest.raises(AlertNotFound):
        apply_action(db, alert.id + 1000, A.ACKNOWLEDGE, actor="op")
    with pytest.raises(AlertNotFound):
        get_alert(db, alert.id + 1000)
    with pytest.raises(AlertNotFound):
        alert_detail(db, alert.id + 1000)
    with pytest.raises(ValueError, match="dance"):
        apply_action(db, alert.id, "dance", actor="op")
    assert apply_action(db, alert.id, "acknowledge", actor="op").state == "acknowledged"
    assert count(db, "alert_transitions") == 2


def test_confirm_fire_forwards_to_the_command_center_and_notifies_the_responsible(
    db: psycopg.Connection[Any],
) -> None:
    evidence = fire_episode(db)
    alert, _ = fire(db, anomaly_id=evidence)
    at = T0 + s(42)
    done = apply_action(db, alert.id, A.CONFIRM_FIRE, actor="ana", note="called the unit", now=at)
    assert done.state == "confirmed_fire"
    center, notify = outbox(db, alert.id)
    assert center["channel"] == "command_center"
    assert center["status"] == "pending"
    assert center["payload"]["alert"]["id"] == alert.id
    assert center["payload"]["alert"]["state"] == "confirmed_fire"
    assert [e["id"] for e in center["payload"]["evidence"]] == [evidence]
    assert center["payload"]["evidence"][0]["kind"] == "fire_alarm"
    assert center["payload"]["unit"] == {"id": UNIT, "name": "许昌万达广场"}
    assert (center["payload"]["actor"], center["payload"]["note"]) == ("ana", "called the unit")
    assert center["payload"]["at"] == at.isoformat()
    assert notify["channel"] == "notify"
    assert notify["recipient"] == {"role": "responsible", **RESPONSIBLE}
    assert notify["payload"]["alert"]["id"] == alert.id


def test_side_effects_are_in_the_callers_transaction(db: psycopg.Connection[Any]) -> None:
    alert, _ = fire(db)
    trail = audit(db, alert.id)
    with db.transaction(force_rollback=True):
        apply_action(db, alert.id, A.CONFIRM_FIRE, actor="ana", now=T0 + s(1))
        assert [r["channel"] for r in outbox(db, alert.id)] == ["command_center", "notify"]
    assert outbox(db) == []  # both vanished with the alert's change
    assert get_alert(db, alert.id).state == "open"
    assert audit(db, alert.id) == trail
    assert events(db, alert.id) == ["created"]


def test_confirm_fault_notifies_maintenance_and_a_false_alarm_nobody(
    db: psycopg.Connection[Any],
) -> None:
    fault, _ = fire(db, type_="panel_fault", severity=Severity.HIGH)
    apply_action(db, fault.id, A.CONFIRM_FAULT, actor="ana", now=T0 + s(1))
    (note,) = outbox(db, fault.id)
    assert note["channel"] == "notify"
    assert note["recipient"] == {"role": "maintenance", **MAINTENANCE}
    assert note["payload"]["action"] == "confirm_fault"
    false, _ = fire(db)
    apply_action(db, false.id, A.ACKNOWLEDGE, actor="ana", now=T0 + s(1))
    apply_action(db, false.id, A.MARK_FALSE_ALARM, actor="ana", now=T0 + s(2))
    apply_action(db, false.id, A.CLOSE, actor="ana", now=T0 + s(3))
    apply_action(db, fault.id, A.RESOLVE, actor="ana", now=T0 + s(4))
    apply_action(db, fault.id, A.CLOSE, actor="ana", now=T0 + s(5))
    assert outbox(db, false.id) == []
    assert len(outbox(db)) == 1


def test_notifications_follow_the_units_contacts(db: psycopg.Connection[Any]) -> None:
    manager = {"name": "钱经理", "phone": "13800000099"}
    db.execute(
        "UPDATE units SET contacts = contacts - 'maintenance' || %s WHERE id = 'U-WD-002'",
        (Jsonb({"manager": manager}),),
    )
    blaze, _ = fire(db, device="D-WD-002-P1", unit="U-WD-002")
    apply_action(db, blaze.id, A.CONFIRM_FIRE, actor="ana", now=T0 + s(1))
    sent = outbox(db, blaze.id)
    assert [r["channel"] for r in sent] == ["command_center", "notify", "notify"]
    assert [r["recipient"]["role"] for r in sent[1:]] == ["responsible", "manager"]
    assert sent[2]["recipient"] == {"role": "manager", **manager}
    fault, _ = fire(db, type_="bus_fault", device="D-WD-002-P1", unit="U-WD-002")
    apply_action(db, fault.id, A.CONFIRM_FAULT, actor="ana", now=T0 + s(1))
    (note,) = outbox(db, fault.id)  # no maintenance contact: the responsible one
    assert note["recipient"] == {"role": "maintenance", "name": "王芳", "phone": "13800000003"}


def test_lifecycle_timestamps(db: psycopg.Connection[Any]) -> None:
    acked, _ = fire(db, device="D-1")
    a1 = apply_action(db, acked.id, A.ACKNOWLEDGE, actor="op", now=T0 + s(10))
    assert a1.acknowledged_at == T0 + s(10)
    a2 = apply_action(db, acked.id, A.CONFIRM_FIRE, actor="op", now=T0 + s(20))
    assert a2.acknowledged_at == T0 + s(10)  # a later decision keeps the acknowledgement
    a3 = apply_action(db, acked.id, A.RESOLVE, actor="op", now=T0 + s(30))
    assert (a3.resolved_at, a3.closed_at) == (T0 + s(30), None)
    a4 = apply_action(db, acked.id, A.CLOSE, actor="op", now=(T0 + s(40)).timestamp())
    assert (a4.resolved_at, a4.closed_at) == (T0 + s(30), T0 + s(40))
    for n, act in enumerate([A.CONFIRM_FIRE, A.CONFIRM_FAULT, A.MARK_FALSE_ALARM]):
        decided, _ = fire(db, device=f"D-DEC-{n}")
        after = apply_action(db, decided.id, act, actor="op", now=T0 + s(5))
        assert after.acknowledged_at == T0 + s(5)  # a decision implies it was seen
    resolved, _ = fire(db, device="D-2")
    r = apply_action(db, resolved.id, A.RESOLVE, actor=SYSTEM, now=T0 + s(7))
    assert (r.acknowledged_at, r.resolved_at) == (None, T0 + s(7))
    before = datetime.now(UTC)
    untimed = apply_action(db, fire(db, device="D-3")[0].id, A.ACKNOWLEDGE, actor="op")
    assert untimed.acknowledged_at is not None
    assert untimed.acknowledged_at >= before - s(1)  # no clock given: now


def test_merge_needs_a_parent_and_frees_the_pair(db: psycopg.Connection[Any]) -> None:
    parent, _ = fire(db, type_="likely_real_fire")
    child, _ = fire(db)
    with pytest.raises(ValueError, match="parent"):
        apply_action(db, child.id, A.MERGE, actor=SYSTEM)
    assert get_alert(db, child.id) == child
    assert [r["action"] for r in audit(db, child.id)] == ["raise"]
    merged = apply_action(db, child.id, A.MERGE, actor=SYSTEM, parent_id=parent.id, now=T0 + s(1))
    assert (merged.state, merged.parent_id) == ("merged", parent.id)
    assert outbox(db) == []
    again, created = fire(db, at=T0 + s(2))
    assert created
    assert again.id not in (parent.id, child.id)


# --- escalation with an injected clock ----------------------------------------------------
# The store's side of escalation: the overdue selection, levels, audit, stream and outbox.
# Ladders of supervisor levels keep these independent of the roster; the levels that reach
# people (on duty, the unit, the rate limit) are tests/alerting/test_escalation.py's.
def supervised(timeouts: dict[str, float], levels: int = 3) -> EscalationPolicy:
    """Every severity: ``levels`` supervisor webhook levels, each after its timeout."""
    return EscalationPolicy(
        {
            sev: tuple(
                EscalationLevel("supervisor", Audience.SUPERVISOR, Medium.WEBHOOK, secs)
                for _ in range(levels)
            )
            for sev, secs in ((Severity(k), v) for k, v in timeouts.items())
        }
    )


def test_a_critical_alert_escalates_after_its_timeout(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    timeout = settings.alert_ack_timeout_s["critical"]
    assert timeout == 60.0
    policy = supervised(settings.alert_ack_timeout_s)
    alert, _ = fire(db)
    assert escalate_due(db, settings, now=T0 + s(59), policy=policy) == []
    assert get_alert(db, alert.id).escalation_level == 0
    assert escalate_due(db, settings, now=T0 + s(61), policy=policy) == [alert.id]
    up = get_alert(db, alert.id)
    assert (up.state, up.severity, up.escalation_level) == ("open", "critical", 1)
    assert up.escalated_at == T0 + s(61)
    (sup,) = outbox(db, alert.id)
    assert sup["channel"] == "supervisor"
    assert sup["recipient"] == {"role": "supervisor"}
    assert sup["payload"]["alert"]["escalation_level"] == 1
    assert sup["payload"]["escalation"] == {
        "level": 1,
        "of": 3,
        "name": "supervisor",
        "audience": "supervisor",
        "channel": "webhook",
    }
    assert audit(db, alert.id)[-1] == {
        "action": "escalate",
        "from_state": "open",
        "to_state": "open",
        "actor": SYSTEM,
        "note": "not acknowledged in time: level 1 of 3, supervisor by webhook: notified",
        "at": T0 + s(61),
    }
    assert events(db, alert.id) == ["created", "escalate"]
    # the next escalation counts from the last one
    assert escalate_due(db, settings, now=T0 + s(61 + 59), policy=policy) == []
    assert escalate_due(db, settings, now=T0 + s(61 + 61), policy=policy) == [alert.id]
    assert get_alert(db, alert.id).escalation_level == 2
    assert len(outbox(db, alert.id)) == 2


def test_escalation_keeps_the_severity_and_its_timeouts(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    """The severity says how bad the problem is, the level how far its notification went:
    escalating changes only the level, and every level of a medium alert waits medium's
    time."""
    medium = settings.alert_ack_timeout_s["medium"]
    policy = supervised(settings.alert_ack_timeout_s)
    alert, _ = fire(db, type_="low_pressure", device=WATER, severity=Severity.MEDIUM)
    assert escalate_due(db, settings, now=T0 + s(medium - 1), policy=policy) == []
    first = T0 + s(medium + 1)
    assert escalate_due(db, settings, now=first, policy=policy) == [alert.id]
    up = get_alert(db, alert.id)
    assert (up.severity, up.escalation_level, up.escalated_at) == ("medium", 1, first)
    assert escalate_due(db, settings, now=first + s(medium - 1), policy=policy) == []
    assert escalate_due(db, settings, now=first + s(medium + 1), policy=policy) == [alert.id]
    up = get_alert(db, alert.id)
    assert (up.severity, up.escalation_level) == ("medium", 2)
    assert [r["action"] for r in audit(db, alert.id)] == ["raise", "escalate", "escalate"]


def test_acknowledged_or_decided_alerts_never_escalate(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    for n, path in enumerate(
        [[A.ACKNOWLEDGE], [A.CONFIRM_FIRE], [A.CONFIRM_FAULT], [A.MARK_FALSE_ALARM], [A.RESOLVE]]
    ):
        alert, _ = fire(db, device=f"D-ACK-{n}")
        for act in path:
            apply_action(db, alert.id, act, actor="op", now=T0 + s(1))
    assert escalate_due(db, settings, now=T0 + timedelta(days=30)) == []
    assert scalar(db, "SELECT max(escalation_level) FROM alerts") == 0
    assert count(db, "alert_escalations") == 0
    assert count(db, "outbox WHERE channel IN ('supervisor', 'email', 'sms', 'voice')") == 0


@pytest.mark.parametrize("top", [1, 3, None])
def test_the_overdue_selection_is_the_escalation_rule(
    db: psycopg.Connection[Any], settings: Settings, top: int | None
) -> None:
    """The store selects (and locks) exactly the alerts decide.escalation_due says are due:
    every severity a second before, at and after its level's wait, escalated ones counted
    from their escalation, acknowledged ones never, and none at the end of the ladder or
    at the extra cap."""
    now = T0 + timedelta(days=1)
    timeouts = settings.alert_ack_timeout_s
    policy = default_policy(timeouts)
    n = itertools.count()
    for sev, secs in timeouts.items():
        severity = Severity(sev)
        for offset in (-1.0, -0.001, 0.0, 0.001, 1.0):
            fire(db, device=f"D-DUE-{next(n)}", severity=severity, at=now - s(secs + offset))
        seen, _ = fire(db, device=f"D-DUE-{next(n)}", severity=severity, at=now - s(2 * secs))
        apply_action(db, seen.id, A.ACKNOWLEDGE, actor="op", now=now - s(secs))
        for offset in (-1.0, 1.0):
            up, _ = fire(db, device=f"D-DUE-{next(n)}", severity=severity, at=now - s(3 * secs))
            at = now - s(secs + offset)
            escalate(db, up.id, severity=up.severity, level=1, at=at, note="earlier")
        last = policy.length(severity)  # at the end of its ladder: never again
        end, _ = fire(db, device=f"D-DUE-{next(n)}", severity=severity, at=now - s(9 * secs))
        escalate(db, end.id, severity=severity, level=last, at=now - s(2 * secs), note="end")
    with db.transaction():
        selected = overdue_alerts(db, policy, now=now, max_level=top)
    everything = alerts_of_all(db)
    expected = [a.id for a in everything if escalation_due(a, policy, now, top) is not None]
    assert len(expected) == 4 * (4 if top != 1 else 3)  # at and after the wait, one escalated
    assert [a.id for a in selected] == expected
    assert selected == [a for a in everything if a.id in expected]


def test_hundreds_of_overdue_alerts_escalate_in_one_call(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    """One selection and a few reads per tick (the roster, each unit's contact and rate
    count), then the same few statements for each alert, whatever their number."""
    n = 500
    policy = supervised(settings.alert_ack_timeout_s)
    one, _ = fire(db, device="D-ONE", severity=Severity.HIGH)

    def tick() -> list[int]:
        return escalate_due(db, settings, now=T0 + s(301), policy=policy)

    sent_one, due, _ = statements(db, tick)
    assert due == [one.id]
    two = [fire(db, device=f"D-TWO-{i}", severity=Severity.HIGH)[0].id for i in range(2)]
    sent_two, due, _ = statements(db, tick)
    assert due == two
    ids = [fire(db, device=f"D-SYN-{i:04d}", severity=Severity.HIGH)[0].id for i in range(n)]
    fire(db, device="D-FRESH", severity=Severity.HIGH, at=T0 + s(200))
    sent, due, took = statements(db, tick)
    assert due == sorted(ids)  # not D-ONE nor D-TWO (just escalated) nor D-FRESH (not due yet)
    per_alert = sent_two - sent_one
    assert per_alert <= 8
    assert sent == sent_one + (n - 1) * per_alert  # the fixed part once, then per alert
    assert sent_one - per_alert <= 6  # the fixed part: selection, lock, roster, unit reads
    assert scalar(db, "SELECT count(*) FROM alerts WHERE escalation_level = 1") == n + 3
    assert scalar(db, "SELECT count(*) FROM alerts WHERE severity = 'high'") == n + 4
    assert count(db, "outbox WHERE channel = 'supervisor'") == n + 3
    assert count(db, "alert_transitions WHERE action = 'escalate'") == n + 3
    print(f"\nescalate_due: {n} alerts in {took:.2f}s, {sent} statements")


def test_concurrent_escalation_checks_escalate_each_alert_once(
    db: psycopg.Connection[Any], connect: Connect, settings: Settings
) -> None:
    """Four workers at once, the built-in policy, nobody on duty: every alert goes past the
    on-duty levels to the unit's responsible person by SMS once, and the unit's rate limit
    holds exactly across the workers (the rest recorded as suppressed)."""
    n = 200
    ids = [fire(db, device=f"D-SYN-{i:04d}")[0].id for i in range(n)]
    workers = [connect() for _ in range(4)]
    barrier = threading.Barrier(len(workers), timeout=30)
    got: list[list[int]] = [[] for _ in workers]

    def check(i: int) -> None:
        barrier.wait()
        got[i] = escalate_due(workers[i], settings, now=T0 + s(61))

    run_threads(len(workers), check)
    flat = [x for g in got for x in g]
    assert sorted(flat) == sorted(ids)  # every alert once, by one of the workers
    assert scalar(db, "SELECT array_agg(DISTINCT escalation_level) FROM alerts") == [3]
    assert count(db, "outbox") == n
    limit = settings.escalation_rate_limit
    assert count(db, "outbox WHERE channel = 'sms' AND status = 'pending'") == limit
    assert count(db, "outbox WHERE channel = 'sms' AND status = 'suppressed'") == n - limit
    assert count(db, "alert_escalations WHERE outcome = 'skipped'") == 2 * n


# --- offline and patrol -------------------------------------------------------------------
def test_a_silent_water_device_gets_one_offline_alert(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    limit = settings.alert_offline_after_s["water"]
    seen(db, WATER, T0)
    seen(db, "D-WD-001-W2", T0 + s(100))  # heard later: still fine at the second check
    assert check_offline(db, settings, now=T0 + s(limit - 1)).opened == []
    result = check_offline(db, settings, now=T0 + s(limit + 1))
    (alert,) = alerts_of(db, WATER, "device_offline")
    assert result.opened == [alert.id]
    assert result.resolved == []
    assert (alert.category, alert.severity, alert.state) == ("offline", "medium", "open")
    assert alert.unit_id == UNIT
    assert alert.first_seen == T0 + s(limit + 1)
    assert "silent since" in alert.explanation
    again = check_offline(db, settings, now=T0 + s(limit + 60))
    assert again.opened == []
    assert again.resolved == []
    assert [a.occurrences for a in alerts_of(db, WATER, "device_offline")] == [1]
    assert alerts_of(db, "D-WD-001-W2", "device_offline") == []
    assert count(db, "alerts") == 1  # devices never heard from are not judged


def test_a_last_will_opens_an_offline_alert_at_once(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    seen(db, WATER, T0)
    status(db, WATER, "offline", T0 + s(5))  # the broker's word: after its last message
    seen(db, "D-WD-001-W2", T0 + s(5))
    status(db, "D-WD-001-W2", "offline", T0)  # an old will, heard from since: online
    result = check_offline(db, settings, now=T0 + s(6))
    (alert,) = alerts_of(db, WATER, "device_offline")
    assert result.opened == [alert.id]
    assert "last will" in alert.explanation
    assert check_offline(db, settings, now=T0 + s(7)).opened == []
    assert count(db, "alerts") == 1


def test_a_panel_silent_beyond_the_patrol_cycle_fails_its_patrol(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    cycle = settings.alert_patrol_cycle_s
    offline = settings.alert_offline_after_s["panel"]
    assert offline < cycle <= 7200
    seen(db, PANEL, T0)
    first = check_offline(db, settings, now=T0 + s(offline + 1))
    assert [a.id for a in alerts_of(db, PANEL, "device_offline")] == first.opened
    assert alerts_of(db, PANEL, "patrol_failed") == []
    second = check_offline(db, settings, now=T0 + s(cycle + 1))
    (patrol,) = alerts_of(db, PANEL, "patrol_failed")
    assert second.opened == [patrol.id]
    assert (patrol.category, patrol.severity) == ("offline", "high")
    assert "patrol" in patrol.explanation
    assert check_offline(db, settings, now=T0 + s(cycle + 60)).opened == []
    assert len(alerts_of(db, PANEL, "patrol_failed")) == 1


def test_a_decommissioned_device_has_its_offline_and_patrol_alerts_resolved(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    cycle = settings.alert_patrol_cycle_s
    seen(db, PANEL, T0)
    opened = check_offline(db, settings, now=T0 + s(cycle + 1)).opened
    assert len(opened) == 2  # offline and patrol failed
    (fire_alert, _) = fire(db, device=PANEL)
    db.execute(
        "UPDATE devices SET decommissioned_at = %s WHERE id = %s", (T0 + s(cycle + 5), PANEL)
    )
    result = check_offline(db, settings, now=T0 + s(cycle + 10))
    assert sorted(result.resolved) == sorted(opened)
    assert result.opened == []
    notes = db.execute(
        "SELECT note FROM alert_transitions WHERE alert_id = ANY(%s) AND action = 'resolve'",
        (opened,),
    ).fetchall()
    assert [n for (n,) in notes] == ["device decommissioned"] * 2
    # A fire alarm of the device is the operators' to handle, decommissioned or not.
    assert scalar(db, "SELECT state FROM alerts WHERE id = %s", fire_alert.id) == "open"
    later = check_offline(db, settings, now=T0 + s(2 * cycle + 10))
    assert later.opened == []  # never judged offline again


def test_a_device_heard_from_again_resolves_its_offline_and_patrol_alerts(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    cycle = settings.alert_patrol_cycle_s
    seen(db, PANEL, T0)
    opened = check_offline(db, settings, now=T0 + s(cycle + 1)).opened
    assert len(opened) == 2  # offline and patrol failed
    acked = opened[0]
    apply_action(db, acked, A.ACKNOWLEDGE, actor="op", now=T0 + s(cycle + 2))
    seen(db, PANEL, T0 + s(cycle + 10))
    status(db, PANEL, "online", T0 + s(cycle + 10))
    result = check_offline(db, settings, now=T0 + s(cycle + 20))
    assert sorted(result.resolved) == sorted(opened)
    assert result.opened == []
    for alert_id in opened:
        assert get_alert(db, alert_id).resolved_at == T0 + s(cycle + 20)
        last = audit(db, alert_id)[-1]
        assert (last["action"], last["actor"], last["note"]) == (
            "resolve",
            SYSTEM,
            "device heard from again",
        )
    assert check_offline(db, settings, now=T0 + s(cycle + 30)).resolved == []


def test_a_device_back_after_its_last_will_is_resolved_without_a_new_status(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    seen(db, WATER, T0)
    status(db, WATER, "offline", T0 + s(5))
    (alert_id,) = check_offline(db, settings, now=T0 + s(6)).opened
    seen(db, WATER, T0 + s(60))  # telemetry again: not offline any more (see _OFFLINE)
    result = check_offline(db, settings, now=T0 + s(61))
    assert result.opened == []
    assert result.resolved == [alert_id]
    assert get_alert(db, alert_id).state == "resolved"


def test_a_device_that_dropped_again_is_not_resolved(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    seen(db, WATER, T0)
    (alert_id,) = check_offline(db, settings, now=T0 + s(400)).opened
    seen(db, WATER, T0 + s(410))
    status(db, WATER, "offline", T0 + s(411))  # heard, then its will straight away
    result = check_offline(db, settings, now=T0 + s(412))
    assert result.resolved == []
    assert get_alert(db, alert_id).state == "open"


def test_offline_check_over_5000_devices_is_a_constant_number_of_queries(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    n, silent = 5_000, 400
    kinds = ["panel", "water", "ebike_shed"]
    db.execute(
        "INSERT INTO devices (id, unit_id, kind)"
        " SELECT 'D-SCALE-' || lpad(i::text, 5, '0'), u.ids[1 + i %% array_length(u.ids, 1)],"
        " (%s::text[])[1 + i %% 3]"
        " FROM generate_series(0, %s - 1) i, (SELECT array_agg(id ORDER BY id) ids FROM units) u",
        (kinds, n),
    )
    db.execute(
        "INSERT INTO device_last_seen (device_id, last_rx)"
        " SELECT id, %s FROM devices WHERE id LIKE 'D-SCALE-%%'",
        (T0,),
    )
    now = T0 + s(60)  # every one heard within its limit
    healthy, result, t_healthy = statements(db, lambda: check_offline(db, settings, now=now))
    assert (result.opened, result.resolved) == ([], [])
    # count, offline raise, patrol raise, mass-outage alert, resolve: whatever the devices
    assert healthy == 5
    db.execute(
        "UPDATE device_last_seen SET last_rx = %s WHERE device_id IN (SELECT id FROM devices"
        " WHERE id LIKE 'D-SCALE-%%' AND kind = 'water' ORDER BY id LIMIT %s)",
        (T0 - s(3600), silent),
    )
    sent, result, t_some = statements(db, lambda: check_offline(db, settings, now=now))
    assert len(result.opened) == silent
    assert not result.mass_outage
    assert sent == healthy + 1  # the same statements (+ one NOTIFY), not one per device
    assert count(db, "alert_transitions WHERE action = 'raise'") == silent
    assert count(db, "alert_events WHERE event = 'created'") == silent

    db.execute("UPDATE device_last_seen SET last_rx = %s", (now + s(1),))  # all back
    sent_back, back, t_back = statements(db, lambda: check_offline(db, settings, now=now + s(2)))
    assert sorted(back.resolved) == sorted(result.opened)
    assert sent_back == healthy + 1
    assert count(db, "alerts WHERE state = 'open'") == 0
    assert count(db, "alert_transitions WHERE action = 'resolve'") == silent
    print(
        f"\ncheck_offline over {n} devices: all healthy {t_healthy * 1000:.0f} ms"
        f" ({healthy} statements); {silent} silent: opened in {t_some * 1000:.0f} ms"
        f" ({sent} statements); resolved again in {t_back * 1000:.0f} ms"
    )


def test_a_mass_outage_is_one_alert_not_thousands(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    n = 2_000
    db.execute(
        "INSERT INTO devices (id, unit_id, kind)"
        " SELECT 'D-MASS-' || lpad(i::text, 5, '0'), 'U-WD-001', 'water'"
        " FROM generate_series(0, %s - 1) i",
        (n,),
    )
    db.execute(
        "INSERT INTO device_last_seen (device_id, last_rx)"
        " SELECT id, %s FROM devices WHERE id LIKE 'D-MASS-%%'",
        (T0 - s(3600),),  # every one silent for an hour: the broker went down
    )
    result = check_offline(db, settings, now=T0)
    assert result.mass_outage
    assert result.silent == n
    (alert_id,) = result.opened
    rows = db.execute("SELECT type, device_id, severity, state FROM alerts").fetchall()
    assert rows == [("mass_offline", "*", "critical", "open")]
    again = check_offline(db, settings, now=T0 + s(5))  # still down: nothing new
    assert again.opened == []
    assert count(db, "alerts") == 1
    # most come back; 10 stay silent: the mass alert resolves, those 10 get their own
    db.execute(
        "UPDATE device_last_seen SET last_rx = %s WHERE device_id NOT IN"
        " (SELECT id FROM devices WHERE id LIKE 'D-MASS-%%' ORDER BY id LIMIT 10)",
        (T0 + s(10),),
    )
    later = check_offline(db, settings, now=T0 + s(20))
    assert not later.mass_outage
    assert alert_id in later.resolved
    assert len(later.opened) == 10
    assert count(db, "alerts WHERE type = 'device_offline' AND state = 'open'") == 10


# --- the read side ------------------------------------------------------------------------
def test_list_alerts_newest_first_filtered_by_state_and_unit(
    db: psycopg.Connection[Any],
) -> None:
    a, _ = fire(db, at=T0)
    b, _ = fire(db, device="D-WD-002-P1", unit="U-WD-002", at=T0 + s(10))
    c, _ = fire(db, type_="panel_fault", severity=Severity.HIGH, at=T0 + s(20))
    d, _ = fire(db, type_="smoke", device="D-WD-001-E1", at=T0 + s(5))
    apply_action(db, d.id, A.RESOLVE, actor="op", now=T0 + s(30))
    tie, _ = fire(db, type_="power_fault", severity=Severity.LOW, at=T0 + s(20))
    assert [x.id for x in list_alerts(db)] == [tie.id, c.id, b.id, a.id]
    assert [x.id for x in list_alerts(db, unit_id=UNIT)] == [tie.id, c.id, a.id]
    assert [x.id for x in list_alerts(db, states=["resolved"])] == [d.id]
    assert [x.id for x in list_alerts(db, states=["resolved", "open"], limit=2)] == [tie.id, c.id]
    assert list_alerts(db, unit_id="U-NOPE") == []
    assert list_alerts(db)[0] == get_alert(db, tie.id)


def test_alert_detail_has_the_evidence_and_the_audit_trail(
    db: psycopg.Connection[Any],
) -> None:
    n1, n2 = fire_episode(db), fire_episode(db)
    alert, _ = fire(db, anomaly_id=n2)
    fire(db, anomaly_id=n1, at=T0 + s(1))
    apply_action(db, alert.id, A.ACKNOWLEDGE, actor="ana", note="looking", now=T0 + s(2))
    detail = alert_detail(db, alert.id)
    assert detail["alert"]["id"] == alert.id
    assert detail["alert"]["state"] == "acknowledged"
    assert detail["alert"]["occurrences"] == 2
    assert [e["id"] for e in detail["evidence"]] == [n1, n2]
    ev = detail["evidence"][0]
    assert (ev["detector"], ev["kind"], ev["severity"]) == (
        "rule.fire_alarm",
        "fire_alarm",
        "critical",
    )
    assert ev["started_at"] == T0.isoformat()
    assert ev["ended_at"] is None
    assert ev["explanation"] == "fire alarm in zone 3"
    assert detail["transitions"] == [
        {
            "action": "raise",
            "from_state": None,
            "to_state": "open",
            "actor": SYSTEM,
            "note": f"fire_alarm on {PANEL}",
            "at": T0.isoformat(),
        },
        {
            "action": "acknowledge",
            "from_state": "open",
            "to_state": "acknowledged",
            "actor": "ana",
            "note": "looking",
            "at": (T0 + s(2)).isoformat(),
        },
    ]
    other, _ = fire(db, device="D-WD-002-P1", unit="U-WD-002")
    assert alert_detail(db, other.id)["evidence"] == []
