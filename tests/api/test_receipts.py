"""``POST /notifications/receipts`` (firewatch/api/routes/notifications.py) over the ASGI
app and this test's database: the provider's receipt is stored against the notification
that got its message id; 401 without a valid signature (checked first, so an unsigned
caller learns nothing), 422 for a malformed body, 404 for an unknown message id; the same
receipt twice is stored once. The whole round trip through a fake provider is in
tests/alerting/test_channels.py."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from firewatch.api.app import create_app
from firewatch.core.settings import Settings
from firewatch.core.signatures import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from firewatch.storage.receipts import receipts_of
from tests.api.conftest import TEST_OPTIONS
from tests.helpers import scalar

pytestmark = pytest.mark.anyio

SECRET = "provider-secret-9d2f"
PATH = "/notifications/receipts"
AT = "2026-12-08T02:03:04+00:00"


@pytest.fixture
async def client(
    settings: Settings, db: psycopg.Connection[Any]
) -> AsyncIterator[httpx.AsyncClient]:
    """The app knowing the provider's secret."""
    assert settings.database_url
    app = create_app(
        settings.model_copy(update={"provider_secret": SECRET}),
        settings.database_url,
        options=TEST_OPTIONS,
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        yield c


@pytest.fixture
def sent(db: psycopg.Connection[Any]) -> int:
    """An SMS the provider accepted with message id ``m-42``: its outbox id."""
    outbox_id = int(
        scalar(
            db,
            "INSERT INTO outbox (channel, recipient, payload, status, attempts)"
            " VALUES ('sms', '{\"to\": \"13800000001\"}', '{\"text\": \"hi\"}', 'delivered', 1)"
            " RETURNING id",
        )
    )
    db.execute(
        "INSERT INTO outbox_deliveries (outbox_id, attempt, url, status_code, duration_ms,"
        " provider_message_id) VALUES (%s, 1, 'http://provider/sms', 200, 3, 'm-42')",
        (outbox_id,),
    )
    return outbox_id


def signed(body: bytes, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if ts is None else ts
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: sign(secret, stamp, body),
    }


def receipt(**change: Any) -> bytes:
    doc = {"message_id": "m-42", "status": "delivered", "at": AT, **change}
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


async def test_a_signed_receipt_is_recorded_once(
    client: httpx.AsyncClient, db: psycopg.Connection[Any], sent: int
) -> None:
    body = receipt(detail="delivered to handset")
    r = await client.post(PATH, content=body, headers=signed(body))
    assert r.status_code == 200, r.text
    got = r.json()
    assert {k: got[k] for k in ("outbox_id", "channel", "message_id", "status", "duplicate")} == {
        "outbox_id": sent,
        "channel": "sms",
        "message_id": "m-42",
        "status": "delivered",
        "duplicate": False,
    }
    assert got["at"].startswith("2026-12-08T02:03:04")
    again = await client.post(PATH, content=body, headers=signed(body))  # a provider's retry
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["id"] == got["id"]
    failed = receipt(status="failed", at="2026-12-08T02:05:00Z")
    assert (await client.post(PATH, content=failed, headers=signed(failed))).status_code == 200
    stored = receipts_of(db, sent)
    assert [(r.status, r.detail) for r in stored] == [
        ("delivered", "delivered to handset"),
        ("failed", None),
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {TIMESTAMP_HEADER: "1", SIGNATURE_HEADER: "sha256=00"},
        "wrong secret",
        "stale",
        "other body",
    ],
)
async def test_without_a_valid_signature_401(
    client: httpx.AsyncClient, db: psycopg.Connection[Any], sent: int, headers: Any
) -> None:
    body = receipt()
    if headers == "wrong secret":
        headers = signed(body, secret="not-the-provider")
    elif headers == "stale":
        headers = signed(body, ts=int(time.time()) - 301)
    elif headers == "other body":
        headers = signed(receipt(status="failed"))
    r = await client.post(PATH, content=body, headers=headers)
    assert r.status_code == 401
    assert r.json() == {"detail": "missing or invalid signature"}
    assert receipts_of(db, sent) == []


async def test_unsigned_malformed_or_unknown_is_still_401(client: httpx.AsyncClient) -> None:
    """The signature is checked first: an unsigned caller learns nothing about bodies or
    message ids."""
    for body in (b"not json", receipt(message_id="m-404")):
        r = await client.post(PATH, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 401


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"not json", "body"),
        (receipt(status="read"), "status"),
        (receipt(at="2026-12-08T02:03:04"), "at"),  # no UTC offset
        (receipt(message_id=""), "message_id"),
        (receipt(message_id=None), "message_id"),
        (receipt(colour="red"), "colour"),
        (json.dumps([1, 2]).encode(), "body"),
    ],
)
async def test_a_malformed_signed_body_is_422(
    client: httpx.AsyncClient, sent: int, body: bytes, where: str
) -> None:
    r = await client.post(PATH, content=body, headers=signed(body))
    assert r.status_code == 422, r.text
    (first, *_) = r.json()["detail"]
    assert first["loc"][0] == "body"
    assert where in first["loc"] or where == "body"


async def test_an_unknown_message_id_is_404(
    client: httpx.AsyncClient, db: psycopg.Connection[Any], sent: int
) -> None:
    body = receipt(message_id="m-999")
    r = await client.post(PATH, content=body, headers=signed(body))
    assert r.status_code == 404
    assert r.json() == {"detail": "no notification has message id 'm-999'"}
    assert scalar(db, "SELECT count(*) FROM notification_receipts") == 0


async def test_without_a_configured_secret_every_receipt_is_refused(
    settings: Settings, db: psycopg.Connection[Any], sent: int
) -> None:
    assert settings.database_url
    app = create_app(settings, settings.database_url, options=TEST_OPTIONS)
    body = receipt()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        for secret in ("", SECRET):  # not even a signature with an empty key
            r = await c.post(PATH, content=body, headers=signed(body, secret=secret))
            assert r.status_code == 401
