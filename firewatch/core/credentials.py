"""Device broker credentials: what a password becomes, in the broker's own hash format.

Mosquitto's dynamic-security plugin checks a login against PBKDF2-HMAC-SHA512 with a
12-byte salt, base64-encoded, with the iteration count beside them (what ``mosquitto_ctrl
dynsec`` writes). Firewatch keeps exactly that in ``device_credentials`` so that the broker's
file can be rebuilt from the database without any password (docs/adr/0012). A password is
generated here, shown once, pushed to the broker over ``$CONTROL`` and never stored.

Stdlib only: ``mosquitto/passwd.py`` (through ``firewatch.runtime.brokerconf``) runs it
with any Python outside the project's venv.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

# What the plugin itself writes (`mosquitto_ctrl dynsec init`): 12-byte salt, 101 iterations.
# Generated passwords carry 192 random bits, so stretching adds nothing against guessing,
# while the single-threaded broker pays the iterations on every CONNECT: after a restart,
# 20,000 devices reconnect at once.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12


class BrokerHash(NamedTuple):
    """The plugin's ``password`` / ``salt`` / ``iterations`` fields of one client."""

    password: str
    salt: str
    iterations: int

    def to_json(self) -> dict[str, str | int]:
        return {"password": self.password, "salt": self.salt, "iterations": self.iterations}


class DeviceLogin(NamedTuple):
    """A device the broker must let in: its id (username and client id), its unit (the only
    one it may publish under) and its password hash."""

    device_id: str
    unit_id: str
    hash: BrokerHash


def broker_hash(
    password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None
) -> BrokerHash:
    """The plugin's hash of ``password`` (a fresh random salt unless given)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    if len(salt) != SALT_BYTES:
        raise ValueError(f"the plugin expects a {SALT_BYTES}-byte salt")
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return BrokerHash(
        base64.b64encode(digest).decode("ascii"),
        base64.b64encode(salt).decode("ascii"),
        iterations,
    )


def matches(stored: BrokerHash, password: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (constant time)."""
    again = broker_hash(password, iterations=stored.iterations, salt=base64.b64decode(stored.salt))
    return secrets.compare_digest(again.password.encode(), stored.password.encode())


def generate_password() -> str:
    """32 URL-safe characters (192 bits): no escaping needed in mqtt:// URLs or .env files."""
    return secrets.token_urlsafe(24)


def read_credentials(path: Path) -> dict[str, str]:
    """Device passwords from a ``DEVICE<TAB>PASSWORD`` file (what ``firewatch up`` writes for
    its simulated city with :func:`credentials_text`, and what a vendor keeps from the
    credentials it was shown); ``#`` lines and blank lines are skipped. ValueError names the
    first malformed line."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        device, sep, password = line.partition("\t")
        if not sep or not device or not password:
            raise ValueError(f"{path}:{n}: expected DEVICE<TAB>PASSWORD")
        out[device] = password
    return out


def credentials_text(passwords: Mapping[str, str], comment: str) -> str:
    """The ``DEVICE<TAB>PASSWORD`` file :func:`read_credentials` reads, ``comment`` first."""
    return f"# {comment}\n" + "".join(f"{d}\t{p}\n" for d, p in sorted(passwords.items()))
