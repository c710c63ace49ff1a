"""Broker restarts and worker identities (issue 9, findings 3 and 4), on a real Mosquitto
with the project's configuration.

* A broker stopped with SIGTERM mid-stream and started again loses nothing it acknowledged.
  Mosquitto 2.0 keeps a persistent session over a restart but not its *shared*
  subscriptions, so with the default plain subscription the broker keeps routing to
  ingest's session from its first moment back; with a shared group, what devices publish
  before ingest has subscribed again is answered "no matching subscribers" (MQTT 5 reason
  0x10: not acknowledged), and a device following the contract publishes it again.
* A worker identity that leaves a shared group for good is retired with
  ``firewatch ingest retire``: what was queued for it is stored, its session is deleted,
  and later traffic all goes to the workers that remain.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from firewatch.core.settings import Settings
from firewatch.ingest.service import IngestService
from firewatch.lab.tracking import TrackingPublisher as Tracking
from firewatch.runtime.mosquitto import Broker
from tests.builders.city import WATER_TOPIC
from tests.builders.payloads import water
from tests.helpers import ThreadedIngest, scalar, wait_until

pytestmark = pytest.mark.slow


def TrackingPublisher(url: str) -> Tracking:
    """A device on the water point's topic that remembers every answer."""
    return Tracking(url, WATER_TOPIC, water)


def _publish_paced(pub: Tracking, seqs: range, rate: float) -> threading.Thread:
    def run() -> None:
        started = time.monotonic()
        for i, seq in enumerate(seqs):
            ahead = i / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)  # pacing the offered load, not synchronisation
            pub.publish(seq)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _stored(db: psycopg.Connection[Any]) -> set[int]:
    return {int(r[0]) for r in db.execute("SELECT seq FROM telemetry").fetchall()}


@pytest.mark.parametrize("group", ["", "ingest"], ids=["plain", "shared"])
def test_broker_sigterm_and_restart_under_load_loses_nothing_acknowledged(
    settings: Settings, db: psycopg.Connection[Any], tmp_path: Path, group: str
) -> None:
    n = 3000
    broker = Broker(tmp_path / "broker").start()
    settings = settings.model_copy(update={"mqtt_url": broker.url, "ingest_group": group})
    try:
        with ThreadedIngest(settings):
            pub = TrackingPublisher(broker.url)
            sender = _publish_paced(pub, range(1, n + 1), rate=1000)
            wait_until(lambda: len(pub.acked) >= n // 3, 30, "a third acknowledged")
            broker.stop()  # SIGTERM mid-stream: Mosquitto saves sessions and queues
            broker.start()  # same port, same data directory
            sender.join(timeout=60)
            wait_until(lambda: pub.answered() == n, 60, "an answer to every publish")
            # A device resends what the broker did not take (the contract, for 0x10).
            while pub.unrouted:
                again = sorted(pub.unrouted)
                pub.unrouted.clear()
                for seq in again:
                    pub.publish(seq)
                wait_until(lambda: pub.answered() == n, 30, "answers to the resends")
            pub.close()
            acked = set(pub.acked)
            wait_until(lambda: acked <= _stored(db), 60, "every acknowledged message stored")
    finally:
        broker.stop()
    assert pub.other == []
    assert acked == set(range(1, n + 1))  # all acknowledged in the end (after resends)
    assert _stored(db) == acked
    assert scalar(db, "SELECT count(*) FROM telemetry") == n  # and each stored once


@pytest.mark.parametrize("group", ["", "ingest"], ids=["plain", "shared"])
def test_which_subscriptions_mosquitto_restores_after_a_restart(
    settings: Settings, db: psycopg.Connection[Any], tmp_path: Path, group: str
) -> None:
    """Why the default is a plain subscription. Ingest subscribes and stops (its session
    is kept), the broker restarts, devices publish while no ingest is connected: Mosquitto
    restored the plain subscription from its persistence file and queues for ingest's
    session (even an MQTT 3.1.1 device, which cannot be told otherwise, loses nothing);
    the shared one it did not restore, so every message is answered 0x10 and dropped."""
    broker = Broker(tmp_path / "broker").start()
    settings = settings.model_copy(update={"mqtt_url": broker.url, "ingest_group": group})
    try:
        with ThreadedIngest(settings):
            pass  # subscribed, then stopped: the session stays at the broker
        broker.stop()
        broker.start()
        pub = TrackingPublisher(broker.url)
        for seq in range(1, 201):
            pub.publish(seq)
        wait_until(lambda: pub.answered() == 200, 30, "answers")
        pub.close()
        with ThreadedIngest(settings) as ingest:
            if not group:
                wait_until(
                    lambda: scalar(db, "SELECT count(*) FROM telemetry") == 200,
                    30,
                    "the queued messages stored",
                )
            stats = ingest.stop()
    finally:
        broker.stop()
    if group:
        assert pub.unrouted == set(range(1, 201))  # not acknowledged: the device resends
        assert stats.received == 0
    else:
        assert pub.acked == set(range(1, 201))
        assert pub.unrouted == set()
        assert stats.received == 200


def test_retiring_a_worker_stores_its_queue_and_frees_its_share(
    settings: Settings, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    broker = Broker(tmp_path / "broker").start()
    base = settings.model_copy(update={"mqtt_url": broker.url, "ingest_group": "ingest"})
    a = base.model_copy(update={"ingest_client_id": "firewatch-ingest-a"})
    b = base.model_copy(update={"ingest_client_id": "firewatch-ingest-b"})
    try:
        with ThreadedIngest(a):
            with ThreadedIngest(b):
                pass  # b joined the group and left, keeping its persistent session
            pub = TrackingPublisher(broker.url)
            for seq in range(1, 401):
                pub.publish(seq)
            wait_until(lambda: len(pub.acked) == 400, 30, "acknowledged")
            # The broker keeps routing b's share to b's session: a's share only is stored.
            wait_until(
                lambda: 0 < scalar(db, "SELECT count(*) FROM telemetry") < 400, 30, "a's share"
            )
            assert scalar(db, "SELECT count(*) FROM telemetry") < 400

            assert b.database_url is not None
            retire = IngestService(b, b.database_url, broker.url, retire=True, quiet_s=1.0)
            stop = threading.Event()
            runner = threading.Thread(target=retire.run, args=(stop,), daemon=True)
            runner.start()
            runner.join(timeout=60)  # it ends by itself once the session is drained
            assert not runner.is_alive(), "retire did not finish"
            assert not stop.is_set()
            assert scalar(db, "SELECT count(*) FROM telemetry") == 400
            assert retire.stats.received > 0
            # b's session is gone: everything published now reaches a.
            for seq in range(401, 601):
                pub.publish(seq)
            wait_until(
                lambda: scalar(db, "SELECT count(*) FROM telemetry") == 600,
                30,
                "all later messages stored by a alone",
            )
            pub.close()
    finally:
        broker.stop()


def test_a_worker_moved_into_a_group_drops_its_plain_subscription(
    settings: Settings, db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    """Scaling out: the one plain worker restarts in a shared group. Its session keeps the
    plain subscription unless the worker drops it; if it did not, the worker would get
    every message twice (once per subscription) for as long as the session lives."""
    broker = Broker(tmp_path / "broker").start()
    plain = settings.model_copy(update={"mqtt_url": broker.url})
    grouped = plain.model_copy(update={"ingest_group": "ingest"})
    try:
        with ThreadedIngest(plain):
            pass
        with ThreadedIngest(grouped) as ingest:
            consumer = ingest.service.consumer
            assert consumer is not None
            wait_until(consumer.unsubscribed.is_set, 10, "the plain filter unsubscribed")
            pub = TrackingPublisher(broker.url)
            for seq in range(1, 101):
                pub.publish(seq)
            wait_until(lambda: scalar(db, "SELECT count(*) FROM telemetry") == 100, 20, "stored")
            pub.close()
            stats = ingest.stop()
    finally:
        broker.stop()
    assert stats.received == 100
    assert stats.duplicates == 0
