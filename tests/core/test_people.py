"""People rules and password hashing (firewatch/core/people.py, firewatch/core/passwords.py):
usernames, roles and their scopes, the token format, argon2id hash/verify/rehash."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from pwdlib.hashers.argon2 import Argon2Hasher

from firewatch.core.passwords import (
    MIN_PASSWORD_LENGTH,
    PasswordPolicyError,
    Passwords,
    check_policy,
    hash_password,
    verify_password,
)
from firewatch.core.people import (
    PeopleError,
    Role,
    TokenInfo,
    check_scope,
    looks_like_token,
    new_token,
    normalise_username,
    parse_role,
    token_digest,
    token_prefix,
)

PASSWORD = "correct horse battery"
#: Cheap parameters: these tests check behaviour, not cost.
CHEAP = Passwords(Argon2Hasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))


def test_a_password_verifies_and_a_wrong_one_does_not() -> None:
    hashed = hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$")
    assert PASSWORD not in hashed
    assert verify_password(PASSWORD, hashed) == (True, None)
    assert verify_password(PASSWORD + "!", hashed) == (False, None)
    assert hash_password(PASSWORD) != hashed  # salted


def test_a_hash_with_old_parameters_verifies_and_is_rehashed() -> None:
    old = CHEAP.hash(PASSWORD)
    ok, new = verify_password(PASSWORD, old)
    assert ok
    assert new is not None
    assert new != old
    assert "m=65536,t=3,p=4" in new  # the current parameters
    assert verify_password(PASSWORD, new) == (True, None)
    assert verify_password("another password", old) == (False, None)


@pytest.mark.parametrize("hashed", ["", "plaintext", "$2b$12$notreallyabcrypthash", "$argon2id$"])
def test_a_malformed_or_foreign_hash_never_matches(hashed: str) -> None:
    assert CHEAP.verify(PASSWORD, hashed) == (False, None)


@pytest.mark.parametrize(
    ("password", "words"),
    [
        ("short", "too short"),
        ("x" * (MIN_PASSWORD_LENGTH - 1), "at least 12"),
        (" " * 20, "empty"),
        ("x" * 1025, "too long"),
    ],
)
def test_the_password_policy_refuses_with_a_reason(password: str, words: str) -> None:
    with pytest.raises(PasswordPolicyError, match=words):
        check_policy(password)
    with pytest.raises(PasswordPolicyError):
        hash_password(password)
    assert check_policy("x" * MIN_PASSWORD_LENGTH) == "x" * MIN_PASSWORD_LENGTH


@pytest.mark.parametrize(
    ("given", "stored"), [("li.wei", "li.wei"), ("  Li.Wei ", "li.wei"), ("ops-1_a", "ops-1_a")]
)
def test_usernames_are_stored_lowercase(given: str, stored: str) -> None:
    assert normalise_username(given) == stored


@pytest.mark.parametrize("bad", ["ab", "x" * 65, "li wei", "li@wei", "李伟", "", "li/wei"])
def test_bad_usernames_are_refused(bad: str) -> None:
    with pytest.raises(PeopleError, match="3-64 characters"):
        normalise_username(bad)


def test_roles_are_the_seven_of_the_issue() -> None:
    assert [r.value for r in Role] == [
        "operator",
        "shift_leader",
        "supervisor",
        "inspector",
        "unit",
        "vendor",
        "admin",
    ]
    assert parse_role("Shift_Leader") is Role.SHIFT_LEADER
    with pytest.raises(PeopleError, match="roles are operator"):
        parse_role("root")


def test_unit_needs_a_unit_vendor_a_vendor_and_no_other_role_a_scope() -> None:
    assert check_scope(Role.UNIT, "U-1", None) == ("U-1", None)
    assert check_scope(Role.VENDOR, None, " Acme ") == (None, "Acme")
    assert check_scope(Role.OPERATOR, "", "  ") == (None, None)
    with pytest.raises(PeopleError, match="needs the unit"):
        check_scope(Role.UNIT, None, None)
    with pytest.raises(PeopleError, match="needs the vendor"):
        check_scope(Role.VENDOR, None, "")
    with pytest.raises(PeopleError, match="only role 'unit'"):
        check_scope(Role.SUPERVISOR, "U-1", None)
    with pytest.raises(PeopleError, match="only role 'vendor'"):
        check_scope(Role.UNIT, "U-1", "Acme")


def test_tokens_are_fw_and_32_random_bytes() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    for t in tokens:
        assert looks_like_token(t)
        assert len(base64.urlsafe_b64decode(t[3:] + "=")) == 32
        assert token_prefix(t) == t[:8]
        assert t.startswith("fw_")
        assert len(token_digest(t)) == 32
    assert not looks_like_token("fw_short")
    assert not looks_like_token("xx_" + next(iter(tokens))[3:])
    assert not looks_like_token(next(iter(tokens)) + "a")


def test_a_token_state_follows_expiry_and_revocation() -> None:
    t0 = datetime(2026, 12, 7, tzinfo=UTC)
    info = TokenInfo("fw_abcde", "li", "gw", t0, t0 + timedelta(days=1), None, None)
    assert info.state(t0) == "active"
    assert info.state(t0 + timedelta(days=1)) == "expired"
    revoked = TokenInfo("fw_abcde", "li", "gw", t0, t0 + timedelta(days=1), t0, None)
    assert revoked.state(t0) == "revoked"
