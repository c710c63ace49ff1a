"""Escalation that ends at a person: what each level of the escalation policy
(``core/escalation.py``) notifies, and the tick that applies it (docs/escalation.md).

Every ``alert_tick_s`` the alerting service calls :func:`escalate`, which in **one
transaction**:

1. selects and locks the open alerts whose next level is due
   (``storage/alert_checks.py``: ``overdue_alerts``, the set-based
   :func:`firewatch.alerting.decide.escalation_due`);
2. gathers the facts once: who is on duty now (the roster, ``storage/roster.py``), each
   unit's name and responsible person, and how many person notifications each unit's
   escalations sent within ``escalation_rate_window_s`` (under a per-unit advisory lock);
3. plans each due alert's levels with the pure :func:`plan_levels`;
4. writes each level reached: the alert's ``escalate`` (level, audit row with the plan's
   note, stream event; ``storage/alerts.py``) and the level's ``alert_escalations`` row
   with its outbox rows (``storage/escalations.py``).

**Planning a level** (:func:`plan_levels`). The level's audience is resolved: the on-duty
operators or shift leaders (active people of that role whose shift covers now), the unit's
responsible person (``units.contacts.responsible``), or the supervisor's webhook. A person
without the level's address (no e-mail address for ``email``, no phone for ``sms`` and
``voice``) cannot be reached and is named in the note. When **nobody** can be reached the
level is recorded as ``skipped`` with the reason ("nobody on duty") and the **next level
follows at once**, in the same tick, so that no level is silently passed over and no
alert waits a whole timeout for a level that cannot notify anyone. The supervisor's webhook
is always reachable (its rows wait for a URL if none is configured).

**The rate limit**: at most ``escalation_rate_limit`` person notifications per unit within
``escalation_rate_window_s``. Beyond it a level's remaining recipients are not sent but
written as ``suppressed`` outbox rows whose ``last_error`` says "rate limited …", and
counted (``alert_escalations.suppressed``; the dispatcher's ``firewatch_outbox_suppressed``
gauge); a level whose every recipient was held back is ``rate_limited``, and the next
level follows after its own timeout as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from firewatch.alerting import decide
from firewatch.alerting.channel import SETTING_OF
from firewatch.core.alerts import Alert
from firewatch.core.escalation import (
    Audience,
    Contact,
    EscalationLevel,
    EscalationPolicy,
    Medium,
    load_policy,
)
from firewatch.core.people import Role
from firewatch.core.settings import Settings
from firewatch.storage import alerts as store
from firewatch.storage.alert_checks import overdue_alerts
from firewatch.storage.escalations import (
    Notification,
    lock_units,
    notified_since,
    record_level,
    unit_name_and_contact,
)
from firewatch.storage.outbox import SUPERVISOR
from firewatch.storage.roster import on_duty

log = logging.getLogger(__name__)

#: SMS and voice texts are cut to this many characters.
TEXT_CHARS = 480
_ADDRESS = {
    Medium.EMAIL: "e-mail address",
    Medium.SMS: "phone number",
    Medium.VOICE: "phone number",
}


@dataclass(frozen=True)
class LevelPlan:
    """What one level of one alert does: ``outcome`` is ``notified`` (someone was sent a
    notification; the supervisor's webhook counts), ``rate_limited`` (everyone reachable
    was held back) or ``skipped`` (nobody could be reached: the next level follows at
    once). ``unreachable``: people of the audience without the level's address."""

    level: int
    of: int  # the ladder's length (with the cap)
    step: EscalationLevel
    outcome: str
    send: tuple[Contact, ...]
    suppressed: tuple[Contact, ...]
    unreachable: tuple[Contact, ...]
    note: str

    def detail(self) -> dict[str, Any]:
        """The ``alert_escalations.detail`` document: who, by key and name."""
        return {
            "notified": [c.to_json() for c in self.send],
            "suppressed": [c.to_json() for c in self.suppressed],
            "unreachable": [c.to_json() for c in self.unreachable],
        }


@dataclass(frozen=True)
class Reached:
    """A level an alert reached in a tick (what :func:`escalate` returns)."""

    alert_id: int
    unit_id: str
    plan: LevelPlan


def unit_contact(unit_id: str, responsible: Mapping[str, Any] | None) -> Contact | None:
    """The unit's responsible person (``units.contacts.responsible``) as a contact."""
    if not responsible:
        return None

    def text(key: str) -> str | None:
        value = responsible.get(key)
        if value is None:
            return None
        return str(value).strip() or None

    return Contact(
        key=f"unit:{unit_id}:responsible",
        name=text("name") or "responsible person",
        role="responsible",
        email=text("email"),
        phone=text("phone"),
    )


def audience_of(
    step: EscalationLevel, duty: Mapping[Role, Sequence[Contact]], unit: Contact | None
) -> list[Contact]:
    """Who ``step``'s audience is now (empty for the supervisor, reached by webhook)."""
    if step.audience is Audience.ON_DUTY_OPERATORS:
        return list(duty.get(Role.OPERATOR, ()))
    if step.audience is Audience.ON_DUTY_SHIFT_LEADERS:
        return list(duty.get(Role.SHIFT_LEADER, ()))
    if step.audience is Audience.UNIT_CONTACT:
        return [unit] if unit is not None else []
    return []


def _names(contacts: Sequence[Contact]) -> str:
    return ", ".join(c.key for c in contacts)


def _nobody(step: EscalationLevel, audience: Sequence[Contact]) -> str:
    """Why a level reached nobody."""
    address = _ADDRESS[step.channel]
    if step.audience is Audience.UNIT_CONTACT:
        if not audience:
            return "the unit has no responsible person on record"
        return f"the unit's responsible person has no {address}"
    if not audience:
        return "nobody on duty"
    article = "an" if address[0] in "aeiou" else "a"
    return f"nobody on duty has {article} {address}: {_names(audience)}"


def plan_levels(
    alert: Alert,
    policy: EscalationPolicy,
    max_level: int | None,
    *,
    duty: Mapping[Role, Sequence[Contact]],
    unit: Contact | None,
    budget: int,
    limit: int,
    window_s: float,
) -> list[LevelPlan]:
    """The levels ``alert`` reaches now, from ``escalation_level + 1`` on: one level, plus
    every level after one that could reach nobody (up to the end of the ladder). Pure.
    ``budget``: person notifications the unit may still get within the window (``limit``
    per ``window_s``, for the notes)."""
    of = policy.length(alert.severity, max_level)
    plans: list[LevelPlan] = []
    n = alert.escalation_level + 1
    while (step := policy.level(alert.severity, n, max_level)) is not None:
        head = f"{decide.ESCALATION_NOTE}: level {n} of {of}, {step.describe()}"
        if not step.to_person:
            plans.append(LevelPlan(n, of, step, "notified", (), (), (), f"{head}: notified"))
            break
        audience = audience_of(step, duty, unit)
        reachable = tuple(c for c in audience if c.address(step.channel))
        unreachable = tuple(c for c in audience if not c.address(step.channel))
        if not reachable:
            then = "next level at once" if n < of else "it was the last level"
            note = f"{head}: {_nobody(step, audience)}; {then}"
            plans.append(LevelPlan(n, of, step, "skipped", (), (), unreachable, note))
            n += 1
            continue
        send, held = reachable[: max(0, budget)], reachable[max(0, budget) :]
        budget -= len(send)
        parts = [f"notified {_names(send)}"] if send else []
        if held:
            parts.append(
                f"rate limited ({limit} person notifications per {window_s:g} s for unit "
                f"{alert.unit_id}): {_names(held)} not notified"
            )
        if unreachable:
            parts.append(f"no {_ADDRESS[step.channel]}: {_names(unreachable)}")
        outcome = "notified" if send else "rate_limited"
        note = f"{head}: {'; '.join(parts)}"
        plans.append(LevelPlan(n, of, step, outcome, send, held, unreachable, note))
        break
    return plans


def message(alert: Alert, unit_name: str | None, plan: LevelPlan, at: datetime) -> dict[str, str]:
    """The subject and the text of a person notification (SMS and voice use the text)."""
    where = f"{unit_name} ({alert.unit_id})" if unit_name else alert.unit_id
    what = alert.type.replace("_", " ")
    minutes = max(0, int((at - alert.first_seen).total_seconds() // 60))
    subject = f"[Firewatch] {alert.severity.value.upper()} {what} at {where}: not acknowledged"
    text = (
        f"Firewatch alert #{alert.id}: {alert.severity.value} {what} at {where}, device "
        f"{alert.device_id}: {alert.explanation}. Not acknowledged for {minutes} min "
        f"(escalation level {plan.level} of {plan.of}: {plan.step.name})."
    )
    if len(text) > TEXT_CHARS:
        text = text[: TEXT_CHARS - 1] + "…"
    return {"subject": subject, "text": text}


def notifications(
    alert: Alert, unit_name: str | None, plan: LevelPlan, at: datetime
) -> tuple[list[Notification], list[Notification]]:
    """The outbox rows of a level: those to send and those the rate limit suppressed.
    ``alert`` is the alert after its escalation (its new level is in the payload)."""
    base: dict[str, Any] = {
        "action": "escalate",
        "actor": store.SYSTEM,
        "note": plan.note,
        "at": at.isoformat(),
        "alert": alert.to_json(),
        "unit": {"id": alert.unit_id, "name": unit_name},
        "escalation": {
            "level": plan.level,
            "of": plan.of,
            "name": plan.step.name,
            "audience": plan.step.audience.value,
            "channel": plan.step.channel.value,
        },
    }
    channel = outbox_channel(plan.step.channel)
    if not plan.step.to_person:
        return [Notification(channel, {"role": "supervisor"}, base)], []
    payload = {**base, **message(alert, unit_name, plan, at)}

    def row(c: Contact) -> Notification:
        recipient = {
            "to": c.address(plan.step.channel),
            "name": c.name,
            "key": c.key,
            "role": c.role,
            "audience": plan.step.audience.value,
            "level": plan.level,
        }
        return Notification(channel, recipient, payload)

    return [row(c) for c in plan.send], [row(c) for c in plan.suppressed]


def escalate(
    conn: psycopg.Connection[Any],
    settings: Settings,
    policy: EscalationPolicy,
    *,
    now: datetime | float,
) -> list[Reached]:
    """Every due escalation at ``now`` (the module docstring), in one transaction; the
    levels reached, in order."""
    at = store.as_datetime(now)
    cap = settings.alert_max_escalation_level
    limit, window = settings.escalation_rate_limit, settings.escalation_rate_window_s
    reached: list[Reached] = []
    with conn.transaction():
        due = overdue_alerts(conn, policy, now=at, max_level=cap)
        commands = decide.escalations(due, policy, at, cap)
        if not commands:
            return []
        alerts = {a.id: a for a in due}
        units = sorted({alerts[c.alert_id].unit_id for c in commands})
        lock_units(conn, units)
        duty = on_duty(conn, at)
        since = at - timedelta(seconds=window)
        budget = {u: max(0, limit - notified_since(conn, u, since)) for u in units}
        info = {u: unit_name_and_contact(conn, u) for u in units}
        for cmd in commands:
            alert = alerts[cmd.alert_id]
            name, responsible = info[alert.unit_id]
            plans = plan_levels(
                alert,
                policy,
                cap,
                duty=duty,
                unit=unit_contact(alert.unit_id, responsible),
                budget=budget[alert.unit_id],
                limit=limit,
                window_s=window,
            )
            for plan in plans:
                budget[alert.unit_id] -= len(plan.send)
                updated = store.escalate(
                    conn, alert.id, severity=alert.severity, level=plan.level, at=at, note=plan.note
                )
                send, held = notifications(updated, name, plan, at)
                record_level(
                    conn,
                    alert_id=alert.id,
                    unit_id=alert.unit_id,
                    level=plan.level,
                    step=plan.step,
                    outcome=plan.outcome,
                    note=plan.note,
                    detail=plan.detail(),
                    at=at,
                    send=send,
                    suppressed=held,
                    suppressed_reason=f"rate limited: {limit} person notifications per "
                    f"{window:g} s for unit {alert.unit_id}",
                )
                reached.append(Reached(alert.id, alert.unit_id, plan))
    for r in reached:  # after the commit: what was logged happened
        if r.plan.outcome == "notified":
            log.info("alert %d: %s", r.alert_id, r.plan.note)
        else:
            log.warning("alert %d: %s", r.alert_id, r.plan.note)
    return reached


def escalate_due(
    conn: psycopg.Connection[Any],
    settings: Settings,
    *,
    now: datetime | float,
    policy: EscalationPolicy | None = None,
) -> list[int]:
    """:func:`escalate` with ``policy`` (default: the settings' one); the ids of the
    alerts that escalated, in order."""
    chosen = policy or load_policy(settings.escalation_policy_file, settings.alert_ack_timeout_s)
    reached = escalate(conn, settings, chosen, now=now)
    return list(dict.fromkeys(r.alert_id for r in reached))


def unconfigured_media(policy: EscalationPolicy, settings: Settings) -> dict[Medium, str]:
    """The media the policy uses whose channel is not configured, with the setting that
    would configure it: their notifications wait in the outbox until it is set."""
    configured = {
        Medium.EMAIL: settings.smtp_host,
        Medium.SMS: settings.sms_url,
        Medium.VOICE: settings.voice_url,
        Medium.WEBHOOK: settings.webhook_supervisor_url,
    }
    return {m: SETTING_OF[outbox_channel(m)] for m in sorted(policy.media()) if not configured[m]}


def outbox_channel(medium: Medium) -> str:
    """The outbox channel a medium's notifications go to (the webhook: ``supervisor``)."""
    return SUPERVISOR if medium is Medium.WEBHOOK else medium.value
