#!/usr/bin/env python3
"""Write the Mosquitto password file used by docker-compose (``mosquitto/passwd``).

Stdlib only, so it runs with any Python >= 3.11 outside the project's venv. It shells out to
``mosquitto_passwd -b`` (Debian/Ubuntu: ``apt-get install mosquitto``) for the hashing.

    python3 mosquitto/passwd.py --user firewatch-ingest --user firewatch-simulator
    python3 mosquitto/passwd.py --from-seed firewatch/storage/seeds/xuchang.toml > devices.tsv
    python3 mosquitto/passwd.py --user firewatch-ingest:EXISTING-SECRET

``--user NAME`` without ``:PASSWORD`` gets a generated password; every generated password is
printed once on stdout as ``NAME<TAB>PASSWORD`` (store it; only its hash is kept). Progress
and errors go to stderr. An existing password file is updated (users added or their
password replaced) unless ``--replace`` is given. The file is replaced atomically.

Devices log in with username = device id (see ``mosquitto/acl``), so ``--from-seed`` adds one
user per device of a seed file (``[[units]] devices = [{ id = ... }]``).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "passwd"
# sha512-pbkdf2 is understood by every Mosquitto 2.x broker; newer mosquitto_passwd builds
# default to argon2id, which a 2.0 broker (e.g. an older eclipse-mosquitto:2 image) rejects.
HASH = "sha512-pbkdf2"
# The broker runs as uid 1883 in the eclipse-mosquitto image and cannot chown a read-only
# bind mount, so the file must be readable by "other". Mosquitto 2 only warns about that.
DEFAULT_MODE = 0o644
# Same alphabet as device ids (firewatch.core.contract.ID_PATTERN): safe inside ACL topic
# patterns (%u) and in mqtt:// URLs.
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class PasswdError(Exception):
    """A user-facing error: printed without a traceback, exit status 1."""


def find_mosquitto_passwd(explicit: str | None = None) -> str:
    """Path of the ``mosquitto_passwd`` binary, or :class:`PasswdError` explaining the fix."""
    candidates = (
        [explicit] if explicit else [shutil.which("mosquitto_passwd"), "/usr/bin/mosquitto_passwd"]
    )
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise PasswdError(
        "mosquitto_passwd not found"
        + (f" at {explicit}" if explicit else " on PATH or at /usr/bin/mosquitto_passwd")
        + ": install it (Debian/Ubuntu: apt-get install mosquitto) or pass --mosquitto-passwd"
    )


def parse_user(spec: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME:PASSWORD`` (the password may itself contain ':')."""
    name, sep, password = spec.partition(":")
    if not _USERNAME.match(name):
        raise PasswdError(f"bad user name {name!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    if sep and not password:
        raise PasswdError(f"empty password for {name!r} (omit ':' to generate one)")
    if any(c in password for c in "\r\n\0"):
        raise PasswdError(f"password for {name!r} contains a line break or NUL")
    return name, (password if sep else None)


def seed_device_ids(seed: Path) -> list[str]:
    """Device ids of a Firewatch seed file, in file order."""
    try:
        data = tomllib.loads(seed.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise PasswdError(f"cannot read seed {seed}: {err}") from err
    ids: list[str] = []
    for unit in data.get("units", []):
        for device in unit.get("devices", []):
            device_id = device.get("id") if isinstance(device, dict) else None
            if not isinstance(device_id, str):
                raise PasswdError(f"{seed}: unit {unit.get('id')!r} has a device without an id")
            ids.append(device_id)
    if not ids:
        raise PasswdError(f"{seed}: no devices found under [[units]] devices")
    return ids


def generate_password() -> str:
    """32 URL-safe characters (192 bits): no escaping needed in mqtt:// URLs or .env files."""
    return secrets.token_urlsafe(24)


def write_passwd(
    out: Path,
    users: Sequence[tuple[str, str]],
    *,
    binary: str,
    replace: bool = False,
    mode: int = DEFAULT_MODE,
) -> None:
    """Add or update ``users`` in the password file ``out`` (a new file if ``replace``)."""
    if not users:
        raise PasswdError("no users given (use --user and/or --from-seed)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        existing = out.exists() and not replace
        if existing:
            shutil.copyfile(out, tmp)
        for i, (name, password) in enumerate(users):
            create = ["-c"] if i == 0 and not existing else []
            cmd = [binary, "-H", HASH, *create, "-b", str(tmp), name, password]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                detail = (proc.stderr or proc.stdout).strip()
                raise PasswdError(f"mosquitto_passwd failed for user {name!r}: {detail}")
        tmp.chmod(mode)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _octal(text: str) -> int:
    try:
        return int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal file mode: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="passwd.py",
        description="Create or update the Mosquitto password file for docker-compose.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"password file to write (default: {DEFAULT_OUT})",
    )
    p.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME[:PASSWORD]",
        help="add or update a user; without a password one is generated (repeatable)",
    )
    p.add_argument(
        "--from-seed",
        action="append",
        default=[],
        type=Path,
        metavar="SEED.toml",
        help="add one user per device in a seed file, generated passwords (repeatable)",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="start a new file instead of updating an existing one",
    )
    p.add_argument(
        "--mode",
        type=_octal,
        default=DEFAULT_MODE,
        help="file mode, octal (default 644: the broker container must read it)",
    )
    p.add_argument("--mosquitto-passwd", metavar="PATH", help="mosquitto_passwd binary to use")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        binary = find_mosquitto_passwd(args.mosquitto_passwd)
        specs = [parse_user(s) for s in args.user]
        for seed in args.from_seed:
            specs.extend((device_id, None) for device_id in seed_device_ids(seed))
        names = [name for name, _ in specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise PasswdError(f"user(s) given more than once: {', '.join(duplicates)}")
        users: list[tuple[str, str]] = []
        generated: list[tuple[str, str]] = []
        for name, password in specs:
            if password is None:
                password = generate_password()
                generated.append((name, password))
            users.append((name, password))
        write_passwd(args.out, users, binary=binary, replace=args.replace, mode=args.mode)
    except PasswdError as err:
        print(f"passwd.py: error: {err}", file=sys.stderr)
        return 1
    for name, password in generated:
        print(f"{name}\t{password}")
    print(
        f"passwd.py: wrote {len(users)} user(s) to {args.out}"
        + (
            f"; {len(generated)} generated password(s) printed above, shown only once"
            if generated
            else ""
        ),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
