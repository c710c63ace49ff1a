"""The alert-latency probe of ``firewatch bench ingest --alerts N``.

While the load generators offer their load, N alarm-panel fire events are published over
MQTT, evenly spread over the run, each on its own probe panel (so that each is a new alert,
not an occurrence of the previous one). A client of the API's live stream notes when each
probe's alert is created. Latency = stream arrival − publish, on one machine's clock: the
whole path device → Mosquitto → ingest (commit) → analytics (anomaly) → alerting (alert) →
API (SSE) → operator screen.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import orjson
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from firewatch.core.broker import BrokerAddress
from firewatch.core.contract import topic_for
from firewatch.core.domain import Channel
from firewatch.core.people import Role
from firewatch.lab.load_generator import register_bench_devices
from firewatch.storage.people import add_person, create_token, get_person_by_username

PROBE_UNIT = "U-BENCH-PROBE"


def probe_ids(n: int) -> list[str]:
    return [f"PROBE-P{i:04d}" for i in range(n)]


def register_probes(conn: psycopg.Connection[Any], n: int) -> None:
    """One unit with ``n`` alarm panels (idempotent); the bench regions must exist or are
    made by :func:`~firewatch.lab.load_generator.register_bench_devices`."""
    register_bench_devices(conn, 0)
    with conn.transaction():
        conn.execute(
            "INSERT INTO units (id, name, region_id, supervision, category, building_class)"
            " VALUES (%s, 'Bench probes', 'bench-s', 'general', 'bench', 'multistorey')"
            " ON CONFLICT DO NOTHING",
            (PROBE_UNIT,),
        )
        with conn.cursor().copy("COPY devices (id, unit_id, kind) FROM STDIN") as copy:
            for dev in probe_ids(n):
                copy.write_row((dev, PROBE_UNIT, "panel"))


def watcher_token(conn: psycopg.Connection[Any]) -> str:
    """An API token of the bench's operator (made if missing): the stream needs someone."""
    if get_person_by_username(conn, "bench-probe") is None:
        add_person(conn, username="bench-probe", role=Role.OPERATOR, actor="bench")
    now = datetime.now(UTC)
    return create_token(
        conn, "bench-probe", "alert probe", now + timedelta(days=1), actor="bench", now=now
    )


def probe_fire(sent: float) -> dict[str, Any]:
    """The fire event a probe panel publishes at ``sent`` (Unix seconds): detector 1001's
    status word with the fire bit (normal operation + fire)."""
    return {
        "seq": 1,
        "ts": datetime.fromtimestamp(sent, UTC).isoformat(),
        "type": "component_status",
        "system_type": 1,
        "system_addr": 1,
        "component_type": 41,
        "component_addr": 1001,
        "status": 3,
    }


class StreamWatcher(threading.Thread):
    """Follows ``{api}/alerts/stream`` as the bearer of ``token`` and notes when each
    probe's alert was created."""

    def __init__(self, api_url: str, probes: Sequence[str], token: str) -> None:
        super().__init__(daemon=True, name="stream-watcher")
        self.url = api_url.rstrip("/") + "/alerts/stream"
        self.headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token}"}
        self.probes = set(probes)
        self.seen: dict[str, float] = {}
        self.alerts: dict[str, dict[str, Any]] = {}  # the created alert, for the breakdown
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10.0, read=None)) as client,
                client.stream("GET", self.url, headers=self.headers) as resp,
            ):
                resp.raise_for_status()
                self.connected.set()
                event, data = "", ""
                for line in resp.iter_lines():
                    if self.stop.is_set():
                        return
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data += line[5:].strip()
                    elif line == "":
                        if event == "created" and data:
                            self._note(data)
                        event, data = "", ""
        except BaseException as err:  # reported by the bench
            self.error = err

    def _note(self, data: str) -> None:
        now = time.time()
        alert = orjson.loads(data).get("alert", {})
        device = alert.get("device_id")
        if device in self.probes and device not in self.seen:
            self.seen[device] = now
            self.alerts[device] = alert


class ProbePublisher(threading.Thread):
    """Publishes one fire event per probe panel, ``spacing`` seconds apart."""

    def __init__(
        self, mqtt_url: str, root: str, probes: Sequence[str], start_after: float, spacing: float
    ) -> None:
        super().__init__(daemon=True, name="probe-publisher")
        self.addr = BrokerAddress.parse(mqtt_url)
        self.root = root
        self.probes = list(probes)
        self.start_after, self.spacing = start_after, spacing
        self.sent: dict[str, float] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            protocol=mqtt.MQTTv5,
            client_id=f"bench-probe-{uuid.uuid4().hex[:6]}",
        )
        if self.addr.username:
            client.username_pw_set(self.addr.username, self.addr.password)
        try:
            client.connect(self.addr.host, self.addr.port)
            client.loop_start()
            t0 = time.monotonic() + self.start_after
            for i, dev in enumerate(self.probes):
                delay = t0 + i * self.spacing - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing the probes, not synchronisation
                sent = time.time()
                body = probe_fire(sent)
                topic = topic_for(self.root, PROBE_UNIT, dev, Channel.EVENT)
                client.publish(topic, orjson.dumps(body), qos=1)
                self.sent[dev] = sent
        except BaseException as err:
            self.error = err
        finally:
            client.loop_stop()
            client.disconnect()


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def anomaly_times(conn: psycopg.Connection[Any]) -> dict[str, float]:
    """When analytics wrote each probe's anomaly (its transaction's start)."""
    rows = conn.execute(
        "SELECT device_id, extract(epoch FROM min(created_at)) FROM anomalies"
        " WHERE device_id LIKE 'PROBE-%%' GROUP BY device_id"
    ).fetchall()
    return {str(d): float(t) for d, t in rows}


def summarize(
    sent: dict[str, float],
    seen: dict[str, float],
    alerts: dict[str, dict[str, Any]],
    anomalies: dict[str, float],
) -> dict[str, Any]:
    """The bench JSON's alert figures, with the median time of each leg: publish → ingest
    received it (the alert's ``first_seen``: broker and network), → analytics wrote the
    anomaly (ingest's flush and commit, the feed, the detectors), → alerting created the
    alert, → it was on the stream (the API)."""
    lat = np.array([(seen[d] - t) * 1000 for d, t in sent.items() if d in seen])
    legs: dict[str, list[float]] = {
        "to_ingest": [],
        "to_anomaly": [],
        "to_alert": [],
        "to_stream": [],
    }
    for d, t in sent.items():
        a = alerts.get(d)
        if a is None or d not in seen or d not in anomalies:
            continue
        rx, found, made = _ts(a["first_seen"]), anomalies[d], _ts(a["created_at"])
        legs["to_ingest"].append((rx - t) * 1000)
        legs["to_anomaly"].append((found - rx) * 1000)
        legs["to_alert"].append((made - found) * 1000)
        legs["to_stream"].append((seen[d] - made) * 1000)

    def q(p: float) -> float | None:
        return round(float(np.percentile(lat, p)), 1) if len(lat) else None

    return {
        "alert_latency_ms": {
            "p50": q(50),
            "p95": q(95),
            "p99": q(99),
            "max": round(float(lat.max()), 1) if len(lat) else None,
        },
        "alerts_expected": len(sent),
        "alerts_seen": len(lat),
        "alert_latency_legs_median_ms": {
            k: round(float(np.median(v)), 1) if v else None for k, v in legs.items()
        },
        "alert_latency_legs_p95_ms": {
            k: round(float(np.percentile(v, 95)), 1) if v else None for k, v in legs.items()
        },
    }
