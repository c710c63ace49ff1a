"""Load generator: paced QoS 1 publishing of water telemetry for many bench devices.

Each payload's ``ts`` is the wall-clock time of its publish, so ingest's commit-lag metric
measures publish → committed. Runs in its own process (``python -m
firewatch.simulators.loadgen``, JSON result on stdout) so that several generators can use
both cores without sharing a GIL with each other or with the consumers.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from firewatch.core.contract import topic_for
from firewatch.core.domain import Channel
from firewatch.ingest.consumer import BrokerAddress

BENCH_UNIT = "U-BENCH"


def device_ids(n: int) -> list[str]:
    """The bench devices' ids (stable, so runs are comparable)."""
    return [f"BENCH-{i:06d}" for i in range(n)]


def register_bench_devices(conn: psycopg.Connection[Any], n: int) -> None:
    """Register ``n`` water devices under one bench unit (idempotent)."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO regions (id, parent_id, level, name) VALUES"
            " ('bench', NULL, 'city', 'Bench'), ('bench-d', 'bench', 'district', 'Bench'),"
            " ('bench-s', 'bench-d', 'street', 'Bench') ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "INSERT INTO units (id, name, region_id, supervision, category, building_class)"
            " VALUES (%s, 'Bench unit', 'bench-s', 'general', 'bench', 'multistorey')"
            " ON CONFLICT DO NOTHING",
            (BENCH_UNIT,),
        )
        with conn.cursor().copy("COPY devices (id, unit_id, kind) FROM STDIN") as copy:
            for dev in device_ids(n):
                copy.write_row((dev, BENCH_UNIT, "water"))


@dataclass
class LoadResult:
    """What one generator offered and what the broker acknowledged."""

    offered_rate: float
    published: int
    acked: int
    started: float  # wall clock of the first publish
    publish_seconds: float  # first to last publish call
    ack_seconds: float  # first publish to last broker ack


def run_load(
    url: str, root: str, devices: list[str], rate: float, duration: float, client_id: str
) -> LoadResult:
    """Publish ``rate × duration`` messages round-robin over ``devices``, paced evenly.

    Raises ``OSError`` if the broker is unreachable. Waits (bounded) for every PUBACK.
    """
    addr = BrokerAddress.parse(url)
    acked = 0
    lock = threading.Lock()
    last_ack = 0.0

    def on_publish(*_: Any) -> None:
        nonlocal acked, last_ack
        with lock:
            acked += 1
            last_ack = time.monotonic()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect(addr.host, addr.port)
    client.loop_start()
    topics = [topic_for(root, BENCH_UNIT, dev, Channel.TELEMETRY) for dev in devices]
    total = int(rate * duration)
    n = len(devices)
    start = time.monotonic()
    wall_start = time.time()
    sent = 0
    try:
        while sent < total:
            due = min(total, int((time.monotonic() - start) * rate) + 1)
            while sent < due:
                i = sent % n
                payload = orjson.dumps(
                    {"seq": sent // n + 1, "ts": datetime.now(UTC).isoformat(),
                     "pressure_kpa": 300.0 + (sent % 97), "level_m": 3.5}
                )  # fmt: skip
                client.publish(topics[i], payload, qos=1)
                sent += 1
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)  # pacing the offered load
        publish_seconds = time.monotonic() - start
        deadline = time.monotonic() + 120
        while acked < sent and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        client.disconnect()
        client.loop_stop()
    return LoadResult(
        rate, sent, acked, wall_start, publish_seconds, max(last_ack - start, publish_seconds)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="bench load generator (one process)")
    p.add_argument("--url", required=True)
    p.add_argument("--root", default="firewatch/v1")
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--shard", type=int, default=0, help="this generator's index")
    p.add_argument("--shards", type=int, default=1, help="number of generators")
    p.add_argument("--rate", type=float, required=True, help="messages/s for this generator")
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--client-id", default="bench-load")
    args = p.parse_args(argv)
    mine = device_ids(args.devices)[args.shard :: args.shards]
    result = run_load(args.url, args.root, mine, args.rate, args.duration, args.client_id)
    json.dump(asdict(result), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
