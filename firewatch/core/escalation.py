"""The escalation policy: who is told, how, and when, about an alert nobody acknowledges
(docs/escalation.md). Pure: no SQL, no clock (times are passed in).

A policy is a ladder of :class:`EscalationLevel` per alert severity. Level ``n`` fires
when the alert is still ``open`` (nobody acknowledged or decided it) ``after_s`` seconds
after level ``n - 1`` fired, or, for level 1, after the alert was first seen. Each level
names its **audience** and its **channel**:

==========================  ==========================================================
audience                    who
==========================  ==========================================================
``on_duty_operators``       the active operators whose shift (the roster) covers now
``on_duty_shift_leaders``   the active shift leaders whose shift covers now
``unit_contact``            the unit's responsible person (``units.contacts``)
``supervisor``              the supervisor webhook (``FIREWATCH_WEBHOOK_SUPERVISOR_URL``)
==========================  ==========================================================

A person is reached by ``email``, ``sms`` or ``voice``; the supervisor only by
``webhook`` (and the webhook reaches only the supervisor). The ladder **stops** at its last
level: an alert nobody acknowledges stays there; ``FIREWATCH_ALERT_MAX_ESCALATION_LEVEL``,
when set, cuts every ladder shorter still.

The built-in policy (:func:`default_policy`) takes its timeouts from
``FIREWATCH_ALERT_ACK_TIMEOUT_S`` (one per severity, used at every level); a TOML file
(``FIREWATCH_ESCALATION_POLICY_FILE``, :func:`load_policy_file`) replaces it whole::

    # one array of tables per severity: critical, high, medium and low must all be there;
    # `low = []` (alerts of that severity never escalate) goes above the first table
    low = []
    [[critical]]
    name = "on-duty operators"       # free text, shown in the audit and the messages
    audience = "on_duty_operators"
    channel = "email"
    after_s = 60                     # seconds without acknowledgement before this level

A file that cannot be used is refused with :class:`PolicyError`, whose one-line message
names the file, the severity, the level and the problem. The roster's rules (a shift's
length, the contact fields of a person) are here too: :func:`check_shift`,
:func:`normalise_email`, :func:`normalise_phone`.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from firewatch.core.domain import Severity
from firewatch.core.people import PeopleError


class PolicyError(ValueError):
    """An escalation policy that cannot be used; the message names where and why."""


class Audience(StrEnum):
    """Who a level notifies."""

    ON_DUTY_OPERATORS = "on_duty_operators"
    ON_DUTY_SHIFT_LEADERS = "on_duty_shift_leaders"
    UNIT_CONTACT = "unit_contact"
    SUPERVISOR = "supervisor"


class Medium(StrEnum):
    """How a level reaches its audience (the policy file's ``channel``). Each is also the
    name of its outbox channel, except ``webhook``, which is the ``supervisor`` channel."""

    EMAIL = "email"
    SMS = "sms"
    VOICE = "voice"
    WEBHOOK = "webhook"


#: The media that reach a person (and count towards a unit's rate limit).
PERSON_MEDIA = frozenset({Medium.EMAIL, Medium.SMS, Medium.VOICE})
#: The most levels one severity may have.
MAX_LEVELS = 20
_LEVEL_KEYS = frozenset({"name", "audience", "channel", "after_s"})


@dataclass(frozen=True, slots=True)
class EscalationLevel:
    """One rung of a ladder: ``after_s`` seconds without acknowledgement after the rung
    below (or after the alert was first seen), ``audience`` is told by ``channel``."""

    name: str
    audience: Audience
    channel: Medium
    after_s: float

    @property
    def to_person(self) -> bool:
        """Whether it notifies people (e-mail, SMS, voice) rather than the supervisor's
        webhook."""
        return self.channel in PERSON_MEDIA

    def describe(self) -> str:
        return f"{self.name} by {self.channel.value}"


@dataclass(frozen=True)
class EscalationPolicy:
    """A ladder per severity (an empty one: that severity never escalates), and where the
    policy came from (``"built-in"`` or the file)."""

    ladders: Mapping[Severity, tuple[EscalationLevel, ...]]
    source: str = "built-in"

    def ladder(self, severity: Severity) -> tuple[EscalationLevel, ...]:
        return self.ladders.get(severity, ())

    def length(self, severity: Severity, max_level: int | None = None) -> int:
        """How many levels an alert of ``severity`` can reach (with the extra cap)."""
        n = len(self.ladder(severity))
        return n if max_level is None else min(n, max(0, max_level))

    def level(
        self, severity: Severity, n: int, max_level: int | None = None
    ) -> EscalationLevel | None:
        """Level ``n`` (1-based) of the ladder, or None beyond its end or the cap."""
        if n < 1 or n > self.length(severity, max_level):
            return None
        return self.ladder(severity)[n - 1]

    def media(self) -> frozenset[Medium]:
        """Every medium some level uses."""
        return frozenset(lv.channel for ladder in self.ladders.values() for lv in ladder)

    def rows(self) -> list[tuple[str, int, float]]:
        """``(severity, level, after_s)`` of every level: the set-based selection's input
        (``storage/alert_checks.py``)."""
        return [
            (sev.value, n, lv.after_s)
            for sev, ladder in self.ladders.items()
            for n, lv in enumerate(ladder, start=1)
        ]


@dataclass(frozen=True, slots=True)
class Contact:
    """Someone a level may notify: an on-duty person (``key`` is their username) or a
    unit's responsible person (``key`` is ``unit:<unit id>:responsible``)."""

    key: str
    name: str
    role: str  # operator, shift_leader, responsible
    email: str | None = None
    phone: str | None = None

    def address(self, medium: Medium) -> str | None:
        """Where ``medium`` reaches them: the e-mail address or the phone number; None
        when they have none (or for the webhook, which reaches no person)."""
        if medium is Medium.EMAIL:
            return self.email
        if medium in (Medium.SMS, Medium.VOICE):
            return self.phone
        return None

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "role": self.role}


#: The built-in ladders' rungs, by severity (their ``after_s`` comes from the settings).
_DEFAULT_RUNGS: dict[Severity, tuple[tuple[str, Audience, Medium], ...]] = {
    Severity.CRITICAL: (
        ("on-duty operators", Audience.ON_DUTY_OPERATORS, Medium.EMAIL),
        ("shift leader", Audience.ON_DUTY_SHIFT_LEADERS, Medium.EMAIL),
        ("unit's responsible person", Audience.UNIT_CONTACT, Medium.SMS),
        ("unit's responsible person", Audience.UNIT_CONTACT, Medium.VOICE),
        ("supervisor", Audience.SUPERVISOR, Medium.WEBHOOK),
    ),
    Severity.HIGH: (
        ("on-duty operators", Audience.ON_DUTY_OPERATORS, Medium.EMAIL),
        ("shift leader", Audience.ON_DUTY_SHIFT_LEADERS, Medium.EMAIL),
        ("unit's responsible person", Audience.UNIT_CONTACT, Medium.SMS),
        ("supervisor", Audience.SUPERVISOR, Medium.WEBHOOK),
    ),
    Severity.MEDIUM: (
        ("on-duty operators", Audience.ON_DUTY_OPERATORS, Medium.EMAIL),
        ("shift leader", Audience.ON_DUTY_SHIFT_LEADERS, Medium.EMAIL),
        ("supervisor", Audience.SUPERVISOR, Medium.WEBHOOK),
    ),
    Severity.LOW: (
        ("on-duty operators", Audience.ON_DUTY_OPERATORS, Medium.EMAIL),
        ("shift leader", Audience.ON_DUTY_SHIFT_LEADERS, Medium.EMAIL),
    ),
}


def default_policy(ack_timeouts: Mapping[str, float]) -> EscalationPolicy:
    """The built-in policy: critical alerts climb operators (e-mail), shift leader
    (e-mail), the unit's responsible person (SMS, then a voice call) and the supervisor
    (webhook); high ones leave out the call, medium ones the unit, low ones the
    supervisor too. Every level of a severity waits ``ack_timeouts[severity]`` seconds
    (``FIREWATCH_ALERT_ACK_TIMEOUT_S``); a severity without a timeout never escalates."""
    ladders: dict[Severity, tuple[EscalationLevel, ...]] = {}
    for severity, rungs in _DEFAULT_RUNGS.items():
        after = ack_timeouts.get(severity.value)
        ladders[severity] = (
            ()
            if after is None
            else tuple(EscalationLevel(name, aud, med, float(after)) for name, aud, med in rungs)
        )
    return EscalationPolicy(ladders, "built-in")


def _level(source: str, where: str, raw: Any) -> EscalationLevel:
    def bad(problem: str) -> PolicyError:
        return PolicyError(f"escalation policy {source}: {where}: {problem}")

    if not isinstance(raw, Mapping):
        raise bad("a level is a table with name, audience, channel and after_s")
    if unknown := sorted(set(raw) - _LEVEL_KEYS):
        if unknown[0] in {s.value for s in Severity}:  # TOML put `low = []` into this table
            raise bad(
                f"unknown key {unknown[0]!r}: write `{unknown[0]} = []` above the first "
                "[[...]] table (a key after a table's header belongs to that table)"
            )
        raise bad(f"unknown key {unknown[0]!r} (a level has name, audience, channel, after_s)")
    if missing := sorted(_LEVEL_KEYS - set(raw)):
        raise bad(f"{missing[0]} is missing")
    name = raw["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise bad("name must be text of 1 to 64 characters")
    try:
        audience = Audience(raw["audience"])
    except ValueError:
        choices = ", ".join(a.value for a in Audience)
        raise bad(f"audience {raw['audience']!r} is not one of {choices}") from None
    try:
        channel = Medium(raw["channel"])
    except ValueError:
        choices = ", ".join(m.value for m in Medium)
        raise bad(f"channel {raw['channel']!r} is not one of {choices}") from None
    if (audience is Audience.SUPERVISOR) != (channel is Medium.WEBHOOK):
        raise bad(
            "the supervisor is reached by webhook only, and the webhook reaches only the "
            f"supervisor (not {audience.value} by {channel.value})"
        )
    after = raw["after_s"]
    if isinstance(after, bool) or not isinstance(after, int | float):
        raise bad(f"after_s must be a number of seconds, not {after!r}")
    if not math.isfinite(after) or after <= 0:
        raise bad(f"after_s must be more than 0 seconds, not {after}")
    return EscalationLevel(name.strip(), audience, channel, float(after))


def parse_policy(doc: Mapping[str, Any], source: str) -> EscalationPolicy:
    """The policy of a parsed TOML document (see the module docstring); raises
    :class:`PolicyError` naming ``source``, the severity, the level and the problem."""
    severities = [s.value for s in Severity]
    if unknown := sorted(set(doc) - set(severities)):
        raise PolicyError(
            f"escalation policy {source}: {unknown[0]!r} is not a severity; "
            f"use {', '.join(severities)}"
        )
    ladders: dict[Severity, tuple[EscalationLevel, ...]] = {}
    for severity in Severity:
        if severity.value not in doc:
            raise PolicyError(
                f"escalation policy {source}: no levels for {severity.value!r} "
                f"(write `{severity.value} = []` if it never escalates)"
            )
        raw = doc[severity.value]
        if not isinstance(raw, Sequence) or isinstance(raw, str):
            raise PolicyError(
                f"escalation policy {source}: {severity.value} must be an array of levels "
                f"([[{severity.value}]] tables)"
            )
        if len(raw) > MAX_LEVELS:
            raise PolicyError(
                f"escalation policy {source}: {severity.value} has {len(raw)} levels; "
                f"at most {MAX_LEVELS}"
            )
        ladders[severity] = tuple(
            _level(source, f"{severity.value} level {n}", item)
            for n, item in enumerate(raw, start=1)
        )
    return EscalationPolicy(ladders, source)


def load_policy_file(path: Path) -> EscalationPolicy:
    """The policy in the TOML file at ``path``; :class:`PolicyError` if it is missing,
    unreadable, not TOML or not a valid policy."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise PolicyError(f"escalation policy {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PolicyError(f"escalation policy {path}: cannot read it: {err}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise PolicyError(f"escalation policy {path}: not valid TOML: {err}") from None
    return parse_policy(doc, str(path))


def load_policy(path: Path | None, ack_timeouts: Mapping[str, float]) -> EscalationPolicy:
    """The policy in force: the file's when ``path`` is given
    (``FIREWATCH_ESCALATION_POLICY_FILE``), else :func:`default_policy`."""
    return default_policy(ack_timeouts) if path is None else load_policy_file(path)


# -- the roster's rules --------------------------------------------------------------------

#: The longest shift the roster accepts: a longer one is almost certainly a typo (a year
#: instead of a day) that would put someone on duty for good.
MAX_SHIFT = timedelta(days=7)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_PHONE = re.compile(r"\+?[0-9]{3,20}")


class RosterError(PeopleError):
    """A shift or a contact that the roster refuses, with a message saying why (a refusal
    about people's records: the CLI and the API answer it as any other)."""


def check_shift(starts_at: datetime, ends_at: datetime) -> None:
    """A shift needs times with a UTC offset, to end after it starts, and to last at most
    :data:`MAX_SHIFT`."""
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise RosterError("shift times need a UTC offset")
    if ends_at <= starts_at:
        raise RosterError(
            f"a shift must end after it starts ({ends_at.isoformat()} is not after "
            f"{starts_at.isoformat()})"
        )
    if ends_at - starts_at > MAX_SHIFT:
        raise RosterError(f"a shift lasts at most {MAX_SHIFT.days} days")


def normalise_email(text: str) -> str | None:
    """An e-mail address as stored (trimmed), None for an empty one (clears it); raises
    :class:`RosterError` for something that is not an address."""
    value = text.strip()
    if not value:
        return None
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise RosterError(f"{text!r} is not an e-mail address")
    return value


def normalise_phone(text: str) -> str | None:
    """A phone number as stored: digits with an optional leading ``+``, spaces, dashes,
    dots and parentheses removed; None for an empty one (clears it); raises
    :class:`RosterError` for anything else."""
    value = re.sub(r"[\s().-]", "", text)
    if not value:
        return None
    if not _PHONE.fullmatch(value):
        raise RosterError(f"{text!r} is not a phone number (digits, optionally +country code)")
    return value
