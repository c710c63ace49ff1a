"""The supervision endpoints over ASGI against the real database: the public draw document
verifies on its own, the seed stays private until publication, public bodies carry no
personal data, inspections of an unpublished draw stay private, and hazards and credit read
back with their filters and 404s / 422s."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from firewatch.core.credit import CreditStatus
from firewatch.core.draw_verify import verify_document
from firewatch.core.settings import Settings
from firewatch.core.supervision import HazardAction
from firewatch.storage.credit import change_credit
from firewatch.supervision import draws
from firewatch.supervision.inspections import act_on_hazard, record_inspection
from tests.supervision.builders import T0, inspectors, set_level, unit_ids
from tests.supervision.test_inspections import report

pytestmark = pytest.mark.anyio

ALL = {"red": 1.0, "orange": 1.0, "yellow": 1.0, "blue": 1.0}


def drawn(db: psycopg.Connection[Any], settings: Settings) -> tuple[int, dict[str, list[str]]]:
    """A revealed draw of every unit; its id and assignment."""
    inspectors(db)
    for unit in unit_ids(db):
        set_level(db, unit, "yellow")
    s = settings.model_copy(update={"supervision_level_rates": ALL})
    draw = draws.commit_draw(db, s, "2026-Q1", actor="s", at=T0)
    draw = draws.reveal_draw(db, draw.id, actor="s", at=T0)
    units = json.loads(draw.result or "")["units"]
    return draw.id, {u["id"]: u["inspectors"] for u in units}


async def test_the_public_draw_verifies_and_hides_the_seed_until_published(
    client: httpx.AsyncClient, db: psycopg.Connection[Any], settings: Settings
) -> None:
    draw_id, _ = drawn(db, settings)
    r = await client.get(f"/public/draws/{draw_id}")
    assert r.status_code == 200
    doc = r.json()
    assert doc["status"] == "revealed"
    assert doc["seed"] is None
    assert doc["result"] is None
    report_ = verify_document(doc)
    assert report_.ok
    assert not report_.complete
    internal = (await client.get(f"/draws/{draw_id}")).json()
    assert internal["seed"] is not None
    assert len(internal["units"]) == 8

    draws.publish_draw(db, draw_id, actor="s", at=T0)
    doc = (await client.get(f"/public/draws/{draw_id}")).json()
    assert doc["seed"] == internal["seed"]
    assert verify_document(doc).ok
    assert verify_document(doc).complete
    assert {u["id"]: u["name"] for u in doc["units"]}["U-WD-001"] == "许昌万达广场"
    listed = (await client.get("/public/draws")).json()
    assert [(d["id"], d["drawn"], d["seed"]) for d in listed] == [(draw_id, 8, doc["seed"])]
    assert (await client.get("/public/draws/999")).status_code == 404
    assert (await client.get("/public/draws/0")).status_code == 422


async def test_public_bodies_carry_no_personal_data(
    client: httpx.AsyncClient, db: psycopg.Connection[Any], settings: Settings
) -> None:
    draw_id, assignment = drawn(db, settings)
    draws.publish_draw(db, draw_id, actor="s", at=T0)
    record_inspection(
        db,
        settings,
        report(
            draw=draw_id,
            inspectors=assignment["U-WD-001"],
            notes="met 张伟 at the door",
            hazards=[
                {"category": "fire_exits", "severity": "major", "description": "张伟 locked exit 3"}
            ],
        ),
        actor="s",
    )
    bodies = [
        (await client.get(path)).text
        for path in ("/public/draws", f"/public/draws/{draw_id}", "/public/inspections")
    ]
    for body in bodies:
        for personal in ("检查员", "13900000000", "张伟", "13800000001", "locked exit"):
            assert personal not in body
    (inspection,) = json.loads(bodies[2])
    assert inspection["inspectors"] == sorted(assignment["U-WD-001"])
    assert inspection["hazards"][0]["severity"] == "major"
    assert inspection["unit"] == {"id": "U-WD-001", "name": "许昌万达广场", "street": "西大街街道"}


async def test_inspections_of_an_unpublished_draw_stay_private(
    client: httpx.AsyncClient, db: psycopg.Connection[Any], settings: Settings
) -> None:
    draw_id, assignment = drawn(db, settings)
    record_inspection(
        db, settings, report(draw=draw_id, inspectors=assignment["U-WD-001"]), actor="s"
    )
    complaint = report(unit="U-WD-002", inspectors=["I-01", "I-02"])  # no draw
    record_inspection(db, settings, complaint, actor="s")
    public = (await client.get("/public/inspections")).json()
    assert [i["unit"]["id"] for i in public] == ["U-WD-002"]
    internal = (await client.get("/inspections", params={"draw": draw_id})).json()
    assert [i["unit"]["id"] for i in internal] == ["U-WD-001"]
    assert internal[0]["outcome"] == "passed"
    one = await client.get(f"/inspections/{internal[0]['id']}")
    assert one.json()["draw_id"] == draw_id
    assert (await client.get("/inspections/999")).status_code == 404
    draws.publish_draw(db, draw_id, actor="s", at=T0)
    public = (await client.get("/public/inspections", params={"unit": "U-WD-001"})).json()
    assert [i["draw_id"] for i in public] == [draw_id]


async def test_hazards_and_credit(
    client: httpx.AsyncClient, db: psycopg.Connection[Any], settings: Settings
) -> None:
    inspectors(db)
    _, (old, new) = record_inspection(
        db,
        settings,
        report(
            inspected_at=(T0 - timedelta(days=400)).isoformat(),
            hazards=[
                {"category": "fire_exits", "severity": "major", "description": "a"},
                {"category": "electrical", "severity": "general", "description": "b"},
            ],
        ),
        actor="s",
    )
    act_on_hazard(db, new.id, HazardAction.SUBMIT, actor="unit", evidence="fixed")
    r = await client.get("/hazards", params={"unit": "U-WD-001", "state": "open"})
    assert [(h["id"], h["overdue"]) for h in r.json()] == [(old.id, True)]
    r = await client.get("/hazards", params={"overdue": "true"})
    assert {h["id"] for h in r.json()} == {old.id, new.id}
    detail = (await client.get(f"/hazards/{new.id}")).json()
    assert [e["action"] for e in detail["events"]] == ["found", "submit"]
    assert (await client.get("/hazards/12345")).status_code == 404
    assert (await client.get("/hazards", params={"state": "closed"})).status_code == 422

    r = await client.get("/units/U-WD-001/credit")
    assert r.json()["status"] == "good"
    assert r.json()["events"] == []
    change_credit(
        db,
        "U-WD-001",
        CreditStatus.BLACKLISTED,
        rule="manual",
        reason="复查不合格",
        actor="王科长",
        at=T0,
    )
    body = (await client.get("/units/U-WD-001/credit")).json()
    assert body["status"] == "blacklisted"
    assert body["events"][0]["actor"] == "王科长"
    assert [c["unit_id"] for c in (await client.get("/credit")).json()] == ["U-WD-001"]
    assert (await client.get("/units/U-NOPE/credit")).status_code == 404
    r = await client.get("/draws", params={"status": "published"})
    assert r.status_code == 200
    assert r.json() == []
    assert (await client.get("/draws/5")).status_code == 404
