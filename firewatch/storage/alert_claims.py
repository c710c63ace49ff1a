"""Alert claims in PostgreSQL (``alerts.claimed_by``, ``claimed_at``; migration 0014).

A console seat claims an alert so that two seats never work the same one (issue 12). The
rules, all decided under the alert's row lock so that two seats racing for one alert get one
claim and one 409:

* **claim** an active alert that is unclaimed or already yours (idempotent: no new audit
  row). An alert another person holds is refused (:class:`ClaimedByOther`) unless ``force``
  (a shift leader taking it over: audited as ``take_over`` with the previous holder).
* **release** your own claim; another's only with ``force``. Releasing an unclaimed alert
  changes nothing.
* An alert that is no longer active (resolved, closed, merged…) cannot be claimed
  (:class:`NotClaimable`): there is nothing left to work on.

Every change writes, in the same transaction, its audit row (``alert_transitions``: the
state is unchanged, the action is ``claim``, ``take_over`` or ``release``) and its live-stream
event (the console's other seats see it at once). The operator actions themselves refuse an
alert someone else holds (``storage/alerts.py``, :class:`ClaimedByOther`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from firewatch.core.alerts import ACTIVE_STATES, Alert, ClaimedByOther
from firewatch.storage.alerts import AlertNotFound, audit_transition, stream_event

CLAIM = "claim"
TAKE_OVER = "take_over"
RELEASE = "release"


class NotClaimable(ValueError):
    """The alert is no longer active: nothing to claim."""


def _locked(cur: psycopg.Cursor[Any], alert_id: int) -> Alert:
    row = cur.execute("SELECT * FROM alerts WHERE id = %s FOR UPDATE", (alert_id,)).fetchone()
    if row is None:
        raise AlertNotFound(f"no alert {alert_id}")
    return Alert.of(row)


def _set_claim(
    cur: psycopg.Cursor[Any], alert_id: int, holder: str | None, at: datetime | None
) -> Alert:
    row = cur.execute(
        "UPDATE alerts SET claimed_by = %s, claimed_at = %s, updated_at = now()"
        " WHERE id = %s RETURNING *",
        (holder, at, alert_id),
    ).fetchone()
    assert row is not None
    return Alert.of(row)


def claim(
    conn: psycopg.Connection[Any],
    alert_id: int,
    *,
    actor: str,
    force: bool = False,
    note: str = "",
    now: datetime | None = None,
) -> Alert:
    """``actor`` holds ``alert_id`` from now on (rules in the module docstring). Raises
    :class:`AlertNotFound`, :class:`NotClaimable`, :class:`ClaimedByOther`."""
    at = now or datetime.now(UTC)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        before = _locked(cur, alert_id)
        if before.state not in ACTIVE_STATES:
            raise NotClaimable(f"alert {alert_id} is {before.state.value}: nothing to claim")
        if before.claimed_by == actor:
            return before
        previous = before.claimed_by
        if previous is not None and not force:
            raise ClaimedByOther(alert_id, previous, before.claimed_at)
        action = CLAIM if previous is None else TAKE_OVER
        why = note or (f"taken over from {previous}" if previous else "")
        alert = _set_claim(cur, alert_id, actor, at)
        state = alert.state.value
        audit_transition(cur, alert_id, action, state, state, actor, why, at)
        stream_event(cur, alert, CLAIM, {"actor": actor, "note": why, "previous": previous})
    return alert


def release(
    conn: psycopg.Connection[Any],
    alert_id: int,
    *,
    actor: str,
    force: bool = False,
    note: str = "",
    now: datetime | None = None,
) -> Alert:
    """Nobody holds ``alert_id`` any more (rules in the module docstring). Raises
    :class:`AlertNotFound`, :class:`ClaimedByOther`."""
    at = now or datetime.now(UTC)
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        before = _locked(cur, alert_id)
        holder = before.claimed_by
        if holder is None:
            return before
        if holder != actor and not force:
            raise ClaimedByOther(alert_id, holder, before.claimed_at)
        why = note or ("" if holder == actor else f"released for {holder}")
        alert = _set_claim(cur, alert_id, None, None)
        state = alert.state.value
        audit_transition(cur, alert_id, RELEASE, state, state, actor, why, at)
        stream_event(cur, alert, RELEASE, {"actor": actor, "note": why, "previous": holder})
    return alert
