"""Device broker credentials and the registry's audit, in PostgreSQL (migration 0017;
docs/adr/0012-device-credentials.md).

This module owns the SQL of ``device_credentials`` and ``registry_events``. Functions run in
the caller's transaction. A password never reaches this module: only the broker's own hash
of it (:class:`firewatch.core.credentials.BrokerHash`). Every change that the broker must
apply without a password (a revocation, a decommissioning, a device moved to another unit)
sends ``NOTIFY firewatch_broker`` in the same transaction (:func:`signal_broker`), which the
broker sync applies within seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from firewatch.core.credentials import BrokerHash, DeviceLogin
from firewatch.storage import channels


def audit(
    conn: psycopg.Connection[Any],
    *,
    actor: str,
    subject: str,
    subject_id: str,
    event: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one ``registry_events`` row (``subject``: vendor, installation, unit, device,
    credential)."""
    conn.execute(
        "INSERT INTO registry_events (actor, subject, subject_id, event, detail)"
        " VALUES (%s, %s, %s, %s, %s)",
        (actor, subject, subject_id, event, Jsonb(detail or {})),
    )


def signal_broker(conn: psycopg.Connection[Any]) -> None:
    """Wake the broker sync at commit (nothing for a rollback)."""
    conn.execute("SELECT pg_notify(%s, '')", (channels.BROKER,))


def lock_broker(conn: psycopg.Connection[Any]) -> None:
    """Take the broker-accounts lock until the transaction ends: a credential being issued
    (its hash not yet committed, its account already at the broker) and a broker sync round
    (which would take that account for one nobody registered) never overlap."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('firewatch_broker_accounts'))")


def lock_device(
    conn: psycopg.Connection[Any], device_id: str
) -> tuple[str, datetime | None] | None:
    """Lock the device's row for this transaction; its ``(unit_id, decommissioned_at)``, or
    None if there is no such device. Serialises credential changes of one device."""
    row = conn.execute(
        "SELECT unit_id, decommissioned_at FROM devices WHERE id = %s FOR UPDATE", (device_id,)
    ).fetchone()
    return None if row is None else (str(row[0]), row[1])


def store_hash(conn: psycopg.Connection[Any], device_id: str, pw: BrokerHash, *, actor: str) -> int:
    """Make ``pw`` the device's current credential (a new one, or a rotation that also
    lifts a revocation); returns its version. Audited."""
    version = conn.execute(
        """
        INSERT INTO device_credentials AS c
               (device_id, password_hash, salt, iterations, issued_by)
        VALUES (%(d)s, %(h)s, %(s)s, %(i)s, %(a)s)
        ON CONFLICT (device_id) DO UPDATE
        SET password_hash = EXCLUDED.password_hash, salt = EXCLUDED.salt,
            iterations = EXCLUDED.iterations, issued_by = EXCLUDED.issued_by,
            issued_at = now(), version = c.version + 1, revoked_at = NULL, revoked_by = NULL
        RETURNING version
        """,
        {"d": device_id, "h": pw.password, "s": pw.salt, "i": pw.iterations, "a": actor},
    ).fetchone()
    assert version is not None
    audit(
        conn,
        actor=actor,
        subject="credential",
        subject_id=device_id,
        event="issued" if version[0] == 1 else "rotated",
        detail={"version": version[0]},
    )
    return int(version[0])


def revoke(conn: psycopg.Connection[Any], device_id: str, *, actor: str) -> bool:
    """Revoke the device's credential; False if it had none in force. Signals the broker
    sync and is audited."""
    row = conn.execute(
        "UPDATE device_credentials SET revoked_at = now(), revoked_by = %s"
        " WHERE device_id = %s AND revoked_at IS NULL RETURNING version",
        (actor, device_id),
    ).fetchone()
    if row is None:
        return False
    audit(
        conn,
        actor=actor,
        subject="credential",
        subject_id=device_id,
        event="revoked",
        detail={"version": row[0]},
    )
    signal_broker(conn)
    return True


def credential_of(conn: psycopg.Connection[Any], device_id: str) -> dict[str, Any] | None:
    """The device's credential record without its hash (version, issued, revoked), or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT device_id, version, issued_at, issued_by, revoked_at, revoked_by"
            " FROM device_credentials WHERE device_id = %s",
            (device_id,),
        ).fetchone()


def active_logins(conn: psycopg.Connection[Any]) -> list[DeviceLogin]:
    """Every device that may log in now (credential not revoked, device in service), with
    its unit and hash: what the broker must hold."""
    rows = conn.execute(
        """
        SELECT d.id, d.unit_id, c.password_hash, c.salt, c.iterations
        FROM device_credentials c JOIN devices d ON d.id = c.device_id
        WHERE c.revoked_at IS NULL AND d.decommissioned_at IS NULL
        ORDER BY d.id
        """
    ).fetchall()
    return [DeviceLogin(r[0], r[1], BrokerHash(r[2], r[3], int(r[4]))) for r in rows]


def hash_of(conn: psycopg.Connection[Any], device_id: str) -> BrokerHash | None:
    """The hash of the device's credential in force, or None (none, or revoked)."""
    row = conn.execute(
        "SELECT password_hash, salt, iterations FROM device_credentials"
        " WHERE device_id = %s AND revoked_at IS NULL",
        (device_id,),
    ).fetchone()
    return None if row is None else BrokerHash(row[0], row[1], int(row[2]))
