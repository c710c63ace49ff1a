"""``firewatch bench rollups``: how fast the tiered fire-analysis database answers, and what
its refresh costs per hour of new data.

One run, on a fresh database (created on ``FIREWATCH_DATABASE_URL``'s server and dropped
after, or on a throwaway embedded pgserver):

1. **A generated city**: ``units`` units over 6 districts of 5 streets, each with a panel,
   two water points and an e-bike shed.
2. **A year of rollups**, written directly from a seeded generator (no raw data): each unit
   ``days`` daily rows with realistic counts (fire alarms and confirmed fires rare, false
   alarms and faults a few a month, offline and fault minutes, water pressure, shed peaks,
   anomalies, response times), then the street, district and city rows added up from them
   by the refresh's own statements (``storage/rollup_tiers.py``, timed). ``hours`` adds
   that many days of hourly unit rows (and their regions) for the size of the table.
3. **Reads**, ``queries`` each, through the API's storage function (``read_rollup_rows``):
   (a) a random unit's daily rollups over the year; (b) a random district's over the last
   month and over the year; and for comparison (b') a district's year added up at read
   time from its units' daily rows (what the stored district rows save). p50/p95 in ms;
   the target is p95 <= 100 ms for (a) and (b).
4. **Risk** (``risk``): every unit scored once from that year of rollups by the risk worker's
   own function (``risk/scoring.score_units``: its inputs, the model, the store; timed), then
   a year of daily scores per unit in the history (written directly), and ``queries`` each
   of the supervisor's risk reads through the API's storage functions: (c) a district's
   risk view (level distribution per street, plus its top 20 units), (d) a district's
   30-day level trend, (e) a unit's year of score history. Target p95 <= 100 ms for (c).
5. **Refresh cost**: one hour of raw telemetry (a reading every 10 s) for
   ``refresh_devices`` water points, inserted as ingest would (so each row carries its
   transaction id), then refresh rounds (``analysis/refresh.py``) on a clock past the
   hour's end until caught up; time per round phase and per device-hour.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from firewatch.analysis.refresh import Rollups
from firewatch.core.risk_config import load_risk_config
from firewatch.core.rollups import MEASURES, Grain, day_offset_h
from firewatch.core.settings import Settings
from firewatch.lab.apibench import machine
from firewatch.lab.scratch import scratch_database, throwaway_server
from firewatch.risk.scoring import score_units
from firewatch.storage import risk as risk_store
from firewatch.storage import rollup_tiers as tiers
from firewatch.storage.maintenance import maintain
from firewatch.storage.migrate import upgrade
from firewatch.storage.rollup_marks import RefreshCursor
from firewatch.storage.rollups import read_rollup_rows

DISTRICTS = 6
STREETS_PER_DISTRICT = 5
TARGET_P95_MS = 100.0


@dataclass(frozen=True)
class BenchConfig:
    units: int = 1000
    days: int = 365
    hours: int = 0
    queries: int = 200
    refresh_devices: int = 200
    seed: int = 1

    def check(self) -> None:
        """ValueError for sizes the bench cannot run with."""
        if self.units < 1 or self.queries < 1 or self.refresh_devices < 0 or self.hours < 0:
            raise ValueError("need --units >= 1, --queries >= 1, non-negative others")
        if self.days < 31:
            raise ValueError("--days must be at least 31 (a month of reads)")
        if self.refresh_devices > 2 * self.units:
            raise ValueError("--refresh-devices: at most two water points per unit")

    def command(self) -> str:
        return (
            f"firewatch bench rollups --units {self.units} --days {self.days} --hours "
            f"{self.hours} --queries {self.queries} --refresh-devices {self.refresh_devices}"
            f" --seed {self.seed}"
        )


def _registry(conn: psycopg.Connection[Any], units: int) -> list[str]:
    """The generated city; the unit ids."""
    regions: list[tuple[str, str | None, str, str]] = [("bench", None, "city", "Bench city")]
    streets: list[str] = []
    for d in range(DISTRICTS):
        did = f"d{d}"
        regions.append((did, "bench", "district", f"District {d}"))
        for s in range(STREETS_PER_DISTRICT):
            streets.append(f"{did}-s{s}")
            regions.append((streets[-1], did, "street", f"Street {d}.{s}"))
    ids = [f"U-B-{i:05d}" for i in range(units)]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO regions (id, parent_id, level, name) VALUES (%s, %s, %s, %s)", regions
        )
        cur.executemany(
            "INSERT INTO units (id, name, region_id, supervision, category, building_class)"
            " VALUES (%s, %s, %s, 'key', 'hotel', 'multistorey')",
            [(u, f"Unit {i}", streets[i % len(streets)]) for i, u in enumerate(ids)],
        )
        cur.executemany(
            "INSERT INTO devices (id, unit_id, kind) VALUES (%s, %s, %s)",
            [
                (f"{u}-{suffix}", u, kind)
                for u in ids
                for suffix, kind in (
                    ("P1", "panel"),
                    ("W1", "water"),
                    ("W2", "water"),
                    ("E1", "ebike_shed"),
                )
            ],
        )
    return ids


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth; the means here are small)."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _day(rng: random.Random) -> dict[str, Any]:
    """One unit-day of realistic counts (design assumptions, for size and shape only)."""
    faults = {t: _poisson(rng, m) for t, m in (("fault", 0.08), ("power_fault", 0.01))}
    faults = {k: v for k, v in faults.items() if v}
    offline = rng.random() < 0.03
    acks = _poisson(rng, 0.3)
    confirms = _poisson(rng, 0.2)
    samples = 2 * 8640
    mean = rng.gauss(320.0, 20.0)
    return {
        "fire_alarms": _poisson(rng, 0.05),
        "confirmed_fires": 1 if rng.random() < 0.0005 else 0,
        "false_alarms": _poisson(rng, 0.04),
        "faults": sum(faults.values()),
        "faults_by_type": faults,
        "fault_open_min": sum(faults.values()) * rng.uniform(10, 600),
        "isolations": _poisson(rng, 0.02),
        "offline_min": rng.uniform(5, 300) if offline else 0.0,
        "pressure_min_kpa": mean - rng.uniform(5, 60),
        "pressure_mean_kpa": mean,
        "pressure_low_min": rng.uniform(1, 120) if rng.random() < 0.01 else 0.0,
        "tank_low_min": 0.0,
        "shed_peak_temp_c": rng.gauss(38.0, 6.0),
        "shed_overtemp_events": 1 if rng.random() < 0.002 else 0,
        "shed_overcurrent_events": _poisson(rng, 0.01),
        "anomalies_critical": _poisson(rng, 0.01),
        "anomalies_high": _poisson(rng, 0.05),
        "anomalies_medium": _poisson(rng, 0.2),
        "anomalies_low": _poisson(rng, 0.3),
        "acks": acks,
        "ack_s_sum": acks * rng.uniform(20, 300),
        "confirms": confirms,
        "confirm_s_sum": confirms * rng.uniform(60, 900),
        "isolated_min": rng.uniform(0, 600) if rng.random() < 0.02 else 0.0,
        "pressure_samples": samples,
    }


def _copy_rows(
    conn: psycopg.Connection[Any],
    rows: list[tuple[str, str, datetime, str, dict[str, Any]]],
) -> None:
    """COPY unit rollups ``(tier, subject, bucket, parent, measures)`` of one grain."""
    columns = ["tier", "subject_id", "grain", "bucket", "parent_id", *MEASURES]
    with conn.cursor() as cur, cur.copy(f"COPY rollups ({', '.join(columns)}) FROM STDIN") as cp:
        for tier, grain, bucket, subject_parent, m in rows:
            subject, parent = subject_parent.split("|")
            values = [m[k] if k != "faults_by_type" else json.dumps(m[k]) for k in MEASURES]
            cp.write_row([tier, subject, grain, bucket, parent, *values])


def _write_year(
    conn: psycopg.Connection[Any], units: list[str], cfg: BenchConfig, offset_h: int
) -> dict[str, Any]:
    rng = random.Random(cfg.seed)
    today = tiers.day_start(datetime.now(UTC).replace(minute=0, second=0, microsecond=0), offset_h)
    days = [today - timedelta(days=d) for d in range(cfg.days, 0, -1)]
    street_of = dict(conn.execute("SELECT id, region_id FROM units").fetchall())
    began = time.perf_counter()
    batch: list[Any] = []
    written = 0
    for unit in units:
        for day in days:
            batch.append(("unit", "day", day, f"{unit}|{street_of[unit]}", _day(rng)))
        if len(batch) >= 50_000:
            _copy_rows(conn, batch)
            written, batch = written + len(batch), []
    hourly = 0
    for unit in units:
        for d in range(cfg.hours):
            for h in range(24):
                hour = today - timedelta(days=cfg.hours - d) + timedelta(hours=h)
                m = _day(rng)
                batch.append(("unit", "hour", hour, f"{unit}|{street_of[unit]}", m))
                hourly += 1
        if len(batch) >= 50_000:
            _copy_rows(conn, batch)
            written, batch = written + len(batch), []
    _copy_rows(conn, batch)
    written += len(batch)
    unit_s = time.perf_counter() - began
    streets = [
        r[0] for r in conn.execute("SELECT id FROM regions WHERE level = 'street'").fetchall()
    ]
    began = time.perf_counter()
    region_rows = 0
    for grain, buckets in (
        (Grain.DAY, days),
        (
            Grain.HOUR,
            [today - timedelta(days=cfg.hours) + timedelta(hours=h) for h in range(24 * cfg.hours)],
        ),
    ):
        if not buckets:
            continue
        waiting = {(s, b) for s in streets for b in buckets}
        while waiting:
            region_rows += len(waiting)
            with conn.transaction():
                parents = tiers.add_regions(conn, grain, waiting)
            waiting = {(p, b) for p, _, b in parents}
    conn.execute("ANALYZE rollups")
    return {
        "unit_day_rows": len(units) * len(days),
        "unit_hour_rows": hourly,
        "region_rows": region_rows,
        "write_unit_rows_s": round(unit_s, 2),
        "add_up_regions_s": round(time.perf_counter() - began, 2),
        "first_day": days[0].isoformat(),
        "end": today.isoformat(),
    }


_DISTRICT_AT_READ = """
SELECT c.bucket, sum(c.fire_alarms), sum(c.false_alarms), sum(c.faults), sum(c.offline_min),
       min(c.pressure_min_kpa), sum(c.acks), sum(c.ack_s_sum)
FROM rollups c JOIN units u ON u.id = c.subject_id JOIN regions s ON s.id = u.region_id
WHERE c.tier = 'unit' AND c.grain = 'day' AND s.parent_id = %s
  AND c.bucket >= %s AND c.bucket < %s
GROUP BY c.bucket ORDER BY c.bucket
"""


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds (nearest rank) of at least one sample."""
    xs = sorted(seconds)

    def rank(q: float) -> float:
        return round(xs[max(0, math.ceil(q * len(xs)) - 1)] * 1000, 2)

    return {"p50": rank(0.5), "p95": rank(0.95), "p99": rank(0.99), "max": round(xs[-1] * 1000, 2)}


def _timed(n: int, query: Callable[[], Any]) -> tuple[dict[str, float], int]:
    times: list[float] = []
    size = 0
    for _ in range(n):
        began = time.perf_counter()
        size = len(query())
        times.append(time.perf_counter() - began)
    return percentiles(times), size


def _reads(
    conn: psycopg.Connection[Any], units: list[str], cfg: BenchConfig, end: datetime
) -> dict[str, Any]:
    rng = random.Random(cfg.seed + 1)
    year = end - timedelta(days=cfg.days)
    month = end - timedelta(days=30)
    districts = [f"d{d}" for d in range(DISTRICTS)]
    out: dict[str, Any] = {}
    for name, query in (
        (
            "a_unit_year_days",
            lambda: read_rollup_rows(conn, "unit", rng.choice(units), "day", year, end),
        ),
        (
            "b_district_month_days",
            lambda: read_rollup_rows(conn, "district", rng.choice(districts), "day", month, end),
        ),
        (
            "b_district_year_days",
            lambda: read_rollup_rows(conn, "district", rng.choice(districts), "day", year, end),
        ),
        (
            "b2_district_year_added_at_read",
            lambda: conn.execute(_DISTRICT_AT_READ, (rng.choice(districts), year, end)).fetchall(),
        ),
    ):
        query()  # warm the cache: the reads are timed against a warm server
        ms, rows = _timed(cfg.queries, query)
        out[name] = {"ms": ms, "rows": rows}
    return out


_LEVELS = ("blue", "yellow", "orange", "red")


def _risk(
    conn: psycopg.Connection[Any],
    settings: Settings,
    units: list[str],
    cfg: BenchConfig,
    end: datetime,
) -> dict[str, Any]:
    """Score every unit once (timed), then a year of daily history, then the risk reads."""
    config = load_risk_config(settings.risk_model)
    began = time.perf_counter()
    outcomes = score_units(conn, config, None, end, trigger="bench")
    score_s = time.perf_counter() - began
    breakdown = outcomes[0].assessment.breakdown_json() if outcomes else []
    rng = random.Random(cfg.seed + 3)
    began = time.perf_counter()
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY risk_scores (unit_id, computed_at, as_of, score, level, score_level, forced_by,"
            " breakdown, config_version, trigger) FROM STDIN"
        ) as cp,
    ):
        for unit in units:
            base = rng.uniform(0, 45)
            for d in range(cfg.days, 0, -1):
                at = end - timedelta(days=d)
                score = max(0.0, min(100.0, base + rng.gauss(0, 6)))
                level = _LEVELS[sum(score >= c for c in (10, 25, 40))]
                cp.write_row(
                    [
                        unit,
                        at,
                        at,
                        round(score, 2),
                        level,
                        level,
                        "{}",
                        json.dumps(breakdown),
                        config.version,
                        "schedule",
                    ]
                )
    conn.execute("ANALYZE risk_scores")
    history_s = time.perf_counter() - began
    year = end - timedelta(days=cfg.days)
    qrng = random.Random(cfg.seed + 4)
    districts = [f"d{d}" for d in range(DISTRICTS)]

    def district_view() -> list[Any]:
        district = qrng.choice(districts)
        return [
            *risk_store.level_distribution(conn, district),
            *risk_store.top_units(conn, district, 20),
        ]

    reads: dict[str, Any] = {}
    for name, query in (
        ("c_district_risk_view", district_view),
        (
            "d_district_trend_30d",
            lambda: risk_store.level_trend(
                conn, qrng.choice(districts), end - timedelta(days=30), end
            ),
        ),
        (
            "e_unit_year_of_scores",
            lambda: risk_store.unit_history(conn, qrng.choice(units), year, end, 10_000),
        ),
    ):
        query()
        ms, rows = _timed(cfg.queries, query)
        reads[name] = {"ms": ms, "rows": rows}
    return {
        "units_scored": len(outcomes),
        "score_all_s": round(score_s, 2),
        "ms_per_unit": round(1000 * score_s / len(outcomes), 2) if outcomes else None,
        "history_rows": len(units) * cfg.days,
        "write_history_s": round(history_s, 2),
        "reads": reads,
    }


def _refresh(
    conn: psycopg.Connection[Any], settings: Settings, cfg: BenchConfig, units: list[str]
) -> dict[str, Any] | None:
    if not cfg.refresh_devices:
        return None
    devices = [f"{u}-W{k}" for k in (1, 2) for u in units][: cfg.refresh_devices]
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    rng = random.Random(cfg.seed + 2)
    began = time.perf_counter()
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY telemetry (device_id, seq, ts, received_at, pressure_kpa, level_m) FROM STDIN"
        ) as cp,
    ):
        for d in devices:
            for i in range(360):
                ts = hour + timedelta(seconds=10 * i)
                cp.write_row([d, i, ts, ts, rng.gauss(300.0, 15.0), None])
    insert_s = time.perf_counter() - began
    clock = (hour + timedelta(hours=2)).timestamp()
    rollups = Rollups(settings, clock=lambda: clock)
    rollups.load_limits(conn)
    cursor = RefreshCursor()
    rounds = []
    began = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        done, cursor = rollups.run_round(conn, cursor)
        rounds.append({"s": round(time.perf_counter() - t0, 3), **dataclasses.asdict(done)})
        if done.caught_up:
            break
    total = time.perf_counter() - began
    device_hours = rollups.stats.recomputed
    return {
        "devices": len(devices),
        "raw_rows": len(devices) * 360,
        "insert_s": round(insert_s, 2),
        "refresh_s": round(total, 3),
        "device_hours": device_hours,
        "ms_per_device_hour": round(1000 * total / device_hours, 2) if device_hours else None,
        "raw_rows_per_s": round(len(devices) * 360 / total) if total else None,
        "rollup_rows_written": rollups.stats.rows,
        "rounds": rounds,
    }


def run_rollup_bench(settings: Settings, cfg: BenchConfig) -> dict[str, Any]:
    """Run the benchmark (see the module docstring); the result document."""
    cfg.check()
    offset_h = day_offset_h(settings)
    with ExitStack() as stack:
        admin = settings.database_url or throwaway_server(stack)
        url = scratch_database(stack, admin, "fw_rollbench")
        bench_settings = settings.model_copy(update={"database_url": url})
        with psycopg.connect(url, autocommit=True) as conn:
            upgrade(conn)
            maintain(conn, bench_settings)
            units = _registry(conn, cfg.units)
            data = _write_year(conn, units, cfg, offset_h)
            reads = _reads(conn, units, cfg, datetime.fromisoformat(data["end"]))
            risk = _risk(conn, bench_settings, units, cfg, datetime.fromisoformat(data["end"]))
            reads.update(risk.pop("reads"))
            refresh = _refresh(conn, bench_settings, cfg, units)
            size = conn.execute("SELECT pg_total_relation_size('rollups')").fetchone()
    p95 = {k: reads[k]["ms"]["p95"] for k in reads}
    return {
        "benchmark": "rollups",
        "command": cfg.command(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "config": dataclasses.asdict(cfg),
        "data": data,
        "table_mb": round(int(size[0]) / 2**20, 1) if size else None,
        "reads": reads,
        "p95_ms": p95,
        "target_p95_ms": TARGET_P95_MS,
        "target_met": all(
            p95[k] <= TARGET_P95_MS
            for k in (
                "a_unit_year_days",
                "b_district_month_days",
                "b_district_year_days",
                "c_district_risk_view",
            )
        ),
        "risk": risk,
        "refresh": refresh,
    }


def format_result(r: dict[str, Any]) -> str:
    lines = [
        f"{r['data']['unit_day_rows']} unit-days, {r['data']['unit_hour_rows']} unit-hours, "
        f"{r['data']['region_rows']} region rows ({r['table_mb']} MB); written in "
        f"{r['data']['write_unit_rows_s']} s, regions added up in "
        f"{r['data']['add_up_regions_s']} s",
    ]
    for name, v in r["reads"].items():
        ms = v["ms"]
        lines.append(
            f"{name:<32} {v['rows']:>5} rows  p50 {ms['p50']:>7} ms  p95 {r['p95_ms'][name]:>7} ms"
        )
    k = r["risk"]
    lines.append(
        f"risk: {k['units_scored']} units scored from their year of rollups in "
        f"{k['score_all_s']} s ({k['ms_per_unit']} ms per unit); {k['history_rows']} history "
        f"rows written in {k['write_history_s']} s"
    )
    lines.append(
        f"target p95 <= {r['target_p95_ms']} ms for (a), (b), (c): "
        + ("met" if r["target_met"] else "MISSED")
    )
    f = r["refresh"]
    if f:
        lines.append(
            f"refresh: {f['raw_rows']} raw rows ({f['devices']} devices x 1 h) -> "
            f"{f['device_hours']} device-hours in {f['refresh_s']} s "
            f"({f['ms_per_device_hour']} ms per device-hour, {f['raw_rows_per_s']} raw rows/s)"
        )
    return "\n".join(lines)
