"""The credit rules (firewatch/core/credit.py): what puts a unit on the watch list or the
blacklist, when, and what takes it off; decisions before ``since`` never fire again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from firewatch.core.credit import (
    CreditFacts,
    CreditRules,
    CreditStatus,
    HazardFact,
    decide_credit,
    fire_with_known_hazard,
)
from firewatch.core.supervision import HazardSeverity, HazardState

T0 = datetime(2026, 3, 1, tzinfo=UTC)
D = timedelta(days=1)
RULES = CreditRules(
    overdue_days=30, repeat_count=3, repeat_days=180, clean_days={"watch": 30, "blacklisted": 90}
)
GOOD, WATCH, BLACK = CreditStatus.GOOD, CreditStatus.WATCH, CreditStatus.BLACKLISTED


def hazard(
    i: int = 1,
    severity: HazardSeverity = HazardSeverity.GENERAL,
    state: HazardState = HazardState.OPEN,
    found: datetime = T0,
    deadline: datetime | None = None,
    submitted: datetime | None = None,
    verified: datetime | None = None,
    category: str = "electrical",
) -> HazardFact:
    return HazardFact(
        i, severity, state, found, deadline or found + 15 * D, submitted, verified, category
    )


def facts(
    *hazards: HazardFact,
    status: CreditStatus = GOOD,
    since: datetime | None = None,
    declarations: tuple[tuple[int, datetime], ...] = (),
) -> CreditFacts:
    return CreditFacts("U-1", status, since, hazards, declarations)


def test_an_open_major_hazard_past_its_deadline_blacklists() -> None:
    f = facts(hazard(severity=HazardSeverity.MAJOR, deadline=T0 + 30 * D))
    assert decide_credit(f, RULES, T0 + 29 * D) is None
    change = decide_credit(f, RULES, T0 + 31 * D)
    assert change is not None
    assert (change.to_status, change.rule, change.hazard_id) == (BLACK, "overdue_major", 1)


def test_a_late_general_hazard_watches_then_blacklists() -> None:
    f = facts(hazard(deadline=T0 + 15 * D))
    assert decide_credit(f, RULES, T0 + 14 * D) is None
    watch = decide_credit(f, RULES, T0 + 16 * D)
    assert watch is not None
    assert (watch.to_status, watch.rule) == (WATCH, "overdue")
    # on the watch list since day 16; 30 days past the deadline it is blacklisted
    f = facts(hazard(deadline=T0 + 15 * D), status=WATCH, since=T0 + 16 * D)
    assert decide_credit(f, RULES, T0 + 44 * D) is None
    black = decide_credit(f, RULES, T0 + 46 * D)
    assert black is not None
    assert (black.to_status, black.rule) == (BLACK, "long_overdue")


def test_evidence_in_time_is_not_a_delay_and_late_evidence_is() -> None:
    in_time = hazard(
        severity=HazardSeverity.MAJOR,
        state=HazardState.SUBMITTED,
        deadline=T0 + 30 * D,
        submitted=T0 + 29 * D,
    )
    assert decide_credit(facts(in_time), RULES, T0 + 60 * D) is None
    late = hazard(
        severity=HazardSeverity.MAJOR,
        state=HazardState.VERIFIED,
        deadline=T0 + 30 * D,
        submitted=T0 + 32 * D,
        verified=T0 + 33 * D,
    )
    change = decide_credit(facts(late), RULES, T0 + 34 * D)
    assert change is not None
    assert change.rule == "overdue_major"


def test_a_false_declaration_blacklists_once() -> None:
    f = facts(declarations=((9, T0),))
    change = decide_credit(f, RULES, T0 + D)
    assert change is not None
    assert (change.to_status, change.rule, change.inspection_id) == (BLACK, "false_declaration", 9)
    # a supervisor restored the unit afterwards: the same declaration does not fire again
    assert (
        decide_credit(
            facts(declarations=((9, T0),), status=GOOD, since=T0 + 2 * D), RULES, T0 + 3 * D
        )
        is None
    )


def test_repeated_hazards_within_the_window_blacklist() -> None:
    spread = [
        hazard(
            i,
            state=HazardState.VERIFIED,
            found=T0 + i * 100 * D,
            submitted=T0 + i * 100 * D + D,
            verified=T0 + i * 100 * D + 2 * D,
        )
        for i in range(3)
    ]
    assert decide_credit(facts(*spread), RULES, T0 + 400 * D) is None  # 200 days apart
    close = [
        hazard(
            i,
            state=HazardState.VERIFIED,
            found=T0 + i * 10 * D,
            submitted=T0 + i * 10 * D + D,
            verified=T0 + i * 10 * D + 2 * D,
        )
        for i in range(3)
    ]
    change = decide_credit(facts(*close), RULES, T0 + 21 * D)
    assert change is not None
    assert (change.rule, change.hazard_id) == ("repeated", 2)


def test_blacklist_exit_after_rectification_and_a_clean_period() -> None:
    verified = hazard(
        severity=HazardSeverity.MAJOR,
        state=HazardState.VERIFIED,
        deadline=T0 + 30 * D,
        submitted=T0 + 40 * D,
        verified=T0 + 41 * D,
    )
    since = T0 + 31 * D
    f = facts(verified, status=BLACK, since=since)
    assert decide_credit(f, RULES, T0 + 41 * D + 89 * D) is None
    change = decide_credit(f, RULES, T0 + 41 * D + 91 * D)
    assert change is not None
    assert (change.to_status, change.rule) == (GOOD, "clean_period")
    still_open = facts(hazard(2, found=T0 + 50 * D), verified, status=BLACK, since=since)
    assert decide_credit(still_open, RULES, T0 + 400 * D) is None  # an open hazard blocks


def test_watch_exit_uses_its_own_clean_period() -> None:
    done = hazard(
        state=HazardState.VERIFIED,
        deadline=T0 + 15 * D,
        submitted=T0 + 16 * D,
        verified=T0 + 17 * D,
    )
    f = facts(done, status=WATCH, since=T0 + 16 * D)
    assert decide_credit(f, RULES, T0 + 17 * D + 29 * D) is None
    change = decide_credit(f, RULES, T0 + 17 * D + 31 * D)
    assert change is not None
    assert change.to_status is GOOD


def test_a_manual_blacklisting_without_hazards_ends_after_its_clean_period() -> None:
    f = facts(status=BLACK, since=T0)
    assert decide_credit(f, RULES, T0 + 89 * D) is None
    change = decide_credit(f, RULES, T0 + 91 * D)
    assert change is not None
    assert change.to_status is GOOD


def test_a_blacklisted_unit_gets_no_watch_and_a_good_one_no_exit() -> None:
    late = hazard(deadline=T0 + 15 * D)
    assert decide_credit(facts(late, status=BLACK, since=T0), RULES, T0 + 20 * D) is None
    assert decide_credit(facts(), RULES, T0) is None


def test_a_fire_with_a_known_hazard_of_a_related_category() -> None:
    old = hazard(1, category="ebike_charging", found=T0)
    other = hazard(2, category="fire_exits", found=T0)
    later = hazard(3, category="ebike_charging", found=T0 + 10 * D)
    fixed = hazard(
        4,
        category="electrical",
        state=HazardState.VERIFIED,
        found=T0,
        submitted=T0 + D,
        verified=T0 + 2 * D,
    )
    fire = T0 + 5 * D
    known = fire_with_known_hazard(
        [other, later, fixed, old], fire, ["ebike_charging", "electrical"]
    )
    assert known is not None
    assert known.id == 1
    assert (
        fire_with_known_hazard([other, later, fixed], fire, ["ebike_charging", "electrical"])
        is None
    )
