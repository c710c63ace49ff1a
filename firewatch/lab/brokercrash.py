"""``firewatch bench broker``: what a broker restart or crash costs, measured.

Each scenario runs a real Mosquitto (the project's ``mosquitto/conf.d``, on a free port,
a fresh persistence directory), an in-process ingest worker and a device that remembers
the broker's answer to every QoS 1 publish (:class:`~firewatch.lab.tracking.TrackingPublisher`).
It reports, per scenario: messages published, acknowledged with Success, answered 0x10
("no matching subscribers": not acknowledged, the device publishes them again), stored,
and **lost** = acknowledged but never stored.

Scenarios:

``sigterm-plain`` / ``sigterm-shared``
    the broker stopped with SIGTERM a third of the way into a paced stream and started
    again, ingest running with the default plain subscription / a shared group.
``kill9-queued-autosave-N-rK``
    ingest stopped (its session kept), the stream published into the broker's queue, and
    the broker killed with SIGKILL (then started again) at a random message of the
    stream's second half, with ``autosave_interval N``; K repeats with different kill
    points: what it loses is what it acknowledged since its last save, so between none and
    about N + 1 seconds of traffic (Mosquitto compares whole seconds).
``kill9-live``
    SIGKILL a third of the way into the stream with ingest running and keeping up.

Machines here are noisy: compare the scenarios of one run with each other.
"""

from __future__ import annotations

import os
import platform
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg

from firewatch.core.settings import Settings
from firewatch.ingest.service import IngestService
from firewatch.lab.scratch import scratch_database
from firewatch.lab.tracking import TrackingPublisher, water_payload
from firewatch.runtime.mosquitto import Broker
from firewatch.runtime.postgres import resolve_database_url
from firewatch.storage.maintenance import maintain
from firewatch.storage.migrate import upgrade
from firewatch.storage.seed import load_seed, read_seed

UNIT, DEVICE = "U-WD-001", "D-WD-001-W1"  # a water point of the bundled demo city
TOPIC = f"firewatch/v1/{UNIT}/{DEVICE}/telemetry"


@dataclass
class Outcome:
    scenario: str
    published: int
    acked: int
    unrouted: int
    other: int
    stored: int
    lost: int  # acknowledged with Success and never stored
    seconds: float

    def line(self) -> str:
        return (
            f"{self.scenario:<30} published {self.published:>6}  acked {self.acked:>6}  "
            f"0x10 {self.unrouted:>6}  stored {self.stored:>6}  lost {self.lost:>6}"
        )


def _wait(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class _Ingest:
    """An ingest worker on a thread."""

    def __init__(self, settings: Settings, db_url: str, broker: Broker) -> None:
        self.service = IngestService(settings, db_url, broker.url)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.service.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> _Ingest:
        self.thread.start()
        if not _wait(self.service.ready.is_set, 30):
            raise RuntimeError("ingest did not become ready")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)


class BrokerBench:
    """One database (fresh, migrated, the demo city seeded) for all scenarios."""

    def __init__(self, settings: Settings, db_url: str, tmp: Path, messages: int, rate: float):
        self.base = settings.model_copy(
            update={
                "database_url": db_url,
                "ingest_metrics_port": 0,
                "backoff_initial_s": 0.05,
                "backoff_max_s": 0.5,
                "max_backlog_age_s": 7 * 86_400.0,
                # One device publishes the whole load: this measures the broker, not the
                # per-device rate limit.
                "ingest_device_rate_per_s": 0.0,
            }
        )
        self.db_url = db_url
        self.tmp = tmp
        self.messages = messages
        self.rate = rate

    def _fresh(self, name: str, **broker: Any) -> tuple[Broker, Settings]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            conn.execute("TRUNCATE telemetry")
        b = Broker(self.tmp / f"{name}-{uuid.uuid4().hex[:4]}", **broker)
        settings = self.base.model_copy(
            update={"mqtt_url": b.url, "ingest_client_id": f"bench-broker-{name}"}
        )
        return b, settings

    def _stored(self) -> int:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            row = conn.execute("SELECT count(DISTINCT seq) FROM telemetry").fetchone()
        return int(row[0]) if row else 0

    def _publish(
        self, pub: TrackingPublisher, action: Callable[[], None] | None, at: int | None = None
    ) -> None:
        """Publish the stream, paced; run ``action`` (on its own thread) after message
        ``at`` (default: a third of the way)."""
        at = self.messages // 3 if at is None else at
        started = time.monotonic()
        for i in range(self.messages):
            ahead = i / self.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)  # pacing the offered load
            pub.publish(i + 1)
            if action is not None and i == at:
                threading.Thread(target=action, daemon=True).start()

    def _outcome(self, name: str, pub: TrackingPublisher, started: float) -> Outcome:
        acked = set(pub.acked)
        _wait(lambda: self._stored() >= len(acked), 15)
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            stored = {int(r[0]) for r in conn.execute("SELECT seq FROM telemetry").fetchall()}
        return Outcome(
            name,
            self.messages,
            len(acked),
            len(pub.unrouted),
            len(pub.other),
            len(stored),
            len(acked - stored),
            time.monotonic() - started,
        )

    def sigterm(self, group: str) -> Outcome:
        name = f"sigterm-{'shared' if group else 'plain'}"
        broker, settings = self._fresh(name)
        settings = settings.model_copy(update={"ingest_group": group})
        started = time.monotonic()
        with broker, _Ingest(settings, self.db_url, broker):
            pub = TrackingPublisher(broker.url, TOPIC, _payload)

            def restart() -> None:
                broker.stop()
                broker.start()

            self._publish(pub, restart)
            _wait(lambda: pub.answered() == self.messages, 60)
            out = self._outcome(name, pub, started)
            pub.close()
        return out

    def kill9_queued(self, autosave: int, repeat: int, at: int) -> Outcome:
        name = f"kill9-queued-autosave-{autosave}-r{repeat}"
        broker, settings = self._fresh(name, extra=f"autosave_interval {autosave}")
        started = time.monotonic()
        with broker:
            with _Ingest(settings, self.db_url, broker):
                pass  # subscribed; stopped with its session kept
            pub = TrackingPublisher(broker.url, TOPIC, _payload)

            def crash() -> None:
                broker.kill()
                broker.start()

            self._publish(pub, crash, at)
            _wait(lambda: pub.answered() == self.messages, 60)
            pub.close()
            with _Ingest(settings, self.db_url, broker):
                _wait(lambda: self._stored() >= len(pub.acked), 15)  # or what survived
                out = self._outcome(name, pub, started)
        return out

    def kill9_live(self) -> Outcome:
        name = "kill9-live"
        broker, settings = self._fresh(name)
        started = time.monotonic()
        with broker, _Ingest(settings, self.db_url, broker):
            pub = TrackingPublisher(broker.url, TOPIC, _payload)

            def crash() -> None:
                broker.kill()
                broker.start()

            self._publish(pub, crash)
            _wait(lambda: pub.answered() == self.messages, 60)
            out = self._outcome(name, pub, started)
            pub.close()
        return out


def _payload(seq: int) -> bytes:
    return water_payload(seq, datetime.now(UTC).isoformat())


@contextmanager
def _database(settings: Settings) -> Iterator[str]:
    with ExitStack() as stack:
        url = scratch_database(
            stack, resolve_database_url(settings, create=True), "fw_bench_broker"
        )
        with psycopg.connect(url, autocommit=True) as conn:
            upgrade(conn)
            maintain(conn, settings)
            load_seed(conn, read_seed())
        yield url


def run_broker_bench(
    settings: Settings,
    *,
    messages: int,
    rate: float,
    repeat: int = 3,
    seed: int = 1,
    autosaves: tuple[int, ...] = (30, 5, 1),
) -> dict[str, Any]:
    """Every scenario (the crash ones ``repeat`` times, at kill points drawn with
    ``seed``); the result document (scenarios, machine, date)."""
    rng = random.Random(seed)
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="fw-bench-broker-") as tmp, _database(settings) as db:
        bench = BrokerBench(settings, db, Path(tmp), messages, rate)
        outcomes.append(bench.sigterm(""))
        outcomes.append(bench.sigterm("ingest"))
        for a in autosaves:
            for k in range(1, repeat + 1):
                at = rng.randrange(messages // 2, messages)
                outcomes.append(bench.kill9_queued(a, k, at))
        outcomes.append(bench.kill9_live())
    return {
        "command": (
            f"firewatch bench broker --messages {messages} --rate {rate:g} "
            f"--repeat {repeat} --seed {seed}"
        ),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(),
        },
        "messages": messages,
        "rate": rate,
        "scenarios": [o.__dict__ for o in outcomes],
    }


def format_broker_bench(result: dict[str, Any]) -> str:
    lines = [f"{result['command']}  ({result['date']}, {result['machine']['cores']} cores)"]
    lines += [Outcome(**s).line() for s in result["scenarios"]]
    return "\n".join(lines)
