"""Vendors, installations and the registry's device writes in PostgreSQL
(storage/vendors.py): the import's report per row, dry runs, a vendor's rules,
decommissioning that keeps history, and the broker signalled on a move."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.core.access import Forbidden
from firewatch.core.credentials import broker_hash
from firewatch.core.device_import import (
    Conflict,
    NotFound,
    RegistryError,
    device_row,
    parse_devices_csv,
)
from firewatch.storage import channels, credentials
from firewatch.storage import vendors as store
from firewatch.storage.seed import device_routes, load_seed, read_seed
from tests.builders import city
from tests.builders.rollups import ingest
from tests.builders.rows import water_row
from tests.conftest import Connect
from tests.helpers import scalar

ADMIN = "root"


#: The open installations the demo seed makes (firewatch/storage/seeds/xuchang.toml): a
#: vendor serves every unit where one of its devices is.
SEEDED = {
    "acme": ["U-CG-001", "U-WD-001", "U-WD-002", "U-WD-003", "U-XC-001", "U-YZ-001"],
    "gst": ["U-CG-001", "U-JA-001", "U-WD-001", "U-XC-001"],
    "tanda": ["U-WD-002", "U-YL-001", "U-YZ-001"],
    "volt": ["U-CG-001", "U-JA-001", "U-WD-001", "U-WD-003", "U-YL-001"],
}


@pytest.fixture
def vendors(db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """The demo city with the vendors its seed registers: acme serves U-WD-001 and U-WD-002
    (not U-JA-001), volt serves U-WD-001; acme's devices there are D-WD-001-W1/W2, volt's
    D-WD-001-E1 (city.SHED)."""
    served = {v["id"]: v["units"] for v in store.list_vendors(db)}
    assert served == SEEDED
    return db


def events(db: psycopg.Connection[Any], subject_id: str) -> list[tuple[str, str, str]]:
    rows = db.execute(
        "SELECT subject, event, actor FROM registry_events WHERE subject_id = %s ORDER BY id",
        (subject_id,),
    ).fetchall()
    return [(str(s), str(e), str(a)) for s, e, a in rows]


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


def test_an_import_reports_every_row_and_writes_the_good_ones(
    vendors: psycopg.Connection[Any],
) -> None:
    db = vendors
    parsed = parse_devices_csv(CSV)
    results = store.import_devices(
        db, parsed.rows, rejected=parsed.rejected, actor=ADMIN, as_vendor=None
    )
    report = [(r.line, r.device_id, r.outcome, r.reason or ",".join(r.changed)) for r in results]
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
    assert store.summarize(results) == {"created": 2, "updated": 1, "unchanged": 0, "rejected": 6}
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
    assert events(db, "D-NEW-1") == [("device", "registered", ADMIN)]
    assert events(db, city.WATER) == [("device", "updated", ADMIN)]
    assert scalar(db, "SELECT count(*) FROM devices WHERE id = ANY(%s)", ["D-NEW-3", "D/NEW"]) == 0

    again = store.import_devices(db, parsed.rows, actor=ADMIN, as_vendor=None)
    assert {r.outcome for r in again if r.device_id in ("D-NEW-1", "D-NEW-4")} == {"unchanged"}


def test_a_dry_run_checks_everything_and_writes_nothing(vendors: psycopg.Connection[Any]) -> None:
    db = vendors
    before = scalar(db, "SELECT count(*) FROM registry_events")
    parsed = parse_devices_csv(CSV)
    results = store.import_devices(db, parsed.rows, actor=ADMIN, as_vendor=None, dry_run=True)
    assert [r.outcome for r in results if r.device_id == "D-NEW-1"] == ["created"]
    assert store.get_device(db, "D-NEW-1") is None
    w1 = store.get_device(db, city.WATER)
    assert w1 is not None
    assert w1["model"] == ""
    assert scalar(db, "SELECT count(*) FROM registry_events") == before


def test_a_vendor_imports_only_its_own_devices_into_units_it_serves(
    vendors: psycopg.Connection[Any],
) -> None:
    db = vendors
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
    assert [(r.device_id, r.outcome, r.reason) for r in results] == [
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


def test_a_vendor_registers_and_changes_only_within_its_scope(
    vendors: psycopg.Connection[Any],
) -> None:
    db = vendors

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
    store.uninstall(db, "acme", city.UNIT, actor=ADMIN)
    with pytest.raises(Forbidden, match="acme does not serve unit 'U-WD-001'"):
        store.register_device(db, row("D-A-3", city.UNIT), actor="a", as_vendor="acme")
    store.update_device(db, city.WATER, actor="a", as_vendor="acme", model="PT-1")


def test_vendors_and_installations_keep_their_history(vendors: psycopg.Connection[Any]) -> None:
    db = vendors
    with pytest.raises(Conflict, match="vendor 'acme' is already registered"):  # by the seed
        store.add_vendor(db, "acme", "Again", actor=ADMIN)
    store.add_vendor(db, "testco", "Test Co", actor=ADMIN)
    store.install(db, "testco", city.UNIT, actor=ADMIN)
    store.install(db, "testco", "U-WD-002", actor=ADMIN)
    with pytest.raises(Conflict, match="vendor 'testco' is already registered"):
        store.add_vendor(db, "testco", "Again", actor=ADMIN)
    with pytest.raises(RegistryError, match="vendor id 'a b'"):
        store.add_vendor(db, "a b", "Space", actor=ADMIN)
    with pytest.raises(Conflict, match=r"testco already serves U-WD-001 \(installation \d+"):
        store.install(db, "testco", city.UNIT, actor=ADMIN)
    with pytest.raises(Conflict, match=r"acme already serves U-WD-001 \(installation \d+"):
        store.install(db, "acme", city.UNIT, actor=ADMIN)  # the seed's installation
    with pytest.raises(NotFound, match="no unit 'U-NOWHERE'"):
        store.install(db, "testco", "U-NOWHERE", actor=ADMIN)
    with pytest.raises(NotFound, match="no vendor 'nobody'"):
        store.install(db, "nobody", city.UNIT, actor=ADMIN)
    testco = store.get_vendor(db, "testco")
    assert testco is not None
    assert testco["units"] == [city.UNIT, "U-WD-002"]

    ended = store.uninstall(db, "testco", city.UNIT, actor=ADMIN, note="contract over")
    assert ended["until"] is not None
    with pytest.raises(Conflict, match=f"installation {ended['id']} ended at"):
        store.end_installation(db, ended["id"], actor=ADMIN)
    with pytest.raises(NotFound, match="testco does not serve U-WD-001"):
        store.uninstall(db, "testco", city.UNIT, actor=ADMIN)
    again = store.install(db, "testco", city.UNIT, actor=ADMIN)
    history = store.installations(db, "testco")
    assert [(i["unit_id"], i["until"] is None) for i in history] == [
        (city.UNIT, True),
        ("U-WD-002", True),
        (city.UNIT, False),
    ]
    assert events(db, str(again["id"])) == [("installation", "opened", ADMIN)]
    assert events(db, str(ended["id"])) == [
        ("installation", "opened", ADMIN),
        ("installation", "ended", ADMIN),
    ]
    assert events(db, "testco") == [("vendor", "added", ADMIN)]
    # the other vendors' installations are untouched
    served = {v["id"]: v["units"] for v in store.list_vendors(db)}
    assert served == {**SEEDED, "testco": [city.UNIT, "U-WD-002"]}


def test_the_seed_registers_its_vendors_and_their_installations_once(connect: Connect) -> None:
    conn = connect()  # the unseeded database
    assert scalar(conn, "SELECT count(*) FROM vendors") == 0
    seed = read_seed()
    pairs = {(d.vendor, u.id) for u in seed.units for d in u.devices if d.vendor}
    assert pairs == {(v, unit) for v, units in SEEDED.items() for unit in units}

    def installed() -> list[tuple[Any, ...]]:
        return conn.execute(
            "SELECT id, vendor_id, unit_id, until IS NULL, created_by FROM installations"
            " ORDER BY vendor_id, unit_id"
        ).fetchall()

    load_seed(conn, seed)
    first = installed()
    assert [(v, u, is_open, by) for _, v, u, is_open, by in first] == [
        (v, u, True, "seed") for v, u in sorted(pairs)
    ]
    assert [(v["id"], v["units"]) for v in store.list_vendors(conn)] == sorted(SEEDED.items())

    load_seed(conn, seed)  # again: the same installations, none added
    assert installed() == first
    assert scalar(conn, "SELECT count(*) FROM vendors") == len(SEEDED)


def test_decommissioning_keeps_history_stops_routing_and_revokes_the_login(
    vendors: psycopg.Connection[Any],
) -> None:
    db = vendors
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
    assert events(db, city.WATER) == [
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
    vendors: psycopg.Connection[Any], connect: Connect
) -> None:
    db = vendors
    listener = connect()
    channels.listen(listener, [channels.BROKER])

    store.update_device(db, city.WATER, actor=ADMIN, as_vendor=None, model="PT-2")
    assert _notified(listener, 0.5) == []  # not a move: nothing for the broker
    store.update_device(db, city.WATER, actor=ADMIN, as_vendor=None, unit_id="U-WD-002")
    assert _notified(listener, 10) == [channels.BROKER]
    assert events(db, city.WATER)[-1] == ("device", "moved", ADMIN)
    assert device_routes(db, [city.WATER]) == [(city.WATER, "U-WD-002", "water")]

    parsed = parse_devices_csv(f"id,unit_id,kind\n{city.WATER},{city.UNIT},water\n")
    store.import_devices(db, parsed.rows, actor=ADMIN, as_vendor=None, dry_run=True)
    assert _notified(listener, 0.5) == []  # a dry run's signal is rolled back with it
    store.import_devices(db, parsed.rows, actor=ADMIN, as_vendor=None)
    assert _notified(listener, 10) == [channels.BROKER]

    store.decommission_device(db, city.WATER_2, actor=ADMIN, as_vendor=None)
    assert _notified(listener, 10) == [channels.BROKER]


def test_one_unit_is_written_like_a_row_of_the_units_file(db: psycopg.Connection[Any]) -> None:
    from firewatch.core.unit_import import REQUIRED, parse_row
    from firewatch.storage.units import street_ids

    cells = store.unit_cells(db, city.UNIT)
    assert cells is not None
    assert (cells["category"], cells["type"], cells["responsible_phone"]) == (
        "high_risk",
        "commercial_complex",
        "13800000001",
    )
    row = parse_row(1, {**cells, "name": "万达广场"}, street_ids(db))
    result = store.write_unit(db, row, set(REQUIRED), actor=ADMIN, create=False)
    assert (result.outcome, result.changed) == ("updated", ["name"])
    unchanged = store.write_unit(db, row, set(REQUIRED), actor=ADMIN, create=False)
    assert unchanged.outcome == "unchanged"
    with pytest.raises(Conflict, match="exists already"):
        store.write_unit(db, row, set(REQUIRED), actor=ADMIN, create=True)
    assert events(db, city.UNIT) == [("unit", "updated", ADMIN)]
