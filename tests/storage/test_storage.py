"""Migrations, partition maintenance, seed and stats on a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.core.settings import Settings
from firewatch.storage.maintenance import maintain
from firewatch.storage.migrate import current_flavour, load_migrations, upgrade
from firewatch.storage.seed import device_profile_rows, device_routes, load_seed, read_seed
from firewatch.storage.table_counts import collect
from tests.helpers import scalar


def test_upgrade_is_idempotent_and_records_the_flavour(
    db: psycopg.Connection[Any], flavour: str
) -> None:
    assert upgrade(db) == []  # the template was migrated already
    assert current_flavour(db) == flavour
    applied = scalar(db, "SELECT count(*) FROM schema_migrations")
    expected = {(m.version, m.flavour) for m in load_migrations() if m.flavour in (None, flavour)}
    assert applied == len(expected)


def test_every_timescale_migration_has_a_postgres_counterpart() -> None:
    migs = load_migrations()
    ts = {m.version for m in migs if m.flavour == "timescale"}
    pg = {m.version for m in migs if m.flavour == "postgres"}
    assert ts == pg


@pytest.mark.flavour("postgres")  # TimescaleDB: tests/storage/test_timescale.py
def test_partitions_cover_the_accepted_window_and_old_ones_are_dropped(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    today = datetime.now(UTC).date()
    names = {
        r[0]
        for r in db.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'telemetry'::regclass"
        ).fetchall()
    }
    for offset in (-7, 0, settings.partition_premake_days):
        day = today + timedelta(days=offset)
        assert f"telemetry_p{day:%Y%m%d}" in names
    # A partition far in the past is dropped once retention says so.
    old = today - timedelta(days=settings.telemetry_retention_days + 5)
    db.execute("SELECT firewatch_ensure_partition('telemetry'::regclass, %s)", (old,))
    result = maintain(db, settings)
    assert result.dropped >= 1
    assert scalar(db, "SELECT to_regclass(%s)", f"telemetry_p{old:%Y%m%d}") is None


@pytest.mark.flavour("postgres")  # TimescaleDB has no DEFAULT partition: any day has a chunk
def test_rows_in_the_default_partition_move_when_their_day_is_created(
    db: psycopg.Connection[Any],
) -> None:
    far = datetime.now(UTC) + timedelta(days=40)  # beyond premade partitions
    db.execute(
        "INSERT INTO telemetry (device_id, seq, ts, received_at, pressure_kpa)"
        " VALUES ('D-WD-001-W1', 1, %s, now(), 300)",
        (far,),
    )
    assert scalar(db, "SELECT tableoid::regclass::text FROM telemetry") == "telemetry_default"
    assert scalar(db, "SELECT firewatch_ensure_partition('telemetry'::regclass, %s)", far.date())
    assert (
        scalar(db, "SELECT tableoid::regclass::text FROM telemetry") == f"telemetry_p{far:%Y%m%d}"
    )
    assert scalar(db, "SELECT count(*) FROM telemetry_default") == 0


def test_record_retention_below_a_year_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 365 days"):
        Settings(record_retention_days=200)


def test_seed_is_idempotent_and_stats_count_it(db: psycopg.Connection[Any]) -> None:
    city = read_seed()
    counts = load_seed(db, city)
    assert counts == {"districts": 6, "streets": 7, "units": 8, "devices": 19}
    stats = collect(db)
    assert stats["devices"]["rows"] == 19
    assert stats["regions"]["rows"] == 1 + 6 + 7
    assert stats["telemetry"] == {"rows": 0, "newest_ts": None, "newest_received_at": None}
    assert stats["dead_letters"]["by_reason"] == {}


def test_the_registry_reads_what_the_seed_loaded(db: psycopg.Connection[Any]) -> None:
    city = read_seed()
    devices = {d.id: (u.id, d.kind.value) for u in city.units for d in u.devices}
    assert {r[0]: (r[1], r[2]) for r in device_routes(db)} == devices
    some = sorted(devices)[:2]
    assert sorted(r[0] for r in device_routes(db, {*some, "D-NOT-REGISTERED"})) == some
    profiles = device_profile_rows(db)
    assert {p.device_id for p in profiles} == set(devices)
    assert all(p.thresholds == {} and p.building_class for p in profiles)
