"""``firewatch bench storage``: the two storage flavours side by side, in one sitting.

Servers: plain PostgreSQL is a throwaway embedded pgserver (or ``FIREWATCH_DATABASE_URL``'s
server); TimescaleDB a throwaway PostgreSQL 15 cluster with TimescaleDB preloaded
(``lab/timescale.py``, or ``FIREWATCH_BENCH_TIMESCALE_URL``). Each part runs on a scratch
database of each, dropped afterwards.

1. **Ingest** (``--rate``, ``--devices``, ``--duration``, ``--rounds``): ``firewatch bench
   ingest`` once per flavour per round, alternating, so both see the same machine: stored
   rows/s, lost, duplicated, publish → committed p50/p99.
2. **A simulated city over ``--days`` days** (``--units`` units of the standard scenario,
   faults off, water points and sheds every 60 s): decoded and written through ingest's own
   writer into both flavours (plain days get their partitions first, so nothing lands in the
   DEFAULT partition). Storage: telemetry's size on plain PostgreSQL and on TimescaleDB
   before and after compressing every chunk that maintenance would compress on day
   ``--days`` (all but the last 8 days), bytes per device per day, the compression ratio of
   the compressed chunks, and how long compressing took.
3. **Reads**, ``--queries`` times each (p50/p95 ms): one device's whole span of telemetry
   (a month by default), and a district's day of device-hour rollups as the analysis worker
   computes them (``storage/rollups.compute_device_hours`` over every device of the district
   and every hour of a day), each on plain PostgreSQL, on TimescaleDB before compression and
   after.

``--rounds 0`` skips part 1, ``--days 0`` parts 2 and 3.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from firewatch.core.backoff import Backoff
from firewatch.core.settings import Settings
from firewatch.ingest.codec import DeviceInfo, Limits, decode
from firewatch.ingest.ingest_metrics import IngestMetrics
from firewatch.ingest.writer import BatchWriter, WriteBatch
from firewatch.lab.apibench import machine
from firewatch.lab.ingest_bench import BenchConfig, run_ingest_bench
from firewatch.lab.scratch import scratch_database, throwaway_server
from firewatch.lab.timescale import timescale_cluster
from firewatch.simulators.engine import Simulation
from firewatch.simulators.scenario import load_scenario
from firewatch.storage.maintenance import compress_due, maintain
from firewatch.storage.migrate import upgrade
from firewatch.storage.rollups import compute_device_hours
from firewatch.storage.seed import load_seed

FLAVOURS = ("postgres", "timescale")
WRITE_BATCH = 5000


@dataclass(frozen=True)
class StorageBenchConfig:
    rate: float = 5000.0
    devices: int = 1000
    duration: float = 20.0
    rounds: int = 2
    units: int = 40
    days: int = 30
    queries: int = 20


@contextmanager
def servers(settings: Settings) -> Iterator[dict[str, str]]:
    """URLs where scratch databases of each flavour can be made."""
    with ExitStack() as stack:
        plain = settings.database_url or throwaway_server(stack)
        ts = os.environ.get("FIREWATCH_BENCH_TIMESCALE_URL") or stack.enter_context(
            timescale_cluster()
        )
        yield {"postgres": plain, "timescale": ts}


def _ingest(settings: Settings, urls: dict[str, str], cfg: StorageBenchConfig) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {f: [] for f in FLAVOURS}
    for r in range(cfg.rounds):
        order = FLAVOURS if r % 2 == 0 else FLAVOURS[::-1]
        for flavour in order:
            doc = run_ingest_bench(
                settings.model_copy(
                    update={"database_url": urls[flavour], "storage_flavour": flavour}
                ),
                BenchConfig(rate=cfg.rate, devices=cfg.devices, duration=cfg.duration),
            )
            runs[flavour].append(
                {
                    k: doc[k]
                    for k in ("stored_rows_per_s", "published", "lost", "duplicated", "keeps_up")
                }
                | {"latency_ms": doc["latency_ms"], "cpu_percent": doc["cpu_percent"]}
            )
            print(
                f"  ingest {flavour:9} round {r + 1}: {doc['stored_rows_per_s']:,.0f} rows/s, "
                f"lost {doc['lost']}, duplicated {doc['duplicated']}, "
                f"p99 {doc['latency_ms']['p99']} ms",
                file=sys.stderr,
            )
    return {
        "config": {"rate": cfg.rate, "devices": cfg.devices, "duration_s": cfg.duration},
        "runs": runs,
    }


def _simulation(settings: Settings, cfg: StorageBenchConfig, end: float) -> Simulation:
    scenario = load_scenario("builtin:standard").model_copy(update={"faults": []})
    start = end - cfg.days * 86_400
    return Simulation(scenario, start=start, end=end, units=cfg.units, root=settings.topic_root)


def _write_city(sim: Simulation, settings: Settings, urls: dict[str, str]) -> dict[str, int]:
    """Decode the simulation and write it into every database of ``urls``; row counts."""
    lookup = {d.id: DeviceInfo(d.unit_id, d.kind) for d in sim.devices}.get
    limits = Limits.from_settings(settings)
    stop = threading.Event()
    counts = {"messages": 0, "dead_letters": 0}
    with ExitStack() as stack:
        writers = [
            stack.enter_context(BatchWriter(u, IngestMetrics(), Backoff(0.05, 1.0), stop))
            for u in urls.values()
        ]
        batch = WriteBatch()

        def flush() -> None:
            for w in writers:
                w.flush(batch)

        for m in sim.messages():
            rx = datetime.fromtimestamp(m.t, UTC)
            item = decode(m.topic, m.payload, rx, root=sim.root, lookup=lookup, limits=limits)
            batch.add(item, counts["messages"])
            counts["messages"] += 1
            if len(batch.acks) >= WRITE_BATCH:
                flush()
                counts["dead_letters"] += len(batch.dead)
                batch = WriteBatch()
        flush()
        counts["dead_letters"] += len(batch.dead)
    return counts


def _size(conn: psycopg.Connection[Any], flavour: str) -> int:
    if flavour == "timescale":
        row = conn.execute("SELECT hypertable_size('telemetry')").fetchone()
    else:
        row = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'telemetry'::regclass"
        ).fetchone()
    assert row is not None
    return int(str(row[0] or 0))


def _timed(n: int, query: Callable[[], Any]) -> dict[str, float]:
    query()  # warm the cache: both sides read from memory
    took = []
    for _ in range(n):
        t = time.perf_counter()
        query()
        took.append((time.perf_counter() - t) * 1000)
    took.sort()
    return {
        "p50": round(statistics.median(took), 2),
        "p95": round(took[min(len(took) - 1, int(0.95 * len(took)))], 2),
    }


def _reads(
    conn: psycopg.Connection[Any], sim: Simulation, end: datetime, n: int
) -> dict[str, dict[str, float]]:
    water = next(d for d in sim.devices if d.kind == "water")
    district = next(iter(sim.city.districts))
    streets = {s.id for s in district.streets}
    units = {u.id for u in sim.city.units if u.street in streets}
    devices = [d.id for d in sim.devices if d.unit_id in units]
    day = (end - timedelta(days=10)).replace(hour=0, minute=0, second=0, microsecond=0)
    pairs = [(d, day + timedelta(hours=h)) for d in devices for h in range(24)]

    def month() -> int:
        return len(
            conn.execute(
                "SELECT * FROM telemetry WHERE device_id = %s AND ts >= %s ORDER BY ts",
                (water.id, end - timedelta(days=31)),
            ).fetchall()
        )

    def district_day() -> int:
        return len(compute_device_hours(conn, pairs, {}, now=end))

    return {
        "device_month": _timed(n, month) | {"rows": month()},
        "district_day_rollups": _timed(n, district_day)
        | {"device_hours": len(pairs), "devices": len(devices)},
    }


def _city(settings: Settings, urls: dict[str, str], cfg: StorageBenchConfig) -> dict[str, Any]:
    end_dt = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    sim = _simulation(settings, cfg, end_dt.timestamp())
    with ExitStack() as stack:
        dbs = {f: scratch_database(stack, urls[f], f"fw_storage_{f[:2]}") for f in FLAVOURS}
        conns = {f: stack.enter_context(psycopg.connect(dbs[f], autocommit=True)) for f in FLAVOURS}
        for f, conn in conns.items():
            upgrade(conn, f)
            load_seed(conn, sim.city)
            maintain(conn, settings, compress=False)
        first = end_dt.date() - timedelta(days=cfg.days + 1)
        for k in range(cfg.days + 2):
            conns["postgres"].execute(
                "SELECT firewatch_ensure_partition('telemetry'::regclass, %s)",
                (first + timedelta(days=k),),
            )
        t = time.perf_counter()
        counts = _write_city(sim, settings, dbs)
        write_s = time.perf_counter() - t
        device_days = len(sim.devices) * cfg.days
        sizes = {f: _size(c, f) for f, c in conns.items()}
        for c in conns.values():
            c.execute("VACUUM ANALYZE telemetry")
        reads = {f: _reads(c, sim, end_dt, cfg.queries) for f, c in conns.items()}
        ts = conns["timescale"]
        t = time.perf_counter()
        compressed = compress_due(ts, settings, end_dt)
        compress_s = time.perf_counter() - t
        ts.execute("VACUUM ANALYZE telemetry")
        stats = ts.execute(
            "SELECT sum(before_compression_total_bytes), sum(after_compression_total_bytes),"
            " count(*) FROM chunk_columnstore_stats('telemetry')"
            " WHERE compression_status = 'Compressed'"
        ).fetchone()
        assert stats is not None
        after = _size(ts, "timescale")
        before_b, after_b, days_compressed = (int(str(x or 0)) for x in stats)
        compressed_device_days = max(len(sim.devices) * days_compressed, 1)
        reads["timescale_compressed"] = _reads(ts, sim, end_dt, cfg.queries)
    return {
        "city": {
            "units": cfg.units,
            "devices": len(sim.devices),
            "days": cfg.days,
            "messages": counts["messages"],
            "dead_letters": counts["dead_letters"],
            "written_in_s": round(write_s, 1),
        },
        "telemetry_bytes": {
            "postgres": sizes["postgres"],
            "timescale_uncompressed": sizes["timescale"],
            "timescale_after_compression": after,
        },
        # all days for the two uncompressed stores; the compressed days (one chunk a day)
        # before and after compression for TimescaleDB's
        "bytes_per_device_day": {
            "postgres": round(sizes["postgres"] / device_days),
            "timescale_uncompressed": round(sizes["timescale"] / device_days),
            "timescale_compressed_days_before": round(before_b / compressed_device_days),
            "timescale_compressed_days_after": round(after_b / compressed_device_days),
        },
        "compression": {
            "telemetry_days_compressed": days_compressed,
            "chunks_compressed": compressed,
            "seconds": round(compress_s, 2),
            "before_bytes": before_b,
            "after_bytes": after_b,
            "ratio": round(before_b / max(after_b, 1), 1),
        },
        "reads_ms": reads,
    }


def run_storage_bench(settings: Settings, cfg: StorageBenchConfig) -> dict[str, Any]:
    """Run the benchmark (see the module docstring); the result document."""
    with servers(settings) as urls:
        with psycopg.connect(urls["timescale"]) as conn:
            version = conn.execute(
                "SELECT current_setting('server_version'), extversion FROM pg_available_extensions"
                " LEFT JOIN pg_extension ON extname = name WHERE name = 'timescaledb'"
            ).fetchone()
        ingest = _ingest(settings, urls, cfg) if cfg.rounds > 0 else None
        city = _city(settings, urls, cfg) if cfg.days > 0 else {}
    return {
        "benchmark": "storage",
        "command": " ".join(["firewatch", *sys.argv[1:]]) if sys.argv else "",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "timescale_server": {"postgresql": version[0] if version else None},
        "ingest": ingest,
        **city,
    }


def format_result(r: dict[str, Any]) -> str:
    """The result as a short report."""
    m, c = r["machine"], r.get("city")
    lines = [f"storage benchmark; {m['cores']} cores, {m['ram_gib']} GiB"]
    if r["ingest"]:
        cfg = r["ingest"]["config"]
        lines.append(
            f"ingest {cfg['rate']:,.0f} msg/s offered, {cfg['devices']} devices, "
            f"{cfg['duration_s']:g} s, alternating rounds:"
        )
        for f, runs in r["ingest"]["runs"].items():
            for i, x in enumerate(runs):
                lines.append(
                    f"  {f:9} #{i + 1}: {x['stored_rows_per_s']:>9,.0f} rows/s  lost {x['lost']}"
                    f"  dup {x['duplicated']}  p50 {x['latency_ms']['p50']} ms"
                    f"  p99 {x['latency_ms']['p99']} ms"
                )
    if not c:
        return "\n".join(lines)
    lines.append(
        f"city: {c['devices']} devices ({c['units']} units) over {c['days']} days, "
        f"{c['messages']:,} messages written to both in {c['written_in_s']} s"
    )
    b = r["bytes_per_device_day"]
    lines.append(
        f"telemetry per device per day: postgres {b['postgres'] / 1024:.1f} KiB, "
        f"timescale {b['timescale_uncompressed'] / 1024:.1f} KiB; the compressed days "
        f"{b['timescale_compressed_days_before'] / 1024:.1f} KiB before, "
        f"{b['timescale_compressed_days_after'] / 1024:.1f} KiB after"
    )
    z = r["compression"]
    lines.append(
        f"compression: {z['telemetry_days_compressed']} days of telemetry "
        f"({z['chunks_compressed']} chunks of all streams) in {z['seconds']} s, "
        f"{z['before_bytes'] / 2**20:.1f} MiB -> {z['after_bytes'] / 2**20:.1f} MiB "
        f"({z['ratio']}x)"
    )
    for what in ("device_month", "district_day_rollups"):
        cells = "  ".join(
            f"{side} p50 {v[what]['p50']} / p95 {v[what]['p95']} ms"
            for side, v in r["reads_ms"].items()
        )
        lines.append(f"{what}: {cells}")
    return "\n".join(lines)
