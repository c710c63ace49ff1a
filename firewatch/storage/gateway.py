"""The GB/T 26875.3 gateway's tables (migration 0019; issue 17): which registered panel
each GB/T address belongs to, and the duty checks (查岗) waiting to be sent and their
outcomes.

The registry writes ``devices.gbt_address`` / ``gbt_profile`` (``storage/devices.py``);
this module reads them for the gateway (:func:`gateway_directory`) and says who holds an
address (:func:`address_holder`, the registry's uniqueness check). A duty check is a row of
``duty_checks``: asked for (:func:`request_duty_check`, which wakes the gateway with
``NOTIFY firewatch_duty_checks`` at commit), read by the gateway
(:func:`pending_duty_checks`), then marked sent and closed with an outcome
(:func:`mark_duty_check`). Functions run in the caller's transaction unless they say they
run their own; with an autocommit connection each statement commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from firewatch.core.device_import import Conflict, NotFound
from firewatch.core.gateway_rows import DUTY_OUTCOMES, GatewayDevice, PendingDutyCheck
from firewatch.storage import channels

_DUTY = "id, device_id, requested_by, requested_at, sent_at, outcome, answered_at, closed_at"


def gateway_directory(conn: psycopg.Connection[Any]) -> dict[int, GatewayDevice]:
    """Every panel with a GB/T address, by the address as an integer (the frame's source
    address). An address held by a device in service maps to it; one held only by
    decommissioned panels maps to the one decommissioned last (``decommissioned``: the
    gateway refuses its frames, and can say why)."""
    rows = conn.execute(
        "SELECT DISTINCT ON (gbt_address) gbt_address, id, unit_id, gbt_profile,"
        " decommissioned_at IS NOT NULL"
        " FROM devices WHERE gbt_address IS NOT NULL"
        " ORDER BY gbt_address, decommissioned_at IS NOT NULL, decommissioned_at DESC"
    ).fetchall()
    return {
        int(str(address), 16): GatewayDevice(str(device), str(unit), str(profile), bool(gone))
        for address, device, unit, profile, gone in rows
    }


def address_holder(
    conn: psycopg.Connection[Any], address: str, *, other_than: str
) -> tuple[str, str, str] | None:
    """The device in service other than ``other_than`` that holds GB/T ``address`` (the
    stored form), as ``(id, unit_id, vendor)``, or None: the address is free."""
    row = conn.execute(
        "SELECT id, unit_id, vendor FROM devices WHERE gbt_address = %s AND id <> %s"
        " AND decommissioned_at IS NULL",
        (address, other_than),
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]), str(row[2]))


def request_duty_check(conn: psycopg.Connection[Any], device_id: str, requested_by: str) -> int:
    """Ask for a duty check of panel ``device_id`` on behalf of ``requested_by`` (a
    username, or ``'schedule'``); returns the new row's id. Runs its own transaction
    (a savepoint inside the caller's) and signals the gateway at commit.
    :class:`~firewatch.core.device_import.NotFound` for an unknown device;
    :class:`~firewatch.core.device_import.Conflict` for one without a GB/T address (no
    downlink to send it on) or decommissioned."""
    with conn.transaction():
        row = conn.execute(
            "SELECT gbt_address, decommissioned_at, decommissioned_by FROM devices"
            " WHERE id = %s FOR SHARE",
            (device_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no device {device_id!r}")
        address, gone_at, gone_by = row
        if gone_at is not None:
            raise Conflict(
                f"device {device_id!r} was decommissioned on {gone_at:%Y-%m-%d} by {gone_by}:"
                " it has no duty to check"
            )
        if address is None:
            raise Conflict(
                f"device {device_id!r} has no GB/T address, so there is no downlink to send a"
                " duty check on: only a panel connected through the GB/T 26875.3 gateway can"
                " be checked (set its gbt_address in the registry)"
            )
        found = conn.execute(
            "INSERT INTO duty_checks (device_id, requested_by) VALUES (%s, %s) RETURNING id",
            (device_id, requested_by),
        ).fetchone()
        assert found is not None
        conn.execute("SELECT pg_notify(%s, '')", (channels.DUTY_CHECKS,))
    return int(found[0])


def pending_duty_checks(conn: psycopg.Connection[Any], limit: int = 100) -> list[PendingDutyCheck]:
    """Duty checks asked for and neither sent nor closed, oldest first, at most
    ``limit``."""
    rows = conn.execute(
        "SELECT id, device_id, requested_by, requested_at FROM duty_checks"
        " WHERE sent_at IS NULL AND closed_at IS NULL ORDER BY requested_at, id LIMIT %s",
        (limit,),
    ).fetchall()
    return [PendingDutyCheck(int(i), str(d), str(by), at) for i, d, by, at in rows]


def mark_duty_check(
    conn: psycopg.Connection[Any],
    check_id: int,
    *,
    sent_at: datetime | None = None,
    outcome: str | None = None,
    answered_at: datetime | None = None,
) -> bool:
    """Record what became of duty check ``check_id``: what is given is set (None: left as
    it is). An ``outcome`` (:data:`~firewatch.core.gateway_rows.DUTY_OUTCOMES`) closes the
    check (``closed_at`` = now, unless it was closed already). Returns whether the row
    exists. ValueError for an unknown outcome."""
    if outcome is not None and outcome not in DUTY_OUTCOMES:
        raise ValueError(f"unknown duty-check outcome {outcome!r} ({', '.join(DUTY_OUTCOMES)})")
    cur = conn.execute(
        "UPDATE duty_checks SET sent_at = COALESCE(%(sent)s, sent_at),"
        " outcome = COALESCE(%(outcome)s, outcome),"
        " answered_at = COALESCE(%(answered)s, answered_at),"
        " closed_at = CASE WHEN %(outcome)s::text IS NULL THEN closed_at"
        " ELSE COALESCE(closed_at, now()) END"
        " WHERE id = %(id)s",
        {"id": check_id, "sent": sent_at, "outcome": outcome, "answered": answered_at},
    )
    return cur.rowcount == 1


def get_duty_check(conn: psycopg.Connection[Any], check_id: int) -> dict[str, Any] | None:
    """One duty check (the columns of :func:`list_duty_checks`), or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT {_DUTY} FROM duty_checks WHERE id = %s", (check_id,)).fetchone()


def list_duty_checks(
    conn: psycopg.Connection[Any], device_id: str, limit: int = 20
) -> list[dict[str, Any]]:
    """The device's latest duty checks, newest first, at most ``limit``: ``id, device_id,
    requested_by, requested_at, sent_at, outcome, answered_at, closed_at``."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_DUTY} FROM duty_checks WHERE device_id = %s"
            " ORDER BY requested_at DESC, id DESC LIMIT %s",
            (device_id, limit),
        ).fetchall()
