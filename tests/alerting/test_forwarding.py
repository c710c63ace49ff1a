"""GB 50440: a fire the operator confirms reaches the fire command center within 3 s, and
the unit's responsible person is notified — through the real API, the real outbox
dispatcher and real local HTTP receivers, signatures checked."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import pytest

from firewatch.alerting.dispatcher import OutboxDispatcher
from firewatch.alerting.webhooks import verify
from firewatch.api.server import ApiServer
from firewatch.core.people import Role
from firewatch.core.settings import Settings
from firewatch.storage.alerts import raise_alert
from tests.builders.people import as_role
from tests.helpers import ThreadedService, wait_until


class Receiver:
    """A webhook receiver on a free port that records each request and its arrival time."""

    def __init__(self) -> None:
        self.got: list[tuple[float, dict[str, str], bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.got.append((time.time(), dict(self.headers), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    cc, notify = Receiver(), Receiver()
    yield cc, notify
    cc.close()
    notify.close()


def test_a_confirmed_fire_is_forwarded_within_3_seconds(
    db: psycopg.Connection[Any], settings: Settings, receivers: tuple[Receiver, Receiver]
) -> None:
    cc, notify = receivers
    cfg = settings.model_copy(
        update={
            "webhook_command_center_url": cc.url,
            "webhook_notify_url": notify.url,
            "alerting_metrics_port": 0,
            "webhook_secret": "s3cret-forwarding-test",
        }
    )
    assert cfg.database_url
    operator = as_role(db, Role.OPERATOR, username="operator7")
    alert, _ = raise_alert(
        db,
        type="fire_alarm",
        severity="critical",
        unit_id="U-WD-001",
        device_id="D-WD-001-P1",
        seen_at=time.time(),
        explanation="fire alarm reported by point smoke detector 1004",
    )
    api_cfg = cfg.model_copy(update={"api_host": "127.0.0.1", "api_port": 0})
    with (
        ThreadedService(OutboxDispatcher(cfg, cfg.database_url), "dispatcher"),
        ApiServer(api_cfg, cfg.database_url) as api,
    ):
        confirmed_at = time.time()
        resp = httpx.post(
            f"{api.url}/alerts/{alert.id}/actions",
            json={"action": "confirm_fire", "note": "confirmed with the unit's control room"},
            headers=operator,
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        wait_until(lambda: len(cc.got) == 1 and len(notify.got) == 1, 10, "both deliveries")
    arrived, headers, body = cc.got[0]
    assert arrived - confirmed_at < 3.0, f"forwarded after {arrived - confirmed_at:.3f} s"
    assert verify(
        "s3cret-forwarding-test",
        headers["X-Firewatch-Timestamp"],
        body,
        headers["X-Firewatch-Signature"],
    )
    doc = json.loads(body)
    assert doc["channel"] == "command_center"
    assert doc["payload"]["alert"]["state"] == "confirmed_fire"
    assert doc["payload"]["actor"] == "operator7"  # who was logged in, not what a body said
    _, _, nbody = notify.got[0]
    ndoc = json.loads(nbody)
    assert ndoc["recipient"]["role"] == "responsible"
    assert ndoc["recipient"]["phone"] == "13800000001"  # from the seeded unit's contacts
    assert db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone() == (2,)
