"""``firewatch bench gateway``: how many GB/T 26875.3 device connections the gateway holds
and how many frames a second it carries end to end.

One run: a fresh database (created on the configured or embedded server, dropped after)
with ``connections`` panels that have GB/T addresses, a fresh Mosquitto (unless
``FIREWATCH_MQTT_URL``) with ``mosquitto_sub`` subscribed to the topic root (the broker
routes and acknowledges only what someone listens to; ingest in production), and the
gateway as a real process (``firewatch gateway``). The load (``gateway_load.py``, a
process of its own) opens every connection, holds them, checks that each still answers,
then sends frames for ``duration`` seconds: **held** connections, **frames/s** confirmed
(a confirm means every object of the frame was published and PUBACKed) and their latency
(p50, p99). Beside them, the codec alone on one core (encode, delimit, decode a frame and
its ADU; no network): the ceiling the protocol work would allow. ``--target HOST:PORT``
measures a running gateway instead: its bench panels are registered in the configured
database, which that gateway must read.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg

from firewatch.core.domain import DeviceKind
from firewatch.core.gbt_frame import (
    Command,
    Frame,
    FrameReader,
    decode_frame,
    encode_frame,
    format_address,
)
from firewatch.core.gbt_objects import InfoObject, decode_adu, encode_adu
from firewatch.core.settings import Settings
from firewatch.lab.gateway_load import raise_open_files
from firewatch.lab.reference_sub import ReferenceSubscriber
from firewatch.lab.scratch import scratch_database
from firewatch.runtime.mosquitto import Broker, free_port, wait_for_port
from firewatch.runtime.postgres import resolve_database_url
from firewatch.runtime.process import stop_process
from firewatch.storage.maintenance import maintain
from firewatch.storage.migrate import upgrade
from firewatch.storage.seed import (
    CitySeed,
    DeviceSeed,
    DistrictSeed,
    StreetSeed,
    UnitSeed,
    load_seed,
)

#: The bench panels' first GB/T address (then +1 each): far from the demo city's hashes.
FIRST_ADDRESS = 0xBE0000000000
BENCH_UNIT = "U-BENCH-GBT"


class GatewayBenchError(Exception):
    """The benchmark could not run (the gateway did not start, the load failed)."""


@dataclass(frozen=True)
class GatewayBenchConfig:
    connections: int = 1000
    hold: float = 10.0  # seconds every connection stays open before the answer check
    duration: float = 20.0  # seconds of load
    rate: float = 0.0  # offered frames/s in all; 0: closed loop, as fast as confirms come
    codec_seconds: float = 2.0
    target: str | None = None  # HOST:PORT of a running gateway; None: start one


def bench_city(n: int) -> CitySeed:
    """One unit with ``n`` panels at consecutive GB/T addresses from :data:`FIRST_ADDRESS`."""
    devices = [
        DeviceSeed(
            id=f"BENCH-GBT-{i:06d}",
            kind=DeviceKind.PANEL,
            vendor="bench",
            gbt_address=format_address(FIRST_ADDRESS + i),
        )
        for i in range(n)
    ]
    unit = UnitSeed(
        id=BENCH_UNIT,
        name="GB/T bench unit",
        street="bench-gbt-s",
        supervision="general",
        category="bench",
        building_class="multistorey",
        devices=devices,
    )
    district = DistrictSeed(
        id="bench-gbt", name="Bench", streets=[StreetSeed(id="bench-gbt-s", name="Bench")]
    )
    return CitySeed(id="bench-gbt-city", name="Bench", districts=[district], units=[unit])


def codec_rate(seconds: float) -> dict[str, Any]:
    """Frames/s of the codec alone on one core: encode a component-status frame, delimit it
    with a :class:`FrameReader`, decode the frame and its ADU; repeated for ``seconds``."""
    now = datetime(2026, 12, 7, 10, 0, 0)
    obj = InfoObject(
        2,
        "component_status",
        system_type=1,
        system_addr=1,
        component_type=40,
        component_addr=1001,
        status=1,
        description="loop 1 zone 1 smoke detector 1",
        time=now,
    )
    reader = FrameReader()
    n = 0
    started = time.perf_counter()
    stop = started + seconds
    while time.perf_counter() < stop:
        for _ in range(200):
            adu = encode_adu(2, [obj])
            raw = encode_frame(Frame(n & 0xFFFF, (1, 0), now, FIRST_ADDRESS, 0, Command.SEND, adu))
            for item in reader.feed(raw):
                assert isinstance(item, bytes)
                decode_adu(decode_frame(item).adu)
            n += 1
    elapsed = time.perf_counter() - started
    return {"frames": n, "seconds": round(elapsed, 2), "frames_per_s": round(n / elapsed, 1)}


def run_gateway_bench(
    settings: Settings, cfg: GatewayBenchConfig, log_dir: Path | None = None
) -> dict[str, Any]:
    """Run one benchmark; return the result document (see the module docstring)."""
    limit = raise_open_files(cfg.connections + 512)  # the gateway child inherits it
    if limit < cfg.connections + 64:
        raise GatewayBenchError(
            f"RLIMIT_NOFILE is {limit}: too low for {cfg.connections} connections (ulimit -n)"
        )
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fw-gwbench-")))
        logs = log_dir or tmp
        logs.mkdir(parents=True, exist_ok=True)
        gateway: subprocess.Popen[bytes] | None = None
        subscriber: ReferenceSubscriber | None = None
        if cfg.target is None:
            admin = resolve_database_url(settings, create=True)
            db_url = scratch_database(stack, admin, "fw_gwbench")
            with psycopg.connect(db_url, autocommit=True) as conn:
                upgrade(conn)
                maintain(conn, settings)
                load_seed(conn, bench_city(cfg.connections))
            mqtt_url = settings.mqtt_url or stack.enter_context(Broker(tmp / "broker")).url
            subscriber = stack.enter_context(
                ReferenceSubscriber(
                    mqtt_url,
                    settings.topic_root,
                    tmp / "sub.out",
                    f"gwbench-{uuid.uuid4().hex[:6]}",
                )
            )
            subscriber.wait_ready(60)
            host, port = "127.0.0.1", free_port()
            gateway = _start_gateway(stack, settings, db_url, mqtt_url, port, cfg, logs)
        else:
            host, _, port_text = cfg.target.rpartition(":")
            port = int(port_text)
            with psycopg.connect(resolve_database_url(settings), autocommit=True) as conn:
                load_seed(conn, bench_city(cfg.connections))
        load, phases, cpu = _run_load(host, port, cfg, gateway, logs)
        received = subscriber.received() if subscriber is not None else None
        gateway_rss = _rss_mb(gateway)
    codec = codec_rate(cfg.codec_seconds)
    vm = psutil.virtual_memory()
    frames_per_s = float(load["frames_per_s"])
    return {
        "benchmark": "gateway",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv) if sys.argv else "",
        "config": asdict(cfg),
        "connections": cfg.connections,
        "opened": load["opened"],
        "held": load["held"],
        "hold_seconds": cfg.hold,
        "frames_per_s": frames_per_s,
        "latency_ms": load["latency_ms"],
        "frames": load["frames"],
        "load_seconds": load["load_seconds"],
        "resends": load["resends"],
        "denied": load["denied"],
        "clock_syncs": load["clock_syncs"],
        "duty_checks": load["duty_checks"],
        "mqtt_messages_received": received,
        "codec": codec,
        "end_to_end_share_of_codec": round(frames_per_s / codec["frames_per_s"], 4)
        if codec["frames_per_s"]
        else None,
        "cpu_percent": {
            "gateway": cpu.get("gateway"),
            "load_client": load["client_cpu_percent"],
            "machine": cpu.get("machine"),
        },
        "gateway_peak_rss_mb": gateway_rss,
        "open_files_limit": limit,
        "phases": phases,
        "machine": {
            "cpu_count": os.cpu_count(),
            "memory_gb": round(vm.total / 2**30, 1),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }


def _start_gateway(
    stack: ExitStack,
    settings: Settings,
    db_url: str,
    mqtt_url: str,
    port: int,
    cfg: GatewayBenchConfig,
    logs: Path,
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        FIREWATCH_DATABASE_URL=db_url,
        FIREWATCH_MQTT_URL=mqtt_url,
        FIREWATCH_TOPIC_ROOT=settings.topic_root,
        FIREWATCH_GATEWAY_HOST="127.0.0.1",
        FIREWATCH_GATEWAY_PORT=str(port),
        FIREWATCH_GATEWAY_MAX_CONNECTIONS=str(max(5000, cfg.connections + 100)),
        FIREWATCH_GATEWAY_METRICS_PORT="0",
    )
    out = (logs / "gateway.log").open("wb")
    stack.callback(out.close)
    proc = subprocess.Popen(
        [sys.executable, "-m", "firewatch", "gateway"], env=env, stdout=out, stderr=out
    )
    stack.callback(stop_process, proc, 30, "gateway")
    deadline = time.monotonic() + 60
    while not wait_for_port("127.0.0.1", port, 0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise GatewayBenchError(f"the gateway did not start (log: {logs / 'gateway.log'})")
    return proc


def _run_load(
    host: str,
    port: int,
    cfg: GatewayBenchConfig,
    gateway: subprocess.Popen[bytes] | None,
    logs: Path,
) -> tuple[dict[str, Any], dict[str, float], dict[str, float]]:
    """Run the load process; sample the gateway's CPU at its load phase's start and end."""
    argv = [
        sys.executable, "-m", "firewatch.lab.gateway_load",
        "--host", host, "--port", str(port),
        "--first-address", format(FIRST_ADDRESS, "x"), "--count", str(cfg.connections),
        "--hold", str(cfg.hold), "--duration", str(cfg.duration), "--rate", str(cfg.rate),
    ]  # fmt: skip
    err = (logs / "load.log").open("wb")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err)
    gw = psutil.Process(gateway.pid) if gateway is not None else None
    phases: dict[str, float] = {}
    cpu: dict[str, float] = {}
    result: dict[str, Any] | None = None
    t_gw = 0.0
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            doc = json.loads(line)
            if "phase" not in doc:
                result = doc
                continue
            phases[doc["phase"]] = doc["t"]
            if doc["phase"] == "load":
                psutil.cpu_percent(None)
                t_gw = _cpu_seconds(gw)
            elif doc["phase"] == "done":
                span = doc["t"] - phases["load"]
                ncpu = os.cpu_count() or 1
                cpu["machine"] = round(psutil.cpu_percent(None) * ncpu, 1)
                if gw is not None:
                    cpu["gateway"] = round(100 * (_cpu_seconds(gw) - t_gw) / span, 1)
        proc.wait(timeout=cfg.hold + cfg.duration + 300)
    finally:
        if proc.poll() is None:
            proc.kill()
        err.close()
    if proc.returncode != 0 or result is None:
        raise GatewayBenchError(f"the load failed ({proc.returncode}; log: {logs / 'load.log'})")
    return result, phases, cpu


def _cpu_seconds(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    t = proc.cpu_times()
    return float(t.user + t.system)


def _rss_mb(proc: subprocess.Popen[bytes] | None) -> float | None:
    if proc is None or proc.poll() is not None:
        return None
    from firewatch.lab.process_cpu import peak_rss_mb

    return round(peak_rss_mb(proc.pid), 1)


def format_result(r: dict[str, Any]) -> str:
    """The figures, for the terminal."""
    lat = r["latency_ms"]
    m = r["machine"]
    return (
        f"gateway bench {r['date']} ({m['cpu_count']} cores, {m['memory_gb']} GiB)\n"
        f"  connections  {r['held']} of {r['connections']} held "
        f"({r['opened']} opened, still answering after {r['hold_seconds']:.0f} s)\n"
        f"  end to end   {r['frames_per_s']:.0f} frames/s confirmed "
        f"(p50 {lat['p50']} ms, p99 {lat['p99']} ms; {r['frames']} frames in "
        f"{r['load_seconds']} s, {r['resends']} resent, {r['denied']} denied)\n"
        f"  codec alone  {r['codec']['frames_per_s']:.0f} frames/s on one core "
        f"(end to end = {r['end_to_end_share_of_codec']} of it)\n"
        f"  cpu          gateway {r['cpu_percent']['gateway']} %, load client "
        f"{r['cpu_percent']['load_client']} %, machine {r['cpu_percent']['machine']} % "
        f"(100 % = one core)"
    )
