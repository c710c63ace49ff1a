"""Issuing, rotating and revoking a device's broker credential (docs/adr/0012).

A credential is a random password (192 bits) shown once: the database keeps only the
broker's own hash of it (``storage/credentials.py``), and the broker gets the password over
``$CONTROL`` while the database transaction that stores the hash is still open. So the two
change together or not at all, from the caller's point of view:

* the broker refuses or does not answer in time: the transaction rolls back, the caller gets
  :class:`BrokerUnavailable` (the API answers 503) and nothing is shown. If the broker did
  apply it and only its answer was lost, the device's old password no longer works at the
  broker while the database still has the old hash; the caller's retry (a new rotation)
  sets both again, so "retry until you get the password" always ends consistent.
* the broker applied it and the commit fails: the same, seen as a database error.

Issuing replaces the device's broker account whole (delete, then create in one ``$CONTROL``
message): a rotation disconnects whoever is connected with the old password, and the role
is rewritten with the device's current unit. A revocation needs no password: it is stored,
signalled (``NOTIFY firewatch_broker``) and applied by the broker sync (``registry/sync.py``)
within a second; :func:`revoke` also applies it at once when it can.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from firewatch.core.credentials import BrokerHash, broker_hash, generate_password, matches
from firewatch.runtime.brokerconf import (
    DEVICE_DESCRIPTION,
    Account,
    build_dynsec,
    device_acls,
    device_role,
)
from firewatch.runtime.dynsec_control import ControlError, DynsecControl
from firewatch.storage import credentials as store

log = logging.getLogger(__name__)

#: Answers that mean "already as wanted" for the idempotent steps of a push.
_ALREADY = {"Client not found", "Role not found", "Role already exists"}


class CredentialError(Exception):
    """A request the registry refuses (the message says why)."""


class NoSuchDevice(CredentialError):
    """No device has that id."""


class Decommissioned(CredentialError):
    """The device is decommissioned: it gets no credential."""


class BrokerUnavailable(CredentialError):
    """The broker did not confirm the change; nothing was changed in the database."""


@dataclass(frozen=True)
class Issued:
    """A new credential: ``password`` exists only here (show it once)."""

    device_id: str
    unit_id: str
    username: str
    client_id: str
    password: str
    version: int
    topic_prefix: str


def account_commands(
    device_id: str, unit_id: str, password: str, topic_root: str
) -> list[dict[str, Any]]:
    """The ``$CONTROL`` commands that make the broker's account of a device exactly this:
    username = client id = ``device_id``, ``password``, its own role pinned to ``unit_id``."""
    role = device_role(device_id)
    acls = [{**a, "priority": 0} for a in device_acls(device_id, topic_root, unit_id)]
    return [
        {"command": "deleteClient", "username": device_id},
        {"command": "createRole", "rolename": role, "acls": acls},
        {"command": "modifyRole", "rolename": role, "acls": acls},
        {
            "command": "createClient",
            "username": device_id,
            "password": password,
            "clientid": device_id,
            "textdescription": DEVICE_DESCRIPTION,
            "roles": [{"rolename": role}],
        },
    ]


def push(control: DynsecControl, commands: list[dict[str, Any]], timeout: float = 5.0) -> None:
    """Send ``commands``; :class:`BrokerUnavailable` unless each succeeded or was already so."""
    try:
        answers = control.run(commands, timeout)
    except ControlError as err:
        raise BrokerUnavailable(f"the broker did not confirm the change: {err}") from err
    for answer in answers:
        if answer.error is not None and answer.error not in _ALREADY:
            raise BrokerUnavailable(f"the broker refused {answer.command}: {answer.error}")


def issue(
    conn: psycopg.Connection[Any],
    control: DynsecControl,
    device_id: str,
    *,
    actor: str,
    topic_root: str,
) -> Issued:
    """Give ``device_id`` a new password (its first, or a rotation that also lifts a
    revocation) at the broker and in the database, together (see the module docstring).

    Raises :class:`NoSuchDevice`, :class:`Decommissioned` or :class:`BrokerUnavailable`;
    on any of them nothing is stored.
    """
    with conn.transaction():
        store.lock_broker(conn)
        found = store.lock_device(conn, device_id)
        if found is None:
            raise NoSuchDevice(f"no device {device_id!r}")
        unit_id, decommissioned_at = found
        if decommissioned_at is not None:
            raise Decommissioned(
                f"device {device_id!r} was decommissioned at {decommissioned_at:%Y-%m-%d %H:%M}"
                " UTC: it gets no credential"
            )
        password = generate_password()
        version = store.store_hash(conn, device_id, broker_hash(password), actor=actor)
        push(control, account_commands(device_id, unit_id, password, topic_root))
    log.info("credential v%d of %s issued by %s", version, device_id, actor)
    return Issued(
        device_id=device_id,
        unit_id=unit_id,
        username=device_id,
        client_id=device_id,
        password=password,
        version=version,
        topic_prefix=f"{topic_root}/{unit_id}/{device_id}/",
    )


def revoke(
    conn: psycopg.Connection[Any],
    control: DynsecControl | None,
    device_id: str,
    *,
    actor: str,
) -> bool:
    """Revoke the device's credential; False if it had none in force (:class:`NoSuchDevice`
    if there is no such device). Committed first; then the broker account is deleted at
    once when ``control`` can (the broker disconnects the device), else by the broker sync."""
    with conn.transaction():
        if store.lock_device(conn, device_id) is None:
            raise NoSuchDevice(f"no device {device_id!r}")
        revoked = store.revoke(conn, device_id, actor=actor)
    if revoked and control is not None:
        try:
            push(control, [{"command": "deleteClient", "username": device_id}])
        except BrokerUnavailable as err:
            log.warning("%s: revocation left to the broker sync (%s)", device_id, err)
    return revoked


def provision(
    conn: psycopg.Connection[Any],
    device_ids: list[str],
    known: dict[str, str],
    *,
    actor: str,
) -> dict[str, str]:
    """Passwords for ``device_ids`` for a broker that is about to start from the registry
    (:func:`broker_document`), so nothing is pushed: a password in ``known`` that still
    matches the device's credential is kept, any other device gets a new credential. Returns
    every device's password (``firewatch up`` keeps them for its simulated city, as a vendor
    keeps what it was shown). Devices that do not exist or are decommissioned are skipped."""
    out: dict[str, str] = {}
    with conn.transaction():
        for device_id in device_ids:
            found = store.lock_device(conn, device_id)
            if found is None or found[1] is not None:
                continue
            stored = store.hash_of(conn, device_id)
            password = known.get(device_id)
            if stored is None or password is None or not matches(stored, password):
                password = generate_password()
                store.store_hash(conn, device_id, broker_hash(password), actor=actor)
            out[device_id] = password
    return out


def broker_document(
    conn: psycopg.Connection[Any],
    accounts: list[Account],
    *,
    topic_root: str,
    ingest_group: str,
) -> dict[str, Any]:
    """The broker's dynamic-security file: the service ``accounts`` given (admin, ingest,
    gateways) and every device the registry lets in, with its stored hash, pinned to its
    unit. What the broker starts from; the broker sync keeps it so afterwards."""
    return build_dynsec(
        accounts,
        topic_root=topic_root,
        ingest_group=ingest_group or "ingest",
        devices=store.active_logins(conn),
    )


@dataclass(frozen=True)
class HashImport:
    """What :func:`import_hashes` did, by device id."""

    imported: list[str]
    kept: list[str]  # already had a credential in force: left as it is
    unknown: list[str]  # not a registered device in service: not imported


def import_hashes(
    conn: psycopg.Connection[Any], doc: Mapping[str, Any], *, actor: str, dry_run: bool = False
) -> HashImport:
    """Take the device accounts of a dynamic-security document written before the registry
    kept credentials (``mosquitto/passwd.py --from-seed``) into the registry, hashes as they
    are, so those devices keep their passwords after the upgrade (ADR 0012). A device account
    is a client described as ``firewatch device``; it is imported when its username is a
    registered device in service without a credential in force. Nothing is pushed (the
    broker starts from :func:`broker_document` afterwards)."""
    imported: list[str] = []
    kept: list[str] = []
    unknown: list[str] = []
    with conn.transaction() as tx:
        for client in doc.get("clients", []):
            if client.get("textdescription") != DEVICE_DESCRIPTION:
                continue
            device_id = str(client.get("username", ""))
            found = store.lock_device(conn, device_id)
            if found is None or found[1] is not None:
                unknown.append(device_id)
                continue
            if store.hash_of(conn, device_id) is not None:
                kept.append(device_id)
                continue
            pw = BrokerHash(str(client["password"]), str(client["salt"]), int(client["iterations"]))
            store.store_hash(conn, device_id, pw, actor=actor)
            imported.append(device_id)
        if dry_run:
            raise psycopg.Rollback(tx)  # leaves the block quietly, nothing written
    return HashImport(imported, kept, unknown)
