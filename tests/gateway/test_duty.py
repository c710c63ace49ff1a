"""Duty checks (查岗) through the real gateway: sent as type-91 control frames, on schedule
or on request; answered, missed and late ones published as ``duty_check`` events and
recorded on their ``duty_checks`` rows."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg

from firewatch.core.contract import PanelEvent
from firewatch.core.settings import Settings
from firewatch.storage.gateway import get_duty_check, request_duty_check
from tests.builders.city import PANEL
from tests.gateway.conftest import (
    ADDRESS,
    CENTER,
    CONFIRM,
    CONTROL,
    Device,
    GatewayThread,
    Subscriber,
    build_frame,
    duty_answer_adu,
    system_status_adu,
    wait_until,
)


def _duty_frame(dev: Device) -> dict[str, Any]:
    """The next type-91 control frame; the device confirms it as a UITD does."""
    while True:
        f = dev.expect(CONTROL, timeout=20)
        if f["adu"][:2] == bytes([91, 1]):
            break
    assert f["source"] == CENTER
    assert f["destination"] == ADDRESS
    dev.send(build_frame(f["serial"], b"", command=CONFIRM))
    return f


def _duty_events(sub: Subscriber) -> list[dict[str, Any]]:
    return [p for _t, p in sub.messages if p["type"] == "duty_check"]


def _row(db: psycopg.Connection[Any], check_id: int) -> dict[str, Any]:
    row = get_duty_check(db, check_id)
    assert row is not None
    return row


def _wait_outcome(db: psycopg.Connection[Any], check_id: int, outcome: str) -> dict[str, Any]:
    wait_until(lambda: _row(db, check_id)["outcome"] == outcome, 20, f"outcome {outcome}")
    return _row(db, check_id)


def test_a_scheduled_check_answered_in_time(
    gw_settings: Settings, gbt_db: psycopg.Connection[Any], subscriber: Subscriber
) -> None:
    settings = gw_settings.model_copy(update={"gateway_duty_answer_timeout_s": 90.0})
    with (
        GatewayThread(settings, duty_fraction=lambda _d: 0.0) as gw,  # due at connect
        Device(gw.port) as dev,
    ):
        dev.send(build_frame(1, system_status_adu(1)))
        dev.expect(CONFIRM, 1)
        check = _duty_frame(dev)
        assert check["adu"] == bytes([91, 1, 2])  # 90 s -> 2 whole minutes
        dev.send(build_frame(2, duty_answer_adu()))
        dev.expect(CONFIRM, 2)
        subscriber.wait(lambda _m: len(_duty_events(subscriber)) == 1, what="duty_check event")
        assert gw.stats.duty_outcomes["answered"] == 1
    [event] = _duty_events(subscriber)
    PanelEvent.model_validate_json(orjson.dumps(event))
    assert event["status"] == 1  # answered, not late
    detail = event["detail"]
    row = _row(gbt_db, detail["request_id"])
    assert row["requested_by"] == "schedule"
    assert row["device_id"] == PANEL
    assert row["outcome"] == "answered"
    assert row["sent_at"]
    assert row["answered_at"]
    assert detail["requested_by"] == "schedule"
    assert detail["timeout_s"] == 90.0
    assert detail["asked_at"].endswith("Z")
    assert detail["answered_at"].endswith("Z")
    # The answer itself is published too, as the UITD's operation record.
    ops = [p for _t, p in subscriber.messages if p["type"] == "transmission_operation"]
    assert [p["status"] for p in ops] == [1 << 5]


def test_a_requested_check_unanswered_is_missed_then_late(
    gw_settings: Settings, gbt_db: psycopg.Connection[Any], subscriber: Subscriber
) -> None:
    settings = gw_settings.model_copy(update={"gateway_duty_answer_timeout_s": 1.0})
    with (
        GatewayThread(settings, duty_fraction=lambda _d: 0.99) as gw,  # no scheduled one
        Device(gw.port) as dev,
    ):
        dev.send(build_frame(1, system_status_adu(1)))
        dev.expect(CONFIRM, 1)
        check_id = request_duty_check(gbt_db, PANEL, "t-operator")
        assert _duty_frame(dev)["adu"] == bytes([91, 1, 1])  # at least one minute
        row = _wait_outcome(gbt_db, check_id, "missed")
        assert row["sent_at"] is not None
        assert row["answered_at"] is None
        subscriber.wait(lambda _m: len(_duty_events(subscriber)) == 1, what="missed event")
        [missed] = _duty_events(subscriber)
        assert missed["status"] == 0
        assert missed["detail"]["request_id"] == check_id
        assert missed["detail"]["requested_by"] == "t-operator"
        assert missed["detail"]["answered_at"] is None
        # Someone answers after all: the check becomes late (answered, bit 1).
        dev.send(build_frame(2, duty_answer_adu()))
        dev.expect(CONFIRM, 2)
        row = _wait_outcome(gbt_db, check_id, "late")
        assert row["answered_at"] is not None
        subscriber.wait(lambda _m: len(_duty_events(subscriber)) == 2, what="late event")
        late = _duty_events(subscriber)[1]
        assert late["status"] == 0b11
        assert late["detail"]["request_id"] == check_id
        assert gw.stats.duty_outcomes["missed"] == 1
        assert gw.stats.duty_outcomes["late"] == 1


def test_a_check_of_a_device_without_a_connection_is_not_connected(
    gateway: GatewayThread, gbt_db: psycopg.Connection[Any]
) -> None:
    check_id = request_duty_check(gbt_db, PANEL, "t-operator")
    row = _wait_outcome(gbt_db, check_id, "not_connected")
    assert row["sent_at"] is None
    assert row["closed_at"] is not None
    assert gateway.stats.duty_outcomes["not_connected"] == 1


def test_checks_repeat_every_cycle_while_connected(
    gw_settings: Settings, gbt_db: psycopg.Connection[Any], subscriber: Subscriber
) -> None:
    settings = gw_settings.model_copy(
        update={"gateway_duty_check_every_s": 0.5, "gateway_duty_answer_timeout_s": 30.0}
    )
    with GatewayThread(settings, duty_fraction=lambda _d: 0.0) as gw, Device(gw.port) as dev:
        dev.send(build_frame(1, system_status_adu(1)))
        dev.expect(CONFIRM, 1)
        serials = {_duty_frame(dev)["serial"] for _ in range(3)}
        assert len(serials) == 3

        def sent() -> int:
            row = gbt_db.execute(
                "SELECT count(*) FROM duty_checks WHERE device_id = %s"
                " AND requested_by = 'schedule' AND sent_at IS NOT NULL",
                (PANEL,),
            ).fetchone()
            assert row is not None
            return int(row[0])

        wait_until(lambda: sent() >= 3, 20, "three scheduled checks recorded as sent")
