"""A panel's GB/T address and profile through every way a device enters the registry
(storage/devices.py with core/device_import.py, storage/seed.py): checked and normalised,
panels only, one device in service per address (the conflict names the holder, to a vendor
only its own), a profile the gateway knows, audited; a CSV file's columns and a seed file's
fields. The API's answers are in tests/api/test_gbt_registry.py."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from firewatch.core.csv_import import summarize
from firewatch.core.device_import import Conflict, RegistryError, device_row, parse_devices_csv
from firewatch.core.domain import DeviceKind
from firewatch.core.gateway_rows import known_profiles
from firewatch.storage import devices as store
from firewatch.storage.gateway import gateway_directory
from firewatch.storage.seed import CitySeed, DeviceSeed, load_seed, read_seed
from tests.builders import city

ADMIN = "root"
PANEL = DeviceKind.PANEL
HOSPITAL_PANEL = "D-WD-002-P1"  # tanda's, in U-WD-002 (tanda serves it)


def _panel(device_id: str, unit: str = city.UNIT, **gbt: Any) -> Any:
    return device_row(line=1, device_id=device_id, unit_id=unit, kind="panel", **gbt)


def _audit(db: psycopg.Connection[Any], device_id: str) -> dict[str, Any]:
    row = db.execute(
        "SELECT detail FROM registry_events WHERE subject_id = %s ORDER BY id DESC LIMIT 1",
        (device_id,),
    ).fetchone()
    assert row is not None
    return dict(row[0])


def test_a_panel_is_registered_with_its_address_in_lower_case(db: psycopg.Connection[Any]) -> None:
    found = store.register_device(
        db,
        _panel("D-NEW-P", gbt_address=" 00A1B2C3D4E5 ", gbt_profile="year-first"),
        actor=ADMIN,
        as_vendor=None,
    )
    assert (found["gbt_address"], found["gbt_profile"]) == ("00a1b2c3d4e5", "year-first")
    assert _audit(db, "D-NEW-P")["gbt_address"] == "00a1b2c3d4e5"
    plain = store.register_device(db, _panel("D-NEW-Q"), actor=ADMIN, as_vendor=None)
    assert (plain["gbt_address"], plain["gbt_profile"]) == (None, "standard")
    assert gateway_directory(db)[0x00A1B2C3D4E5].device_id == "D-NEW-P"


@pytest.mark.parametrize(
    ("kind", "gbt", "reason"),
    [
        ("panel", {"gbt_address": "a1b2c3"}, "gbt_address 'a1b2c3' is not 12 hex digits"),
        ("panel", {"gbt_address": "00a1b2c3d4e5f"}, "is not 12 hex digits"),
        ("panel", {"gbt_address": "0xa1b2c3d4e5"}, "is not 12 hex digits"),
        ("panel", {"gbt_address": "00a1-b2c3d4e"}, "is not 12 hex digits"),
        ("water", {"gbt_address": "00a1b2c3d4e5"}, "gbt_address is for panel devices"),
        ("panel", {"gbt_profile": "Year First"}, "is not a profile name"),
        ("panel", {"gbt_profile": "acme"}, "unknown gbt_profile 'acme' (known: standard,"),
        ("water", {"gbt_profile": "year-first"}, "gbt_profile is for panel devices, not water"),
    ],
)
def test_a_bad_address_or_profile_is_refused_with_the_reason(
    kind: str, gbt: dict[str, str], reason: str
) -> None:
    with pytest.raises(RegistryError, match=reason.replace("(", r"\(")):
        device_row(
            line=1,
            device_id="D-X",
            unit_id=city.UNIT,
            kind=kind,
            gbt_address=gbt.get("gbt_address"),
            gbt_profile=gbt.get("gbt_profile"),
        )


def test_profiles_of_the_gateways_file_are_accepted_when_given() -> None:
    row = _panel("D-X", gbt_profile="acme", profiles={"standard", "acme"})
    assert row.gbt_profile == "acme"


def test_an_address_belongs_to_one_device_in_service(db: psycopg.Connection[Any]) -> None:
    store.update_device(db, city.PANEL, actor=ADMIN, as_vendor=None, gbt_address="00a1b2c3d4e5")
    with pytest.raises(Conflict) as refused:
        store.register_device(
            db, _panel("D-NEW-P", gbt_address="00A1B2C3D4E5"), actor=ADMIN, as_vendor=None
        )
    assert str(refused.value) == (
        "gbt_address 00a1b2c3d4e5 is taken: device 'D-WD-001-P1' (unit U-WD-001) has it (an"
        " address belongs to one device in service: change that one's address or decommission"
        " it first)"
    )
    # another vendor learns that it is taken, not by which device
    with pytest.raises(Conflict, match="is taken: another device has it"):
        store.update_device(
            db, HOSPITAL_PANEL, actor="t", as_vendor="tanda", gbt_address="00a1b2c3d4e5"
        )
    # the holder's own vendor is told which of its devices
    with pytest.raises(Conflict, match="device 'D-WD-001-P1'"):
        store.register_device(
            db, _panel("D-GST-P", gbt_address="00a1b2c3d4e5"), actor="g", as_vendor="gst"
        )
    # the holder keeping its address is no conflict; freed, the address can be given again
    _, changed = store.update_device(
        db, city.PANEL, actor=ADMIN, as_vendor=None, gbt_address="00A1B2C3D4E5"
    )
    assert changed == []
    store.decommission_device(db, city.PANEL, actor=ADMIN, as_vendor=None)
    found = store.register_device(
        db, _panel("D-NEW-P", gbt_address="00a1b2c3d4e5"), actor=ADMIN, as_vendor=None
    )
    assert found["gbt_address"] == "00a1b2c3d4e5"


def test_an_update_sets_changes_and_clears_them(db: psycopg.Connection[Any]) -> None:
    found, changed = store.update_device(
        db, city.PANEL, actor=ADMIN, as_vendor=None, gbt_address="0000000000ff"
    )
    assert (found["gbt_address"], changed) == ("0000000000ff", ["gbt_address"])
    assert _audit(db, city.PANEL)["to"] == {"gbt_address": "0000000000ff"}
    found, changed = store.update_device(
        db, city.PANEL, actor="g", as_vendor="gst", gbt_profile="xor-checksum", model="X"
    )
    assert (found["gbt_profile"], changed) == ("xor-checksum", ["model", "gbt_profile"])
    assert found["gbt_address"] == "0000000000ff"  # not given: kept
    found, changed = store.update_device(
        db, city.PANEL, actor=ADMIN, as_vendor=None, gbt_address="", gbt_profile=""
    )
    assert (found["gbt_address"], found["gbt_profile"]) == (None, "standard")
    assert changed == ["gbt_address", "gbt_profile"]
    with pytest.raises(RegistryError, match="gbt_address is for panel devices, not water"):
        store.update_device(db, city.WATER, actor=ADMIN, as_vendor=None, gbt_address="0" * 12)


def test_a_csv_file_sets_them_per_row(db: psycopg.Connection[Any]) -> None:
    text = (
        "id,unit_id,kind,gbt_address,gbt_profile\n"
        f"{city.PANEL},{city.UNIT},panel,00A1B2C3D4E5,year-first\n"
        "D-NEW-P,U-WD-001,panel,00a1b2c3d4e5,\n"
        "D-NEW-W,U-WD-001,water,,\n"
        "D-NEW-W2,U-WD-001,water,0000000000aa,\n"
        "D-NEW-P2,U-WD-001,panel,a1b2c3d4e5,\n"
        "D-NEW-P3,U-WD-001,panel,,vendor-x\n"
        "D-NEW-P4,U-WD-001,panel,,\n"
    )
    parsed = parse_devices_csv(text)
    results = store.import_devices(
        db, parsed.rows, rejected=parsed.rejected, actor=ADMIN, as_vendor=None
    )
    report = [(r.id, r.outcome, r.reason or ",".join(r.changed)) for r in results]
    assert report == [
        (city.PANEL, "updated", "gbt_address,gbt_profile"),
        (
            "D-NEW-P",
            "rejected",
            "gbt_address 00a1b2c3d4e5 is taken: device 'D-WD-001-P1' (unit U-WD-001) has it"
            " (an address belongs to one device in service: change that one's address or"
            " decommission it first)",
        ),
        ("D-NEW-W", "created", ""),
        ("D-NEW-W2", "rejected", "gbt_address is for panel devices, not water"),
        (
            "D-NEW-P2",
            "rejected",
            "gbt_address 'a1b2c3d4e5' is not 12 hex digits: give the UITD's whole 48-bit"
            " address, most significant digit first, e.g. 00a1b2c3d4e5",
        ),
        (
            "D-NEW-P3",
            "rejected",
            "unknown gbt_profile 'vendor-x' (known: standard, xor-checksum, year-first; more in"
            " the gateway's profiles file)",
        ),
        ("D-NEW-P4", "created", ""),
    ]  # fmt: skip
    panel = store.get_device(db, city.PANEL)
    assert panel is not None
    assert (panel["gbt_address"], panel["gbt_profile"]) == ("00a1b2c3d4e5", "year-first")

    # a file without the columns leaves them alone; with them, an empty cell clears
    again = parse_devices_csv(f"id,unit_id,kind,model\n{city.PANEL},{city.UNIT},panel,M\n")
    store.import_devices(db, again.rows, actor=ADMIN, as_vendor=None)
    panel = store.get_device(db, city.PANEL)
    assert panel is not None
    assert (panel["gbt_address"], panel["gbt_profile"]) == ("00a1b2c3d4e5", "year-first")
    clear = parse_devices_csv(f"id,unit_id,kind,gbt_address\n{city.PANEL},{city.UNIT},panel,\n")
    (result,) = store.import_devices(db, clear.rows, actor=ADMIN, as_vendor=None)
    assert (result.outcome, result.changed) == ("updated", ["gbt_address"])
    # a profile of the operator's file, when the caller knows it
    custom = parse_devices_csv(
        "id,unit_id,kind,gbt_profile\nD-NEW-P3,U-WD-001,panel,vendor-x\n",
        profiles={"standard", "vendor-x"},
    )
    assert summarize(store.import_devices(db, custom.rows, actor=ADMIN, as_vendor=None)) == {
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
    }


def _city_with(*devices: DeviceSeed) -> CitySeed:
    """The demo city with ``devices`` added to its first unit."""
    seeded = read_seed()
    first = seeded.units[0]
    units = [first.model_copy(update={"devices": [*first.devices, *devices]}), *seeded.units[1:]]
    return seeded.model_copy(update={"units": units})


def test_a_seed_file_gives_panels_their_addresses(db: psycopg.Connection[Any]) -> None:
    given = {"gbt_address": "00A1B2C3D4E5", "gbt_profile": "year-first"}
    panel = DeviceSeed.model_validate({"id": "D-SEED-P", "kind": "panel", **given})
    assert panel.gbt_address == "00a1b2c3d4e5"
    seeded = _city_with(panel)
    load_seed(db, seeded)
    load_seed(db, seeded)  # idempotent
    found = store.get_device(db, "D-SEED-P")
    assert found is not None
    assert (found["gbt_address"], found["gbt_profile"]) == ("00a1b2c3d4e5", "year-first")
    plain = store.get_device(db, city.PANEL)
    assert plain is not None
    assert (plain["gbt_address"], plain["gbt_profile"]) == (None, "standard")

    twice = DeviceSeed(id="D-SEED-Q", kind=PANEL, gbt_address="00a1b2c3d4e5")
    with pytest.raises(ValueError, match="gbt_address 00a1b2c3d4e5 is device D-SEED-P's"):
        load_seed(db, _city_with(panel, twice))
    unknown = DeviceSeed(id="D-SEED-Q", kind=PANEL, gbt_profile="vendor-x")
    with pytest.raises(ValueError, match="unknown gbt_profile 'vendor-x'"):
        load_seed(db, _city_with(unknown))
    load_seed(db, _city_with(unknown), profiles=known_profiles() | {"vendor-x"})

    for bad, reason in (
        ({"kind": "water", "gbt_address": "00a1b2c3d4e5"}, "for panels only"),
        ({"kind": "panel", "gbt_address": "a1b2"}, "is not 12 hex digits"),
        ({"kind": "panel", "gbt_profile": "Vendor X"}, "is not a profile name"),
    ):
        with pytest.raises(ValidationError, match=reason):
            DeviceSeed.model_validate({"id": "D-BAD", **bad})
