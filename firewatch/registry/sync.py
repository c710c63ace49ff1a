"""The broker sync (``firewatch broker sync``): keeps the broker's device accounts as the
registry says, without ever needing a password (docs/adr/0012).

The registry (``device_credentials`` joined with ``devices``) says which devices may log in
and under which unit. The broker's dynamic-security plugin holds its own copy. What can
drift, and what the sync does about it, each round:

* an account at the broker for a device that may no longer log in (revoked, decommissioned,
  unknown to the registry): **deleted** (the broker disconnects it), with its role;
* a device role whose grants differ from the device's unit (the device moved, or the role
  was edited by hand): **rewritten** (``modifyRole``);
* a role left without its account: **deleted**;
* a device that may log in but has no account at the broker (a broker whose state was lost
  and not rebuilt from the registry): **counted and logged** — its password is known only to
  the device, so only a rotation (or starting the broker from ``firewatch broker config``)
  can restore it.

Only accounts the registry manages are touched: clients described as ``firewatch device``
and roles named ``firewatch-device:*``; ingest, admin and publisher accounts are not.

A round runs when ``NOTIFY firewatch_broker`` says something changed (a revocation, a
decommissioning, a move: ``storage/credentials.py``) and every
``FIREWATCH_BROKER_SYNC_INTERVAL_S`` anyway. It runs on the worker runtime
(``runtime/worker.py``), which owns the database connections, reconnects and the summary
line; the ``$CONTROL`` connection is this service's (:class:`BrokerSync` is its context
manager). No SQL here.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import psycopg

from firewatch.core.credentials import DeviceLogin
from firewatch.core.settings import Settings
from firewatch.runtime.brokerconf import (
    DEVICE_DESCRIPTION,
    DEVICE_ROLE_PREFIX,
    device_acls,
    device_role,
)
from firewatch.runtime.dynsec_control import DynsecControl
from firewatch.runtime.worker import Worker
from firewatch.storage import channels
from firewatch.storage import credentials as store

log = logging.getLogger(__name__)


@dataclass
class SyncStats:
    """What the sync did since it started (and, in :attr:`last_missing`, what it found
    missing in its latest round)."""

    rounds: int = 0
    deleted: int = 0
    roles_fixed: int = 0
    roles_dropped: int = 0
    last_missing: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.rounds} rounds, {self.deleted} accounts removed, {self.roles_fixed} roles "
            f"rewritten, {self.roles_dropped} orphan roles dropped, "
            f"{len(self.last_missing)} devices without a broker account"
        )


def _grants(acls: list[dict[str, Any]]) -> set[tuple[str, str, bool]]:
    return {(str(a["acltype"]), str(a["topic"]), bool(a.get("allow", True))) for a in acls}


def plan(
    wanted: list[DeviceLogin],
    clients: list[dict[str, Any]],
    roles: list[dict[str, Any]],
    topic_root: str,
) -> tuple[list[dict[str, Any]], list[str], dict[str, int]]:
    """The ``$CONTROL`` commands that bring the broker's device accounts (``clients`` and
    ``roles`` as ``listClients`` / ``listRoles`` report them, verbose) to ``wanted``; the
    devices that are wanted and absent; and how many commands of each kind. Pure."""
    want = {w.device_id: w for w in wanted}
    have = {
        str(c["username"]): c
        for c in clients
        if c.get("textdescription") == DEVICE_DESCRIPTION
        or any(str(r.get("rolename", "")).startswith(DEVICE_ROLE_PREFIX) for r in c["roles"])
    }
    role_acls = {
        str(r["rolename"]): r.get("acls", [])
        for r in roles
        if str(r["rolename"]).startswith(DEVICE_ROLE_PREFIX)
    }
    commands: list[dict[str, Any]] = []
    counts = {"deleted": 0, "roles_fixed": 0, "roles_dropped": 0}
    for name in sorted(have.keys() - want.keys()):
        commands.append({"command": "deleteClient", "username": name})
        counts["deleted"] += 1
    kept_roles = set()
    for name in sorted(have.keys() & want.keys()):
        role = device_role(name)
        kept_roles.add(role)
        acls = device_acls(name, topic_root, want[name].unit_id)
        if role not in role_acls or _grants(role_acls[role]) != _grants(acls):
            fixed = [{**a, "priority": 0} for a in acls]
            if role in role_acls:
                commands.append({"command": "modifyRole", "rolename": role, "acls": fixed})
            else:
                commands.append({"command": "createRole", "rolename": role, "acls": fixed})
                commands.append({"command": "addClientRole", "username": name, "rolename": role})
            counts["roles_fixed"] += 1
    for role in sorted(role_acls.keys() - kept_roles):
        commands.append({"command": "deleteRole", "rolename": role})
        counts["roles_dropped"] += 1
    missing = sorted(want.keys() - have.keys())
    return commands, missing, counts


class BrokerSync:
    """The broker sync service (see the module docstring). ``control`` is an open
    :class:`DynsecControl` owned by the caller."""

    def __init__(self, settings: Settings, control: DynsecControl) -> None:
        if not settings.database_url:
            raise ValueError("database_url must be resolved before the broker sync starts")
        self.settings = settings
        self.control = control
        self.stats = SyncStats()
        self._warned: set[str] = set()
        self._worker = Worker(
            "broker sync",
            settings.database_url,
            log=log,
            channels=[channels.BROKER],
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
            application_name="firewatch-broker-sync",
        )
        self.ready = self._worker.ready

    def run(self, stop: threading.Event) -> SyncStats:
        """Run until ``stop`` is set; the summary line is logged at the end."""
        self._worker.run(stop, self)
        return self.stats

    def wake(self) -> None:
        self._worker.wake()

    # --- Work -------------------------------------------------------------------------------
    def load(self, conn: psycopg.Connection[Any]) -> None:
        pass

    def step(self, conn: psycopg.Connection[Any]) -> bool:
        self.reconcile(conn)
        return True

    def tick(self, conn: psycopg.Connection[Any]) -> None:
        pass

    def wait_s(self) -> float:
        return self.settings.broker_sync_interval_s

    def final(self, conn: psycopg.Connection[Any] | None) -> None:
        pass

    def lost(self, err: Exception) -> None:
        pass

    def summary(self) -> str:
        return self.stats.summary()

    # --- the round ----------------------------------------------------------------------------
    def reconcile(self, conn: psycopg.Connection[Any]) -> SyncStats:
        """One round: read the registry, then the broker, then fix the difference.
        Raises :class:`~firewatch.runtime.dynsec_control.ControlError` when the broker does
        not answer (the worker logs it and tries again)."""
        with conn.transaction():
            # Held to the end of the round: no credential is issued halfway through it.
            store.lock_broker(conn)
            wanted = store.active_logins(conn)
            listed = self.control.check(
                [
                    {"command": "listClients", "verbose": True},
                    {"command": "listRoles", "verbose": True},
                ]
            )
            clients = list(listed[0].data.get("clients", []))
            roles = list(listed[1].data.get("roles", []))
            commands, missing, counts = plan(wanted, clients, roles, self.settings.topic_root)
            answers = self.control.run(commands) if commands else []
        for answer in answers:
            if answer.error is not None and answer.error not in (
                "Client not found",
                "Role not found",
            ):
                log.warning("broker sync: %s refused: %s", answer.command, answer.error)
        if commands:
            log.info(
                "broker sync: removed %d accounts, rewrote %d roles, dropped %d roles",
                counts["deleted"],
                counts["roles_fixed"],
                counts["roles_dropped"],
            )
        for device in missing:
            if device not in self._warned:
                self._warned.add(device)
                log.warning(
                    "device %s may log in but has no account at the broker: rotate its "
                    "credential, or start the broker from `firewatch broker config`",
                    device,
                )
        self.stats.deleted += counts["deleted"]
        self.stats.roles_fixed += counts["roles_fixed"]
        self.stats.roles_dropped += counts["roles_dropped"]
        self.stats.last_missing = missing
        self.stats.rounds += 1  # last: a reader that sees the round sees what it did
        return self.stats
