"""The embedded broker's accounts for ``firewatch up``: authentication on, from the registry.

``firewatch up`` starts Mosquitto with the dynamic-security plugin, as production does
(docs/adr/0012), never anonymous. Before the broker starts, :func:`prepare_accounts`:

* makes fresh passwords for the service accounts of this run: the admin account of the
  ``$CONTROL`` API (the broker sync and the API's credential routes), the ingest
  worker's account (username = client id = ``FIREWATCH_INGEST_CLIENT_ID``) and the GB/T
  26875.3 gateway's (``FIREWATCH_GATEWAY_MQTT_USERNAME``, publishing for every device). They
  live in the children's environment only;
* gives every device of the simulated city a credential of its own (:func:`provision`): the
  passwords are kept in ``<data_dir>/simulator-credentials.tsv`` (mode 0600), as a vendor
  keeps what it was shown once, and reused while they still match the registry;
* writes the broker's file from the registry (:func:`broker_document`): those accounts and
  every device that may log in, each pinned to its unit.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from firewatch.core.credentials import credentials_text, read_credentials
from firewatch.core.gateway_settings import DEFAULT_GATEWAY_CLIENT_ID
from firewatch.core.settings import Settings
from firewatch.registry.credentials import broker_document, provision
from firewatch.runtime.brokerconf import Account, Kind, device_accounts, write_dynsec

log = logging.getLogger(__name__)

SIMULATOR_CREDENTIALS = "simulator-credentials.tsv"
DYNSEC_FILE = "dynsec.json"


@dataclass(frozen=True)
class EmbeddedAccounts:
    """What the children of ``firewatch up`` log in with."""

    dynsec: Path
    ingest_username: str
    ingest_password: str
    admin_password: str
    gateway_username: str
    gateway_password: str
    simulator_credentials: Path
    devices: int


def _read_known(path: Path) -> dict[str, str]:
    """The passwords kept by an earlier run; none from a missing or damaged file (every
    device then gets a new credential)."""
    try:
        return read_credentials(path)
    except (OSError, ValueError):
        return {}


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def prepare_accounts(
    conn: psycopg.Connection[Any], settings: Settings, device_ids: list[str]
) -> EmbeddedAccounts:
    """Provision the simulated devices, make this run's service passwords and write the
    broker's file into ``settings.mosquitto_dir`` (see the module docstring)."""
    creds_path = settings.data_dir / SIMULATOR_CREDENTIALS
    passwords = provision(conn, device_ids, _read_known(creds_path), actor="firewatch up")
    _write_private(
        creds_path,
        credentials_text(
            passwords, "the simulated city's device passwords (firewatch up); DEVICE<TAB>PASSWORD"
        ),
    )
    ingest_password = secrets.token_urlsafe(24)
    admin_password = secrets.token_urlsafe(24)
    gateway_password = secrets.token_urlsafe(24)
    gateway_username = settings.gateway_mqtt_username or DEFAULT_GATEWAY_CLIENT_ID
    accounts = [
        Account(Kind.ADMIN, settings.mqtt_admin_username, admin_password),
        Account(Kind.INGEST, settings.ingest_client_id, ingest_password),
        Account(Kind.GATEWAY, gateway_username, gateway_password),
    ]
    doc = broker_document(
        conn, accounts, topic_root=settings.topic_root, ingest_group=settings.ingest_group
    )
    dynsec = settings.mosquitto_dir / DYNSEC_FILE
    # The plugin rewrites this file on every $CONTROL change: the broker must own it.
    write_dynsec(dynsec, doc, mode=0o600)
    log.info(
        "broker accounts: %d devices from the registry, ingest %s, admin %s",
        device_accounts(doc),
        settings.ingest_client_id,
        settings.mqtt_admin_username,
    )
    return EmbeddedAccounts(
        dynsec=dynsec,
        ingest_username=settings.ingest_client_id,
        ingest_password=ingest_password,
        admin_password=admin_password,
        gateway_username=gateway_username,
        gateway_password=gateway_password,
        simulator_credentials=creds_path,
        devices=len(passwords),
    )
