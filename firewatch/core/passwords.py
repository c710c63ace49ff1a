"""Password hashing: argon2id through pwdlib (docs/adr/0008-accounts-and-tokens.md).

Hashes are PHC strings (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``) that carry their
parameters, so a hash made with older parameters still verifies; :meth:`Passwords.verify`
then also returns a new hash with the current ones, for the caller to store.
"""

from __future__ import annotations

from pwdlib import PasswordHash
from pwdlib.exceptions import PwdlibError
from pwdlib.hashers.argon2 import Argon2Hasher

from firewatch.core.people import PeopleError

#: Shortest password accepted (docs/domain.md, "People and tokens": design assumption).
MIN_PASSWORD_LENGTH = 12
#: Longest: bounds the work one request can cause; no one types more.
MAX_PASSWORD_LENGTH = 1024


class PasswordPolicyError(PeopleError):
    """A password refused before hashing, saying why."""


def check_policy(password: str) -> str:
    """``password`` if it is acceptable: 12 to 1024 characters, not only whitespace."""
    if not password.strip():
        raise PasswordPolicyError("the password is empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordPolicyError(
            f"the password is too short: at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordPolicyError(
            f"the password is too long: at most {MAX_PASSWORD_LENGTH} characters"
        )
    return password


class Passwords:
    """Hash and verify with one argon2id parameter set (the library's defaults: t=3, 64 MiB,
    p=4, unless given). Tests may pass cheaper or different parameters."""

    def __init__(self, hasher: Argon2Hasher | None = None) -> None:
        self._hash = PasswordHash((hasher or Argon2Hasher(),))

    def hash(self, password: str) -> str:
        """A salted argon2id hash of ``password`` (checked against the policy first)."""
        return self._hash.hash(check_policy(password))

    def verify(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """``(matches, new_hash)``: ``new_hash`` is set when it matches but was made with
        other parameters (store it). A malformed or foreign hash never matches."""
        try:
            return self._hash.verify_and_update(password, hashed)
        except PwdlibError:
            return False, None


#: The production parameter set.
PASSWORDS = Passwords()


def hash_password(password: str) -> str:
    return PASSWORDS.hash(password)


def verify_password(password: str, hashed: str) -> tuple[bool, str | None]:
    return PASSWORDS.verify(password, hashed)
