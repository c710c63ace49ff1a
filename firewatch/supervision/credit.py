"""Unit credit, applied: the rules of ``core/credit.py`` over the stored facts, the
confirmed-fire rule, and a supervisor's manual decision (docs/supervision.md, "Credit").
Every change goes through ``storage/credit.change_credit`` (event, status, notifications
in one transaction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from firewatch.core.credit import (
    SYSTEM,
    CreditChange,
    CreditRules,
    CreditStatus,
    decide_credit,
    fire_with_known_hazard,
)
from firewatch.core.settings import Settings
from firewatch.core.supervision import Conflict, SupervisionError
from firewatch.storage import credit as store
from firewatch.storage.hazards import hazard_facts
from firewatch.storage.regions import unit_exists
from firewatch.storage.supervision_feed import AlertDecision, device_kind


def credit_rules(settings: Settings) -> CreditRules:
    return CreditRules(
        overdue_days=settings.supervision_credit_overdue_days,
        repeat_count=settings.supervision_credit_repeat_count,
        repeat_days=settings.supervision_credit_repeat_days,
        clean_days=dict(settings.supervision_credit_clean_days),
    )


def evaluate_credit(
    conn: psycopg.Connection[Any], settings: Settings, now: datetime
) -> list[CreditChange]:
    """Apply the credit rules to every unit they could concern, as of ``now``; the changes
    made. One transaction per change, so one unit's failure does not undo the others'."""
    rules = credit_rules(settings)
    made: list[CreditChange] = []
    for facts in store.credit_facts(conn):
        change = decide_credit(facts, rules, now)
        if change is None:
            continue
        try:
            store.change_credit(
                conn,
                change.unit_id,
                change.to_status,
                rule=change.rule,
                reason=change.reason,
                actor=SYSTEM,
                at=change.at,
                hazard_id=change.hazard_id,
                inspection_id=change.inspection_id,
            )
        except Conflict:  # another worker made the same change meanwhile
            continue
        made.append(change)
    return made


def on_confirmed_fire(
    conn: psycopg.Connection[Any], settings: Settings, decision: AlertDecision
) -> CreditChange | None:
    """A fire confirmed in a unit with an open hazard of a related category (by the fire's
    device kind, ``supervision_fire_related_categories``) blacklists the unit."""
    if not unit_exists(conn, decision.unit_id):
        return None
    related = settings.supervision_fire_related_categories
    kind = device_kind(conn, decision.device_id)
    categories = related.get(kind or "", related.get("default", []))
    hazards = hazard_facts(conn, [decision.unit_id]).get(decision.unit_id, [])
    known = fire_with_known_hazard(hazards, decision.at, categories)
    if known is None:
        return None
    current = store.get_credit(conn, decision.unit_id)
    if current.status is CreditStatus.BLACKLISTED:
        return None
    change = CreditChange(
        decision.unit_id,
        CreditStatus.BLACKLISTED,
        "fire_with_hazard",
        f"fire confirmed (alert {decision.alert_id}) while hazard {known.id} "
        f"({known.category}) was open",
        decision.at,
        hazard_id=known.id,
    )
    store.change_credit(
        conn,
        change.unit_id,
        change.to_status,
        rule=change.rule,
        reason=change.reason,
        actor=SYSTEM,
        at=change.at,
        hazard_id=known.id,
        alert_id=decision.alert_id,
    )
    return change


def set_credit(
    conn: psycopg.Connection[Any],
    unit_id: str,
    status: str,
    *,
    reason: str,
    actor: str,
    at: datetime,
) -> store.UnitCredit:
    """A supervisor's decision (``rule`` = ``manual``); needs a reason."""
    try:
        to = CreditStatus(status)
    except ValueError:
        known = ", ".join(s.value for s in CreditStatus)
        raise SupervisionError(f"unknown credit status {status!r}; one of {known}") from None
    if not reason.strip():
        raise SupervisionError("a credit decision needs a reason")
    return store.change_credit(conn, unit_id, to, rule="manual", reason=reason, actor=actor, at=at)
