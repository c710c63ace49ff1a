"""The NOTIFY channels: every name a writer signals and a reader LISTENs on, in one place.

A writer sends ``NOTIFY`` in the transaction that writes the rows, so PostgreSQL delivers it
at commit and never for a rollback; a reader that LISTENs reads its feed when woken and
polls anyway (a notification is a hint that something committed, never the data itself).
These are PostgreSQL channel names, not the outbox's delivery channels
(``storage/outbox.py``: ``command_center``, ``supervisor``, ``notify``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

INGEST = "firewatch_ingest"
"""Ingest's writer, in every batch transaction; analytics listens (the committed-row feed)."""

ANOMALIES = "firewatch_anomalies"
"""``storage/anomalies.upsert_anomalies`` when it changed a row; alerting listens."""

ALERTS = "firewatch_alerts"
"""Every alert change (``alert_events``); the API's live stream listens."""

OUTBOX = "firewatch_outbox"
"""Every new ``outbox`` row; the webhook dispatcher listens."""

BROKER = "firewatch_broker"
"""Every change of who may log in to the broker or where a device may publish (a credential
revoked, a device decommissioned or moved to another unit: ``storage/credentials.py``); the
broker sync (``firewatch/registry/sync.py``) listens and applies it over ``$CONTROL``."""

DUTY_CHECKS = "firewatch_duty_checks"
"""Every new ``duty_checks`` row (``storage/gateway.request_duty_check``: a duty check asked
for from the console or the API); the GB/T gateway listens and sends it."""

ALL = (INGEST, ANOMALIES, ALERTS, OUTBOX, BROKER, DUTY_CHECKS)


def listen(conn: psycopg.Connection[Any], channels: Iterable[str]) -> None:
    """Subscribe ``conn`` to ``channels`` (idempotent). Needs autocommit, because LISTEN
    inside a transaction only takes effect at its commit (RuntimeError otherwise); a name
    not in :data:`ALL` is refused (ValueError): it would be a channel nobody signals."""
    if not conn.autocommit:
        raise RuntimeError("listening needs an autocommit connection")
    for channel in channels:
        if channel not in ALL:
            raise ValueError(f"not a Firewatch NOTIFY channel: {channel!r}")
        conn.execute(f"LISTEN {channel}")
