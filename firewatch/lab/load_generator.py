"""Load generator: paced QoS 1 publishing of water telemetry for many bench devices.

Each payload's ``ts`` is the wall-clock time of its publish, so ingest's commit-lag metric
measures publish → committed. Runs in its own process (``python -m
firewatch.lab.load_generator``, JSON result on stdout) so that several generators can use
both cores without sharing a GIL with each other or with the consumers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import socket
import struct
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from firewatch.core.broker import BrokerAddress
from firewatch.core.contract import topic_for
from firewatch.core.domain import Channel
from firewatch.lab import mqtt_writer as mqtt5

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


def _connect(addr: BrokerAddress, client_id: str, keepalive: int) -> tuple[socket.socket, int]:
    """Open an MQTT 5 connection (clean session); return the socket and the broker's
    Receive Maximum."""
    sock = socket.create_connection((addr.host, addr.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(
        mqtt5.connect_packet(
            client_id,
            keepalive=keepalive,
            clean_start=True,
            username=addr.username,
            password=addr.password,
        )
    )
    reader = mqtt5.PacketReader()
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("broker closed the connection before CONNACK")
        packets = reader.feed(data)
        if packets:
            break
    first = packets[0]
    if not isinstance(first, mqtt5.Packet) or first.kind != mqtt5.CONNACK:
        raise ConnectionError("broker did not answer CONNECT with CONNACK")
    if first.body[1] >= 0x80:
        raise ConnectionError(f"broker refused the connection (reason 0x{first.body[1]:02x})")
    props, _ = mqtt5.parse_properties(first.body, 2)
    receive_max = props.get(mqtt5.RECEIVE_MAXIMUM, 65535)
    assert isinstance(receive_max, int)
    sock.setblocking(False)
    return sock, receive_max


def run_load(
    url: str, root: str, devices: list[str], rate: float, duration: float, client_id: str
) -> LoadResult:
    """Publish ``rate × duration`` messages round-robin over ``devices``, paced evenly.

    QoS 1 over one MQTT 5 connection, written directly on the socket (paho's per-publish
    cost made the generator use about as much CPU as the consumer it measures; see
    docs/performance.md). Payloads are what devices send (``ts`` the publish time, RFC 3339
    with offset, shared by the messages of one pacing tick). Raises ``OSError`` if the
    broker is unreachable. Waits (bounded) for every PUBACK.
    """
    addr = BrokerAddress.parse(url)
    keepalive = 60
    sock, receive_max = _connect(addr, client_id, keepalive)
    window = max(1, min(MAX_INFLIGHT, receive_max))
    reader = mqtt5.PacketReader()
    heads = [
        struct.pack(">H", len(t)) + t
        for t in (topic_for(root, BENCH_UNIT, d, Channel.TELEMETRY).encode() for d in devices)
    ]
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
                        head = heads[sent % n]
                        length = len(head) + 3 + len(payload)  # + packet id, no properties
                        out += b"\x32%b%b%c%c\x00%b" % (
                            mqtt5.varint(length),
                            head,
                            next_mid >> 8,
                            next_mid & 0xFF,
                            payload,
                        )
                        sent += 1
                    if sent == total:
                        done_publishing = time.monotonic()
                        deadline = done_publishing + 120
            elif not inflight or now > deadline:
                break
            if not out and now - last_sent > keepalive / 2:
                out += mqtt5.PINGREQ_PACKET
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
                for pkt in reader.feed(data):
                    if not isinstance(pkt, mqtt5.Packet):
                        raise ConnectionError("broker sent a PUBLISH to the load generator")
                    if pkt.kind == mqtt5.PUBACK:
                        mid = (pkt.body[0] << 8) | pkt.body[1]
                        if mid in inflight:
                            inflight.discard(mid)
                            if len(pkt.body) > 2 and pkt.body[2] >= 0x80:
                                refused += 1
                            else:
                                acked += 1
                            last_ack = time.monotonic()
                    elif pkt.kind == mqtt5.DISCONNECT:
                        raise ConnectionError("broker disconnected the load generator")
            next_tick = max(next_tick + TICK_S, time.monotonic() - TICK_S)
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the offered load
        publish_seconds = (done_publishing or time.monotonic()) - start
    finally:
        with contextlib.suppress(OSError):
            sock.setblocking(True)
            sock.sendall(bytes(out) + mqtt5.disconnect_packet())
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
