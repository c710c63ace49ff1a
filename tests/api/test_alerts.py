"""The alert routes over ASGI against the real database: list, detail, operator actions
and their refusals (404, 409, 422), health."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from firewatch.api.app import create_app
from firewatch.api.deps import ApiOptions
from firewatch.api.schemas import AlertOut
from firewatch.core.alerts import Alert
from firewatch.core.people import Role
from firewatch.core.settings import Settings
from firewatch.storage.alerts import apply_action
from tests.builders.alerts import EPOCH, add_anomaly, anomaly, new_alert
from tests.builders.people import as_role
from tests.helpers import scalar

pytestmark = pytest.mark.anyio

T0 = EPOCH
OPERATOR_ACTIONS = "acknowledge, confirm_fire, mark_false_alarm, confirm_fault, resolve, close"
UNKNOWN = f"unknown action 'dance'; allowed actions: {OPERATOR_ACTIONS}"
SYSTEM = (
    "'escalate' is a system action (the alerting service does it), not an operator's;"
    f" allowed actions: {OPERATOR_ACTIONS}"
)


async def act(
    client: httpx.AsyncClient,
    alert_id: int,
    action: str,
    note: str = "",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """The action as the client's person (an admin), or as ``headers``' person."""
    body = {"action": action, "note": note}
    return await client.post(f"/alerts/{alert_id}/actions", json=body, headers=headers)


# --- list -----------------------------------------------------------------------------------
async def test_list_defaults_to_active_alerts_newest_first(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    old, mid, new = (new_alert(db, seen=T0 + i) for i in range(3))
    apply_action(db, mid.id, "acknowledge", actor="op")
    apply_action(db, old.id, "mark_false_alarm", actor="op")  # no longer active

    r = await client.get("/alerts")
    assert r.status_code == 200
    got = r.json()
    assert [a["id"] for a in got] == [new.id, mid.id]
    assert [a["state"] for a in got] == ["open", "acknowledged"]
    assert set(got[0]) == set(Alert.model_fields)

    r = await client.get("/alerts", params={"state": "false_alarm"})
    assert [a["id"] for a in r.json()] == [old.id]
    r = await client.get("/alerts", params=[("state", "open"), ("state", "false_alarm")])
    assert [a["id"] for a in r.json()] == [new.id, old.id]
    r = await client.get("/alerts", params={"limit": 1})
    assert [a["id"] for a in r.json()] == [new.id]


async def test_list_filters_by_unit(client: httpx.AsyncClient, db: psycopg.Connection[Any]) -> None:
    a = new_alert(db, unit="U-WD-001")
    new_alert(db, unit="U-WD-002")
    r = await client.get("/alerts", params={"unit_id": "U-WD-001"})
    assert [x["id"] for x in r.json()] == [a.id]
    r = await client.get("/alerts", params={"unit_id": "U-NOPE"})
    assert r.status_code == 200
    assert r.json() == []


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"state": "burning"}, "'open', 'acknowledged'"),
        ({"limit": "0"}, "greater than or equal to 1"),
        ({"limit": "5000"}, "less than or equal to 1000"),
        ({"limit": "many"}, "valid integer"),
    ],
)
async def test_list_refuses_bad_query_saying_what_is_wrong(
    client: httpx.AsyncClient, params: dict[str, str], says: str
) -> None:
    r = await client.get("/alerts", params=params)
    assert r.status_code == 422
    assert says in r.text


# --- detail ---------------------------------------------------------------------------------
async def test_detail_has_evidence_and_the_audit_trail_with_the_api_actor_and_note(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    evidence_id = add_anomaly(db, anomaly())
    alert = new_alert(db, anomaly_id=evidence_id)

    li_wei = as_role(db, Role.OPERATOR, username="li.wei")
    r = await act(client, alert.id, "acknowledge", "called the control room", li_wei)
    assert r.status_code == 200, r.text
    r = await act(client, alert.id, "confirm_fault", "valve found closed", li_wei)
    assert r.status_code == 200, r.text

    r = await client.get(f"/alerts/{alert.id}")
    assert r.status_code == 200
    detail = r.json()
    assert detail["alert"]["id"] == alert.id
    assert detail["alert"]["state"] == "confirmed_fault"
    assert [e["id"] for e in detail["evidence"]] == [evidence_id]
    assert detail["evidence"][0]["explanation"] == "static pressure 80 kPa < 100 kPa"
    trail = [
        (t["action"], t["from_state"], t["to_state"], t["actor"], t["note"])
        for t in detail["transitions"]
    ]
    assert trail == [
        ("raise", None, "open", "system", alert.explanation),
        ("acknowledge", "open", "acknowledged", "li.wei", "called the control room"),
        ("confirm_fault", "acknowledged", "confirmed_fault", "li.wei", "valve found closed"),
    ]


async def test_detail_of_an_unknown_alert_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/alerts/987654")
    assert r.status_code == 404
    assert r.json() == {"detail": "no alert 987654"}
    r = await client.get("/alerts/latest")
    assert r.status_code == 422
    assert "valid integer" in r.text


# --- actions --------------------------------------------------------------------------------
async def test_actions_move_the_alert_and_return_it(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    alert = new_alert(db)
    r = await act(client, alert.id, "acknowledge")
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == alert.id
    assert body["state"] == "acknowledged"
    assert body["acknowledged_at"] is not None
    for action, state in [
        ("confirm_fire", "confirmed_fire"),
        ("resolve", "resolved"),
        ("close", "closed"),
    ]:
        r = await act(client, alert.id, action, note=f"{action} via the API")
        assert r.status_code == 200, r.text
        assert r.json()["state"] == state
    assert scalar(db, "SELECT state FROM alerts WHERE id = %s", alert.id) == "closed"
    # confirm_fire forwarded it to the command center (outbox, same transaction)
    assert scalar(db, "SELECT count(*) FROM outbox WHERE channel = 'command_center'") == 1


async def test_an_illegal_transition_is_409_with_the_transition_message(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    alert = new_alert(db)
    for action in ("resolve", "close"):
        assert (await act(client, alert.id, action)).status_code == 200
    r = await act(client, alert.id, "acknowledge")
    assert r.status_code == 409
    assert r.json() == {"detail": "cannot acknowledge an alert that is closed; closed is final"}

    other = new_alert(db)
    r = await act(client, other.id, "close")
    assert r.status_code == 409
    assert r.json()["detail"] == (
        "cannot close an alert that is open; allowed from open: acknowledge, confirm_fault,"
        " confirm_fire, mark_false_alarm, resolve"
    )
    assert scalar(db, "SELECT state FROM alerts WHERE id = %s", other.id) == "open"


async def test_an_action_on_an_unknown_alert_is_404(client: httpx.AsyncClient) -> None:
    r = await act(client, 987654, "acknowledge")
    assert r.status_code == 404
    assert r.json() == {"detail": "no alert 987654"}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        # the actor is who is logged in: a body naming one is refused, never believed
        ({"action": "acknowledge", "actor": "Li Wei"}, "Extra inputs are not permitted"),
        ({"note": "x"}, "action"),
        ({"action": "dance"}, UNKNOWN),
        ({"action": "escalate"}, SYSTEM),
        ({"action": "merge"}, "'merge' is a system action"),
        ({"action": "acknowledge", "note": None}, "valid string"),
        ({"action": "acknowledge", "by": "x"}, "Extra inputs are not permitted"),
    ],
)
async def test_a_malformed_body_or_a_system_action_is_422_saying_what_is_allowed(
    client: httpx.AsyncClient, db: psycopg.Connection[Any], body: dict[str, Any], says: str
) -> None:
    alert = new_alert(db)
    r = await client.post(f"/alerts/{alert.id}/actions", json=body)
    assert r.status_code == 422, r.text
    assert says in r.text
    assert scalar(db, "SELECT state FROM alerts WHERE id = %s", alert.id) == "open"
    assert scalar(db, "SELECT count(*) FROM alert_transitions WHERE alert_id = %s", alert.id) == 1


async def test_a_body_that_is_not_json_is_422(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    alert = new_alert(db)
    r = await client.post(
        f"/alerts/{alert.id}/actions",
        content=b"acknowledge please",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert "JSON decode error" in r.text


async def test_the_openapi_schema_documents_every_route(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200, r.text
    paths = r.json()["paths"]
    assert set(paths) == {
        "/alerts",
        "/alerts/stream",
        "/alerts/{alert_id}",
        "/alerts/{alert_id}/actions",
        # the console: claims, device health, the map, a unit's telemetry (issue 12)
        "/alerts/{alert_id}/claim",
        "/alerts/{alert_id}/release",
        "/devices/health",
        "/map",
        "/units/{unit_id}/telemetry",
        # delivery receipts of the SMS / voice provider (signed, issue 12)
        "/notifications/receipts",
        "/health",
        # the supervisors' read side and the public pages (issue 11)
        "/regions",
        "/regions/{region_id}",
        "/regions/{region_id}/rollups",
        "/units",
        "/units/{unit_id}",
        "/units/{unit_id}/rollups",
        "/devices/{device_id}/rollups",
        "/risk/regions/{region_id}",
        "/risk/regions/{region_id}/top",
        "/risk/regions/{region_id}/trend",
        "/risk/units/{unit_id}",
        "/risk/units/{unit_id}/history",
        "/risk/warnings",
        "/draws",
        "/draws/{draw_id}",
        "/inspections",
        "/inspections/{inspection_id}",
        "/hazards",
        "/hazards/{hazard_id}",
        "/credit",
        "/units/{unit_id}/credit",
        "/public/draws",
        "/public/draws/{draw_id}",
        "/public/inspections",
        # who the bearer token belongs to (issue 12)
        "/auth/me",
        # the console's browser sessions (issue 12)
        "/auth/login",
        "/auth/logout",
        # the registry's writes, device credentials and the vendor's tools (issue 14)
        "/devices",
        "/devices/import",
        "/devices/{device_id}",
        "/devices/{device_id}/decommission",
        "/devices/{device_id}/credentials",
        "/devices/{device_id}/conformance",
        "/dead-letters",
        "/vendors",
        "/vendors/{vendor_id}",
        "/vendors/{vendor_id}/installations",
        "/installations/{installation_id}/end",
        # GB/T 26875.3 panels' duty checks (issue 17)
        "/devices/{device_id}/duty-checks",
    }
    body = r.json()["components"]["schemas"]["ActionRequest"]["properties"]["action"]
    assert body["enum"] == OPERATOR_ACTIONS.split(", ")
    assert "text/event-stream" in paths["/alerts/stream"]["get"]["responses"]["200"]["content"]
    assert set(paths["/alerts/{alert_id}/actions"]["post"]["responses"]) >= {"200", "404", "409"}


def test_response_model_is_the_alert_record() -> None:
    assert issubclass(AlertOut, Alert)
    assert list(AlertOut.model_fields) == list(Alert.model_fields)


async def test_the_alert_fields_keep_their_openapi_shape(client: httpx.AsyncClient) -> None:
    """The record's enum fields (category, severity, state) are documented as plain strings,
    as the API always did; times as date-times, the unset ones nullable."""
    r = await client.get("/openapi.json")
    props = r.json()["components"]["schemas"]["AlertOut"]["properties"]

    def shape(p: dict[str, Any]) -> str:
        if "anyOf" in p:
            return " | ".join(shape(q) for q in p["anyOf"])
        return str(p["type"]) + (f":{p['format']}" if "format" in p else "")

    time, maybe_time = "string:date-time", "string:date-time | null"
    assert {k: shape(p) for k, p in props.items()} == {
        "id": "integer",
        "type": "string",
        "category": "string",
        "severity": "string",
        "unit_id": "string",
        "device_id": "string",
        "state": "string",
        "first_seen": time,
        "last_seen": time,
        "occurrences": "integer",
        "explanation": "string",
        "condition_active": "boolean",
        "escalation_level": "integer",
        "escalated_at": maybe_time,
        "acknowledged_at": maybe_time,
        "resolved_at": maybe_time,
        "closed_at": maybe_time,
        "parent_id": "integer | null",
        "created_at": time,
        "updated_at": time,
        "claimed_by": "string | null",
        "claimed_at": maybe_time,
    }
    assert all(p["title"] == k.replace("_", " ").title() for k, p in props.items())


# --- health ---------------------------------------------------------------------------------
async def test_health_ok_when_the_database_answers(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["stream_clients"] == 0


async def test_health_and_routes_are_503_when_the_database_is_unreachable(
    settings: Settings,
) -> None:
    from firewatch.runtime.mosquitto import free_port

    down = f"postgresql://firewatch@127.0.0.1:{free_port()}/firewatch?connect_timeout=1"
    app = create_app(settings, down, options=ApiOptions(pool_timeout_s=0.5))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        r = await c.get("/health")
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable"
        assert r.json()["database"].startswith("unreachable: ")
        r = await c.get("/alerts")
        assert r.status_code == 503
        assert r.json()["detail"].startswith("database unavailable: ")
        assert r.headers["retry-after"] == "5"


async def test_rows_with_times_python_cannot_hold_are_served_not_500(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    """Issue 9: every reader survives any row the database can hold. An alert whose times
    were set to ±infinity and 1 BC (a direct write) is listed with its times clamped to
    the representable range, instead of failing the whole page."""
    alert = new_alert(db)
    db.execute(
        "UPDATE alerts SET first_seen = '-infinity', last_seen = 'infinity',"
        " escalated_at = '0001-01-01T00:00:00+01:00' WHERE id = %s",
        (alert.id,),
    )
    r = await client.get("/alerts")
    assert r.status_code == 200
    (got,) = [a for a in r.json() if a["id"] == alert.id]
    assert got["first_seen"].startswith("0001-01-01")
    assert got["last_seen"].startswith("9999-12-31")
    detail = await client.get(f"/alerts/{alert.id}")
    assert detail.status_code == 200
