"""The escalation policy (firewatch/core/escalation.py) without a database: the built-in
ladders, the TOML file and every way it is refused with a clear message, the settings
refusing a bad file at start, and the roster's rules for shifts and contact fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from firewatch.core.domain import Severity
from firewatch.core.escalation import (
    MAX_SHIFT,
    Audience,
    Contact,
    EscalationLevel,
    Medium,
    PolicyError,
    RosterError,
    check_shift,
    default_policy,
    load_policy,
    load_policy_file,
    normalise_email,
    normalise_phone,
    parse_policy,
)
from firewatch.core.settings import Settings

TIMEOUTS = {"critical": 60.0, "high": 300.0, "medium": 900.0, "low": 3600.0}

GOOD = """
medium = []  # never escalate (above the first table: keys after one belong to it)
low = []

# critical alerts: the operators quickly, then the unit by text and by phone, then the
# supervisor
[[critical]]
name = "operators"
audience = "on_duty_operators"
channel = "email"
after_s = 30

[[critical]]
name = "unit"
audience = "unit_contact"
channel = "sms"
after_s = 90.5

[[critical]]
name = "unit, a call"
audience = "unit_contact"
channel = "voice"
after_s = 120

[[critical]]
name = "supervisor"
audience = "supervisor"
channel = "webhook"
after_s = 300

[[high]]
name = "leaders"
audience = "on_duty_shift_leaders"
channel = "email"
after_s = 600
"""


def test_the_built_in_ladders() -> None:
    policy = default_policy(TIMEOUTS)
    assert policy.source == "built-in"
    assert [(lv.audience, lv.channel) for lv in policy.ladder(Severity.CRITICAL)] == [
        (Audience.ON_DUTY_OPERATORS, Medium.EMAIL),
        (Audience.ON_DUTY_SHIFT_LEADERS, Medium.EMAIL),
        (Audience.UNIT_CONTACT, Medium.SMS),
        (Audience.UNIT_CONTACT, Medium.VOICE),
        (Audience.SUPERVISOR, Medium.WEBHOOK),
    ]
    assert [policy.length(sev) for sev in Severity] == [5, 4, 3, 2]
    for sev in Severity:  # every level of a severity waits its acknowledgement timeout
        assert {lv.after_s for lv in policy.ladder(sev)} == {TIMEOUTS[sev.value]}
    assert Medium.VOICE not in {lv.channel for lv in policy.ladder(Severity.HIGH)}
    assert policy.media() == frozenset(Medium)


def test_levels_are_one_based_and_the_cap_shortens_every_ladder() -> None:
    policy = default_policy(TIMEOUTS)
    first = policy.level(Severity.CRITICAL, 1)
    assert first is not None
    assert first.audience is Audience.ON_DUTY_OPERATORS
    assert policy.level(Severity.CRITICAL, 0) is None
    assert policy.level(Severity.CRITICAL, 6) is None  # beyond the end
    assert policy.level(Severity.CRITICAL, 5) is not None
    assert policy.level(Severity.CRITICAL, 4, max_level=3) is None
    assert policy.length(Severity.CRITICAL, max_level=3) == 3
    assert policy.length(Severity.LOW, max_level=3) == 2  # the cap never lengthens one
    assert policy.length(Severity.CRITICAL, max_level=0) == 0


def test_a_severity_without_a_timeout_has_no_ladder() -> None:
    policy = default_policy({"critical": 10.0})
    assert policy.length(Severity.CRITICAL) == 5
    assert policy.ladder(Severity.LOW) == ()
    assert policy.level(Severity.HIGH, 1) is None


def test_a_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(GOOD, "utf-8")
    policy = load_policy(path, TIMEOUTS)
    assert policy.source == str(path)
    assert policy.ladder(Severity.CRITICAL) == (
        EscalationLevel("operators", Audience.ON_DUTY_OPERATORS, Medium.EMAIL, 30.0),
        EscalationLevel("unit", Audience.UNIT_CONTACT, Medium.SMS, 90.5),
        EscalationLevel("unit, a call", Audience.UNIT_CONTACT, Medium.VOICE, 120.0),
        EscalationLevel("supervisor", Audience.SUPERVISOR, Medium.WEBHOOK, 300.0),
    )
    assert policy.length(Severity.HIGH) == 1
    assert policy.ladder(Severity.MEDIUM) == policy.ladder(Severity.LOW) == ()
    assert policy.rows() == [
        ("critical", 1, 30.0),
        ("critical", 2, 90.5),
        ("critical", 3, 120.0),
        ("critical", 4, 300.0),
        ("high", 1, 600.0),
    ]
    assert load_policy(None, TIMEOUTS) == default_policy(TIMEOUTS)


def test_the_documented_example_is_a_valid_policy() -> None:
    example = Path(__file__).parents[2] / "docs" / "examples" / "escalation-policy.toml"
    policy = load_policy_file(example)
    assert [policy.length(sev) for sev in Severity] == [5, 3, 1, 0]
    assert policy.media() == frozenset(Medium)


def level(**change: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "operators",
        "audience": "on_duty_operators",
        "channel": "email",
        "after_s": 60,
    }
    return {**base, **change}


def doc(*critical: object, **other: object) -> dict[str, object]:
    return {"critical": list(critical), "high": [], "medium": [], "low": [], **other}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (doc(level(), major=[]), "'major' is not a severity; use critical, high, medium, low"),
        ({"critical": [level()], "high": [], "medium": []}, "no levels for 'low'"),
        (doc(level(channel="fax")), "critical level 1: channel 'fax' is not one of email, sms"),
        (doc(level(), level(audience="mayor")), "critical level 2: audience 'mayor' is not"),
        (doc(level(audience="supervisor")), "the supervisor is reached by webhook only"),
        (doc(level(channel="webhook")), "not on_duty_operators by webhook"),
        (doc(level(after_s=0)), "after_s must be more than 0 seconds"),
        (doc(level(after_s=-5)), "after_s must be more than 0 seconds"),
        (doc(level(after_s="1 min")), "after_s must be a number of seconds"),
        (doc(level(after_s=True)), "after_s must be a number of seconds"),
        (doc(level(after_s=float("inf"))), "after_s must be more than 0 seconds"),
        (doc(level(name="")), "name must be text of 1 to 64 characters"),
        (doc(level(colour="red")), "unknown key 'colour'"),
        (doc({"name": "x", "audience": "supervisor", "channel": "webhook"}), "after_s is missing"),
        (doc("operators"), "a level is a table"),
        ({**doc(), "critical": "operators"}, "critical must be an array of levels"),
        (doc(*[level()] * 21), "critical has 21 levels; at most 20"),
    ],
)
def test_a_bad_policy_is_refused_with_a_clear_message(
    document: dict[str, object], message: str
) -> None:
    with pytest.raises(PolicyError, match=r"^escalation policy f\.toml: ") as err:
        parse_policy(document, "f.toml")
    assert message in str(err.value)
    assert "\n" not in str(err.value)  # one line: the CLI prints it as it is


def test_a_severity_written_after_a_table_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(GOOD.replace("low = []", "") + "\nlow = []\n", "utf-8")
    with pytest.raises(PolicyError, match=r"write `low = \[\]` above the first \[\[...\]\] table"):
        load_policy_file(path)


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such file"):
        load_policy_file(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[critical]\nname = ", "utf-8")
    with pytest.raises(PolicyError, match=r"broken.toml: not valid TOML"):
        load_policy_file(broken)


def test_the_settings_refuse_a_bad_policy_file_at_start(tmp_path: Path) -> None:
    """FIREWATCH_ESCALATION_POLICY_FILE is checked when the settings are read, so a bad
    file stops any command at once with the variable's name and the problem."""
    bad = tmp_path / "policy.toml"
    bad.write_text(GOOD.replace('channel = "sms"', 'channel = "pager"'), "utf-8")
    with pytest.raises(ValidationError) as err:
        Settings(escalation_policy_file=bad)
    (problem,) = err.value.errors()
    assert problem["loc"] == ("escalation_policy_file",)
    assert "critical level 2: channel 'pager' is not one of" in problem["msg"]
    good = tmp_path / "good.toml"
    good.write_text(GOOD, "utf-8")
    assert Settings(escalation_policy_file=good).escalation_policy_file == good


def test_a_contact_is_reached_by_the_address_of_the_medium() -> None:
    c = Contact("li.wei", "Li Wei", "operator", email="li@example.org", phone=None)
    assert c.address(Medium.EMAIL) == "li@example.org"
    assert c.address(Medium.SMS) is None
    assert c.address(Medium.WEBHOOK) is None
    assert Contact("u", "U", "responsible", phone="139").address(Medium.VOICE) == "139"


def test_the_roster_rules() -> None:
    t = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
    check_shift(t, t + timedelta(hours=12))
    check_shift(t, t + MAX_SHIFT)
    with pytest.raises(RosterError, match="must end after it starts"):
        check_shift(t, t)
    with pytest.raises(RosterError, match="at most 7 days"):
        check_shift(t, t + MAX_SHIFT + timedelta(seconds=1))
    with pytest.raises(RosterError, match="UTC offset"):
        check_shift(t.replace(tzinfo=None), t + timedelta(hours=1))
    local = timezone(timedelta(hours=8))
    check_shift(t, datetime(2026, 12, 8, 20, 0, tzinfo=local))  # offsets compare as instants


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        (" li.wei@example.org ", "li.wei@example.org"),
        ("", None),
        ("  ", None),
    ],
)
def test_email_normalisation(text: str, stored: str | None) -> None:
    assert normalise_email(text) == stored


@pytest.mark.parametrize("text", ["li.wei", "a@b@c", "with space@example.org", "x" * 251 + "@e.o"])
def test_bad_emails_are_refused(text: str) -> None:
    with pytest.raises(RosterError, match="is not an e-mail address"):
        normalise_email(text)


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("13800000001", "13800000001"),
        ("+86 138-0000-0001", "+8613800000001"),
        ("(010) 6512.3456", "01065123456"),
        ("", None),
    ],
)
def test_phone_normalisation(text: str, stored: str | None) -> None:
    assert normalise_phone(text) == stored


@pytest.mark.parametrize("text", ["call me", "12", "+", "1" * 21, "138 0000 000x"])
def test_bad_phone_numbers_are_refused(text: str) -> None:
    with pytest.raises(RosterError, match="is not a phone number"):
        normalise_phone(text)
