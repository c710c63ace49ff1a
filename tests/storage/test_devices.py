"""The registry's devices in PostgreSQL (storage/devices.py): the import's report per row,
dry runs, a vendor's rules, decommissioning that keeps history, and the broker signalled on
a move.

They run on the demo city's vendors (tests/storage/test_vendors.py checks them): acme
serves U-WD-001 and U-WD-002 (not U-JA-001), volt serves U-WD-001; acme's devices there are
D-WD-001-W1/W2, volt's D-WD-001-E1 (city.SHED)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.core.access import Forbidden
from firewatch.core.credentials import broker_hash
from firewatch.core.csv_import import summarize
from firewatch.core.device_import import (
    Conflict,
    RegistryError,
    device_row,
    parse_devices_csv,
)
from firewatch.storage import channels, credentials, vendors
from firewatch.storage import devices as store
from firewatch.storage.seed import device_routes
from tests.builders import city
from tests.builders.rollups import ingest
from tests.builders.rows import water_row
from tests.conftest import Connect
from tests.helpers import registry_events, scalar

ADMIN = "root"


CSV = """id,unit_id,kind,vendor,model,design_kpa,ports
D-NEW-1,U-WD-002,water,acme,PT-1,900,
D-NEW-2,U-WD-002,sprinkler,acme,,,
D-NEW-3,U-NOWHERE,panel,,,,
D-NEW-1,U-WD-001,water,acme,,,
D/NEW,U-WD-002,panel,,,,
D-NEW-4,U-WD-001,ebike_shed,volt,,,8
D-WD-001-W1,U-WD-001,water,acme,PT-2,1300,
D-WD-001-P1,U-WD-001,water,,,,
D-NEW-5,U-WD-001,panel,nobody,,,
"""


def test_an_import_reports_every_row_and_writes_the_good_ones(db: psycopg.Connection[Any]) -> None:
    parsed = parse_devices_csv(CSV)
    results = store.import_devices(
        db, parsed.rows, rejected=parsed.rejected, actor=ADMIN, as_vendor=None
    )
    report = [(r.line, r.id, r.outcome, r.reason or ",".join(r.changed)) for r in results]
    assert report == [
        (2, "D-NEW-1", "created", ""),
        (3, "D-NEW-2", "rejected", "unknown kind 'sprinkler' (panel, water, ebike_shed)"),
        (4, "D-NEW-3", "rejected", "unknown unit 'U-NOWHERE'"),
        (5, "D-NEW-1", "rejected", "duplicate id: already on line 2"),
        (6, "D/NEW", "rejected", "id 'D/NEW' is not [A-Za-z0-9_.-]{1,64}"),
        (7, "D-NEW-4", "created", ""),
        (8, "D-WD-001-W1", "updated", "model,design_kpa"),
        (
            9,
            "D-WD-001-P1",
            "rejected",
            "kind cannot change (panel → water): decommission the device and register the new"
            " one under a new id",
        ),
        (
            10,
            "D-NEW-5",
            "rejected",
            "unknown vendor 'nobody': register it first (firewatch vendor add, POST /vendors)",
        ),
    ]
    assert summarize(results) == {"created": 2, "updated": 1, "unchanged": 0, "rejected": 6}
    new = store.get_device(db, "D-NEW-1")
    assert new is not None
    assert (new["unit_id"], new["vendor"], new["model"], new["metadata"]) == (
        "U-WD-002",
        "acme",
        "PT-1",
        {"design_kpa": 900.0},
    )
    w1 = store.get_device(db, city.WATER)
    assert w1 is not None
    assert w1["metadata"] == {"point": "roof tank outlet", "design_kpa": 1300.0}  # point kept
    assert registry_events(db, "D-NEW-1") == [("device", "registered", ADMIN)]
    assert registry_events(db, city.WATER) == [("device", "updated", ADMIN)]
    assert scalar(db, "SELECT count(*) FROM devices WHERE id = ANY(%s)", ["D-NEW-3", "D/NEW"]) == 0

    again = store.import_devices(db, parsed.rows, actor=ADMIN, as_vendor=None)
    assert {r.outcome for r in again if r.id in ("D-NEW-1", "D-NEW-4")} == {"unchanged"}


def test_a_dry_run_checks_everything_and_writes_nothing(db: psycopg.Connection[Any]) -> None:
    before = scalar(db, "SELECT count(*) FROM registry_events")
    parsed = parse_devices_csv(CSV)
    results = store.import_devices(db, parsed.rows, actor=ADMIN, as_vendor=None, dry_run=True)
    assert [r.outcome for r in results if r.id == "D-NEW-1"] == ["created"]
    assert store.get_device(db, "D-NEW-1") is None
    w1 = store.get_device(db, city.WATER)
    assert w1 is not None
    assert w1["model"] == ""
    assert scalar(db, "SELECT count(*) FROM registry_events") == before


def test_a_vendor_imports_only_its_own_devices_into_units_it_serves(
    db: psycopg.Connection[Any],
) -> None:
    text = """id,unit_id,kind,vendor,model
D-A-1,U-WD-002,water,,A1
D-A-2,U-WD-002,water,acme,A2
D-A-3,U-JA-001,water,,
D-A-4,U-WD-002,water,volt,
D-WD-001-E1,U-WD-001,ebike_shed,,hacked
D-WD-001-W1,U-WD-001,water,,PT-9
D-WD-001-W2,U-JA-001,water,,
"""
    parsed = parse_devices_csv(text)
    results = store.import_devices(db, parsed.rows, actor="acme-ops", as_vendor="acme")
    assert [(r.id, r.outcome, r.reason) for r in results] == [
        ("D-A-1", "created", ""),
        ("D-A-2", "created", ""),
        (
            "D-A-3",
            "rejected",
            "acme does not serve unit 'U-JA-001' (no open installation; an admin opens one)",
        ),
        ("D-A-4", "rejected", "vendor 'volt' is not yours: you register devices as acme"),
        ("D-WD-001-E1", "rejected", "device 'D-WD-001-E1' is not one of acme's"),  # volt's
        ("D-WD-001-W1", "updated", ""),
        (
            "D-WD-001-W2",
            "rejected",
            "acme does not serve unit 'U-JA-001' (no open installation; an admin opens one)",
        ),
    ]
    a1 = store.get_device(db, "D-A-1")
    assert a1 is not None
    assert a1["vendor"] == "acme"
    e1 = store.get_device(db, city.SHED)
    assert e1 is not None
    assert e1["model"] == ""


def test_a_vendor_registers_and_changes_only_within_its_scope(db: psycopg.Connection[Any]) -> None:

    def row(device: str, unit: str, kind: str = "water", vendor: str | None = None) -> Any:
        return device_row(line=1, device_id=device, unit_id=unit, kind=kind, vendor=vendor)

    created = store.register_device(db, row("D-A-1", "U-WD-002"), actor="a", as_vendor="acme")
    assert created["vendor"] == "acme"
    with pytest.raises(Forbidden, match="acme does not serve unit 'U-JA-001'"):
        store.register_device(db, row("D-A-2", "U-JA-001"), actor="a", as_vendor="acme")
    with pytest.raises(Conflict, match="device id 'D-WD-001-E1' is taken"):
        store.register_device(db, row(city.SHED, city.UNIT), actor="a", as_vendor="acme")
    with pytest.raises(Forbidden, match="not one of acme's"):
        store.update_device(db, city.SHED, actor="a", as_vendor="acme", model="x")
    with pytest.raises(Forbidden, match="not one of acme's"):
        store.decommission_device(db, city.SHED, actor="a", as_vendor="acme")
    with pytest.raises(Forbidden, match="acme does not serve unit 'U-JA-001'"):
        store.update_device(db, city.WATER, actor="a", as_vendor="acme", unit_id="U-JA-001")
    with pytest.raises(Forbidden, match="vendor 'volt' is not yours"):
        store.update_device(db, city.WATER, actor="a", as_vendor="acme", vendor="volt")
    device, changed = store.update_device(
        db, city.WATER, actor="a", as_vendor="acme", metadata={"point": None, "min_kpa": 150}
    )
    assert changed == ["min_kpa", "point"]
    assert device["metadata"] == {"design_kpa": 1200, "min_kpa": 150}
    with pytest.raises(RegistryError, match="min_kpa 1300 is not below design_kpa 1200"):
        store.update_device(db, city.WATER, actor="a", as_vendor="acme", metadata={"min_kpa": 1300})
    # an ended installation: no new devices there, its devices stay its own
    vendors.uninstall(db, "acme", city.UNIT, actor=ADMIN)
    with pytest.raises(Forbidden, match="acme does not serve unit 'U-WD-001'"):
        store.register_device(db, row("D-A-3", city.UNIT), actor="a", as_vendor="acme")
    store.update_device(db, city.WATER, actor="a", as_vendor="acme", model="PT-1")


def test_decommissioning_keeps_history_stops_routing_and_revokes_the_login(
    db: psycopg.Connection[Any],
) -> None:
    ingest(db, [water_row(city.WATER, datetime.now(UTC) - timedelta(minutes=5), 310.0)])
    credentials.store_hash(db, city.WATER, broker_hash("secret"), actor=ADMIN)
    assert device_routes(db, [city.WATER]) == [(city.WATER, city.UNIT, "water")]

    done = store.decommission_device(db, city.WATER, actor="acme-ops", as_vendor="acme", note="hw")
    assert done["decommissioned_by"] == "acme-ops"
    assert done["decommission_note"] == "hw"
    assert device_routes(db, [city.WATER]) == []
    assert scalar(db, "SELECT count(*) FROM telemetry WHERE device_id = %s", city.WATER) == 1
    cred = credentials.credential_of(db, city.WATER)
    assert cred is not None
    assert cred["revoked_by"] == "acme-ops"
    assert registry_events(db, city.WATER) == [
        ("credential", "issued", ADMIN),
        ("credential", "revoked", "acme-ops"),
        ("device", "decommissioned", "acme-ops"),
    ]
    assert city.WATER not in [d["id"] for d in store.list_devices(db, vendor="acme")]
    listed = store.list_devices(db, vendor="acme", include_decommissioned=True)
    assert city.WATER in [d["id"] for d in listed]

    with pytest.raises(Conflict, match="decommissioned already"):
        store.decommission_device(db, city.WATER, actor=ADMIN, as_vendor=None)
    reuse = device_row(line=1, device_id=city.WATER, unit_id=city.UNIT, kind="water")
    with pytest.raises(Conflict, match="ids are never reused"):
        store.register_device(db, reuse, actor=ADMIN, as_vendor=None)
    with pytest.raises(Conflict, match="ids are never reused"):
        store.update_device(db, city.WATER, actor=ADMIN, as_vendor=None, model="x")
    (result,) = store.import_devices(db, [reuse], actor=ADMIN, as_vendor=None)
    assert result.outcome == "rejected"
    assert "ids are never reused" in result.reason


def _notified(listener: psycopg.Connection[Any], within_s: float) -> list[str]:
    deadline = time.monotonic() + within_s
    got: list[str] = []
    while time.monotonic() < deadline and not got:
        left = deadline - time.monotonic()
        got += [n.channel for n in listener.notifies(timeout=max(0.01, left), stop_after=1)]
    return got


def test_moving_or_decommissioning_a_device_signals_the_broker(
    db: psycopg.Connection[Any], connect: Connect
) -> None:
    listener = connect()
    channels.listen(listener, [channels.BROKER])

    store.update_device(db, city.WATER, actor=ADMIN, as_vendor=None, model="PT-2")
    assert _notified(listener, 0.5) == []  # not a move: nothing for the broker
    store.update_device(db, city.WATER, actor=ADMIN, as_vendor=None, unit_id="U-WD-002")
    assert _notified(listener, 10) == [channels.BROKER]
    assert registry_events(db, city.WATER)[-1] == ("device", "moved", ADMIN)
    assert device_routes(db, [city.WATER]) == [(city.WATER, "U-WD-002", "water")]

    parsed = parse_devices_csv(f"id,unit_id,kind\n{city.WATER},{city.UNIT},water\n")
    store.import_devices(db, parsed.rows, actor=ADMIN, as_vendor=None, dry_run=True)
    assert _notified(listener, 0.5) == []  # a dry run's signal is rolled back with it
    store.import_devices(db, parsed.rows, actor=ADMIN, as_vendor=None)
    assert _notified(listener, 10) == [channels.BROKER]

    store.decommission_device(db, city.WATER_2, actor=ADMIN, as_vendor=None)
    assert _notified(listener, 10) == [channels.BROKER]
