"""Load generator: paced QoS 1 publishing of water telemetry for many bench devices.

Each payload's ``ts`` is the wall-clock time of its publish, so ingest's commit-lag metric
measures publish → committed. Runs in its own process (``python -m
firewatch.lab.load_generator``, JSON result on stdout) so that several generators can use
both cores without sharing a GIL with each other or with the consumers.

The MQTT 5 wire format is the ``mqtt5`` codec's, as in the ingest consumer
(:mod:`firewatch.ingest.mqtt5_consumer`); this module owns only the socket and the pacing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import socket
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import mqtt5
import psycopg

from firewatch.core.broker import BrokerAddress
from firewatch.core.contract import topic_for
from firewatch.core.domain import Channel
from firewatch.ingest.mqtt5_consumer import decode

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
    cpu_seconds: float = 0.0  # this process's CPU while publishing and awaiting acks
    refused: int = 0  # PUBACKs with a failure reason code (not counted in acked)


#: Packets in flight towards the broker (bounded further by its Receive Maximum).
MAX_INFLIGHT = 1000
#: Longest sleep between pacing ticks; shorter ticks cost CPU, longer ones add burstiness.
TICK_S = 0.002

_PINGREQ = mqtt5.PingReqPacket().write()
_DISCONNECT = mqtt5.DisconnectPacket().write()  # reason Normal


def _connect(addr: BrokerAddress, client_id: str, keepalive: int) -> tuple[socket.socket, int]:
    """Open an MQTT 5 connection (clean session); return the socket and the broker's
    Receive Maximum."""
    sock = socket.create_connection((addr.host, addr.port), timeout=10)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connect = mqtt5.ConnectPacket(
            client_id,
            username=addr.username,
            password=addr.password.encode() if addr.password is not None else None,
            clean_start=True,
            keep_alive=keepalive,
        )
        sock.sendall(connect.write())
        buf = b""
        packets: list[mqtt5.Packet] = []
        while not packets:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("broker closed the connection before CONNACK")
            buf += data
            packets, _ = decode(buf)
        first = packets[0]
        if not isinstance(first, mqtt5.ConnAckPacket):
            raise ConnectionError("broker did not answer CONNECT with CONNACK")
        # The codec's reason codes are Rust enums, not IntEnums: compare their ``value``.
        if first.reason_code.value >= 0x80:
            raise ConnectionError(f"broker refused the connection ({first.reason_code.name})")
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock, first.receive_max  # 65535 when the broker does not say


def run_load(
    url: str, root: str, devices: list[str], rate: float, duration: float, client_id: str
) -> LoadResult:
    """Publish ``rate × duration`` messages round-robin over ``devices``, paced evenly.

    QoS 1 over one MQTT 5 connection, encoded by ``mqtt5`` into one buffer per pacing tick
    and written directly on the socket (paho's per-publish cost made the generator use about
    as much CPU as the consumer it measures; see docs/performance.md). Payloads are what
    devices send (``ts`` the publish time, RFC 3339 with offset, shared by the messages of
    one pacing tick). Raises ``OSError`` if the broker is unreachable. Waits (bounded) for
    every PUBACK.
    """
    addr = BrokerAddress.parse(url)
    keepalive = 60
    sock, receive_max = _connect(addr, client_id, keepalive)
    window = max(1, min(MAX_INFLIGHT, receive_max))
    pending = b""  # the start of a packet cut by the last read
    topics = [topic_for(root, BENCH_UNIT, d, Channel.TELEMETRY) for d in devices]
    publish, qos1 = mqtt5.PublishPacket, mqtt5.QoS.AT_LEAST_ONCE
    total = int(rate * duration)
    n = len(devices)
    inflight: set[int] = set()
    next_mid = 0
    acked = refused = 0
    out = bytearray()
    cpu0 = time.process_time()
    start = time.monotonic()
    wall_start = time.time()
    last_ack = last_sent = next_tick = start
    sent = 0
    done_publishing = 0.0
    deadline = math.inf
    try:
        while True:
            now = time.monotonic()
            if sent < total:
                due = min(total, int((now - start) * rate) + 1)
                batch = min(due - sent, window - len(inflight))
                if batch > 0:
                    ts = datetime.now(UTC).isoformat().encode()
                    for _ in range(batch):
                        payload = b'{"seq":%d,"ts":"%s","pressure_kpa":%d.0,"level_m":3.5}' % (
                            sent // n + 1,
                            ts,
                            300 + sent % 97,
                        )
                        next_mid = next_mid % 0xFFFF + 1
                        while next_mid in inflight:  # never reuse an unacknowledged id
                            next_mid = next_mid % 0xFFFF + 1
                        inflight.add(next_mid)
                        out += publish(
                            topics[sent % n], payload, qos=qos1, packet_id=next_mid
                        ).write()
                        sent += 1
                    if sent == total:
                        done_publishing = time.monotonic()
                        deadline = done_publishing + 120
            elif not inflight or now > deadline:
                break
            if not out and now - last_sent > keepalive / 2:
                out += _PINGREQ
            if out:
                with contextlib.suppress(BlockingIOError):
                    del out[: sock.send(out)]
                    last_sent = now
            # Acks are read in bulk once per tick: a wake-up per PUBACK would cost more CPU
            # than building the messages.
            while True:
                try:
                    data = sock.recv(262144)
                except BlockingIOError:
                    break
                if not data:
                    raise ConnectionError("broker closed the connection")
                buf = pending + data if pending else data
                packets, used = decode(buf)
                pending = buf[used:]
                for pkt in packets:
                    if isinstance(pkt, mqtt5.PubAckPacket):
                        mid = pkt.packet_id
                        if mid in inflight:
                            inflight.discard(mid)
                            if pkt.reason_code.value >= 0x80:
                                refused += 1
                            else:
                                acked += 1
                            last_ack = time.monotonic()
                    elif isinstance(pkt, mqtt5.PublishPacket):
                        raise ConnectionError("broker sent a PUBLISH to the load generator")
                    elif isinstance(pkt, mqtt5.DisconnectPacket):
                        raise ConnectionError(
                            f"broker disconnected the load generator ({pkt.reason_code.name})"
                        )
            next_tick = max(next_tick + TICK_S, time.monotonic() - TICK_S)
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the offered load
        publish_seconds = (done_publishing or time.monotonic()) - start
    finally:
        with contextlib.suppress(OSError):
            sock.setblocking(True)
            sock.sendall(bytes(out) + _DISCONNECT)
        sock.close()
    return LoadResult(
        rate,
        sent,
        acked,
        wall_start,
        publish_seconds,
        max(last_ack - start, publish_seconds),
        round(time.process_time() - cpu0, 3),
        refused,
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
