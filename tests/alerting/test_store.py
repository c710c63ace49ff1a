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
from pathlib import Path
from typing import Any, Self

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from firewatch.alerting.decide import escalation_due
from firewatch.alerting.service import escalate_due
from firewatch.core.alerts import (
    ACTIVE_STATES,
    TRANSITIONS,
    Alert,
    AlertAction,
    AlertState,
    IllegalTransition,
)
from firewatch.core.anomalies import Anomaly, Origin
from firewatch.core.domain import Severity
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
from firewatch.storage.anomalies import upsert_anomalies
from firewatch.storage.seed import load_seed, read_seed
from tests.conftest import Connect
from tests.helpers import scalar

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
PANEL, WATER, UNIT = "D-WD-001-P1", "D-WD-001-W1", "U-WD-001"
RESPONSIBLE = {"name": "张伟", "phone": "13800000001"}
MAINTENANCE = {"name": "李强", "phone": "13800000002"}
A = AlertAction


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


# --- fixtures: the seeded demo city, no broker needed ---------------------------------------
@pytest.fixture
def cfg(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path / "data")


@pytest.fixture
def conn(connect: Connect) -> psycopg.Connection[Any]:
    """The seeded demo city (units with contacts, devices). No partitions are needed: none
    of the tables used here is partitioned."""
    c = connect()
    load_seed(c, read_seed())
    return c


# --- helpers ------------------------------------------------------------------------------
def fire(
    conn: psycopg.Connection[Any],
    *,
    device: str = PANEL,
    type_: str = "fire_alarm",
    severity: Severity = Severity.CRITICAL,
    at: datetime = T0,
    unit: str = UNIT,
    **kw: Any,
) -> tuple[Alert, bool]:
    return raise_alert(conn, type=type_, severity=severity, unit_id=unit, device_id=device,
                       seen_at=at, explanation=f"{type_} on {device}", **kw)  # fmt: skip


def audit(conn: psycopg.Connection[Any], alert_id: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT action, from_state, to_state, actor, note, at FROM alert_transitions"
            " WHERE alert_id = %s ORDER BY id",
            (alert_id,),
        ).fetchall()


def events(conn: psycopg.Connection[Any], alert_id: int) -> list[str]:
    rows = conn.execute(
        "SELECT event FROM alert_events WHERE alert_id = %s ORDER BY id", (alert_id,)
    ).fetchall()
    return [r[0] for r in rows]


def outbox(conn: psycopg.Connection[Any], alert_id: int | None = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT channel, recipient, payload, status FROM outbox"
            " WHERE %s::bigint IS NULL OR alert_id = %s ORDER BY id",
            (alert_id, alert_id),
        ).fetchall()


def count(conn: psycopg.Connection[Any], table: str) -> int:
    return int(scalar(conn, f"SELECT count(*) FROM {table}"))


def alerts_of_all(conn: psycopg.Connection[Any]) -> list[Alert]:
    with conn.cursor(row_factory=dict_row) as cur:
        return [Alert.of(r) for r in cur.execute("SELECT * FROM alerts ORDER BY id").fetchall()]


def alerts_of(conn: psycopg.Connection[Any], device: str, type_: str) -> list[Alert]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT * FROM alerts WHERE device_id = %s AND type = %s ORDER BY id", (device, type_)
        ).fetchall()
    return [Alert.of(r) for r in rows]


def anomaly(conn: psycopg.Connection[Any], device: str = PANEL, unit: str = UNIT) -> int:
    """An anomaly episode stored the real way; returns its id."""
    t = T0.timestamp()
    a = Anomaly(device_id=device, unit_id=unit, detector="rule.fire_alarm", kind="fire_alarm",
                metric="status", component=f"zone-{count(conn, 'anomalies')}",
                origin=Origin.REPORTED, severity=Severity.CRITICAL, score=1.0, started_at=t,
                detected_at=t + 1, last_at=t + 1, explanation="fire alarm in zone 3")  # fmt: skip
    assert upsert_anomalies(conn, [a]) == 1
    return int(scalar(conn, "SELECT max(id) FROM anomalies"))


def seen(conn: psycopg.Connection[Any], device: str, last_rx: datetime) -> None:
    conn.execute(
        "INSERT INTO device_last_seen (device_id, last_rx) VALUES (%s, %s)"
        " ON CONFLICT (device_id) DO UPDATE SET last_rx = EXCLUDED.last_rx",
        (device, last_rx),
    )


def status(conn: psycopg.Connection[Any], device: str, state: str, at: datetime) -> None:
    conn.execute(
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


def statements(conn: psycopg.Connection[Any], fn: Callable[[], Any]) -> tuple[int, Any, float]:
    """(statements sent, result, seconds) of ``fn()`` on ``conn``."""
    saved = conn.cursor_factory
    conn.cursor_factory = CountingCursor
    CountingCursor.statements = 0
    started = time.perf_counter()
    try:
        result = fn()
    finally:
        conn.cursor_factory = saved
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
    conn: psycopg.Connection[Any],
) -> None:
    alert, created = fire(conn)
    assert created
    assert alert.state == "open"
    assert (alert.type, alert.category, alert.severity) == ("fire_alarm", "fire", "critical")
    assert (alert.device_id, alert.unit_id) == (PANEL, UNIT)
    assert alert.first_seen == alert.last_seen == T0
    assert alert.occurrences == 1
    assert alert.condition_active
    assert alert.escalation_level == 0
    assert alert.acknowledged_at is None
    assert audit(conn, alert.id) == [
        {"action": "raise", "from_state": None, "to_state": "open", "actor": SYSTEM,
         "note": f"fire_alarm on {PANEL}", "at": T0}
    ]  # fmt: skip
    assert events(conn, alert.id) == ["created"]
    payload = scalar(conn, "SELECT payload FROM alert_events WHERE alert_id = %s", alert.id)
    assert payload["event"] == "created"
    assert payload["alert"]["id"] == alert.id
    assert payload["alert"]["first_seen"] == T0.isoformat()
    assert outbox(conn) == []  # a fire alarm waits for the operator's confirmation
    assert get_alert(conn, alert.id) == alert


def test_repeats_count_occurrences_and_keep_the_higher_severity(
    conn: psycopg.Connection[Any],
) -> None:
    first, _ = fire(conn, type_="low_pressure", device=WATER, severity=Severity.HIGH)
    again, created = fire(conn, type_="low_pressure", device=WATER, severity=Severity.CRITICAL,
                          at=T0 + s(10))  # fmt: skip
    assert not created
    assert again.id == first.id
    assert (again.occurrences, again.severity, again.last_seen) == (2, "critical", T0 + s(10))
    assert again.first_seen == T0
    lower, _ = fire(conn, type_="low_pressure", device=WATER, severity=Severity.LOW,
                    at=T0 + s(20))  # fmt: skip
    assert (lower.occurrences, lower.severity) == (3, "critical")  # never lowered
    late, _ = fire(conn, type_="low_pressure", device=WATER, severity=Severity.MEDIUM,
                   at=T0 + s(5))  # fmt: skip
    assert (late.occurrences, late.last_seen) == (4, T0 + s(20))  # last_seen never goes back
    update, created = fire(conn, type_="low_pressure", device=WATER, severity=Severity.HIGH,
                           at=T0 + s(30), repeat=False)  # fmt: skip
    assert not created
    assert update.occurrences == 4  # an update of an occurrence already counted
    assert update.last_seen == T0 + s(30)
    assert events(conn, first.id) == ["created", "occurrence", "occurrence", "occurrence",
                                      "updated"]  # fmt: skip
    assert [r["action"] for r in audit(conn, first.id)] == ["raise"]  # creation only
    assert count(conn, "alerts") == 1


def test_a_repeat_reactivates_the_condition_and_takes_the_new_explanation(
    conn: psycopg.Connection[Any],
) -> None:
    alert, _ = fire(conn)
    conn.execute("UPDATE alerts SET condition_active = false WHERE id = %s", (alert.id,))
    again, _ = raise_alert(conn, type="fire_alarm", severity="critical", unit_id=UNIT,
                           device_id=PANEL, seen_at=T0.timestamp() + 3,
                           explanation="zone 4")  # fmt: skip
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
    conn: psycopg.Connection[Any], path: list[AlertAction], end: str
) -> None:
    old, _ = fire(conn)
    for act in path:
        apply_action(conn, old.id, act, actor="op", now=T0 + s(1))
    new, created = fire(conn, at=T0 + s(2))
    assert created
    assert new.id != old.id
    assert (new.state, new.occurrences, new.first_seen) == ("open", 1, T0 + s(2))
    stale = get_alert(conn, old.id)
    assert stale.state == end  # the old one stays as it was
    assert end not in ACTIVE_STATES
    assert stale.occurrences == 1
    assert [a.id for a in alerts_of(conn, PANEL, "fire_alarm")] == [old.id, new.id]
    assert fire(conn, at=T0 + s(3))[0].id == new.id  # repeats go to the new one


def test_different_types_or_devices_are_separate_alerts(conn: psycopg.Connection[Any]) -> None:
    a, c1 = fire(conn)
    b, c2 = fire(conn, type_="panel_fault", severity=Severity.HIGH)
    c, c3 = fire(conn, device="D-WD-002-P1", unit="U-WD-002")
    assert [c1, c2, c3] == [True, True, True]
    assert len({a.id, b.id, c.id}) == 3
    assert b.category == "fault"
    assert fire(conn)[0].occurrences == 2
    assert get_alert(conn, b.id).occurrences == 1
    assert get_alert(conn, c.id).occurrences == 1


def test_evidence_is_linked_once_per_anomaly(conn: psycopg.Connection[Any]) -> None:
    n1, n2 = anomaly(conn), anomaly(conn)
    alert, _ = fire(conn, anomaly_id=n1)
    fire(conn, anomaly_id=n1, repeat=False)  # the same episode again: no second link
    fire(conn, anomaly_id=n2)
    rows = conn.execute(
        "SELECT anomaly_id FROM alert_evidence WHERE alert_id = %s ORDER BY anomaly_id",
        (alert.id,),
    ).fetchall()
    assert [r[0] for r in rows] == [n1, n2]


# --- dedup under concurrency --------------------------------------------------------------
def test_concurrent_repeats_make_one_alert_that_counts_every_raise(
    conn: psycopg.Connection[Any], connect: Connect
) -> None:
    n, m = 8, 25
    conns = [connect() for _ in range(n)]
    barrier = threading.Barrier(n, timeout=30)
    created: list[bool] = []

    def raiser(i: int) -> None:
        barrier.wait()  # all at once, on a pair that has no alert yet
        for k in range(m):
            sev = [Severity.LOW, Severity.MEDIUM, Severity.HIGH][(i + k) % 3]
            _, c = fire(conns[i], type_="low_pressure", device=WATER, severity=sev,
                        at=T0 + s(i * m + k))  # fmt: skip
            created.append(c)

    run_threads(n, raiser)
    (alert,) = alerts_of(conn, WATER, "low_pressure")
    assert alert.state == "open"
    assert alert.occurrences == n * m
    assert alert.severity == "high"
    assert alert.last_seen == T0 + s(n * m - 1)
    assert created.count(True) == 1
    assert len(created) == n * m
    evs = events(conn, alert.id)
    assert evs.count("created") == 1
    assert evs.count("occurrence") == n * m - 1
    assert [r["action"] for r in audit(conn, alert.id)] == ["raise"]


def test_racing_creation_on_fresh_pairs_makes_exactly_one_row(
    conn: psycopg.Connection[Any], connect: Connect
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
        (alert,) = alerts_of(conn, f"D-RACE-{r:03d}", "fire_alarm")
        assert alert.occurrences == n
        assert created[r].count(True) == 1
        assert [x["action"] for x in audit(conn, alert.id)] == ["raise"]
    assert count(conn, "alerts") == rounds


def test_raises_racing_a_resolve_are_each_counted_once(
    conn: psycopg.Connection[Any], connect: Connect
) -> None:
    n, m = 6, 30
    first, _ = fire(conn, type_="panel_fault", severity=Severity.HIGH)
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
    fire(conn, type_="panel_fault", severity=Severity.HIGH, at=T0 + s(3))  # after the race
    old, new = alerts_of(conn, PANEL, "panel_fault")
    assert old.id == first.id
    assert old.state == "resolved"
    assert new.state == "open"
    assert old.occurrences > n * m // 4  # the raises before the resolve went to the old one
    assert old.occurrences + new.occurrences == 1 + n * m + 1  # none lost, none twice
    assert [x["action"] for x in audit(conn, old.id)] == ["raise", "resolve"]
    assert [x["action"] for x in audit(conn, new.id)] == ["raise"]


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
    conn: psycopg.Connection[Any],
) -> None:
    parent, _ = fire(conn, type_="likely_real_fire", device="D-PARENT")
    at = T0 + s(100)
    for n, (state, act) in enumerate(itertools.product(AlertState, AlertAction)):
        alert, _ = fire(conn, device=f"D-LIFE-{n:03d}")
        for step in PATH_TO[state]:
            apply_action(conn, alert.id, step, actor="setup", now=T0 + s(1),
                         parent_id=parent.id)  # fmt: skip
        before = get_alert(conn, alert.id)
        assert before.state == state
        trail, evs, sent = audit(conn, alert.id), events(conn, alert.id), outbox(conn, alert.id)
        sources, target = TRANSITIONS[act]
        if state not in sources:
            with pytest.raises(IllegalTransition, match=f"cannot {act.value}"):
                apply_action(conn, alert.id, act, actor="ana", now=at, parent_id=parent.id)
            after = get_alert(conn, alert.id)
            assert (after.state, after.updated_at) == (before.state, before.updated_at)
            assert after == before
            assert audit(conn, alert.id) == trail
            assert events(conn, alert.id) == evs
            assert outbox(conn, alert.id) == sent
            continue
        moved = apply_action(conn, alert.id, act, actor="ana", note=f"n{n}", now=at,
                             parent_id=parent.id)  # fmt: skip
        assert moved.state == (target or state)
        assert moved == get_alert(conn, alert.id)
        assert moved.updated_at > before.updated_at
        assert audit(conn, alert.id) == [*trail, {
            "action": act.value, "from_state": state.value, "to_state": moved.state,
            "actor": "ana", "note": f"n{n}", "at": at}]  # fmt: skip
        assert events(conn, alert.id) == [*evs, act.value]


def test_unknown_alert_or_action(conn: psycopg.Connection[Any]) -> None:
    alert, _ = fire(conn)
    with pytest.raises(AlertNotFound):
        apply_action(conn, alert.id + 1000, A.ACKNOWLEDGE, actor="op")
    with pytest.raises(AlertNotFound):
        get_alert(conn, alert.id + 1000)
    with pytest.raises(AlertNotFound):
        alert_detail(conn, alert.id + 1000)
    with pytest.raises(ValueError, match="dance"):
        apply_action(conn, alert.id, "dance", actor="op")
    assert apply_action(conn, alert.id, "acknowledge", actor="op").state == "acknowledged"
    assert count(conn, "alert_transitions") == 2


def test_confirm_fire_forwards_to_the_command_center_and_notifies_the_responsible(
    conn: psycopg.Connection[Any],
) -> None:
    evidence = anomaly(conn)
    alert, _ = fire(conn, anomaly_id=evidence)
    at = T0 + s(42)
    done = apply_action(conn, alert.id, A.CONFIRM_FIRE, actor="ana", note="called the unit",
                        now=at)  # fmt: skip
    assert done.state == "confirmed_fire"
    center, notify = outbox(conn, alert.id)
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


def test_side_effects_are_in_the_callers_transaction(conn: psycopg.Connection[Any]) -> None:
    alert, _ = fire(conn)
    trail = audit(conn, alert.id)
    with conn.transaction(force_rollback=True):
        apply_action(conn, alert.id, A.CONFIRM_FIRE, actor="ana", now=T0 + s(1))
        assert [r["channel"] for r in outbox(conn, alert.id)] == ["command_center", "notify"]
    assert outbox(conn) == []  # both vanished with the alert's change
    assert get_alert(conn, alert.id).state == "open"
    assert audit(conn, alert.id) == trail
    assert events(conn, alert.id) == ["created"]


def test_confirm_fault_notifies_maintenance_and_a_false_alarm_nobody(
    conn: psycopg.Connection[Any],
) -> None:
    fault, _ = fire(conn, type_="panel_fault", severity=Severity.HIGH)
    apply_action(conn, fault.id, A.CONFIRM_FAULT, actor="ana", now=T0 + s(1))
    (note,) = outbox(conn, fault.id)
    assert note["channel"] == "notify"
    assert note["recipient"] == {"role": "maintenance", **MAINTENANCE}
    assert note["payload"]["action"] == "confirm_fault"
    false, _ = fire(conn)
    apply_action(conn, false.id, A.ACKNOWLEDGE, actor="ana", now=T0 + s(1))
    apply_action(conn, false.id, A.MARK_FALSE_ALARM, actor="ana", now=T0 + s(2))
    apply_action(conn, false.id, A.CLOSE, actor="ana", now=T0 + s(3))
    apply_action(conn, fault.id, A.RESOLVE, actor="ana", now=T0 + s(4))
    apply_action(conn, fault.id, A.CLOSE, actor="ana", now=T0 + s(5))
    assert outbox(conn, false.id) == []
    assert len(outbox(conn)) == 1


def test_notifications_follow_the_units_contacts(conn: psycopg.Connection[Any]) -> None:
    manager = {"name": "钱经理", "phone": "13800000099"}
    conn.execute(
        "UPDATE units SET contacts = contacts - 'maintenance' || %s WHERE id = 'U-WD-002'",
        (Jsonb({"manager": manager}),),
    )
    blaze, _ = fire(conn, device="D-WD-002-P1", unit="U-WD-002")
    apply_action(conn, blaze.id, A.CONFIRM_FIRE, actor="ana", now=T0 + s(1))
    sent = outbox(conn, blaze.id)
    assert [r["channel"] for r in sent] == ["command_center", "notify", "notify"]
    assert [r["recipient"]["role"] for r in sent[1:]] == ["responsible", "manager"]
    assert sent[2]["recipient"] == {"role": "manager", **manager}
    fault, _ = fire(conn, type_="bus_fault", device="D-WD-002-P1", unit="U-WD-002")
    apply_action(conn, fault.id, A.CONFIRM_FAULT, actor="ana", now=T0 + s(1))
    (note,) = outbox(conn, fault.id)  # no maintenance contact: the responsible one
    assert note["recipient"] == {"role": "maintenance", "name": "王芳", "phone": "13800000003"}


def test_lifecycle_timestamps(conn: psycopg.Connection[Any]) -> None:
    acked, _ = fire(conn, device="D-1")
    a1 = apply_action(conn, acked.id, A.ACKNOWLEDGE, actor="op", now=T0 + s(10))
    assert a1.acknowledged_at == T0 + s(10)
    a2 = apply_action(conn, acked.id, A.CONFIRM_FIRE, actor="op", now=T0 + s(20))
    assert a2.acknowledged_at == T0 + s(10)  # a later decision keeps the acknowledgement
    a3 = apply_action(conn, acked.id, A.RESOLVE, actor="op", now=T0 + s(30))
    assert (a3.resolved_at, a3.closed_at) == (T0 + s(30), None)
    a4 = apply_action(conn, acked.id, A.CLOSE, actor="op", now=(T0 + s(40)).timestamp())
    assert (a4.resolved_at, a4.closed_at) == (T0 + s(30), T0 + s(40))
    for n, act in enumerate([A.CONFIRM_FIRE, A.CONFIRM_FAULT, A.MARK_FALSE_ALARM]):
        decided, _ = fire(conn, device=f"D-DEC-{n}")
        after = apply_action(conn, decided.id, act, actor="op", now=T0 + s(5))
        assert after.acknowledged_at == T0 + s(5)  # a decision implies it was seen
    resolved, _ = fire(conn, device="D-2")
    r = apply_action(conn, resolved.id, A.RESOLVE, actor=SYSTEM, now=T0 + s(7))
    assert (r.acknowledged_at, r.resolved_at) == (None, T0 + s(7))
    before = datetime.now(UTC)
    untimed = apply_action(conn, fire(conn, device="D-3")[0].id, A.ACKNOWLEDGE, actor="op")
    assert untimed.acknowledged_at is not None
    assert untimed.acknowledged_at >= before - s(1)  # no clock given: now


def test_merge_needs_a_parent_and_frees_the_pair(conn: psycopg.Connection[Any]) -> None:
    parent, _ = fire(conn, type_="likely_real_fire")
    child, _ = fire(conn)
    with pytest.raises(ValueError, match="parent"):
        apply_action(conn, child.id, A.MERGE, actor=SYSTEM)
    assert get_alert(conn, child.id) == child
    assert [r["action"] for r in audit(conn, child.id)] == ["raise"]
    merged = apply_action(conn, child.id, A.MERGE, actor=SYSTEM, parent_id=parent.id,
                          now=T0 + s(1))  # fmt: skip
    assert (merged.state, merged.parent_id) == ("merged", parent.id)
    assert outbox(conn) == []
    again, created = fire(conn, at=T0 + s(2))
    assert created
    assert again.id not in (parent.id, child.id)


# --- escalation with an injected clock ----------------------------------------------------
def test_a_critical_alert_escalates_after_its_timeout(
    conn: psycopg.Connection[Any], cfg: Settings
) -> None:
    timeout = cfg.alert_ack_timeout_s["critical"]
    assert timeout == 60.0
    alert, _ = fire(conn)
    assert escalate_due(conn, cfg, now=T0 + s(59)) == []
    assert get_alert(conn, alert.id).escalation_level == 0
    assert escalate_due(conn, cfg, now=T0 + s(61)) == [alert.id]
    up = get_alert(conn, alert.id)
    assert (up.state, up.severity, up.escalation_level) == ("open", "critical", 1)
    assert up.escalated_at == T0 + s(61)
    (sup,) = outbox(conn, alert.id)
    assert sup["channel"] == "supervisor"
    assert sup["recipient"] == {"role": "supervisor"}
    assert sup["payload"]["alert"]["escalation_level"] == 1
    assert audit(conn, alert.id)[-1] == {
        "action": "escalate", "from_state": "open", "to_state": "open", "actor": SYSTEM,
        "note": "not acknowledged in time", "at": T0 + s(61)}  # fmt: skip
    assert events(conn, alert.id) == ["created", "escalate"]
    # the next escalation counts from the last one
    assert escalate_due(conn, cfg, now=T0 + s(61 + 59)) == []
    assert escalate_due(conn, cfg, now=T0 + s(61 + 61)) == [alert.id]
    assert get_alert(conn, alert.id).escalation_level == 2
    assert len(outbox(conn, alert.id)) == 2


def test_escalation_raises_the_severity_and_uses_the_new_severitys_timeout(
    conn: psycopg.Connection[Any], cfg: Settings
) -> None:
    medium, high = cfg.alert_ack_timeout_s["medium"], cfg.alert_ack_timeout_s["high"]
    assert high < medium
    alert, _ = fire(conn, type_="low_pressure", device=WATER, severity=Severity.MEDIUM)
    assert escalate_due(conn, cfg, now=T0 + s(medium - 1)) == []
    first = T0 + s(medium + 1)
    assert escalate_due(conn, cfg, now=first) == [alert.id]
    up = get_alert(conn, alert.id)
    assert (up.severity, up.escalation_level, up.escalated_at) == ("high", 1, first)
    assert escalate_due(conn, cfg, now=first + s(high - 1)) == []  # high's timeout, not medium's
    assert escalate_due(conn, cfg, now=first + s(high + 1)) == [alert.id]
    up = get_alert(conn, alert.id)
    assert (up.severity, up.escalation_level) == ("critical", 2)
    assert [r["action"] for r in audit(conn, alert.id)] == ["raise", "escalate", "escalate"]


def test_acknowledged_or_decided_alerts_never_escalate(
    conn: psycopg.Connection[Any], cfg: Settings
) -> None:
    for n, path in enumerate([[A.ACKNOWLEDGE], [A.CONFIRM_FIRE], [A.CONFIRM_FAULT],
                              [A.MARK_FALSE_ALARM], [A.RESOLVE]]):  # fmt: skip
        alert, _ = fire(conn, device=f"D-ACK-{n}")
        for act in path:
            apply_action(conn, alert.id, act, actor="op", now=T0 + s(1))
    assert escalate_due(conn, cfg, now=T0 + timedelta(days=30)) == []
    assert scalar(conn, "SELECT max(escalation_level) FROM alerts") == 0
    assert count(conn, "outbox WHERE channel = 'supervisor'") == 0


def test_the_overdue_selection_is_the_escalation_rule(
    conn: psycopg.Connection[Any], cfg: Settings
) -> None:
    """The store selects (and locks) exactly the alerts decide.escalation_due says are due:
    every severity a second before, at and after its timeout, escalated ones counted from
    their escalation, acknowledged ones never."""
    now = T0 + timedelta(days=1)
    timeouts = cfg.alert_ack_timeout_s
    n = itertools.count()
    for sev, secs in timeouts.items():
        severity = Severity(sev)
        for offset in (-1.0, -0.001, 0.0, 0.001, 1.0):
            fire(conn, device=f"D-DUE-{next(n)}", severity=severity, at=now - s(secs + offset))
        seen, _ = fire(conn, device=f"D-DUE-{next(n)}", severity=severity, at=now - s(2 * secs))
        apply_action(conn, seen.id, A.ACKNOWLEDGE, actor="op", now=now - s(secs))
        for offset in (-1.0, 1.0):
            up, _ = fire(conn, device=f"D-DUE-{next(n)}", severity=severity, at=now - s(3 * secs))
            at = now - s(secs + offset)
            escalate(conn, up.id, severity=up.severity, level=1, at=at, note="earlier")
    with conn.transaction():
        selected = overdue_alerts(conn, timeouts, now=now)
    everything = alerts_of_all(conn)
    expected = [a.id for a in everything if escalation_due(a, timeouts, now)]
    assert len(expected) == 4 * 4  # per severity: at and after the timeout, one escalated
    assert [a.id for a in selected] == expected
    assert selected == [a for a in everything if a.id in expected]


def test_hundreds_of_overdue_alerts_escalate_in_one_call(
    conn: psycopg.Connection[Any], cfg: Settings
) -> None:
    n = 500
    one, _ = fire(conn, device="D-ONE", severity=Severity.HIGH)
    sent_one, due, _ = statements(conn, lambda: escalate_due(conn, cfg, now=T0 + s(301)))
    assert due == [one.id]
    ids = [fire(conn, device=f"D-SYN-{i:04d}", severity=Severity.HIGH)[0].id for i in range(n)]
    fire(conn, device="D-FRESH", severity=Severity.HIGH, at=T0 + s(200))
    sent, due, took = statements(conn, lambda: escalate_due(conn, cfg, now=T0 + s(301)))
    assert due == sorted(ids)  # not D-ONE (just escalated) nor D-FRESH (not due yet)
    assert sent == 1 + n * (sent_one - 1)  # one selection, then the same work for each alert
    assert scalar(conn, "SELECT count(*) FROM alerts WHERE escalation_level = 1") == n + 1
    assert scalar(conn, "SELECT count(*) FROM alerts WHERE severity = 'critical'") == n + 1
    assert count(conn, "outbox WHERE channel = 'supervisor'") == n + 1
    assert count(conn, "alert_transitions WHERE action = 'escalate'") == n + 1
    print(f"\nescalate_due: {n} alerts in {took:.2f}s, {sent} statements")


def test_concurrent_escalation_checks_escalate_each_alert_once(
    conn: psycopg.Connection[Any], connect: Connect, cfg: Settings
) -> None:
    n = 200
    ids = [fire(conn, device=f"D-SYN-{i:04d}")[0].id for i in range(n)]
    workers = [connect() for _ in range(4)]
    barrier = threading.Barrier(len(workers), timeout=30)
    got: list[list[int]] = [[] for _ in workers]

    def check(i: int) -> None:
        barrier.wait()
        got[i] = escalate_due(workers[i], cfg, now=T0 + s(61))

    run_threads(len(workers), check)
    flat = [x for g in got for x in g]
    assert sorted(flat) == sorted(ids)  # every alert once, by one of the workers
    assert scalar(conn, "SELECT array_agg(DISTINCT escalation_level) FROM alerts") == [1]
    assert count(conn, "outbox") == n


# --- offline and patrol -------------------------------------------------------------------
def test_a_silent_water_device_gets_one_offline_alert(
    conn: psycopg.Connection[Any], cfg: Settings
) -> None:
    limit = cfg.alert_offline_after_s["water"]
    seen(conn, WATER, T0)
    seen(conn, "D-WD-001-W2", T0 + s(100))  # heard later: still fine at the second check
    assert check_offline(conn, cfg, now=T0 + s(limit - 1)).opened == []
    result = check_offline(conn, cfg, now=T0 + s(limit + 1))
    (alert,) = alerts_of(conn, WATER, "device_offline")
    assert result.opened == [alert.id]
    assert result.resolved == []
    assert (alert.category, alert.severity, alert.state) == ("offline", "medium", "open")
    assert alert.unit_id == UNIT
    assert alert.first_seen == T0 + s(limit + 1)
    assert "silent since" in alert.explanation
    again = check_offline(conn, cfg, now=T0 + s(limit + 60))
    assert again.opened == []
    assert again.resolved == []
    assert [a.occurrences for a in alerts_of(conn, WATER, "device_offline")] == [1]
    assert alerts_of(conn, "D-WD-001-W2", "device_offline") == []
    assert count(conn, "alerts") == 1  # devices never heard from are not judged


def test_a_last_will_opens_an_offline_alert_at_once(
    conn: psycopg.Connection[Any], cfg: Settings
) -> None:
    seen(conn, WATER, T0)
    status(conn, WATER, "offline", T0 + s(5))  # the broker's word: after its last message
    seen(conn, "D-WD-001-W2", T0 + s(5))
    status(conn, "D-WD-001-W2", "offline", T0)  # an old will, heard from since: online
    result = check_offline(conn, cfg, now=T0 + s(6))
    (alert,) = alerts_of(conn, WATER, "device_offline")
    assert result.opened == [alert.id]
    assert "last will" in alert.explanation
    assert check_offline(conn, cfg, now=T0 + s(7)).opened == []
    assert count(conn, "alerts") == 1


def test_a_panel_silent_beyond_the_patrol_cycle_fails_its_patrol(
    conn: psycopg.Connection[Any], cfg: Settings
) -> None:
    cycle = cfg.alert_patrol_cycle_s
    offline = cfg.alert_offline_after_s["panel"]
    assert offline < cycle <= 7200
    seen(conn, PANEL, T0)
    first = check_offline(conn, cfg, now=T0 + s(offline + 1))
    assert [a.id for a in alerts_of(conn, PANEL, "device_offline")] == first.opened
    assert alerts_of(conn, PANEL, "patrol_failed") == []
    second = check_offline(conn, cfg, now=T0 + s(cycle + 1))
    (patrol,) = alerts_of(conn, PANEL, "patrol_failed")
    assert second.opened == [patrol.id]
    assert (patrol.category, patrol.severity) == ("offline", "high")
    assert "patrol" in patrol.explanation
    assert check_offline(conn, cfg, now=T0 + s(cycle + 60)).opened == []
    assert len(alerts_of(conn, PANEL, "patrol_failed")) == 1


def test_a_device_heard_from_again_resolves_its_offline_and_patrol_alerts(
    conn: psycopg.Connection[Any], cfg: Settings
) -> None:
    cycle = cfg.alert_patrol_cycle_s
    seen(conn, PANEL, T0)
    opened = check_offline(conn, cfg, now=T0 + s(cycle + 1)).opened
    assert len(opened) == 2  # offline and patrol failed
    acked = opened[0]
    apply_action(conn, acked, A.ACKNOWLEDGE, actor="op", now=T0 + s(cycle + 2))
    seen(conn, PANEL, T0 + s(cycle + 10))
    status(conn, PANEL, "online", T0 + s(cycle + 10))
    result = check_offline(conn, cfg, now=T0 + s(cycle + 20))
    assert sorted(result.resolved) == sorted(opened)
    assert result.opened == []
    for alert_id in opened:
        assert get_alert(conn, alert_id).resolved_at == T0 + s(cycle + 20)
        last = audit(conn, alert_id)[-1]
        assert (last["action"], last["actor"], last["note"]) == (
            "resolve",
            SYSTEM,
            "device heard from again",
        )
    assert check_offline(conn, cfg, now=T0 + s(cycle + 30)).resolved == []


def test_a_device_back_after_its_last_will_is_resolved_without_a_new_status(
    conn: psycopg.Connection[Any], cfg: Settings
) -> None:
    seen(conn, WATER, T0)
    status(conn, WATER, "offline", T0 + s(5))
    (alert_id,) = check_offline(conn, cfg, now=T0 + s(6)).opened
    seen(conn, WATER, T0 + s(60))  # telemetry again: not offline any more (see _OFFLINE)
    result = check_offline(conn, cfg, now=T0 + s(61))
    assert result.opened == []
    assert result.resolved == [alert_id]
    assert get_alert(conn, alert_id).state == "resolved"


def test_a_device_that_dropped_again_is_not_resolved(
    conn: psycopg.Connection[Any], cfg: Settings
) -> None:
    seen(conn, WATER, T0)
    (alert_id,) = check_offline(conn, cfg, now=T0 + s(400)).opened
    seen(conn, WATER, T0 + s(410))
    status(conn, WATER, "offline", T0 + s(411))  # heard, then its will straight away
    result = check_offline(conn, cfg, now=T0 + s(412))
    assert result.resolved == []
    assert get_alert(conn, alert_id).state == "open"


def test_offline_check_over_5000_devices_is_a_constant_number_of_queries(
    conn: psycopg.Connection[Any], cfg: Settings
) -> None:
    n, silent = 5_000, 400
    kinds = ["panel", "water", "ebike_shed"]
    conn.execute(
        "INSERT INTO devices (id, unit_id, kind)"
        " SELECT 'D-SCALE-' || lpad(i::text, 5, '0'), u.ids[1 + i %% array_length(u.ids, 1)],"
        " (%s::text[])[1 + i %% 3]"
        " FROM generate_series(0, %s - 1) i, (SELECT array_agg(id ORDER BY id) ids FROM units) u",
        (kinds, n),
    )
    conn.execute(
        "INSERT INTO device_last_seen (device_id, last_rx)"
        " SELECT id, %s FROM devices WHERE id LIKE 'D-SCALE-%%'",
        (T0,),
    )
    now = T0 + s(60)  # every one heard within its limit
    healthy, result, t_healthy = statements(conn, lambda: check_offline(conn, cfg, now=now))
    assert (result.opened, result.resolved) == ([], [])
    # count, offline raise, patrol raise, mass-outage alert, resolve: whatever the devices
    assert healthy == 5
    conn.execute(
        "UPDATE device_last_seen SET last_rx = %s WHERE device_id IN (SELECT id FROM devices"
        " WHERE id LIKE 'D-SCALE-%%' AND kind = 'water' ORDER BY id LIMIT %s)",
        (T0 - s(3600), silent),
    )
    sent, result, t_some = statements(conn, lambda: check_offline(conn, cfg, now=now))
    assert len(result.opened) == silent
    assert not result.mass_outage
    assert sent == healthy + 1  # the same statements (+ one NOTIFY), not one per device
    assert count(conn, "alert_transitions WHERE action = 'raise'") == silent
    assert count(conn, "alert_events WHERE event = 'created'") == silent

    conn.execute("UPDATE device_last_seen SET last_rx = %s", (now + s(1),))  # all back
    sent_back, back, t_back = statements(conn, lambda: check_offline(conn, cfg, now=now + s(2)))
    assert sorted(back.resolved) == sorted(result.opened)
    assert sent_back == healthy + 1
    assert count(conn, "alerts WHERE state = 'open'") == 0
    assert count(conn, "alert_transitions WHERE action = 'resolve'") == silent
    print(
        f"\ncheck_offline over {n} devices: all healthy {t_healthy * 1000:.0f} ms"
        f" ({healthy} statements); {silent} silent: opened in {t_some * 1000:.0f} ms"
        f" ({sent} statements); resolved again in {t_back * 1000:.0f} ms"
    )


def test_a_mass_outage_is_one_alert_not_thousands(
    conn: psycopg.Connection[Any], cfg: Settings
) -> None:
    n = 2_000
    conn.execute(
        "INSERT INTO devices (id, unit_id, kind)"
        " SELECT 'D-MASS-' || lpad(i::text, 5, '0'), 'U-WD-001', 'water'"
        " FROM generate_series(0, %s - 1) i",
        (n,),
    )
    conn.execute(
        "INSERT INTO device_last_seen (device_id, last_rx)"
        " SELECT id, %s FROM devices WHERE id LIKE 'D-MASS-%%'",
        (T0 - s(3600),),  # every one silent for an hour: the broker went down
    )
    result = check_offline(conn, cfg, now=T0)
    assert result.mass_outage
    assert result.silent == n
    (alert_id,) = result.opened
    rows = conn.execute("SELECT type, device_id, severity, state FROM alerts").fetchall()
    assert rows == [("mass_offline", "*", "critical", "open")]
    again = check_offline(conn, cfg, now=T0 + s(5))  # still down: nothing new
    assert again.opened == []
    assert count(conn, "alerts") == 1
    # most come back; 10 stay silent: the mass alert resolves, those 10 get their own
    conn.execute(
        "UPDATE device_last_seen SET last_rx = %s WHERE device_id NOT IN"
        " (SELECT id FROM devices WHERE id LIKE 'D-MASS-%%' ORDER BY id LIMIT 10)",
        (T0 + s(10),),
    )
    later = check_offline(conn, cfg, now=T0 + s(20))
    assert not later.mass_outage
    assert alert_id in later.resolved
    assert len(later.opened) == 10
    assert count(conn, "alerts WHERE type = 'device_offline' AND state = 'open'") == 10


# --- the read side ------------------------------------------------------------------------
def test_list_alerts_newest_first_filtered_by_state_and_unit(
    conn: psycopg.Connection[Any],
) -> None:
    a, _ = fire(conn, at=T0)
    b, _ = fire(conn, device="D-WD-002-P1", unit="U-WD-002", at=T0 + s(10))
    c, _ = fire(conn, type_="panel_fault", severity=Severity.HIGH, at=T0 + s(20))
    d, _ = fire(conn, type_="smoke", device="D-WD-001-E1", at=T0 + s(5))
    apply_action(conn, d.id, A.RESOLVE, actor="op", now=T0 + s(30))
    tie, _ = fire(conn, type_="power_fault", severity=Severity.LOW, at=T0 + s(20))
    assert [x.id for x in list_alerts(conn)] == [tie.id, c.id, b.id, a.id]
    assert [x.id for x in list_alerts(conn, unit_id=UNIT)] == [tie.id, c.id, a.id]
    assert [x.id for x in list_alerts(conn, states=["resolved"])] == [d.id]
    assert [x.id for x in list_alerts(conn, states=["resolved", "open"], limit=2)] == [
        tie.id, c.id]  # fmt: skip
    assert list_alerts(conn, unit_id="U-NOPE") == []
    assert list_alerts(conn)[0] == get_alert(conn, tie.id)


def test_alert_detail_has_the_evidence_and_the_audit_trail(
    conn: psycopg.Connection[Any],
) -> None:
    n1, n2 = anomaly(conn), anomaly(conn)
    alert, _ = fire(conn, anomaly_id=n2)
    fire(conn, anomaly_id=n1, at=T0 + s(1))
    apply_action(conn, alert.id, A.ACKNOWLEDGE, actor="ana", note="looking", now=T0 + s(2))
    detail = alert_detail(conn, alert.id)
    assert detail["alert"]["id"] == alert.id
    assert detail["alert"]["state"] == "acknowledged"
    assert detail["alert"]["occurrences"] == 2
    assert [e["id"] for e in detail["evidence"]] == [n1, n2]
    ev = detail["evidence"][0]
    assert (ev["detector"], ev["kind"], ev["severity"]) == ("rule.fire_alarm", "fire_alarm",
                                                           "critical")  # fmt: skip
    assert ev["started_at"] == T0.isoformat()
    assert ev["ended_at"] is None
    assert ev["explanation"] == "fire alarm in zone 3"
    assert detail["transitions"] == [
        {"action": "raise", "from_state": None, "to_state": "open", "actor": SYSTEM,
         "note": f"fire_alarm on {PANEL}", "at": T0.isoformat()},
        {"action": "acknowledge", "from_state": "open", "to_state": "acknowledged",
         "actor": "ana", "note": "looking", "at": (T0 + s(2)).isoformat()},
    ]  # fmt: skip
    other, _ = fire(conn, device="D-WD-002-P1", unit="U-WD-002")
    assert alert_detail(conn, other.id)["evidence"] == []
