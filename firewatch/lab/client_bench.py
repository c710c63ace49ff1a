"""``firewatch bench mqtt-clients``: the CPU an MQTT client library spends per received QoS 1
message, the number ADR 0013 chose the ingest consumer by.

One broker (the project's Mosquitto config, a free port), one load generator, and one
subscriber process per client library in turn, each receiving the same stream (``rate``
messages a second of the benchmark's telemetry for ``duration`` seconds, QoS 1, every
message acknowledged at once). Each subscriber is its own process, so its CPU is its own:
the Python clients measure ``time.process_time()`` from subscribed to the last message;
``mosquitto_sub`` (the broker project's C client, the floor) is measured by its rusage.
The offered rate is below every client's ceiling, so all receive everything and the figure
is cost, not saturation. Nothing is stored: this is the client alone; ``firewatch bench
ingest --consumer`` measures the whole worker.

Clients: ``mqtt5`` and ``paho`` (Firewatch's two ingest consumers, acking in one call per
read), ``gmqtt`` (an asyncio MQTT 5 client, measured when it is installed: ``pip install
gmqtt``), ``mosquitto_sub``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from firewatch.core.backoff import Backoff
from firewatch.core.broker import BrokerAddress
from firewatch.lab.reference_sub import ReferenceSubscriber
from firewatch.runtime.mosquitto import mosquitto

CLIENTS = ("mosquitto_sub", "mqtt5", "paho", "gmqtt")
ROOT = "clientbench"


def _consumer_client(kind: str, url: str, count: int) -> dict[str, float]:
    """One of Firewatch's consumers, acking every read's messages at once."""
    from firewatch.ingest.consumer import Delivery, consumer_class
    from firewatch.ingest.ingest_metrics import IngestMetrics

    done = threading.Event()
    received = 0

    def handle(messages: list[Delivery], _at: object) -> None:
        nonlocal received
        received += len(messages)
        consumer.ack([t for _, _, t in messages])
        if received >= count:
            done.set()

    consumer = consumer_class("paho" if kind == "paho" else "mqtt5")(
        url,
        client_id=f"clientbench-{kind}-{uuid.uuid4().hex[:6]}",
        subscription=f"{ROOT}/#",
        handler=handle,
        metrics=IngestMetrics(),
        backoff=Backoff(0.05, 0.5),
        session_expiry_s=0,
        receive_maximum=10_000,
    )
    with consumer:
        if not consumer.subscribed.wait(30):
            raise TimeoutError("not subscribed")
        print("ready", flush=True)
        cpu0, wall0 = time.process_time(), time.monotonic()
        done.wait(600)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    return {"received": received, "cpu_seconds": cpu, "wall_seconds": wall}


def _gmqtt_client(url: str, count: int) -> dict[str, float]:
    import gmqtt  # optional: measured only when installed

    addr = BrokerAddress.parse(url)

    async def run() -> dict[str, float]:
        done, subscribed = asyncio.Event(), asyncio.Event()
        received = 0

        def on_message(_c: Any, _topic: str, _payload: bytes, _qos: int, _p: Any) -> int:
            nonlocal received
            received += 1
            if received >= count:
                done.set()
            return 0  # PUBACK, success

        client = gmqtt.Client(f"clientbench-gmqtt-{uuid.uuid4().hex[:6]}")
        client.on_message = on_message
        client.on_subscribe = lambda *_a: subscribed.set()
        await client.connect(addr.host, addr.port, version=gmqtt.constants.MQTTv50)
        client.subscribe(f"{ROOT}/#", qos=1)
        await asyncio.wait_for(subscribed.wait(), 30)
        print("ready", flush=True)
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.wait_for(done.wait(), 600)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        await client.disconnect()
        return {"received": received, "cpu_seconds": cpu, "wall_seconds": wall}

    return asyncio.run(run())


def _load(url: str, rate: float, duration: float, devices: int) -> None:
    subprocess.run(
        [
            sys.executable, "-m", "firewatch.lab.load_generator", "--url", url, "--root", ROOT,
            "--devices", str(devices), "--rate", str(rate), "--duration", str(duration),
            "--client-id", f"clientbench-load-{uuid.uuid4().hex[:6]}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def _run_python_client(kind: str, url: str, rate: float, duration: float, devices: int) -> Any:
    count = int(rate * duration)
    proc = subprocess.Popen(
        [sys.executable, "-m", "firewatch.lab.client_bench", "--client", kind, "--url", url,
         "--count", str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError(f"{kind} did not subscribe")
    _load(url, rate, duration, devices)
    out, _ = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed with exit code {proc.returncode}")
    return json.loads(out)


def _run_mosquitto_sub(url: str, rate: float, duration: float, devices: int, tmp: Path) -> Any:
    count = int(rate * duration)
    with ReferenceSubscriber(
        url, ROOT, tmp / "sub.out", f"clientbench-sub-{uuid.uuid4().hex[:6]}"
    ) as sub:
        sub.wait_ready(30)
        proc = psutil.Process(sub.pid)
        cpu0 = sum(proc.cpu_times()[:2])
        wall0 = time.monotonic()
        _load(url, rate, duration, devices)
        deadline = time.monotonic() + 120
        while sub.received() < count and time.monotonic() < deadline:
            time.sleep(0.05)
        wall = time.monotonic() - wall0
        cpu = sum(proc.cpu_times()[:2]) - cpu0
        return {"received": sub.received(), "cpu_seconds": cpu, "wall_seconds": wall}


def run_client_bench(
    clients: list[str], rate: float, duration: float, devices: int
) -> dict[str, Any]:
    """Every client in ``clients`` against the same stream, one after another."""
    runs: dict[str, Any] = {}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fw-clients-")))
        url = stack.enter_context(mosquitto(tmp / "broker"))
        for kind in clients:
            if kind == "gmqtt" and not _has_gmqtt():
                runs[kind] = {"skipped": "gmqtt is not installed (pip install gmqtt)"}
                continue
            if kind == "mosquitto_sub":
                r = _run_mosquitto_sub(url, rate, duration, devices, tmp)
            else:
                r = _run_python_client(kind, url, rate, duration, devices)
            r["cpu_us_per_msg"] = round(1e6 * r["cpu_seconds"] / max(r["received"], 1), 2)
            r["cpu_percent_at_rate"] = round(100 * r["cpu_seconds"] / r["wall_seconds"], 1)
            runs[kind] = r
            print(format_run(kind, r), flush=True)
    vm = psutil.virtual_memory()
    return {
        "benchmark": "mqtt-clients",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "rate": rate,
        "duration_s": duration,
        "devices": devices,
        "runs": runs,
        "cpu_count": os.cpu_count(),
        "memory_gb": round(vm.total / 2**30, 1),
        "python": platform.python_version(),
        "versions": _versions(),
    }


def format_run(kind: str, r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"{kind:>13}: skipped ({r['skipped']})"
    return (
        f"{kind:>13}: received {r['received']}, {r['cpu_us_per_msg']:.2f} µs CPU per message "
        f"({r['cpu_percent_at_rate']}% of a core at the offered rate)"
    )


def _has_gmqtt() -> bool:
    try:
        import gmqtt  # noqa: F401
    except ImportError:
        return False
    return True


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("mqtt5", "paho-mqtt", "gmqtt"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    sub = shutil.which("mosquitto_sub")
    if sub:
        text = subprocess.run([sub, "--help"], capture_output=True, text=True).stdout
        named = [line for line in text.splitlines() if " version " in line]
        out["mosquitto_sub"] = named[0].strip() if named else "?"
    return out


def main(argv: list[str] | None = None) -> int:
    """The subscriber side (a child process of :func:`run_client_bench`)."""
    p = argparse.ArgumentParser()
    p.add_argument("--client", choices=("mqtt5", "paho", "gmqtt"), required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--count", type=int, required=True)
    args = p.parse_args(argv)
    if args.client == "gmqtt":
        result = _gmqtt_client(args.url, args.count)
    else:
        result = _consumer_client(args.client, args.url, args.count)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
