"""``firewatch bench ingest``: offer a known load, measure what was stored and how fast.

One run: a fresh database (created on the configured or embedded server, dropped after), a
fresh Mosquitto (unless ``FIREWATCH_MQTT_URL``), K ingest workers as real processes sharing
the subscription, and load generators as separate processes. It reports offered vs achieved
publish rate, stored rows/s, lost (broker-acknowledged but not stored) and duplicated rows,
publish → committed latency percentiles (from the workers' commit-lag histograms), each
worker's CPU and peak RSS, where the machine's CPU went (workers, load generators, broker,
PostgreSQL: ``cpu_percent``) and the machine. docs/performance.md explains the figures.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from firewatch.core.settings import Settings
from firewatch.lab.alert_probe import (
    ProbePublisher,
    StreamWatcher,
    anomaly_times,
    probe_ids,
    register_probes,
    summarize,
    watcher_token,
)
from firewatch.lab.load_generator import register_bench_devices
from firewatch.lab.process_cpu import peak_rss_mb, server_cpu, server_cpu_delta
from firewatch.lab.reference_sub import ReferenceSubscriber
from firewatch.lab.scratch import scratch_database
from firewatch.runtime.mosquitto import Broker, free_port
from firewatch.runtime.postgres import resolve_database_url
from firewatch.runtime.process import stop_process
from firewatch.storage.maintenance import maintain
from firewatch.storage.migrate import upgrade

#: Messages/s given to one load-generator process. It writes MQTT packets directly on its
#: socket and costs about 5-7 µs of CPU per message (≈ 10 % of a core at 20,000 msg/s), so
#: one process is enough for the rates we bench; fewer processes also means fewer competitors
#: for the machine's cores.
RATE_PER_GENERATOR = 40000.0

#: ``BenchConfig.consumer`` for the physical reference (no ingest at all).
REFERENCE = "mosquitto_sub"


class BenchError(Exception):
    """The benchmark could not run (workers not ready, generator failed)."""


@dataclass(frozen=True)
class BenchConfig:
    rate: float
    devices: int
    duration: float
    workers: int = 1
    generators: int = 0  # 0 = enough for the rate
    drain_timeout: float = 60.0
    alerts: int = 0  # fire-event probes timed to the live stream (0: ingest only)
    #: the ingest workers' FIREWATCH_INGEST_CONSUMER, or ``mosquitto_sub``: no ingest, the
    #: broker's own C subscriber as the physical reference (``reference_sub.py``)
    consumer: str = "mqtt5"
    #: Mosquitto config lines added to the project's for this run's broker (e.g.
    #: ``set_tcp_nodelay true``), to compare a setting in one sitting
    broker_options: tuple[str, ...] = ()


def _metrics(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def _sample(port: int, family: str, sample: str, **labels: str) -> float:
    fam = _metrics(port).get(family)
    if fam is None:
        return 0.0
    for s in fam.samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    return 0.0


def _lag_buckets(ports: list[int]) -> list[tuple[float, float]]:
    """Merged cumulative (upper bound, count) buckets of the workers' commit-lag histograms."""
    merged: dict[float, float] = {}
    for port in ports:
        fam = _metrics(port).get("firewatch_ingest_commit_lag_seconds")
        for s in fam.samples if fam else []:
            if s.name.endswith("_bucket"):
                le = float(s.labels["le"])
                merged[le] = merged.get(le, 0.0) + float(s.value)
    return sorted(merged.items())


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Quantile from cumulative buckets, linear within a bucket (as Prometheus does)."""
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            width = count - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / width if width else 1.0)
        prev_le, prev_count = le, count
    return prev_le


def run_ingest_bench(
    settings: Settings, cfg: BenchConfig, log_dir: Path | None = None
) -> dict[str, Any]:
    """Run one benchmark; return the result document (see module docstring)."""
    run_id = uuid.uuid4().hex[:6]
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fw-bench-")))
        logs = log_dir or tmp
        logs.mkdir(parents=True, exist_ok=True)
        admin = resolve_database_url(settings, create=True)
        db_url = scratch_database(stack, admin, "fw_bench")
        with psycopg.connect(db_url, autocommit=True) as conn:
            upgrade(conn)
            maintain(conn, settings)
            register_bench_devices(conn, cfg.devices)
            if cfg.alerts:
                register_probes(conn, cfg.alerts)
        if settings.mqtt_url and cfg.broker_options:
            raise BenchError(
                "--broker-option needs the bench's own broker: unset FIREWATCH_MQTT_URL"
            )
        mqtt_url = (
            settings.mqtt_url
            or stack.enter_context(Broker(tmp / "broker", extra="\n".join(cfg.broker_options))).url
        )

        reference: ReferenceSubscriber | None = None
        if cfg.consumer == REFERENCE:
            reference = stack.enter_context(
                ReferenceSubscriber(
                    mqtt_url, settings.topic_root, tmp / "reference.out", f"bench-{run_id}-sub"
                )
            )
            reference.wait_ready(60)
            workers: list[tuple[subprocess.Popen[bytes], int]] = []
        else:
            workers = _start_workers(stack, cfg, db_url, mqtt_url, settings, run_id, logs)
        ports = [port for _, port in workers]
        pipeline: list[subprocess.Popen[bytes]] = []
        watcher: StreamWatcher | None = None
        if cfg.alerts:
            pipeline, watcher = _start_pipeline(stack, db_url, logs, probe_ids(cfg.alerts))
        pids = [reference.pid] if reference is not None else [w.pid for w, _ in workers]
        procs = [psutil.Process(pid) for pid in pids]
        cpu0 = [p.cpu_times() for p in procs]
        servers0 = server_cpu()
        psutil.cpu_percent(None)
        wall0 = time.time()

        gens = cfg.generators or max(1, math.ceil(cfg.rate / RATE_PER_GENERATOR))
        generators = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "firewatch.lab.load_generator",
                    "--url",
                    mqtt_url,
                    "--root",
                    settings.topic_root,
                    "--devices",
                    str(cfg.devices),
                    "--shard",
                    str(g),
                    "--shards",
                    str(gens),
                    "--rate",
                    str(cfg.rate / gens),
                    "--duration",
                    str(cfg.duration),
                    "--client-id",
                    f"bench-{run_id}-load-{g}",
                ],
                stdout=subprocess.PIPE,
            )
            for g in range(gens)
        ]
        probe: ProbePublisher | None = None
        if watcher is not None:
            spacing = max(0.05, (cfg.duration - 2.0) / cfg.alerts)
            probe = ProbePublisher(
                mqtt_url, settings.topic_root, probe_ids(cfg.alerts), 1.0, spacing
            )
            probe.start()
        loads = []
        for g in generators:
            out_bytes, _ = g.communicate(timeout=cfg.duration + 300)
            if g.returncode != 0:
                raise BenchError(f"load generator failed with exit code {g.returncode}")
            loads.append(json.loads(out_bytes))
        published = sum(int(x["acked"]) for x in loads)
        attempted = sum(int(x["published"]) for x in loads)
        publish_s = max(float(x["publish_seconds"]) for x in loads)
        first_publish = min(float(x["started"]) for x in loads)

        # Drain: wait until everything the broker acknowledged is stored, or no progress.
        with psycopg.connect(db_url, autocommit=True) as conn:
            stored, last_change, done_at = -1, time.monotonic(), time.time()
            while True:
                if reference is not None:
                    now_stored = reference.received()
                else:
                    row = conn.execute("SELECT count(*) FROM telemetry").fetchone()
                    now_stored = int(row[0]) if row else 0
                if now_stored != stored:
                    stored, last_change, done_at = now_stored, time.monotonic(), time.time()
                if stored >= published or time.monotonic() - last_change > cfg.drain_timeout:
                    break
                time.sleep(0.1)
            distinct_row = conn.execute(
                "SELECT count(*) FROM (SELECT DISTINCT device_id, seq FROM telemetry) d"
            ).fetchone()
            # The reference keeps no rows: what it printed, duplicates (none at QoS 1
            # without a reconnect) included.
            distinct = (
                stored if reference is not None or distinct_row is None else int(distinct_row[0])
            )
        alert_figures: dict[str, Any] = {}
        if probe is not None and watcher is not None:
            probe.join(timeout=cfg.duration + 60)
            deadline = time.monotonic() + 30  # the last probes' alerts may still be on their way
            while len(watcher.seen) < len(probe.sent) and time.monotonic() < deadline:
                if watcher.error is not None or any(p.poll() is not None for p in pipeline):
                    break
                time.sleep(0.05)
            watcher.stop.set()
            if probe.error is not None or watcher.error is not None:
                raise BenchError(f"alert probe failed: {probe.error or watcher.error}")
            with psycopg.connect(db_url, autocommit=True) as conn:
                found = anomaly_times(conn)
            alert_figures = summarize(probe.sent, watcher.seen, watcher.alerts, found)
        wall = time.time() - wall0
        system_cpu = psutil.cpu_percent(None)
        servers = server_cpu_delta(servers0, server_cpu())
        buckets = _lag_buckets(ports)
        absorbed = sum(
            _sample(
                p,
                "firewatch_ingest_duplicates",
                "firewatch_ingest_duplicates_total",
                table="telemetry",
            )
            for p in ports
        )
        per_worker = []
        for p, c0, pid in zip(procs, cpu0, pids, strict=True):
            c1 = p.cpu_times()
            busy = (c1.user - c0.user) + (c1.system - c0.system)
            per_worker.append(
                {
                    "pid": pid,
                    "cpu_seconds": round(busy, 2),
                    "cpu_percent": round(100 * busy / wall, 1),
                    "peak_rss_mb": round(peak_rss_mb(pid), 1),
                }
            )

    def ms(q: float) -> float | None:
        v = quantile(buckets, q)
        return None if v is None else round(v * 1000, 1)

    stored_window = max(done_at - first_publish, 1e-9)
    ncpu = os.cpu_count() or 1
    core_pct = {
        "workers": sum(w["cpu_seconds"] for w in per_worker),
        "load_generators": sum(float(x.get("cpu_seconds", 0.0)) for x in loads),
        **servers,
    }
    cpu_percent = {k: round(100 * v / wall, 1) for k, v in core_pct.items()}
    cpu_percent["named_total"] = round(100 * sum(core_pct.values()) / wall, 1)
    cpu_percent["machine"] = round(system_cpu * ncpu, 1)
    rate_k = max(stored / stored_window, 1e-9) / 1000
    cpu_per_k = {k: round(100 * v / wall / rate_k, 2) for k, v in core_pct.items()}
    vm = psutil.virtual_memory()
    return {
        "benchmark": "ingest",
        "consumer": cfg.consumer,
        "broker_options": list(cfg.broker_options),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv) if sys.argv else "",
        "offered_msgs_per_s": cfg.rate,
        "achieved_msgs_per_s": round(attempted / publish_s, 1) if publish_s else 0.0,
        "stored_rows_per_s": round(stored / stored_window, 1),
        "published": published,
        "stored": stored,
        "lost": published - distinct,
        "duplicated": stored - distinct,
        "redeliveries_absorbed": int(absorbed),
        "latency_ms": {"p50": ms(0.50), "p95": ms(0.95), "p99": ms(0.99)},
        "workers": cfg.workers,
        "generators": gens,
        "devices": cfg.devices,
        "duration_s": cfg.duration,
        "drain_s": round(max(done_at - first_publish - publish_s, 0.0), 2),
        "per_worker": per_worker,
        "system_cpu_percent": system_cpu,
        # Percent of one core over the measured window (load start to drained), from each
        # process's own CPU times; "named_total" is their sum. "machine" is /proc/stat over
        # all cores (at most 100 × cpu_count): it is tick-sampled, and on this VM it reads
        # well below the per-process sum under bursty partial load (equal when saturated).
        "cpu_percent": cpu_percent,
        # The same, per 1,000 msg/s stored: percent of a core each component needs for
        # every 1,000 messages a second (the capacity table in docs/performance.md).
        "cpu_percent_per_1000_msgs_per_s": cpu_per_k,
        "cpu_count": os.cpu_count(),
        "memory_gb": round(vm.total / 2**30, 1),
        **alert_figures,
        "keeps_up": bool(
            published - distinct == 0
            and attempted >= 0.97 * cfg.rate * cfg.duration
            and stored / stored_window >= 0.95 * cfg.rate
        ),
    }


def _start_workers(
    stack: ExitStack,
    cfg: BenchConfig,
    db_url: str,
    mqtt_url: str,
    settings: Settings,
    run_id: str,
    logs: Path,
) -> list[tuple[subprocess.Popen[bytes], int]]:
    """K ingest worker processes on ``cfg.consumer``; returns once all are ready."""
    workers: list[tuple[subprocess.Popen[bytes], int]] = []
    for k in range(cfg.workers):
        port = free_port()
        env = dict(os.environ)
        env.update(
            FIREWATCH_DATABASE_URL=db_url,
            FIREWATCH_MQTT_URL=mqtt_url,
            # A group and ids of this run only, and sessions that end with the
            # connection: a run against an external broker leaves nothing behind that
            # would take a share of a later run's (or production's) messages.
            FIREWATCH_INGEST_CLIENT_ID=f"bench-{run_id}-{k}",
            FIREWATCH_INGEST_GROUP=f"bench-{run_id}" if cfg.workers > 1 else "",
            FIREWATCH_INGEST_SESSION_EXPIRY_S="0",
            FIREWATCH_INGEST_METRICS_PORT=str(port),
            FIREWATCH_METRICS_HOST="127.0.0.1",
            FIREWATCH_TOPIC_ROOT=settings.topic_root,
            # The sweep's top rates are 30 messages/s per device: this measures ingest's
            # throughput, not the per-device rate limit (20/s by default).
            FIREWATCH_INGEST_DEVICE_RATE_PER_S="0",
            FIREWATCH_INGEST_CONSUMER=cfg.consumer,
        )
        out = (logs / f"worker-{k}.log").open("wb")
        stack.callback(out.close)
        proc = subprocess.Popen(
            [sys.executable, "-m", "firewatch", "ingest"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        stack.callback(_stop, proc)
        workers.append((proc, port))
    ports = [port for _, port in workers]
    deadline = time.monotonic() + 60
    while not all(_ready(p) for p in ports):
        if time.monotonic() > deadline or any(w.poll() is not None for w, _ in workers):
            raise BenchError(f"ingest workers did not become ready (logs in {logs})")
        time.sleep(0.1)
    return workers


def _start_pipeline(
    stack: ExitStack, db_url: str, logs: Path, probes: list[str]
) -> tuple[list[subprocess.Popen[bytes]], StreamWatcher]:
    """Analytics, alerting and the API as processes (the whole path to an operator's
    screen), and a live-stream client; returns once the API is healthy, analytics has run
    its first round (it is reading the feed) and the stream is connected."""
    api_port, analytics_port = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        FIREWATCH_DATABASE_URL=db_url,
        FIREWATCH_ALERTING_METRICS_PORT="0",
        FIREWATCH_ANALYTICS_METRICS_PORT=str(analytics_port),
        FIREWATCH_API_HOST="127.0.0.1",
        FIREWATCH_API_PORT=str(api_port),
    )
    procs = []
    for name, argv in (
        ("analytics", ["analytics", "run"]),
        ("alerting", ["alerting"]),
        ("api", ["api"]),
    ):
        out = (logs / f"{name}.log").open("wb")
        stack.callback(out.close)
        proc = subprocess.Popen(
            [sys.executable, "-m", "firewatch", *argv],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        stack.callback(stop_process, proc, 30, name)
        procs.append(proc)
    api = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + 60
    while not (_healthy(api) and _analytics_reading(analytics_port)):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise BenchError(f"analytics/alerting/api did not start (logs in {logs})")
        time.sleep(0.1)
    with psycopg.connect(db_url, autocommit=True) as conn:
        token = watcher_token(conn)
    watcher = StreamWatcher(api, probes, token)
    watcher.start()
    if not watcher.connected.wait(30):
        raise BenchError(f"could not connect to the live stream at {api} ({watcher.error})")
    stack.callback(watcher.stop.set)
    return procs, watcher


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _analytics_reading(port: int) -> bool:
    try:
        count = _sample(
            port, "firewatch_analytics_batch_seconds", "firewatch_analytics_batch_seconds_count"
        )
    except OSError:
        return False
    return count > 0


def _ready(port: int) -> bool:
    try:
        return _sample(port, "firewatch_ingest_ready", "firewatch_ingest_ready") == 1.0
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, 30, "ingest worker")
