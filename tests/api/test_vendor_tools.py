"""``GET /devices/{id}/conformance`` and ``GET /dead-letters`` (issue 14): the report from
stored rows, and what a vendor may see of it (its own devices only)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from firewatch.core.people import Role
from firewatch.core.rows import Reason
from tests.builders import city
from tests.builders.people import as_role
from tests.builders.traffic import ROOT, letter, regular_water, store_batch

pytestmark = pytest.mark.anyio


def water_with_faults(db: psycopg.Connection[Any]) -> datetime:
    """acme's water point over the last 15 min: a reading a minute, 5 and 6 missing (5
    refused for its value); an unreadable message; volt's shed and a bad topic refused too."""
    now = datetime.now(UTC)
    store_batch(
        db,
        regular_water(15, skip=(5, 6), now=now),
        [
            letter(city.WATER, now - timedelta(minutes=10), Reason.OUT_OF_RANGE, seq=5),
            letter(city.WATER, now - timedelta(minutes=4), payload=b"caf\xc3\xa9 {"),
            letter(city.SHED, now - timedelta(minutes=3)),
            letter("x", now - timedelta(minutes=2), Reason.BAD_TOPIC, topic=f"{ROOT}/a/b"),
        ],
    )
    return now


async def test_the_report_of_a_device_from_its_stored_rows(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    water_with_faults(db)
    r = await client.get(f"/devices/{city.WATER}/conformance", params={"minutes": 15})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["device"] == {
        "id": city.WATER,
        "unit_id": city.UNIT,
        "kind": "water",
        "vendor": "acme",
        "decommissioned_at": None,
    }
    assert doc["window_s"] == 900.0
    tel = doc["channels"][0]
    assert (tel["channel"], tel["messages"], tel["seq_first"], tel["seq_last"]) == (
        "telemetry",
        13,
        1,
        15,
    )
    assert tel["intervals"]["median_s"] == 60.0
    assert tel["clock"]["median_s"] == 0.5
    assert tel["dead_letter_reasons"] == {"out_of_range": 1, "not_json": 1}
    assert doc["sequence"][0]["gaps"] == [{"first": 5, "last": 6, "dead_lettered": 1}]
    assert [r["reason"] for r in doc["dead_letter_reasons"]] == ["out_of_range", "not_json"]
    codes = {f["code"]: f["level"] for f in doc["findings"]}
    assert codes == {"dead_letters": "problem", "seq_gaps": "warning"}
    assert (doc["conforms"], doc["problems"], doc["warnings"]) == (False, 2, 1)
    gap = next(f for f in doc["findings"] if f["code"] == "seq_gaps")
    assert gap["text"] == "seq: 2 missing in 1 gap (5–6); 1 of them came as dead letters"

    quiet = (await client.get(f"/devices/{city.WATER_2}/conformance")).json()
    assert quiet["window_s"] == 900.0  # the default: 15 min
    assert [f["text"] for f in quiet["findings"]] == ["no messages in 15 min"]


async def test_bad_windows_and_unknown_devices(client: httpx.AsyncClient) -> None:
    for minutes in (0, 1441, "x"):
        r = await client.get(f"/devices/{city.WATER}/conformance", params={"minutes": minutes})
        assert r.status_code == 422, minutes
    r = await client.get("/devices/D-NOBODY/conformance")
    assert r.status_code == 404
    assert r.json()["detail"] == "no device 'D-NOBODY'"


async def test_a_vendor_checks_only_its_own_devices(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    water_with_faults(db)
    acme = as_role(db, Role.VENDOR, username="acme-support", vendor="acme")
    r = await anon.get(f"/devices/{city.WATER}/conformance", headers=acme)
    assert r.status_code == 200
    r = await anon.get(f"/devices/{city.SHED}/conformance", headers=acme)  # volt's
    assert r.status_code == 403
    assert r.json()["detail"] == "that device is not one of acme's"
    # An id nobody has: the same 403, so the scope does not reveal which ids exist.
    r = await anon.get("/devices/D-NOBODY/conformance", headers=acme)
    assert r.status_code == 403
    unit = as_role(db, Role.UNIT, username="wd1-manager", unit_id=city.UNIT)
    assert (await anon.get(f"/devices/{city.WATER}/conformance", headers=unit)).status_code == 403


async def test_a_vendor_reads_only_its_own_devices_dead_letters(
    anon: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    water_with_faults(db)
    acme = as_role(db, Role.VENDOR, username="acme-support", vendor="acme")
    listed = (await anon.get("/dead-letters", headers=acme)).json()
    assert [(d["device_id"], d["reason"]) for d in listed] == [
        (city.WATER, "not_json"),
        (city.WATER, "out_of_range"),
    ]  # newest first; not volt's shed, not the topic that names no device
    newest = listed[0]
    assert newest["payload_text"] == "café {"
    assert base64.b64decode(newest["payload_base64"]) == "café {".encode()
    assert newest["meaning"].startswith("the payload is not UTF-8 JSON text")
    assert (newest["unit_id"], newest["channel"], newest["payload_truncated"]) == (
        city.UNIT,
        "telemetry",
        False,
    )
    # the scope is forced: another vendor's device is an empty list, not theirs
    shed = await anon.get("/dead-letters", params={"device": city.SHED}, headers=acme)
    assert shed.json() == []
    volt = as_role(db, Role.VENDOR, username="volt-support", vendor="volt")
    assert [d["device_id"] for d in (await anon.get("/dead-letters", headers=volt)).json()] == [
        city.SHED
    ]


async def test_the_center_reads_every_dead_letter_with_filters(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    now = water_with_faults(db)
    every = (await client.get("/dead-letters")).json()
    assert [d["device_id"] for d in every] == [None, city.SHED, city.WATER, city.WATER]
    assert every[0]["reason"] == "bad_topic"
    assert every[0]["payload_text"] is None  # b"\xff\xfe" is not UTF-8
    assert every[0]["payload_base64"] == "//4="

    def ids(r: httpx.Response) -> list[tuple[str | None, str]]:
        assert r.status_code == 200, r.text
        return [(d["device_id"], d["reason"]) for d in r.json()]

    assert ids(await client.get("/dead-letters", params={"device": city.WATER, "limit": 1})) == [
        (city.WATER, "not_json")
    ]
    assert ids(await client.get("/dead-letters", params={"reason": "out_of_range"})) == [
        (city.WATER, "out_of_range")
    ]
    since = (now - timedelta(minutes=3, seconds=30)).isoformat()
    assert ids(await client.get("/dead-letters", params={"since": since})) == [
        (None, "bad_topic"),
        (city.SHED, "not_json"),
    ]
    cut = await client.get(
        "/dead-letters", params={"device": city.WATER, "reason": "out_of_range", "payload_bytes": 3}
    )
    (d,) = cut.json()
    assert (d["payload_text"], d["payload_truncated"]) == ('{"s', True)
    assert d["payload_size"] > 3


async def test_bad_filters_are_refused_with_a_reason(client: httpx.AsyncClient) -> None:
    r = await client.get("/dead-letters", params={"reason": "nonsense"})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("unknown reason 'nonsense' (one of: bad_topic, ")
    assert "rate_limited" in r.json()["detail"]
    r = await client.get("/dead-letters", params={"since": "2026-12-07T08:00:00"})
    assert r.status_code == 422
    assert r.json()["detail"] == "since needs a UTC offset (Z, +08:00)"
    for bad in ({"device": "a/b"}, {"limit": 0}, {"limit": 1001}, {"since": "yesterday"}):
        assert (await client.get("/dead-letters", params=bad)).status_code == 422, bad
