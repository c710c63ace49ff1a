"""Claims (``POST /alerts/{id}/claim`` and ``/release``; storage/alert_claims.py): one seat
works an alert, the others see it held; actions by another seat are refused; a shift
leader takes over; every claim is audited and streamed; racing seats get one claim."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import psycopg
import pytest

from firewatch.core.alerts import ClaimedByOther
from firewatch.core.people import Role
from firewatch.storage import alert_claims
from tests.builders.alerts import new_alert
from tests.builders.people import as_role

pytestmark = pytest.mark.anyio


def trail(db: psycopg.Connection[Any], alert_id: int) -> list[tuple[str, str, str]]:
    rows = db.execute(
        "SELECT action, actor, note FROM alert_transitions WHERE alert_id = %s AND action"
        " IN ('claim', 'take_over', 'release') ORDER BY id",
        (alert_id,),
    ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def events(db: psycopg.Connection[Any], alert_id: int) -> list[tuple[str, str | None]]:
    rows = db.execute(
        "SELECT event, payload->'alert'->>'claimed_by' FROM alert_events WHERE alert_id = %s"
        " AND event IN ('claim', 'release') ORDER BY id",
        (alert_id,),
    ).fetchall()
    return [(str(e), c) for e, c in rows]


async def test_one_seat_claims_and_the_other_is_told_who_holds_it(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    alert = new_alert(db)
    li, wang = (as_role(db, Role.OPERATOR, username=n) for n in ("li.wei", "wang.fang"))

    r = await anon.post(f"/alerts/{alert.id}/claim", headers=li)
    assert r.status_code == 200, r.text
    assert r.json()["claimed_by"] == "li.wei"
    assert r.json()["claimed_at"] is not None
    again = await anon.post(f"/alerts/{alert.id}/claim", headers=li)  # idempotent
    assert again.json()["claimed_at"] == r.json()["claimed_at"]

    r = await anon.post(f"/alerts/{alert.id}/claim", headers=wang)
    assert r.status_code == 409
    assert r.json()["detail"].startswith(f"alert {alert.id} is claimed by li.wei since ")
    r = await anon.post(f"/alerts/{alert.id}/actions", json={"action": "acknowledge"}, headers=wang)
    assert r.status_code == 409
    assert "claimed by li.wei" in r.json()["detail"]
    assert db.execute("SELECT state FROM alerts WHERE id = %s", (alert.id,)).fetchone() == ("open",)

    r = await anon.post(f"/alerts/{alert.id}/actions", json={"action": "acknowledge"}, headers=li)
    assert r.status_code == 200
    assert (r.json()["state"], r.json()["claimed_by"]) == ("acknowledged", "li.wei")

    assert (await anon.post(f"/alerts/{alert.id}/release", headers=wang)).status_code == 409
    r = await anon.post(f"/alerts/{alert.id}/release", json={"note": "end of shift"}, headers=li)
    assert (r.status_code, r.json()["claimed_by"], r.json()["claimed_at"]) == (200, None, None)
    r = await anon.post(f"/alerts/{alert.id}/claim", headers=wang)
    assert r.json()["claimed_by"] == "wang.fang"

    assert trail(db, alert.id) == [
        ("claim", "li.wei", ""),
        ("release", "li.wei", "end of shift"),
        ("claim", "wang.fang", ""),
    ]
    assert events(db, alert.id) == [
        ("claim", "li.wei"),
        ("release", None),
        ("claim", "wang.fang"),
    ]


async def test_a_shift_leader_takes_over_and_an_operator_may_not(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    alert = new_alert(db)
    li = as_role(db, Role.OPERATOR, username="li.wei")
    wang = as_role(db, Role.OPERATOR, username="wang.fang")
    lead = as_role(db, Role.SHIFT_LEADER, username="chen.lead")
    assert (await anon.post(f"/alerts/{alert.id}/claim", headers=li)).status_code == 200

    r = await anon.post(f"/alerts/{alert.id}/claim", json={"force": True}, headers=wang)
    assert r.status_code == 403
    assert "may not take over" in r.json()["detail"]
    r = await anon.post(f"/alerts/{alert.id}/claim", json={"force": True}, headers=lead)
    assert (r.status_code, r.json()["claimed_by"]) == (200, "chen.lead")
    r = await anon.post(f"/alerts/{alert.id}/actions", json={"action": "acknowledge"}, headers=li)
    assert r.status_code == 409  # li.wei no longer holds it

    assert trail(db, alert.id) == [
        ("claim", "li.wei", ""),
        ("take_over", "chen.lead", "taken over from li.wei"),
    ]


async def test_an_alert_no_longer_active_cannot_be_claimed(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    alert = new_alert(db)
    r = await client.post(f"/alerts/{alert.id}/actions", json={"action": "mark_false_alarm"})
    assert r.status_code == 200
    r = await client.post(f"/alerts/{alert.id}/claim")
    assert r.status_code == 409
    assert r.json()["detail"] == f"alert {alert.id} is false_alarm: nothing to claim"
    assert (await client.post("/alerts/987654/claim")).status_code == 404
    r = await client.post(f"/alerts/{alert.id}/claim", json={"force": "yes"})
    assert r.status_code == 422


def test_two_seats_racing_for_one_alert_get_one_claim(
    db: psycopg.Connection[Any], database_url: str
) -> None:
    alert = new_alert(db)
    barrier = threading.Barrier(8)
    won: list[str] = []
    lost: list[str] = []

    def seat(name: str) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            barrier.wait()
            try:
                alert_claims.claim(conn, alert.id, actor=name)
                won.append(name)
            except ClaimedByOther as err:
                lost.append(err.holder)

    threads = [threading.Thread(target=seat, args=(f"seat{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1
    assert lost == won * 7  # every loser was told who won
    assert trail(db, alert.id) == [("claim", won[0], "")]
