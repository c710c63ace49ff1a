"""Vendors and their installations in PostgreSQL (storage/vendors.py): a vendor is
registered once, an installation opens and ends and stays as history, and the seed
registers the demo city's vendors and installations once."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from firewatch.core.device_import import Conflict, NotFound, RegistryError
from firewatch.storage import vendors as store
from firewatch.storage.seed import load_seed, read_seed
from tests.builders import city
from tests.conftest import Connect
from tests.helpers import registry_events, scalar

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
    """The demo city with the vendors and open installations its seed registers
    (:data:`SEEDED`)."""
    served = {v["id"]: v["units"] for v in store.list_vendors(db)}
    assert served == SEEDED
    return db


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
    assert registry_events(db, str(again["id"])) == [("installation", "opened", ADMIN)]
    assert registry_events(db, str(ended["id"])) == [
        ("installation", "opened", ADMIN),
        ("installation", "ended", ADMIN),
    ]
    assert registry_events(db, "testco") == [("vendor", "added", ADMIN)]
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
