"""The load side of ``firewatch bench gateway``: N simulated GB/T devices
(:class:`~firewatch.simulators.gbt_device.GbtDevice`, one TCP connection each) in one
process, run by the bench as ``python -m firewatch.lab.gateway_load`` so that its CPU is
its own.

Phases: open every connection; hold them ``hold`` seconds (the gateway's clock syncs and
duty checks are answered meanwhile); then every device sends one frame: the connections
that confirm it within ``answer_within`` seconds are the ones **held**. Then the **load**:
for ``duration`` seconds every held device sends data frames one after another (each
after the previous one's confirm, or paced to ``rate`` frames/s in all); each frame's
latency is from writing it to reading its confirm, which the gateway sends only once the
broker acknowledged (PUBACK) every message of it.

Stdout: one JSON line per phase start (``{"phase": "load", "t": ...}``, for the bench to
sample the gateway's CPU at the same moments), then the result document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from datetime import datetime, timedelta
from typing import Any

from firewatch.core.gbt_objects import InfoObject, encode_adu
from firewatch.core.gbt_profiles import STANDARD
from firewatch.simulators.gbt_device import GbtDevice

#: The frame the load sends: one component status (46 bytes of object, 78 on the wire), the
#: commonest and largest thing a panel reports.
COMPONENT_TYPE, SMOKE_DETECTOR = 2, 40


def raise_open_files(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards ``needed`` (up to the hard limit;
    children inherit it); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    return soft


def _emit(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def quantiles(values: list[float], *qs: float) -> dict[str, float | None]:
    """Nearest-rank quantiles in milliseconds, keyed ``p50`` etc."""
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for q in qs:
        key = f"p{round(q * 100)}"
        if not ordered:
            out[key] = None
            continue
        rank = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))
        out[key] = round(ordered[rank] * 1000, 2)
    return out


async def run_load(
    host: str,
    port: int,
    addresses: list[int],
    *,
    hold: float,
    duration: float,
    rate: float = 0.0,
    answer_within: float = 30.0,
    open_within: float = 60.0,
) -> dict[str, Any]:
    """Run the phases (module docstring) against the gateway at ``host:port``."""
    devices = [
        GbtDevice(
            a,
            STANDARD,
            host,
            port,
            confirm_timeout_s=answer_within,
            resends=1,
            backoff_s=(1.0, 5.0),
            duty_answer_delay_s=(1.0, 10.0),
            seed=a,
        )
        for a in addresses
    ]
    t0 = time.monotonic()
    _emit({"phase": "open", "t": time.time()})
    for i, d in enumerate(devices):
        d.start()
        if i % 100 == 99:
            await asyncio.sleep(0)  # let the loop accept the writes between bursts
    opened = await asyncio.gather(*(d.wait_connected(open_within) for d in devices))
    open_s = time.monotonic() - t0
    _emit({"phase": "hold", "t": time.time()})
    await asyncio.sleep(hold)  # the hold period itself: connections idle, as a fleet's are

    def frame_objects(d: GbtDevice, n: int) -> list[InfoObject]:
        now = d.now()
        return [
            InfoObject(
                COMPONENT_TYPE,
                "component_status",
                system_type=1,
                system_addr=1,
                component_type=SMOKE_DETECTOR,
                component_addr=1000 + n % 64,
                status=1,
                description=f"loop 1 zone 1 smoke detector {n % 64}",
                time=now - timedelta(seconds=1),
            )
        ]

    async def answers(d: GbtDevice) -> bool:
        if not d.connected:
            return False
        try:
            return await asyncio.wait_for(d.send(frame_objects(d, 0)), answer_within)
        except TimeoutError:
            return False

    _emit({"phase": "check", "t": time.time()})
    held_flags = await asyncio.gather(*(answers(d) for d in devices))
    held = [d for d, ok in zip(devices, held_flags, strict=True) if ok]

    latencies: list[float] = []
    late = 0
    stop_at = time.monotonic() + duration
    per_device_gap = len(held) / rate if rate > 0 else 0.0

    async def load(d: GbtDevice, k: int) -> None:
        nonlocal late
        n = 0
        next_at = time.monotonic() + (per_device_gap * k / max(1, len(held)))
        while True:
            if per_device_gap:
                wait = next_at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)  # pacing the offered load
                next_at += per_device_gap
            if time.monotonic() >= stop_at:
                return
            n += 1
            adu = encode_adu(COMPONENT_TYPE, frame_objects(d, n), d.profile)
            sent = time.monotonic()
            ok = await d.send_adu(adu)
            done = time.monotonic()
            if ok and done <= stop_at:
                latencies.append(done - sent)
            elif ok:
                late += 1  # confirmed after the window closed: not counted in the rate

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    _emit({"phase": "load", "t": time.time()})
    load_started = time.monotonic()
    await asyncio.gather(*(load(d, k) for k, d in enumerate(held)))
    load_s = time.monotonic() - load_started
    _emit({"phase": "done", "t": time.time()})
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    stats = [d.stats for d in devices]
    await asyncio.gather(*(d.close() for d in devices))
    busy = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "connections": len(devices),
        "opened": sum(opened),
        "open_seconds": round(open_s, 2),
        "held": len(held),
        "hold_seconds": hold,
        "frames": len(latencies),
        "frames_after_window": late,
        "load_seconds": round(load_s, 2),
        "frames_per_s": round(len(latencies) / duration, 1) if duration else 0.0,
        "latency_ms": quantiles(latencies, 0.5, 0.99),
        "offered_rate": rate or None,
        "resends": sum(s.resends for s in stats),
        "denied": sum(s.denied for s in stats),
        "clock_syncs": sum(s.clock_syncs for s in stats),
        "duty_checks": sum(s.duty_checks for s in stats),
        "client_cpu_percent": round(100 * busy / max(load_s, 1e-9), 1),
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m firewatch.lab.gateway_load")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--first-address", type=lambda s: int(s, 16), required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--hold", type=float, default=10.0)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=0.0, help="frames/s in all (0: closed loop)")
    a = p.parse_args(argv)
    raise_open_files(a.count + 256)
    addresses = [a.first_address + i for i in range(a.count)]
    result = asyncio.run(
        run_load(a.host, a.port, addresses, hold=a.hold, duration=a.duration, rate=a.rate)
    )
    _emit(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
