"""The GB/T gateway's tables (migration 0019, storage/gateway.py): the directory of panels
by GB/T address, the duty-check queue (requested, pending, marked sent and closed, listed),
the NOTIFY that wakes the gateway, and the constraints the database itself keeps."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.core.device_import import Conflict, NotFound
from firewatch.core.gateway_rows import GatewayDevice, PendingDutyCheck
from firewatch.storage import channels
from firewatch.storage import devices as registry
from firewatch.storage import gateway as store
from tests.builders import city
from tests.conftest import Connect
from tests.helpers import scalar

ADMIN = "root"
OTHER_PANEL = "D-WD-002-P1"  # the hospital's panel (tanda), U-WD-002
ADDRESS = "00a1b2c3d4e5"


@pytest.fixture(autouse=True)
def _no_addresses(db: psycopg.Connection[Any]) -> None:
    """Start from a registry without GB/T addresses (the demo seed gives some panels one)."""
    db.execute("UPDATE devices SET gbt_address = NULL")


def _address(db: psycopg.Connection[Any], device: str, address: str | None) -> None:
    registry.update_device(
        db, device, actor=ADMIN, as_vendor=None, gbt_address="" if address is None else address
    )


def test_the_directory_maps_each_address_to_its_panel(db: psycopg.Connection[Any]) -> None:
    assert store.gateway_directory(db) == {}
    _address(db, city.PANEL, ADDRESS.upper())
    registry.update_device(
        db, OTHER_PANEL, actor=ADMIN, as_vendor=None, gbt_address="ffffffffffff",
        gbt_profile="year-first",
    )  # fmt: skip
    assert store.gateway_directory(db) == {
        0x00A1B2C3D4E5: GatewayDevice(city.PANEL, city.UNIT, "standard", False),
        0xFFFFFFFFFFFF: GatewayDevice(OTHER_PANEL, "U-WD-002", "year-first", False),
    }

    # Decommissioned, the panel stays in the directory (its frames are refused, knowingly)
    # and its address is free for the replacement, which then answers for it.
    registry.decommission_device(db, city.PANEL, actor=ADMIN, as_vendor=None)
    assert store.gateway_directory(db)[0x00A1B2C3D4E5] == GatewayDevice(
        city.PANEL, city.UNIT, "standard", True
    )
    db.execute(
        "INSERT INTO devices (id, unit_id, kind, gbt_address) VALUES ('D-NEW-P', %s, 'panel', %s)",
        (city.UNIT, ADDRESS),
    )
    assert store.gateway_directory(db)[0x00A1B2C3D4E5] == GatewayDevice(
        "D-NEW-P", city.UNIT, "standard", False
    )


def test_the_database_keeps_addresses_well_formed_unique_and_on_panels(
    db: psycopg.Connection[Any],
) -> None:
    assert scalar(db, "SELECT gbt_profile FROM devices WHERE id = %s", city.WATER) == "standard"
    sql = "UPDATE devices SET gbt_address = %s WHERE id = %s"
    for bad in ("00A1B2C3D4E5", "a1b2c3d4e5", "00a1b2c3d4e5f", "00a1b2c3d4eg"):
        with pytest.raises(psycopg.errors.CheckViolation):
            db.execute(sql, (bad, city.PANEL))
    with pytest.raises(psycopg.errors.CheckViolation, match="devices_gbt_address_panel"):
        db.execute(sql, (ADDRESS, city.WATER))
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE devices SET gbt_profile = 'Year First' WHERE id = %s", (city.PANEL,))
    db.execute(sql, (ADDRESS, city.PANEL))
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(sql, (ADDRESS, OTHER_PANEL))
    with pytest.raises(psycopg.errors.CheckViolation):  # an outcome closes a check
        db.execute(
            "INSERT INTO duty_checks (device_id, requested_by, outcome) VALUES (%s, 'x', 'missed')",
            (city.PANEL,),
        )


def test_a_duty_check_needs_a_panel_with_an_address_in_service(
    db: psycopg.Connection[Any],
) -> None:
    with pytest.raises(NotFound, match="no device 'D-NOPE'"):
        store.request_duty_check(db, "D-NOPE", "li.wei")
    with pytest.raises(Conflict, match="has no GB/T address, so there is no downlink"):
        store.request_duty_check(db, city.PANEL, "li.wei")
    with pytest.raises(Conflict, match="has no GB/T address"):
        store.request_duty_check(db, city.WATER, "li.wei")
    _address(db, city.PANEL, ADDRESS)
    first = store.request_duty_check(db, city.PANEL, "li.wei")
    registry.decommission_device(db, city.PANEL, actor=ADMIN, as_vendor=None)
    with pytest.raises(Conflict, match=r"was decommissioned on .* by root"):
        store.request_duty_check(db, city.PANEL, "li.wei")
    assert scalar(db, "SELECT count(*) FROM duty_checks") == 1
    assert store.get_duty_check(db, first) is not None


def test_requests_wait_for_the_gateway_until_sent_or_closed(
    db: psycopg.Connection[Any], connect: Connect
) -> None:
    listener = connect()
    channels.listen(listener, [channels.DUTY_CHECKS])
    _address(db, city.PANEL, ADDRESS)
    _address(db, OTHER_PANEL, "000000000001")

    a = store.request_duty_check(db, city.PANEL, "li.wei")
    assert _notified(listener) == [channels.DUTY_CHECKS]
    b = store.request_duty_check(db, OTHER_PANEL, "schedule")
    c = store.request_duty_check(db, city.PANEL, "wang.fang")
    pending = store.pending_duty_checks(db)
    assert [(p.id, p.device_id, p.requested_by) for p in pending] == [
        (a, city.PANEL, "li.wei"),
        (b, OTHER_PANEL, "schedule"),
        (c, city.PANEL, "wang.fang"),
    ]
    assert isinstance(pending[0], PendingDutyCheck)
    assert pending[0].requested_at <= pending[1].requested_at <= pending[2].requested_at
    assert [p.id for p in store.pending_duty_checks(db, limit=1)] == [a]

    # a request rolled back wakes nobody and leaves no row
    with db.transaction(force_rollback=True):
        store.request_duty_check(db, city.PANEL, "li.wei")
    assert _notified(listener, 0.5, first=False) == [channels.DUTY_CHECKS] * 2  # b, c
    assert scalar(db, "SELECT count(*) FROM duty_checks") == 3

    sent = datetime.now(UTC)
    assert store.mark_duty_check(db, a, sent_at=sent)
    assert store.mark_duty_check(db, b, outcome="not_connected")  # never sent
    assert [p.id for p in store.pending_duty_checks(db)] == [c]
    row_a = store.get_duty_check(db, a)
    assert row_a is not None
    assert (row_a["sent_at"], row_a["outcome"], row_a["closed_at"]) == (sent, None, None)
    row_b = store.get_duty_check(db, b)
    assert row_b is not None
    assert (row_b["sent_at"], row_b["outcome"]) == (None, "not_connected")
    assert row_b["closed_at"] is not None


def test_marking_records_the_answer_and_closes_once(db: psycopg.Connection[Any]) -> None:
    _address(db, city.PANEL, ADDRESS)
    check = store.request_duty_check(db, city.PANEL, "li.wei")
    sent = datetime.now(UTC)
    answered = sent + timedelta(minutes=12)
    store.mark_duty_check(db, check, sent_at=sent)
    assert store.mark_duty_check(db, check, outcome="late", answered_at=answered)
    row = store.get_duty_check(db, check)
    assert row is not None
    assert (row["sent_at"], row["outcome"], row["answered_at"]) == (sent, "late", answered)
    closed = row["closed_at"]
    assert closed is not None
    # a later mark changes what it gives, never the time it was closed
    store.mark_duty_check(db, check, outcome="answered")
    again = store.get_duty_check(db, check)
    assert again is not None
    assert (again["outcome"], again["closed_at"], again["sent_at"]) == ("answered", closed, sent)

    with pytest.raises(ValueError, match="unknown duty-check outcome 'ok'"):
        store.mark_duty_check(db, check, outcome="ok")
    assert not store.mark_duty_check(db, 999_999, sent_at=sent)


def test_the_list_is_the_devices_latest_first(db: psycopg.Connection[Any]) -> None:
    _address(db, city.PANEL, ADDRESS)
    _address(db, OTHER_PANEL, "000000000001")
    ids = [store.request_duty_check(db, city.PANEL, f"op{i}") for i in range(3)]
    store.request_duty_check(db, OTHER_PANEL, "schedule")
    store.mark_duty_check(db, ids[0], sent_at=datetime.now(UTC), outcome="missed")
    listed = store.list_duty_checks(db, city.PANEL)
    assert [r["id"] for r in listed] == ids[::-1]
    assert set(listed[0]) == {
        "id",
        "device_id",
        "requested_by",
        "requested_at",
        "sent_at",
        "outcome",
        "answered_at",
        "closed_at",
    }
    assert listed[-1]["outcome"] == "missed"
    assert [r["requested_by"] for r in store.list_duty_checks(db, city.PANEL, 2)] == ["op2", "op1"]
    assert store.list_duty_checks(db, city.WATER) == []


def _notified(
    listener: psycopg.Connection[Any], within_s: float = 10, *, first: bool = True
) -> list[str]:
    """The channels notified within ``within_s``: up to the first one (``first``), or all
    that arrive in that time (to show that nothing more came)."""
    deadline = time.monotonic() + within_s
    got: list[str] = []
    while time.monotonic() < deadline and not (first and got):
        left = deadline - time.monotonic()
        got += [n.channel for n in listener.notifies(timeout=max(0.01, left), stop_after=1)]
    return got
