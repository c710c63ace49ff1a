"""Bad input is a 4xx that names the field, never a 500, never a large echo: NUL and
unpaired surrogates wherever the API takes a string (query, path, headers, JSON body), ids
beyond PostgreSQL's bigint, values FastAPI's own error renderer could not render (NaN,
non-UTF-8 bytes), and oversized input in validation errors. Over ASGI, against the real
database; the guard's pieces (text check, JSON walk, admission) also on their own."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from firewatch.api.errors import INPUT_CHARS, MAX_ERRORS, safe_errors
from firewatch.api.guard import Admission, json_problems, text_problem
from tests.builders.alerts import new_alert
from tests.helpers import scalar

pytestmark = pytest.mark.anyio

SURROGATE = "\ud800"


def refusal(r: httpx.Response, loc: list[Any]) -> dict[str, Any]:
    """The error at ``loc`` of a 422 (which must be valid UTF-8 JSON)."""
    assert r.status_code == 422, r.text
    body = json.loads(r.content.decode("utf-8"))
    errors = {json.dumps(e["loc"]): e for e in body["detail"]}
    assert json.dumps(loc) in errors, f"no error at {loc}: {body}"
    error: dict[str, Any] = errors[json.dumps(loc)]
    return error


async def until(cond: Callable[[], bool], what: str) -> None:
    """Yield to the event loop until ``cond`` holds (fail after 5 seconds)."""
    deadline = time.monotonic() + 5.0
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0)


def unchanged(db: psycopg.Connection[Any], alert_id: int) -> None:
    assert scalar(db, "SELECT state FROM alerts WHERE id = %s", alert_id) == "open"
    assert scalar(db, "SELECT count(*) FROM alert_transitions WHERE alert_id = %s", alert_id) == 1


# --- NUL and unpaired surrogates --------------------------------------------------------------
async def test_a_nul_in_a_query_parameter_is_422_naming_it(client: httpx.AsyncClient) -> None:
    r = await client.get("/alerts", params={"unit_id": "U-WD\x00-001"})
    error = refusal(r, ["query", "unit_id"])
    assert error["type"] == "string_nul"
    assert error["msg"] == "Query parameter 'unit_id' must not contain NUL characters (\\u0000)"
    assert error["input"] == "U-WD\x00-001"
    r = await client.get("/alerts", params={"unit\x00": "x"})
    assert refusal(r, ["query", "unit\x00"])["msg"].startswith("A query parameter name")


@pytest.mark.parametrize("field", ["note"])
@pytest.mark.parametrize(
    ("bad", "kind"), [("\x00", "string_nul"), (SURROGATE, "string_unpaired_surrogate")]
)
async def test_a_nul_or_a_lone_surrogate_in_the_body_is_422_naming_the_field(
    client: httpx.AsyncClient, db: psycopg.Connection[Any], field: str, bad: str, kind: str
) -> None:
    alert = new_alert(db)
    body = {"action": "acknowledge", "note": "", field: f"x{bad}y"}
    # ensure_ascii: the surrogate travels as the JSON escape "\ud800", as a client sends it
    raw = json.dumps(body, ensure_ascii=True).encode()
    r = await client.post(
        f"/alerts/{alert.id}/actions", content=raw, headers={"content-type": "application/json"}
    )
    error = refusal(r, ["body", field])
    assert error["type"] == kind
    assert error["msg"].startswith(f"Field '{field}' must not contain")
    # echoed as text UTF-8 can carry: the surrogate as its escape, the NUL as is
    assert error["input"] == ("x\\ud800y" if bad == SURROGATE else "x\x00y")
    unchanged(db, alert.id)


async def test_a_bad_key_or_a_nested_string_is_named_by_its_place(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    alert = new_alert(db)
    url = f"/alerts/{alert.id}/actions"
    raw = b'{"action": "acknowledge", "\\udc00x": 1}'
    r = await client.post(url, content=raw, headers={"content-type": "application/json"})
    assert refusal(r, ["body", "\\udc00x"])["type"] == "string_unpaired_surrogate"
    nested = {"action": "acknowledge", "note": [{"a": "\x00"}]}
    r = await client.post(url, json=nested)
    assert refusal(r, ["body", "note", 0, "a"])["msg"] == (
        "Field 'note.0.a' must not contain NUL characters (\\u0000)"
    )
    unchanged(db, alert.id)


async def test_real_characters_beyond_the_bmp_and_non_latin_text_are_accepted(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    alert = new_alert(db)
    body = {"action": "acknowledge", "note": "李伟 🔥 seen"}
    r = await client.post(f"/alerts/{alert.id}/actions", json=body)
    assert r.status_code == 200, r.text
    assert (
        scalar(
            db,
            "SELECT note FROM alert_transitions WHERE alert_id = %s AND action = 'acknowledge'",
            alert.id,
        )
        == "李伟 🔥 seen"
    )


async def test_a_nul_in_the_stream_position_header_or_query_is_422(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/alerts/stream", headers={"Last-Event-ID": "1\x00-2"})
    assert refusal(r, ["header", "last-event-id"])["type"] == "string_nul"
    r = await client.get("/alerts/stream", params={"last_event_id": "\x00"})
    assert refusal(r, ["query", "last_event_id"])["type"] == "string_nul"


async def test_a_nul_in_the_path_is_422(client: httpx.AsyncClient) -> None:
    r = await client.get("/alerts/%00")
    assert refusal(r, ["path"])["msg"] == "The URL path must not contain NUL characters (\\u0000)"


# --- numbers the database cannot take ---------------------------------------------------------
@pytest.mark.parametrize("alert_id", ["0", "-1", str(2**63), "9" * 5000])
async def test_an_alert_id_outside_bigint_is_422(client: httpx.AsyncClient, alert_id: str) -> None:
    r = await client.get(f"/alerts/{alert_id}")
    assert refusal(r, ["path", "alert_id"])
    r = await client.post(f"/alerts/{alert_id}/actions", json={"action": "acknowledge"})
    assert refusal(r, ["path", "alert_id"])
    assert len(r.content) < 1000  # the 5,000-digit id is not echoed whole


async def test_the_largest_bigint_is_a_valid_id_of_no_alert(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/alerts/{2**63 - 1}")
    assert r.status_code == 404
    assert r.json() == {"detail": f"no alert {2**63 - 1}"}


@pytest.mark.parametrize("limit", [str(10**30), "9" * 5000, "1e3", "-5"])
async def test_a_limit_out_of_range_is_422(client: httpx.AsyncClient, limit: str) -> None:
    r = await client.get("/alerts", params={"limit": limit})
    assert refusal(r, ["query", "limit"])


async def test_a_stream_position_beyond_bigint_is_400(client: httpx.AsyncClient) -> None:
    r = await client.get("/alerts/stream", headers={"Last-Event-ID": f"1-{2**63}"})
    assert r.status_code == 400
    assert "is not a stream position" in r.json()["detail"]


# --- what FastAPI's own 422 renderer turned into 500s -----------------------------------------
@pytest.mark.parametrize(
    ("content", "content_type", "loc", "echo"),
    [
        (b'{"action": NaN}', "application/json", ["body", "action"], "nan"),
        (
            b'{"action": "acknowledge", "note": -Infinity}',
            "application/json",
            ["body", "note"],
            "-inf",
        ),
        (b"\xff\xfe not UTF-8", "text/plain", ["body"], "\\xff\\xfe not UTF-8"),
    ],
)
async def test_values_json_cannot_render_are_echoed_as_text(
    client: httpx.AsyncClient,
    db: psycopg.Connection[Any],
    content: bytes,
    content_type: str,
    loc: list[str],
    echo: str,
) -> None:
    alert = new_alert(db)
    r = await client.post(
        f"/alerts/{alert.id}/actions", content=content, headers={"content-type": content_type}
    )
    assert refusal(r, loc)["input"] == echo
    unchanged(db, alert.id)


# --- no large echo ----------------------------------------------------------------------------
async def test_a_validation_error_echoes_at_most_200_characters_of_the_input(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    alert = new_alert(db)
    url = f"/alerts/{alert.id}/actions"
    r = await client.post(url, json={"action": "acknowledge", "note": "n" * 60_000})
    error = refusal(r, ["body", "note"])
    assert error["msg"] == "String should have at most 4000 characters"
    assert error["input"] == "n" * INPUT_CHARS + "… (60000 characters)"
    assert len(r.content) < 1000

    r = await client.post(url, json={"action": "d" * 60_000})  # quoted in msg
    assert "unknown action 'ddd" in refusal(r, ["body", "action"])["msg"]
    assert len(r.content) < 3000

    r = await client.post(url, json=list(range(10_000)))  # not an object: the input is a list
    assert refusal(r, ["body"])["input"].startswith("[0,1,2,3")
    assert len(r.content) < 1000
    unchanged(db, alert.id)


async def test_at_most_50_errors_are_listed(client: httpx.AsyncClient) -> None:
    r = await client.get("/alerts", params=[("state", f"burning{i}") for i in range(500)])
    assert r.status_code == 422
    assert len(r.json()["detail"]) == MAX_ERRORS


def test_safe_errors_keep_fastapis_shape() -> None:
    err = {
        "type": "value_error",
        "loc": ("body", "actor"),
        "msg": "Value error, no",
        "input": "x",
        "ctx": {"error": ValueError("no")},
    }
    assert safe_errors([err]) == [
        {
            "type": "value_error",
            "loc": ["body", "actor"],
            "msg": "Value error, no",
            "input": "x",
            "ctx": {"error": {}},
        }
    ]


# --- the guard's pieces -----------------------------------------------------------------------
def test_text_problem() -> None:
    assert text_problem("Li Wei 李伟 🔥") is None
    assert text_problem("") is None
    nul = text_problem("a\x00")
    surrogate = text_problem("\udfff")
    assert nul is not None
    assert nul[0] == "string_nul"
    assert surrogate is not None
    assert surrogate[0] == "string_unpaired_surrogate"


def test_json_problems_walk_deep_documents_without_recursion() -> None:
    deep = b"[" * 900 + b'"\\u0000"' + b"]" * 900
    (problem,) = json_problems(deep)
    assert problem["loc"] == ["body", *([0] * 900)]
    assert list(json_problems(b"[" * 100_000)) == []  # not JSON: left to FastAPI (its 422)
    assert list(json_problems(b'{"a": ["ok", {"b": 1}]}')) == []


async def test_admission_queues_in_order_and_refuses_beyond_the_queue() -> None:
    gate = Admission(slots=1, max_waiting=2, timeout_s=30)
    assert await gate.acquire()
    first = asyncio.ensure_future(gate.acquire())
    second = asyncio.ensure_future(gate.acquire())
    await until(lambda: gate.waiting == 2, "both to queue")
    assert not await gate.acquire()  # the queue is full: refused at once
    assert gate.refused_full == 1
    gate.release()
    assert await first
    assert not second.done()
    gate.release()
    assert await second
    gate.release()
    assert (gate.active, gate.waiting, gate.admitted) == (0, 0, 3)


async def test_admission_gives_up_after_the_queue_timeout_and_passes_on_a_late_slot() -> None:
    gate = Admission(slots=1, max_waiting=5, timeout_s=0.2)
    assert await gate.acquire()
    began = time.monotonic()
    assert not await gate.acquire()  # nobody releases: it waits its timeout, then gives up
    assert time.monotonic() - began >= 0.2
    assert (gate.refused_timeout, gate.waiting, gate.active) == (1, 0, 1)
    # a waiter cancelled right after it was handed the slot passes the slot on
    waiter = asyncio.ensure_future(gate.acquire())
    await until(lambda: gate.waiting == 1, "the waiter to queue")
    gate.release()  # hands the slot to the waiter ...
    waiter.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (gate.active, gate.waiting) == (0, 0)
