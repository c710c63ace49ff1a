"""The vendor tools' reads (firewatch/storage/conformance.py): one device's messages and dead
letters in a window of receive time, and the dead-letter list with the device parsed from
the topic, for everyone or one vendor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from firewatch.core.domain import PanelEventType
from firewatch.core.rows import Reason, Row, StatusRow, TelemetryRow
from firewatch.storage import conformance as store
from tests.builders import city
from tests.builders.rows import event, status, water_reading
from tests.builders.traffic import ROOT, letter, store_batch

DAY = timedelta(days=1)
BOUNDS: dict[str, Any] = {
    "topic_root": ROOT,
    "max_backlog": timedelta(days=7),
    "max_ahead": timedelta(seconds=300),
}


def received(row: TelemetryRow | StatusRow, rx: datetime) -> Any:
    return row._replace(received_at=rx)


def test_one_devices_traffic_in_a_window_of_receive_time(db: psycopg.Connection[Any]) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    since, until = now - timedelta(minutes=10), now
    rows: list[Row] = [water_reading(s, now - timedelta(minutes=9 - s)) for s in range(1, 6)]
    rows.append(water_reading(99, now - timedelta(minutes=20)))  # before the window
    rows.append(water_reading(1, now - timedelta(minutes=5), dev=city.WATER_2))  # not ours
    # a late upload: measured yesterday, received now (in the window)
    rows.append(received(water_reading(50, now - DAY), now - timedelta(minutes=1)))
    # the last will of a connection opened ten days ago: older than the backlog limit
    rows.append(
        received(status(city.WATER, now - 10 * DAY, "offline", seq=0), now - timedelta(seconds=60))
    )
    rows.append(status(city.WATER, now - timedelta(minutes=3), "online", seq=6))
    store_batch(
        db,
        rows,
        [
            letter(city.WATER, now - timedelta(minutes=2)),
            letter(city.WATER, now - timedelta(minutes=2), Reason.TOPIC_MISMATCH, unit="U-X"),
            letter(city.WATER, now - timedelta(minutes=30)),  # before the window
            letter(city.WATER_2, now - timedelta(minutes=2)),
            # one level too many: not the device's
            letter(city.WATER, now, topic=f"{ROOT}/{city.UNIT}/{city.WATER}/telemetry/x"),
        ],
    )

    seen = store.traffic(db, city.WATER, since, until, **BOUNDS)
    assert not seen.truncated
    got = sorted((m.channel, m.seq) for m in seen.messages)
    assert got == [("status", 0), ("status", 6)] + [("telemetry", s) for s in (1, 2, 3, 4, 5, 50)]
    assert sorted(d.reason for d in seen.dead_letters) == ["not_json", "topic_mismatch"]
    assert seen.dead_letters[0].payload == b"\xff\xfe"
    assert store.traffic_counts(db, city.WATER, since, until, **BOUNDS) == (8, 2)

    capped = store.traffic(db, city.WATER, since, until, cap=3, **BOUNDS)
    assert capped.truncated
    assert [m.seq for m in capped.messages if m.channel == "telemetry"] == [1, 2, 3]


def test_a_device_id_with_a_like_wildcard_is_matched_literally(
    db: psycopg.Connection[Any],
) -> None:
    now = datetime.now(UTC)
    store_batch(db, dead=[letter("D_1", now), letter("DX1", now), letter("D%1", now)])
    window = (now - timedelta(minutes=1), now + timedelta(minutes=1))
    seen = store.traffic(db, "D_1", *window, **BOUNDS)
    assert [d.topic for d in seen.dead_letters] == [f"{ROOT}/{city.UNIT}/D_1/telemetry"]
    assert store.like_escape("a_b%c\\") == "a\\_b\\%c\\\\"


def test_the_list_parses_the_device_from_the_topic_and_scopes_it_to_a_vendor(
    db: psycopg.Connection[Any],
) -> None:
    now = datetime.now(UTC)
    store_batch(
        db,
        [event(city.PANEL, now, PanelEventType.SYSTEM_STATUS, 1)],
        [
            letter(city.WATER, now - timedelta(minutes=3), payload=b'{"seq": 1, "ts": "x"}'),
            letter(city.WATER_2, now - timedelta(minutes=2), Reason.OUT_OF_RANGE),
            letter(city.SHED, now - timedelta(minutes=1)),  # volt's
            letter("D-NOBODY", now, Reason.UNKNOWN_DEVICE),
            letter("x", now, Reason.BAD_TOPIC, topic=f"{ROOT}/only-two/levels"),
        ],
    )
    everything = store.dead_letters(db, topic_root=ROOT)
    assert [d.device_id for d in everything] == [
        None,
        "D-NOBODY",
        city.SHED,
        city.WATER_2,
        city.WATER,
    ]  # newest first; the bad topic names no device
    water = everything[-1]
    assert (water.unit_id, water.channel, water.vendor) == (city.UNIT, "telemetry", "acme")
    assert water.payload == b'{"seq": 1, "ts": "x"}'
    assert water.payload_size == len(water.payload)
    assert len(water.payload_sha256) == 64
    assert everything[1].vendor is None  # nobody registered it

    acme = store.dead_letters(db, topic_root=ROOT, vendor="acme")
    assert [d.device_id for d in acme] == [city.WATER_2, city.WATER]
    assert [d.device_id for d in store.dead_letters(db, topic_root=ROOT, vendor="volt")] == [
        city.SHED
    ]
    one = store.dead_letters(db, topic_root=ROOT, vendor="acme", device_id=city.WATER)
    assert [d.device_id for d in one] == [city.WATER]
    assert store.dead_letters(db, topic_root=ROOT, vendor="acme", device_id=city.SHED) == []
    by_reason = store.dead_letters(db, topic_root=ROOT, reason="out_of_range")
    assert [d.device_id for d in by_reason] == [city.WATER_2]
    recent = store.dead_letters(db, topic_root=ROOT, since=now - timedelta(seconds=90))
    assert [d.device_id for d in recent] == [None, "D-NOBODY", city.SHED]
    assert len(store.dead_letters(db, topic_root=ROOT, limit=2)) == 2
    cut = store.dead_letters(db, topic_root=ROOT, device_id=city.WATER, payload_cap=4)
    assert cut[0].payload == b'{"se'
    assert cut[0].payload_size == 21


def test_the_registered_device_with_its_decommissioning(db: psycopg.Connection[Any]) -> None:
    dev = store.device(db, city.SHED)
    assert dev is not None
    assert (dev.unit_id, dev.kind, dev.vendor, dev.decommissioned_at) == (
        city.UNIT,
        "ebike_shed",
        "volt",
        None,
    )
    db.execute("UPDATE devices SET decommissioned_at = now() WHERE id = %s", (city.SHED,))
    again = store.device(db, city.SHED)
    assert again is not None
    assert again.decommissioned_at is not None
    assert store.device(db, "D-NOBODY") is None
