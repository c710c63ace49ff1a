"""The notification channels (firewatch/alerting/channel*.py) through the real dispatcher,
against real local servers: e-mail to an SMTP server (aiosmtpd, in a thread), SMS and
voice to a fake provider that is a real HTTP server (http.server, in a thread) and that
posts its delivery receipts back to a real API (uvicorn, in a thread). Escalation writes
the rows (tests/alerting/test_escalation.py has the policy); these tests deliver them.
Nothing sleeps to synchronise: tests wait on conditions with deadlines."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from firewatch.alerting.dispatcher import InsecureWebhookSecretError, OutboxDispatcher
from firewatch.alerting.escalation import escalate_due
from firewatch.api.deps import ApiOptions
from firewatch.api.server import ApiServer
from firewatch.core.people import Role
from firewatch.core.settings import Settings
from firewatch.core.signatures import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    verify,
)
from firewatch.storage import people
from firewatch.storage import roster as duty_roster
from firewatch.storage.alerts import raise_alert
from firewatch.storage.receipts import receipts_of
from tests.helpers import scalar, wait_until

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
SECRET = "provider-secret-9d2f"  # shared with the provider: requests and receipts
TOKEN = "provider-api-token"
RESPONSIBLE_PHONE = "13800000001"  # U-WD-001's responsible person in the demo city


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def operator(db: psycopg.Connection[Any], username: str) -> None:
    """An operator on duty around T0 with an e-mail address."""
    people.add_person(db, username=username, role=Role.OPERATOR, actor="admin1")
    duty_roster.set_contact(
        db, username, email=f"{username}@example.org", set_email=True, actor="admin1"
    )
    duty_roster.add_shift(db, username, T0 - timedelta(hours=1), T0 + timedelta(hours=6), actor="a")


def critical_alarm(db: psycopg.Connection[Any]) -> int:
    alert, _ = raise_alert(
        db,
        type="fire_alarm",
        severity="critical",
        unit_id="U-WD-001",
        device_id=f"D-CH-{scalar(db, 'SELECT count(*) FROM alerts')}",
        seen_at=T0,
        explanation="fire alarm in zone 3",
    )
    return alert.id


def outbox(db: psycopg.Connection[Any], channel: str) -> list[tuple[int, str, str | None]]:
    got = db.execute(
        "SELECT id, status, last_error FROM outbox WHERE channel = %s ORDER BY id", (channel,)
    ).fetchall()
    return [(int(i), str(st), err) for i, st, err in got]


def deliveries(db: psycopg.Connection[Any], outbox_id: int) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT attempt, url, status_code, error, provider_message_id FROM outbox_deliveries"
        " WHERE outbox_id = %s ORDER BY id",
        (outbox_id,),
    ).fetchall()


def base(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(update={"alerting_metrics_port": 0, **update})


# --- e-mail over a real SMTP server ----------------------------------------------------------
@dataclass
class Mailbox:
    """An aiosmtpd handler: keeps every message; refuses recipients at ``refuse``."""

    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    refuse: str = "nobody@example.org"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address == self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append((envelope, msg))
        return "250 Message accepted for delivery"


def authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"mail-password"
    # handled=False: the server answers a refusal itself (535)
    return AuthResult(success=ok and auth_data.login == b"firewatch", handled=False)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on 127.0.0.1, with AUTH (over plain SMTP: a test server)."""
    box, port = Mailbox(), free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def mail_settings(settings: Settings, port: int, **update: Any) -> Settings:
    return base(
        settings,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_from="alerts@firewatch.example",
        **update,
    )


def test_escalation_emails_arrive_over_smtp(
    db: psycopg.Connection[Any], settings: Settings, smtp: tuple[Mailbox, int]
) -> None:
    box, port = smtp
    operator(db, "li.wei")
    operator(db, "wang.fang")
    alert_id = critical_alarm(db)
    assert escalate_due(db, settings, now=T0 + s(60)) == [alert_id]
    s_ = mail_settings(settings, port, smtp_user="firewatch", smtp_password="mail-password")
    with OutboxDispatcher(s_, str(s_.database_url)) as dispatcher:
        assert set(dispatcher.channels) == {"email"}
        assert dispatcher.dispatch_once() == 2
    assert [st for _, st, _ in outbox(db, "email")] == ["delivered", "delivered"]
    assert sorted(env.rcpt_tos[0] for env, _ in box.messages) == [
        "li.wei@example.org",
        "wang.fang@example.org",
    ]
    env, msg = next((e, m) for e, m in box.messages if e.rcpt_tos == ["li.wei@example.org"])
    assert env.mail_from == "alerts@firewatch.example"
    assert msg["Subject"] == (
        "[Firewatch] CRITICAL fire alarm at 许昌万达广场 (U-WD-001): not acknowledged"
    )
    assert msg["To"] == "li.wei@example.org"
    (row_id,) = [i for i, _, _ in outbox(db, "email") if str(i) == msg[DELIVERY_HEADER]]
    assert msg["Message-ID"] == f"<firewatch.outbox.{row_id}@firewatch.example>"
    body = msg.get_content()
    assert f"Firewatch alert #{alert_id}: critical fire alarm at 许昌万达广场" in body
    assert "escalation level: 1" in body
    ((attempt, url, code, error, message_id),) = deliveries(db, row_id)
    assert (attempt, url, code, error) == (1, f"smtp://127.0.0.1:{port}", 250, None)
    assert message_id == msg["Message-ID"]


def test_smtp_refusals_and_failures_are_attempts_that_retry(
    db: psycopg.Connection[Any], settings: Settings, smtp: tuple[Mailbox, int]
) -> None:
    box, port = smtp
    operator(db, "li.wei")
    critical_alarm(db)
    escalate_due(db, settings, now=T0 + s(60))
    ((row_id, _, _),) = outbox(db, "email")

    def attempt(s_: Settings) -> tuple[Any, ...]:
        db.execute("UPDATE outbox SET available_at = now() WHERE id = %s", (row_id,))
        with OutboxDispatcher(s_, str(s_.database_url)) as dispatcher:
            assert dispatcher.dispatch_once() == 1
        return deliveries(db, row_id)[-1]

    wrong = mail_settings(settings, port, smtp_user="firewatch", smtp_password="guess")
    _, _, code, error, _ = attempt(wrong)
    assert code == 535
    assert error.startswith("SMTP 535: 5.7.8 Authentication credentials invalid")
    assert error.startswith("SMTP 535: ")
    db.execute("UPDATE people SET email = 'nobody@example.org' WHERE username = 'li.wei'")
    db.execute(
        "UPDATE outbox SET recipient = jsonb_set(recipient, '{to}', '\"nobody@example.org\"')"
        " WHERE id = %s",
        (row_id,),
    )
    _, _, code, error, _ = attempt(mail_settings(settings, port))
    assert (code, error) == (550, "SMTP 550: 5.1.1 no such user here")
    _, _, code, error, _ = attempt(mail_settings(settings, free_port()))
    assert code is None
    assert "ConnectionRefusedError" in error
    assert box.messages == []
    ((status, last_error),) = db.execute(
        "SELECT status, last_error FROM outbox WHERE id = %s", (row_id,)
    ).fetchall()
    assert status == "pending"  # retried later with backoff, as a webhook would be
    assert "ConnectionRefusedError" in last_error


# --- SMS and voice through a fake provider that posts receipts -------------------------------
@dataclass(frozen=True)
class ProviderRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    data: dict[str, Any]
    verified: bool


class Provider:
    """A fake SMS/voice provider: a real HTTP server on 127.0.0.1 that checks our bearer
    token and signature, answers ``{"message_id": "m-<n>"}`` (or ``status``), and then —
    like a real provider, after answering — posts a signed receipt to the request's
    ``callback_url`` from a thread of its own."""

    def __init__(self, status: int = 200, answer_id: bool = True) -> None:
        self.status = status
        self.answer_id = answer_id
        self.requests: list[ProviderRequest] = []
        self.receipts: list[httpx.Response] = []
        self.lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                ok = headers.get("authorization") == f"Bearer {TOKEN}" and verify(
                    SECRET,
                    headers.get(TIMESTAMP_HEADER.lower(), ""),
                    body,
                    headers.get(SIGNATURE_HEADER.lower(), ""),
                )
                data = json.loads(body)
                with provider.lock:
                    provider.requests.append(ProviderRequest(self.path, headers, body, data, ok))
                    n = len(provider.requests)
                message_id = f"m-{n}"
                doc = {"message_id": message_id} if provider.answer_id else {"queued": True}
                reply = json.dumps(doc).encode()
                self.send_response(provider.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
                if provider.status == 200 and provider.answer_id:
                    threading.Thread(
                        target=provider.post_receipt,
                        args=(data["callback_url"], message_id),
                        daemon=True,
                    ).start()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def post_receipt(self, callback_url: str, message_id: str) -> None:
        body = json.dumps(
            {"message_id": message_id, "status": "delivered", "at": datetime.now(UTC).isoformat()}
        ).encode()
        ts = int(datetime.now(UTC).timestamp())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(SECRET, ts, body),
        }
        response = httpx.post(callback_url, content=body, headers=headers, timeout=10)
        with self.lock:
            self.receipts.append(response)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.close()


@pytest.fixture
def api(settings: Settings, db: psycopg.Connection[Any]) -> Iterator[ApiServer]:
    """The real API (uvicorn on a free port) knowing the provider's secret."""
    assert settings.database_url
    with ApiServer(
        base(settings, provider_secret=SECRET),
        settings.database_url,
        options=ApiOptions(pool_timeout_s=5.0),
    ) as server:
        yield server


def provider_settings(settings: Settings, provider: Provider, api: ApiServer) -> Settings:
    return base(
        settings,
        sms_url=f"{provider.url}/sms",
        voice_url=f"{provider.url}/voice",
        provider_token=TOKEN,
        provider_secret=SECRET,
        provider_callback_url=f"{api.url}/notifications/receipts",
    )


def test_sms_and_voice_go_to_the_provider_and_its_receipts_come_back(
    db: psycopg.Connection[Any], settings: Settings, provider: Provider, api: ApiServer
) -> None:
    alert_id = critical_alarm(db)  # nobody on duty: straight to the unit's person by SMS
    assert escalate_due(db, settings, now=T0 + s(60)) == [alert_id]
    assert escalate_due(db, settings, now=T0 + s(120)) == [alert_id]  # then a call
    s_ = provider_settings(settings, provider, api)
    with OutboxDispatcher(s_, str(s_.database_url)) as dispatcher:
        assert set(dispatcher.channels) == {"sms", "voice"}
        assert dispatcher.dispatch_once() == 2
    ((sms_id, sms_status, _),) = outbox(db, "sms")
    ((voice_id, voice_status, _),) = outbox(db, "voice")
    assert (sms_status, voice_status) == ("delivered", "delivered")

    by_path = {r.path: r for r in provider.requests}
    assert set(by_path) == {"/sms", "/voice"}
    sms = by_path["/sms"]
    assert sms.verified  # our bearer token and our signature
    assert sms.headers[DELIVERY_HEADER.lower()] == str(sms_id)
    assert set(sms.data) == {"to", "text", "id", "callback_url"}
    assert sms.data["to"] == RESPONSIBLE_PHONE
    assert sms.data["id"] == str(sms_id)
    assert sms.data["callback_url"] == f"{api.url}/notifications/receipts"
    assert sms.data["text"].startswith(f"Firewatch alert #{alert_id}: critical fire alarm")
    assert "escalation level 3 of 5" in sms.data["text"]
    assert "escalation level 4 of 5" in by_path["/voice"].data["text"]

    # every attempt logged with the provider's message id ...
    ids = {}
    for row_id in (sms_id, voice_id):
        ((attempt, url, code, error, message_id),) = deliveries(db, row_id)
        assert (attempt, code, error) == (1, 200, None)
        assert url.startswith(provider.url)
        ids[row_id] = message_id
    assert sorted(ids.values()) == ["m-1", "m-2"]
    # ... and the receipts the provider posted to the API recorded against them
    wait_until(lambda: all(receipts_of(db, i) for i in ids), 15, "both receipts")
    for row_id, message_id in ids.items():
        (receipt,) = receipts_of(db, row_id)
        assert (receipt.message_id, receipt.status) == (message_id, "delivered")
        assert receipt.channel == ("sms" if row_id == sms_id else "voice")
    wait_until(lambda: len(provider.receipts) == 2, 15, "the API's answers")
    assert [r.status_code for r in provider.receipts] == [200, 200]
    assert all(r.json()["duplicate"] is False for r in provider.receipts)


def test_a_provider_refusal_is_retried_and_an_answer_without_id_still_counts(
    db: psycopg.Connection[Any],
    settings: Settings,
    api: ApiServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    critical_alarm(db)
    escalate_due(db, settings, now=T0 + s(60))
    ((row_id, _, _),) = outbox(db, "sms")
    refusing = Provider(status=503)
    try:
        s_ = provider_settings(settings, refusing, api)
        with OutboxDispatcher(s_, str(s_.database_url)) as dispatcher:
            assert dispatcher.dispatch_once() == 1
    finally:
        refusing.close()
    ((_, _, code, error, message_id),) = deliveries(db, row_id)
    assert (code, message_id) == (503, None)
    assert error.startswith("HTTP 503: ")
    assert outbox(db, "sms")[0][1] == "pending"

    silent = Provider(answer_id=False)
    db.execute("UPDATE outbox SET available_at = now() WHERE id = %s", (row_id,))
    try:
        s_ = provider_settings(settings, silent, api)
        with (
            caplog.at_level(logging.WARNING, "firewatch.alerting.channel_provider"),
            OutboxDispatcher(s_, str(s_.database_url)) as dispatcher,
        ):
            assert dispatcher.dispatch_once() == 1
    finally:
        silent.close()
    assert outbox(db, "sms")[0][1] == "delivered"  # accepted: never texted twice
    assert deliveries(db, row_id)[-1][2:] == (200, None, None)
    assert any("without a message id" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("secret", "problem"), [(None, "is not set"), ("short", "is shorter than 16 bytes")]
)
def test_the_dispatcher_refuses_a_provider_without_a_real_secret(
    settings: Settings, secret: str | None, problem: str
) -> None:
    bad = base(settings, sms_url="http://127.0.0.1:9/sms", provider_secret=secret)
    with pytest.raises(InsecureWebhookSecretError, match=f"FIREWATCH_PROVIDER_SECRET {problem}"):
        OutboxDispatcher(bad, "dbname=never-connected")
