"""``firewatch bench api``: a burst of concurrent requests at a fresh API. Is every request
answered, and how fast?

One run: a fresh database (created on ``FIREWATCH_DATABASE_URL``'s server and dropped
after, or else on a throwaway embedded pgserver in a temporary directory), migrated, seeded
with the demo city and ``alerts`` open alerts; the API in this process
(:class:`~firewatch.api.server.ApiServer`: a real uvicorn on a free loopback port, with the
configured ``api_*`` limits); and the burst from a separate process, so that the client
does not compete with the server for this process's GIL. The client starts ``concurrency``
threads, each with its own ``httpx.Client`` (fresh connections, as when every operator
screen reloads at once after a network blip); they wait on a barrier, then send
``requests`` GETs of ``path`` between them. Latency is per request, from the send (after
the barrier) until the whole response is read.

The result: how many were answered, by status code, whether every 503 carried
``Retry-After``, latency percentiles (all, and per status), the server's own admission
counters, the RSS of this process (the API is in it), the machine, the date and the command.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import multiprocessing
import os
import platform
import ssl
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psutil
import psycopg

from firewatch.api.server import ApiServer
from firewatch.core.domain import Severity
from firewatch.core.people import Role
from firewatch.core.settings import Settings
from firewatch.lab.scratch import scratch_database, throwaway_server
from firewatch.storage.alerts import raise_alert
from firewatch.storage.maintenance import maintain
from firewatch.storage.migrate import upgrade
from firewatch.storage.people import add_person, create_token
from firewatch.storage.seed import load_seed, read_seed

#: ``(status or None, latency in seconds, Retry-After or None, error type or None, bytes)``
Shot = tuple[int | None, float, str | None, str | None, int]


class ApiBenchError(Exception):
    """The benchmark could not run (the API did not come up, the client failed)."""


@dataclass(frozen=True)
class ApiBenchConfig:
    requests: int = 500
    concurrency: int = 500
    path: str = "/alerts"
    alerts: int = 100  # open alerts seeded (GET /alerts returns up to 100 by default)
    timeout_s: float = 60.0  # per request; a request still unanswered then counts as such

    def command(self) -> str:
        return (
            f"firewatch bench api --requests {self.requests} --concurrency"
            f" {self.concurrency} --path {self.path} --alerts {self.alerts}"
        )


def fire(
    url: str,
    requests: int,
    concurrency: int,
    timeout_s: float,
    headers: dict[str, str] | None = None,
) -> list[Shot]:
    """The burst (runs in the client process): ``concurrency`` threads with a client each,
    released together, sending ``requests`` GETs of ``url`` (with ``headers``: the bench's
    API token) between them."""
    threads = max(1, min(concurrency, requests))
    # One TLS context for all clients: httpx builds one per client otherwise (~10 ms each),
    # which would stagger the start of a 500-thread burst.
    tls = ssl.create_default_context()
    barrier = threading.Barrier(threads)
    lock = threading.Lock()
    left = [requests]

    def take() -> bool:
        with lock:
            if left[0] == 0:
                return False
            left[0] -= 1
            return True

    def worker() -> list[Shot]:
        shots: list[Shot] = []
        with httpx.Client(timeout=timeout_s, verify=tls, headers=headers) as client:
            barrier.wait()
            while take():
                began = time.perf_counter()
                try:
                    r = client.get(url)
                except httpx.HTTPError as err:
                    shots.append((None, time.perf_counter() - began, None, type(err).__name__, 0))
                    continue
                shots.append(
                    (
                        r.status_code,
                        time.perf_counter() - began,
                        r.headers.get("retry-after"),
                        None,
                        len(r.content),
                    )
                )
        return shots

    with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="burst") as pool:
        futures = [pool.submit(worker) for _ in range(threads)]
        return [shot for f in futures for shot in f.result()]


def percentiles(seconds: list[float]) -> dict[str, float] | None:
    """p50/p90/p99/max in milliseconds (nearest rank), or None for no samples."""
    if not seconds:
        return None
    xs = sorted(seconds)

    def rank(q: float) -> float:
        return round(xs[max(0, math.ceil(q * len(xs)) - 1)] * 1000, 1)

    return {"p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "max": round(xs[-1] * 1000, 1)}


def _seed_alerts(conn: psycopg.Connection[Any], n: int) -> None:
    city = read_seed()
    load_seed(conn, city)
    units = [u.id for u in city.units]
    now = time.time()
    for i in range(n):
        unit = units[i % len(units)]
        raise_alert(
            conn,
            type="low_pressure",
            severity=Severity.HIGH,
            unit_id=unit,
            device_id=f"D-BENCH-{i:05d}",
            seen_at=now - n + i,
            explanation=f"static pressure low (bench alert {i})",
        )


def run_api_bench(settings: Settings, cfg: ApiBenchConfig) -> dict[str, Any]:
    """Run one burst (see the module docstring); the result document."""
    me = psutil.Process()
    with ExitStack() as stack:
        admin = settings.database_url or throwaway_server(stack)
        db_url = scratch_database(stack, admin, "fw_apibench")
        with psycopg.connect(db_url, autocommit=True) as conn:
            upgrade(conn)
            maintain(conn, settings)
            _seed_alerts(conn, cfg.alerts)
            # Every request authenticates as an operator would (issue 12): the token's
            # lookup is part of what a request costs.
            add_person(conn, username="bench", role=Role.OPERATOR, actor="bench")
            now = datetime.now(UTC)
            token = create_token(
                conn, "bench", "apibench", now + timedelta(hours=1), actor="bench", now=now
            )
        api_settings = settings.model_copy(
            update={"database_url": db_url, "api_host": "127.0.0.1", "api_port": 0}
        )
        api = stack.enter_context(ApiServer(api_settings, db_url))
        ready = httpx.get(f"{api.url}/health", timeout=30)
        if ready.status_code != 200:
            raise ApiBenchError(f"the API is not healthy: {ready.status_code} {ready.text}")
        rss_before = me.memory_info().rss
        # spawn, not fork: this process runs threads (the API, the pool's workers).
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as client:
            began = time.perf_counter()
            job = client.submit(
                fire,
                api.url + cfg.path,
                cfg.requests,
                cfg.concurrency,
                cfg.timeout_s,
                {"Authorization": f"Bearer {token}"},
            )
            try:
                shots = job.result(timeout=cfg.timeout_s * 2 + 60)
            except concurrent.futures.TimeoutError:
                raise ApiBenchError("the client process did not finish its burst") from None
            wall = time.perf_counter() - began
        rss_after = me.memory_info().rss
        gate = api.context.gate
        server = {
            "admitted": gate.admission.admitted,
            "refused_queue_full": gate.admission.refused_full,
            "refused_queue_timeout": gate.admission.refused_timeout,
            "pool_size": api.context.options.pool_size(api_settings),
            "rss_mb_before": round(rss_before / 2**20, 1),
            "rss_mb_after": round(rss_after / 2**20, 1),
        }
        limits = {
            "api_max_concurrency": settings.api_max_concurrency,
            "api_max_waiting": settings.api_max_waiting,
            "api_queue_timeout_s": settings.api_queue_timeout_s,
            "api_max_body_bytes": settings.api_max_body_bytes,
            "api_max_streams": settings.api_max_streams,
        }
    return {
        "benchmark": "api",
        "command": cfg.command(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "config": dataclasses.asdict(cfg),
        "limits": limits,
        **summarize(shots, wall),
        "server": server,
    }


def machine() -> dict[str, Any]:
    """Cores, RAM, CPU and Python of this machine (benchmarks are compared within one)."""
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }


def summarize(shots: list[Shot], wall_s: float) -> dict[str, Any]:
    """The client's figures of one burst: sent, answered (and how the rest failed), by
    status, 503s carrying Retry-After, other 5xx, latency percentiles (all and per status),
    the size of a 200 body, the burst's wall time."""
    statuses = Counter(str(s[0]) for s in shots if s[0] is not None)
    by_status = {
        code: percentiles([s[1] for s in shots if str(s[0]) == code]) for code in sorted(statuses)
    }
    return {
        "sent": len(shots),
        "answered": sum(statuses.values()),
        "unanswered": dict(Counter(s[3] for s in shots if s[0] is None)),
        "by_status": dict(sorted(statuses.items())),
        "503_with_retry_after": sum(1 for s in shots if s[0] == 503 and s[2]),
        "other_5xx": sum(1 for s in shots if s[0] is not None and s[0] >= 500 and s[0] != 503),
        "latency_ms": {"all": percentiles([s[1] for s in shots]), **by_status},
        "response_bytes_200": max((s[4] for s in shots if s[0] == 200), default=0),
        "wall_s": round(wall_s, 2),
    }


def format_result(r: dict[str, Any]) -> str:
    """The result as a few lines."""
    m, c, lim = r["machine"], r["config"], r["limits"]
    lines = [
        f"API burst: {c['requests']} x GET {c['path']} from {c['concurrency']} concurrent"
        f" clients ({c['alerts']} alerts seeded); {m['cores']} cores, {m['ram_gib']} GiB",
        f"limits: {lim['api_max_concurrency']} at once, {lim['api_max_waiting']} waiting"
        f" ≤ {lim['api_queue_timeout_s']:g} s; pool {r['server']['pool_size']}",
        f"answered {r['answered']}/{r['sent']} in {r['wall_s']:.2f} s; by status "
        + ", ".join(f"{k}: {v}" for k, v in r["by_status"].items())
        + f"; 503 with Retry-After {r['503_with_retry_after']}"
        + (f"; unanswered {dict(r['unanswered'])}" if r["unanswered"] else ""),
    ]
    for name, p in r["latency_ms"].items():
        if p is not None:
            lines.append(
                f"  latency {name:>4}: p50 {p['p50']:.1f} ms, p90 {p['p90']:.1f} ms,"
                f" p99 {p['p99']:.1f} ms, max {p['max']:.1f} ms"
            )
    s = r["server"]
    lines.append(
        f"server: admitted {s['admitted']}, refused (queue full) {s['refused_queue_full']},"
        f" refused (queue timeout) {s['refused_queue_timeout']}; RSS {s['rss_mb_before']} →"
        f" {s['rss_mb_after']} MB"
    )
    return "\n".join(lines)
