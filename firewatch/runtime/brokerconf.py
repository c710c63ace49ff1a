"""The production broker's access control: the Mosquitto dynamic-security file.

Mosquitto 2.0's ``acl_file`` grants every SUBSCRIBE and only filters at delivery, and its
``password_file`` does not tie a client id to a username; both let one device credential
divert or break ingest (docs/adr/0005-broker-access-control.md). The dynamic-security plugin
checks filters at SUBSCRIBE and binds a client id to an account, so that is what this module
generates: one JSON document (``plugin_opt_config_file``) with every account, its password
hash, its client id binding and its role.

Accounts (:class:`Kind`):

``device``
    username = client id = the device id. Publishes only ``{root}/+/{id}/telemetry|event|
    status``; subscribes to (and receives) only ``{root}/+/{id}/command``. One role per
    device, because the 2.0 plugin has no ``%u`` substitution in ACL topics.
``ingest``
    username = client id (``FIREWATCH_INGEST_CLIENT_ID``, e.g. ``firewatch-ingest-1``).
    Subscribes only to the literal ``{root}/+/+/+`` (one worker) or
    ``$share/{group}/{root}/+/+/+`` (several), and receives ``{root}/+/+/+``.
``gateway``
    username = client id, one connection; publishes for every device.
``publisher``
    publishes for every device over any number of connections (the simulator, the load
    generator, the alert probe), so its client id is *not* bound: a publisher credential can
    take over another session and is for demo and benchmark brokers only.

Everything else is refused: SUBSCRIBE answers "Not authorized" (0x87) per filter, a
refused QoS 1 PUBLISH gets PUBACK 0x87 (and Mosquitto 2.0.11 then closes the connection),
CONNECT with a client id other than the bound one gets CONNACK 0x87. Every subscribe grant
has the matching receive grant, so no granted subscription is silently starved at delivery.

Stdlib only: ``mosquitto/passwd.py`` runs :func:`main` with any Python >= 3.11 outside the
project's venv. Mosquitto 2.0 reads the file at start only (SIGHUP does not reload it), so
restart the broker after writing it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from firewatch.core.credentials import (
    PBKDF2_ITERATIONS,
    BrokerHash,
    DeviceLogin,
    broker_hash,
)
from firewatch.core.credentials import generate_password as generate_password

DEFAULT_TOPIC_ROOT = "firewatch/v1"
DEFAULT_INGEST_GROUP = "ingest"
DEVICE_CHANNELS = ("telemetry", "event", "status")
COMMAND_CHANNEL = "command"
# The broker (uid 1883 in the eclipse-mosquitto image) reads the file through a read-only
# bind mount, so it must be readable by "other"; it holds only salted hashes.
DEFAULT_MODE = 0o644
# Same alphabet as device ids (firewatch.core.contract.ID_PATTERN): no MQTT wildcard can
# get into a topic built from a name.
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
_NAME = re.compile(NAME_PATTERN)
_ROOT = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")

INGEST_ROLE = "firewatch-ingest"
PUBLISHER_ROLE = "firewatch-publisher"
ADMIN_ROLE = "firewatch-admin"
DEVICE_ROLE_PREFIX = "firewatch-device:"
#: The ``textdescription`` of every device client: the broker sync manages those only.
DEVICE_DESCRIPTION = "firewatch device"
CONTROL_TOPICS = "$CONTROL/dynamic-security/#"
CONTROL_RESPONSE = "$CONTROL/dynamic-security/v1/response"


class BrokerConfError(Exception):
    """A user-facing error: printed without a traceback, exit status 1."""


class Kind(StrEnum):
    """What an account may do; see the module docstring."""

    DEVICE = "device"
    INGEST = "ingest"
    GATEWAY = "gateway"
    PUBLISHER = "publisher"
    ADMIN = "admin"


@dataclass(frozen=True)
class Account:
    """One broker login. ``clientid`` is the only client id it may connect with (``None``:
    any, for publishers that open several connections). ``unit``: the only unit a device
    may publish under (None: any, for accounts made without the registry)."""

    kind: Kind
    username: str
    password: str
    unit: str | None = None

    def __post_init__(self) -> None:
        check_name(self.username)
        if self.unit is not None:
            check_name(self.unit)
        if not self.password or any(c in self.password for c in "\r\n\0"):
            raise BrokerConfError(f"password for {self.username!r} is empty or has a line break")

    @property
    def clientid(self) -> str | None:
        return None if self.kind is Kind.PUBLISHER else self.username


def check_name(name: str) -> str:
    """``name`` if it is a valid account name, else :class:`BrokerConfError`."""
    if not _NAME.fullmatch(name):  # fullmatch: '$' alone would let a trailing newline in
        raise BrokerConfError(f"bad account name {name!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    return name


def ingest_subscriptions(topic_root: str, group: str) -> list[str]:
    """The filters an ingest account may subscribe to: the plain one (one worker, the
    default: the only kind Mosquitto 2.0 restores after a restart) and the shared one of
    ``group`` (several workers)."""
    return [f"{topic_root}/+/+/+", f"$share/{group}/{topic_root}/+/+/+"]


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "allow": True}


def device_acls(device_id: str, topic_root: str, unit: str | None = None) -> list[dict[str, Any]]:
    """A device's grants: publish its own channels, subscribe to/receive its commands, under
    ``unit`` only (the registry's unit of the device; None: any unit)."""
    where = f"{topic_root}/{unit or '+'}/{device_id}"
    command = f"{where}/{COMMAND_CHANNEL}"
    return [
        *(_acl("publishClientSend", f"{where}/{ch}") for ch in DEVICE_CHANNELS),
        # Pattern, not literal: with no unit pinned the device may name it or use '+'.
        _acl("subscribePattern", command),
        _acl("publishClientReceive", command),
    ]


def admin_acls() -> list[dict[str, Any]]:
    """The admin account's grants: the dynamic-security ``$CONTROL`` API and its answers,
    nothing of the devices' topics (the broker sync and the API use it)."""
    return [
        _acl("publishClientSend", CONTROL_TOPICS),
        _acl("subscribeLiteral", CONTROL_RESPONSE),
        _acl("publishClientReceive", CONTROL_TOPICS),
    ]


def device_role(device_id: str) -> str:
    """The name of a device's own role."""
    return DEVICE_ROLE_PREFIX + device_id


def device_accounts(doc: Mapping[str, Any]) -> int:
    """How many device accounts (registry-managed clients) a document holds."""
    return sum(1 for c in doc.get("clients", []) if c.get("textdescription") == DEVICE_DESCRIPTION)


def device_entry(device_id: str, pw: BrokerHash) -> dict[str, Any]:
    """A device's client entry of the document (as the plugin writes it)."""
    return {
        "username": device_id,
        "clientid": device_id,
        "textdescription": DEVICE_DESCRIPTION,
        **pw.to_json(),
        "roles": [{"rolename": device_role(device_id)}],
    }


def ingest_acls(topic_root: str, group: str) -> list[dict[str, Any]]:
    """An ingest worker's grants: its two subscriptions, literally, and their messages."""
    return [
        # Literal: another group would take a share of ingest's traffic away from it.
        *(_acl("subscribeLiteral", f) for f in ingest_subscriptions(topic_root, group)),
        _acl("publishClientReceive", f"{topic_root}/+/+/+"),
    ]


def publisher_acls(topic_root: str) -> list[dict[str, Any]]:
    """A gateway's or publisher's grants: publish any device's channels, nothing else."""
    return [_acl("publishClientSend", f"{topic_root}/+/+/{ch}") for ch in DEVICE_CHANNELS]


def hash_password(
    password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None
) -> dict[str, Any]:
    """The plugin's ``password``/``salt``/``iterations`` fields for ``password``."""
    return dict(broker_hash(password, iterations=iterations, salt=salt).to_json())


def check_password(client: Mapping[str, Any], password: str) -> bool:
    """Whether ``password`` matches a client entry of a dynamic-security document."""
    salt = base64.b64decode(client["salt"])
    expected = hash_password(password, iterations=int(client["iterations"]), salt=salt)
    return secrets.compare_digest(
        expected["password"].encode("ascii"), str(client["password"]).encode("utf-8")
    )


def _role_of(account: Account) -> str:
    if account.kind is Kind.DEVICE:
        return device_role(account.username)
    if account.kind is Kind.ADMIN:
        return ADMIN_ROLE
    return INGEST_ROLE if account.kind is Kind.INGEST else PUBLISHER_ROLE


def build_dynsec(
    accounts: Iterable[Account],
    *,
    topic_root: str = DEFAULT_TOPIC_ROOT,
    ingest_group: str = DEFAULT_INGEST_GROUP,
    existing: Mapping[str, Any] | None = None,
    devices: Iterable[DeviceLogin] = (),
) -> dict[str, Any]:
    """The dynamic-security document for ``accounts`` (freshly salted hashes) and the
    registry's ``devices`` (their stored hashes, each pinned to its unit).

    With ``existing`` (a document this function wrote before), its other clients are kept
    as they are, hashes and device roles included; an account given again replaces its
    entry. The shared roles are always rewritten from ``topic_root`` and ``ingest_group``
    (after changing the topic root, start from scratch: the kept device roles name the old
    one). Everything not granted is denied, including anything an unknown or anonymous
    client asks for.
    """
    if not _ROOT.fullmatch(topic_root):
        raise BrokerConfError(f"bad topic root {topic_root!r}")
    if not _NAME.fullmatch(ingest_group):
        raise BrokerConfError(f"bad ingest group {ingest_group!r}")
    accounts = list(accounts)
    logins = list(devices)
    names = [a.username for a in accounts] + [d.device_id for d in logins]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BrokerConfError(f"account(s) given more than once: {', '.join(duplicates)}")

    clients: dict[str, dict[str, Any]] = {}
    roles: dict[str, dict[str, Any]] = {}
    if existing is not None:
        old_clients, old_roles = _parts(existing)
        clients = {str(c["username"]): dict(c) for c in old_clients}
        roles = {str(r["rolename"]): dict(r) for r in old_roles}
    roles[INGEST_ROLE] = {"rolename": INGEST_ROLE, "acls": ingest_acls(topic_root, ingest_group)}
    roles[PUBLISHER_ROLE] = {"rolename": PUBLISHER_ROLE, "acls": publisher_acls(topic_root)}
    roles[ADMIN_ROLE] = {"rolename": ADMIN_ROLE, "acls": admin_acls()}
    for login in logins:
        check_name(login.device_id)
        check_name(login.unit_id)
        role = device_role(login.device_id)
        acls = device_acls(login.device_id, topic_root, login.unit_id)
        roles[role] = {"rolename": role, "acls": acls}
        clients[login.device_id] = device_entry(login.device_id, login.hash)
    for account in accounts:
        role = _role_of(account)
        if account.kind is Kind.DEVICE:
            acls = device_acls(account.username, topic_root, account.unit)
            roles[role] = {"rolename": role, "acls": acls}
        entry: dict[str, Any] = {
            "username": account.username,
            "textdescription": f"firewatch {account.kind.value}",
            **hash_password(account.password),
            "roles": [{"rolename": role}],
        }
        if account.clientid is not None:
            entry["clientid"] = account.clientid
        clients[account.username] = entry
    used = {r["rolename"] for c in clients.values() for r in c.get("roles", [])}
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            # Deny too, so that a role can never receive more than it was granted; every
            # subscribe grant above comes with its receive grant.
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": [clients[name] for name in sorted(clients)],
        "groups": [],
        "roles": [roles[name] for name in sorted(roles) if name in used],
    }


def _parts(doc: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    clients, roles = doc.get("clients", []), doc.get("roles", [])
    ok = (
        isinstance(clients, list)
        and isinstance(roles, list)
        and all(isinstance(c, dict) and isinstance(c.get("username"), str) for c in clients)
        and all(isinstance(r, dict) and isinstance(r.get("rolename"), str) for r in roles)
    )
    if not ok:
        raise BrokerConfError("existing file is not a dynamic-security document")
    return clients, roles


def read_dynsec(path: Path) -> dict[str, Any]:
    """A dynamic-security document from ``path``."""
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as err:
        raise BrokerConfError(f"cannot read {path}: {err}") from err
    if not isinstance(doc, dict):
        raise BrokerConfError(f"{path} is not a dynamic-security document")
    _parts(doc)
    return doc


def write_dynsec(path: Path, doc: Mapping[str, Any], *, mode: int = DEFAULT_MODE) -> None:
    """Write ``doc`` to ``path`` atomically (a reader sees the old or the new file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
            fh.write("\n")
        tmp.chmod(mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def seed_device_ids(seed: Path) -> list[str]:
    """Device ids of a Firewatch seed file (``[[units]] devices = [{ id = ... }]``)."""
    try:
        data = tomllib.loads(seed.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise BrokerConfError(f"cannot read seed {seed}: {err}") from err
    ids: list[str] = []
    for unit in data.get("units", []):
        for device in unit.get("devices", []):
            device_id = device.get("id") if isinstance(device, dict) else None
            if not isinstance(device_id, str):
                raise BrokerConfError(f"{seed}: unit {unit.get('id')!r} has a device without an id")
            ids.append(device_id)
    if not ids:
        raise BrokerConfError(f"{seed}: no devices found under [[units]] devices")
    return ids


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME:PASSWORD`` (the password may itself contain ':')."""
    name, sep, password = spec.partition(":")
    check_name(name)
    if sep and not password:
        raise BrokerConfError(f"empty password for {name!r} (omit ':' to generate one)")
    return name, (password if sep else None)


def octal_mode(text: str) -> int:
    """A file mode given in octal (an argparse type)."""
    try:
        return int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal file mode: {text!r}") from None


def build_parser(prog: str, default_out: Path | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Create or update the broker's dynamic-security file (accounts and ACLs).",
        epilog="Without ':PASSWORD' a password is generated and printed once as "
        "NAME<TAB>PASSWORD on stdout. Restart the broker afterwards: Mosquitto 2.0 reads "
        "this file at start only.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=default_out,
        required=default_out is None,
        help="file to write" + (f" (default: {default_out})" if default_out else ""),
    )
    kinds = {
        Kind.INGEST: "ingest worker; NAME is also its client id (FIREWATCH_INGEST_CLIENT_ID)",
        Kind.DEVICE: "device; NAME is its device id and its client id",
        Kind.GATEWAY: "gateway publishing for every device over one connection, client id NAME",
        Kind.PUBLISHER: "simulator or load generator: publishes for every device over many "
        "connections with any client id (demo and benchmark brokers only)",
        Kind.ADMIN: "the $CONTROL account of the broker sync and the API "
        "(FIREWATCH_MQTT_ADMIN_USERNAME / _PASSWORD); client id NAME",
    }
    for kind, help_text in kinds.items():
        p.add_argument(
            f"--{kind.value}",
            action="append",
            default=[],
            metavar="NAME[:PASSWORD]",
            help=f"{help_text} (repeatable)",
        )
    p.add_argument(
        "--from-seed",
        action="append",
        default=[],
        type=Path,
        metavar="SEED.toml",
        help="add a device account for every device of a seed file (repeatable)",
    )
    p.add_argument(
        "--topic-root",
        default=DEFAULT_TOPIC_ROOT,
        help=f"FIREWATCH_TOPIC_ROOT (default {DEFAULT_TOPIC_ROOT})",
    )
    p.add_argument(
        "--ingest-group",
        default=DEFAULT_INGEST_GROUP,
        help=f"FIREWATCH_INGEST_GROUP (default {DEFAULT_INGEST_GROUP})",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="start a new file instead of updating an existing one",
    )
    p.add_argument(
        "--new-only",
        action="store_true",
        help="leave accounts already in the file as they are, password included (add only "
        "the missing ones, e.g. the new devices of an updated seed file)",
    )
    p.add_argument(
        "--mode",
        type=octal_mode,
        default=DEFAULT_MODE,
        help="file mode, octal (default 644: the broker container must read it)",
    )
    return p


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "python -m firewatch.runtime.brokerconf",
    default_out: Path | None = None,
) -> int:
    """The command line: exit status 0, or 1 with one ``error:`` line on stderr."""
    args = build_parser(prog, default_out).parse_args(argv)
    try:
        specs: list[tuple[Kind, str, str | None]] = [
            (kind, *parse_spec(spec)) for kind in Kind for spec in getattr(args, kind.value)
        ]
        for seed in args.from_seed:
            specs.extend((Kind.DEVICE, device_id, None) for device_id in seed_device_ids(seed))
        if not specs:
            raise BrokerConfError("no accounts given (--ingest, --device, --from-seed, ...)")
        out: Path = args.out
        existing = read_dynsec(out) if out.exists() and not args.replace else None
        if existing is not None and args.new_only:
            # A device in the field keeps working only with the password it was given.
            present = {str(c["username"]) for c in existing.get("clients", [])}
            specs = [spec for spec in specs if spec[1] not in present]
        generated: list[tuple[str, str]] = []
        accounts: list[Account] = []
        for kind, name, password in specs:
            if password is None:
                password = generate_password()
                generated.append((name, password))
            accounts.append(Account(kind, name, password))
        doc = build_dynsec(
            accounts,
            topic_root=args.topic_root,
            ingest_group=args.ingest_group,
            existing=existing,
        )
        try:
            write_dynsec(out, doc, mode=args.mode)
        except OSError as err:
            raise BrokerConfError(f"cannot write {out}: {err}") from err
    except BrokerConfError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    for name, password in generated:
        print(f"{name}\t{password}")
    shown = f"; {len(generated)} generated password(s) printed above, shown only once"
    print(
        f"{prog}: wrote {len(accounts)} account(s) to {out} ({len(doc['clients'])} in all)"
        + (shown if generated else "")
        + "; restart the broker to apply",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
