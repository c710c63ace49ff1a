"""Unit credit: the rules that put a unit on the watch list or the blacklist and take it
off again. Pure: the supervision worker gathers the facts (``storage/credit.py``), asks
:func:`decide_credit`, and writes what it returns with an event (reason, actor, time).

Statuses: ``good``, ``watch`` (a hazard is overdue), ``blacklisted`` (a serious violation:
the risk score forces the unit's level and the draw's rate for blacklisted units applies).

**Triggers.** Each rule yields a trigger time; a rule fires when its trigger lies after the
unit's last status change (``since``) and not after now. So a supervisor's decision covers
everything that happened before it, and nothing fires twice:

* ``overdue_major``: a major hazard not rectified by its deadline -> blacklisted, at the
  deadline;
* ``long_overdue``: any hazard still not rectified ``overdue_days`` after its deadline ->
  blacklisted, then;
* ``false_declaration``: an inspection found a false self-declaration -> blacklisted, at
  the inspection;
* ``repeated``: ``repeat_count`` hazards found within ``repeat_days`` -> blacklisted, when
  the last of them was found;
* ``overdue``: any hazard not rectified by its deadline -> watch (from good only), at the
  deadline.

"Not rectified by its deadline": still open after it, or evidence submitted only after it
(evidence submitted in time and waiting for verification is not the unit's delay).
A confirmed fire in a unit with an open hazard of a related category (``fire_with_hazard``)
is decided when the fire is confirmed (:func:`fire_with_known_hazard`).

**Exit.** A watched or blacklisted unit returns to good (actor ``system``) when none of its
hazards is open or submitted and ``clean_days[status]`` have passed since the later of its
last status change and its last hazard found or verified. A supervisor may set any status
at any time with a reason (``supervise credit set``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from firewatch.core.supervision import HazardSeverity, HazardState


class CreditStatus(StrEnum):
    GOOD = "good"
    WATCH = "watch"
    BLACKLISTED = "blacklisted"


SYSTEM = "system"


@dataclass(frozen=True)
class CreditRules:
    """The thresholds (settings ``supervision_credit_*``)."""

    overdue_days: float = 30.0
    repeat_count: int = 3
    repeat_days: float = 180.0
    clean_days: Mapping[str, float] | None = None  # status -> days; default below

    def clean(self, status: CreditStatus) -> timedelta:
        days = dict(self.clean_days or {"watch": 30.0, "blacklisted": 90.0})
        return timedelta(days=days.get(status.value, 90.0))


@dataclass(frozen=True)
class HazardFact:
    """What the rules need of one hazard."""

    id: int
    severity: HazardSeverity
    state: HazardState
    found_at: datetime
    deadline: datetime
    submitted_at: datetime | None
    verified_at: datetime | None
    category: str = "other"

    def late_at(self, now: datetime) -> datetime | None:
        """When it became late (its deadline), if it was not rectified in time, else None."""
        if self.state is HazardState.OPEN:
            return self.deadline if now > self.deadline else None
        if self.submitted_at is not None and self.submitted_at > self.deadline:
            return self.deadline
        return None

    def late_by(self, now: datetime) -> timedelta:
        """How long after its deadline it was still not rectified (0 when it was in time)."""
        if self.late_at(now) is None:
            return timedelta(0)
        end = now if self.state is HazardState.OPEN else (self.submitted_at or now)
        return max(timedelta(0), end - self.deadline)


@dataclass(frozen=True)
class CreditFacts:
    unit_id: str
    status: CreditStatus
    since: datetime | None  # the last status change (None: never changed, good)
    hazards: Sequence[HazardFact]
    false_declarations: Sequence[tuple[int, datetime]]  # (inspection id, inspected at)


@dataclass(frozen=True)
class CreditChange:
    """A status change to write: ``rule`` names what fired (``clean_period`` for an exit)."""

    unit_id: str
    to_status: CreditStatus
    rule: str
    reason: str
    at: datetime
    hazard_id: int | None = None
    inspection_id: int | None = None


@dataclass(frozen=True)
class _Trigger:
    at: datetime
    to: CreditStatus
    rule: str
    reason: str
    hazard_id: int | None = None
    inspection_id: int | None = None


def _triggers(f: CreditFacts, rules: CreditRules, now: datetime) -> list[_Trigger]:
    out: list[_Trigger] = []
    black, watch = CreditStatus.BLACKLISTED, CreditStatus.WATCH
    for h in f.hazards:
        late = h.late_at(now)
        if late is None:
            continue
        if h.severity is HazardSeverity.MAJOR:
            out.append(
                _Trigger(
                    late,
                    black,
                    "overdue_major",
                    f"major hazard {h.id} not rectified by its deadline {h.deadline.isoformat()}",
                    hazard_id=h.id,
                )
            )
        limit = timedelta(days=rules.overdue_days)
        if h.late_by(now) > limit:
            out.append(
                _Trigger(
                    h.deadline + limit,
                    black,
                    "long_overdue",
                    f"hazard {h.id} not rectified {rules.overdue_days:g} days after its deadline",
                    hazard_id=h.id,
                )
            )
        out.append(
            _Trigger(
                late,
                watch,
                "overdue",
                f"hazard {h.id} not rectified by its deadline {h.deadline.isoformat()}",
                hazard_id=h.id,
            )
        )
    for inspection_id, at in f.false_declarations:
        out.append(
            _Trigger(
                at,
                black,
                "false_declaration",
                f"inspection {inspection_id} found a false self-declaration",
                inspection_id=inspection_id,
            )
        )
    found = sorted(f.hazards, key=lambda h: (h.found_at, h.id))
    k, window = rules.repeat_count, timedelta(days=rules.repeat_days)
    for i in range(k - 1, len(found)):
        if found[i].found_at - found[i - k + 1].found_at <= window:
            out.append(
                _Trigger(
                    found[i].found_at,
                    black,
                    "repeated",
                    f"{k} hazards found within "
                    f"{rules.repeat_days:g} days (the last: hazard {found[i].id})",
                    hazard_id=found[i].id,
                )
            )
    return out


def decide_credit(f: CreditFacts, rules: CreditRules, now: datetime) -> CreditChange | None:
    """The status change the rules call for now, or None (see the module docstring)."""
    fired = [
        t for t in _triggers(f, rules, now) if (f.since is None or t.at > f.since) and t.at <= now
    ]
    targets = {
        CreditStatus.GOOD: (CreditStatus.BLACKLISTED, CreditStatus.WATCH),
        CreditStatus.WATCH: (CreditStatus.BLACKLISTED,),
        CreditStatus.BLACKLISTED: (),
    }[f.status]
    for target in targets:  # the most serious first
        hits = sorted((t for t in fired if t.to is target), key=lambda t: (t.at, t.rule))
        if hits:
            t = hits[0]
            return CreditChange(
                f.unit_id, target, t.rule, t.reason, now, t.hazard_id, t.inspection_id
            )
    return _exit(f, rules, now)


def _exit(f: CreditFacts, rules: CreditRules, now: datetime) -> CreditChange | None:
    if f.status is CreditStatus.GOOD:
        return None
    if any(h.state is not HazardState.VERIFIED for h in f.hazards):
        return None
    marks: list[datetime] = [t for t in (f.since,) if t is not None]
    marks += [h.found_at for h in f.hazards]
    marks += [h.verified_at for h in f.hazards if h.verified_at is not None]
    clean_since = max(marks) if marks else None
    period = rules.clean(f.status)
    if clean_since is not None and now - clean_since < period:
        return None
    days = period.total_seconds() / 86_400
    return CreditChange(
        f.unit_id,
        CreditStatus.GOOD,
        "clean_period",
        f"no open hazard and a clean period of {days:g} days",
        now,
    )


def fire_with_known_hazard(
    hazards: Iterable[HazardFact], fire_at: datetime, related: Iterable[str]
) -> HazardFact | None:
    """The hazard that makes a fire confirmed at ``fire_at`` a serious violation: found
    before it, of a related category, not verified by then. The oldest such, or None."""
    wanted = set(related)
    known = [
        h
        for h in hazards
        if h.category in wanted
        and h.found_at <= fire_at
        and (h.verified_at is None or h.verified_at > fire_at)
    ]
    return min(known, key=lambda h: (h.found_at, h.id)) if known else None
