"""``firewatch up``: the whole system on embedded defaults, supervised in one process tree.

Order of start: database (embedded pgserver unless ``FIREWATCH_DATABASE_URL``), migrations
+ partitions + demo city, broker (Mosquitto child unless ``FIREWATCH_MQTT_URL``, with
authentication on: its accounts come from the registry, ``registry/embedded.py``), then
the ingest, analytics and alerting workers, the API, the broker sync and the simulator
(each simulated device logging in as itself) as child processes (restarted with backoff
if they die). Shutdown is the reverse: simulator, API (streams end),
alerting (deliveries in flight finish), analytics (final checkpoint), ingest (SIGTERM:
flush, ack, close), broker, database, then one summary line.

The data directory is the one :func:`firewatch.runtime.postgres.locate_data_dir` found (or
``./.firewatch``, created here); ``firewatch up`` may create the embedded database in it.
Unless ``FIREWATCH_WEBHOOK_SECRET`` is set, webhooks are signed with a random secret
generated once into ``<data_dir>/webhook-secret`` (mode 0600) and reused afterwards, never
with the public default; the children get it in their environment.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from firewatch.alerting.dispatcher import MIN_WEBHOOK_SECRET_BYTES, check_webhook_secret
from firewatch.core.backoff import Backoff
from firewatch.core.broker import BrokerAddress
from firewatch.core.passwords import hash_password
from firewatch.core.people import Role
from firewatch.core.settings import Settings, child_env
from firewatch.registry.embedded import SIMULATOR_CREDENTIALS, prepare_accounts
from firewatch.runtime.mosquitto import free_port, mosquitto, wait_for_port
from firewatch.runtime.postgres import resolve_database_url
from firewatch.runtime.process import stop_process
from firewatch.storage.maintenance import maintain
from firewatch.storage.migrate import current_flavour, upgrade
from firewatch.storage.people import add_person, get_person_by_username, list_people
from firewatch.storage.seed import load_seed, read_seed

FIRST_ADMIN = "admin"
FIRST_ADMIN_FILE = "first-admin-password"
log = logging.getLogger(__name__)


@dataclass
class Child:
    """A supervised ``python -m firewatch <command>`` child process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    backoff: Backoff = field(default_factory=lambda: Backoff(0.5, 30.0))
    next_start: float = 0.0

    def start(self) -> None:
        # Own session: a terminal's Ctrl-C reaches only `firewatch up`, which then stops the
        # children in order instead of all of them at once.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firewatch", *self.argv], env=self.env, start_new_session=True
        )

    def check(self, now: float) -> None:
        """Restart the child (after a jittered delay) if it exited on its own."""
        if self.proc is not None and self.proc.poll() is None:
            return
        if self.proc is not None:
            code = self.proc.returncode
            self.proc = None
            delay = self.backoff.next()
            self.next_start = now + delay
            log.warning("%s exited with %s; restarting in %.1fs", self.name, code, delay)
            return
        if now >= self.next_start:
            self.restarts += 1
            self.start()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (then SIGKILL); returns the exit code."""
        if self.proc is None:
            return None
        return stop_process(self.proc, timeout, self.name)


def _port_or_free(port: int, what: str) -> int:
    """``port`` if nothing listens on it yet, else a free one: the standard ports may be
    taken on a developer's machine."""
    if not wait_for_port("127.0.0.1", port, 0.05):
        return port
    chosen = free_port()
    log.warning("port %s (%s) is taken; using %d instead", port, what, chosen)
    return chosen


def _broker_port(settings: Settings) -> int:
    """The configured embedded broker port, or a free one (also when it is 0)."""
    port = settings.embedded_mqtt_port
    return _port_or_free(port, "embedded broker") if port else free_port()


#: Settings fields holding a local port a child listens on (0 disables it).
LISTEN_PORTS = ("ingest_metrics_port", "analytics_metrics_port", "alerting_metrics_port",
                "api_port", "gateway_port", "gateway_metrics_port")  # fmt: skip


def _free_ports(settings: Settings) -> dict[str, int]:
    """Each configured listen port (0 stays 0: disabled), moved where it is taken."""
    return {
        name: _port_or_free(port, name) if (port := int(getattr(settings, name))) else 0
        for name in LISTEN_PORTS
    }


#: Where ``firewatch up`` keeps the webhook secret it generated, under the data directory.
WEBHOOK_SECRET_FILE = "webhook-secret"


class WebhookSecretFileError(Exception):
    """The webhook secret file exists but holds no usable secret."""


def load_or_create_webhook_secret(data_dir: Path) -> str:
    """The secret in ``<data_dir>/webhook-secret``, generating it first if the file does not
    exist: 32 random bytes, URL-safe base64, mode 0600. Later calls (and ``firewatch up``
    runs) read the same secret back, so receivers configured once stay valid. Raises
    :class:`WebhookSecretFileError` if the file holds fewer than
    ``MIN_WEBHOOK_SECRET_BYTES`` (after stripping whitespace)."""
    path = data_dir / WEBHOOK_SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # Written to a private temporary file, then hard-linked into place: the secret file
        # appears complete or not at all, and a concurrent writer's file is never replaced.
        fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=f".{WEBHOOK_SECRET_FILE}-")  # 0600
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32) + "\n")
            with contextlib.suppress(FileExistsError):  # another `firewatch up` was first
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
        log.info("generated a webhook secret in %s", path)
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users; chmod 600 it", path)
    secret = path.read_text("utf-8").strip()
    if len(secret.encode()) < MIN_WEBHOOK_SECRET_BYTES:
        raise WebhookSecretFileError(
            f"{path} holds no usable webhook secret (fewer than {MIN_WEBHOOK_SECRET_BYTES} "
            "bytes); delete it to generate a new one, or set FIREWATCH_WEBHOOK_SECRET"
        )
    return secret


def with_webhook_secret(settings: Settings) -> Settings:
    """``settings`` as they are if ``webhook_secret`` was configured
    (``FIREWATCH_WEBHOOK_SECRET``), else with the secret of
    :func:`load_or_create_webhook_secret` in ``settings.data_dir``."""
    if "webhook_secret" in settings.model_fields_set:
        return settings
    secret = load_or_create_webhook_secret(settings.data_dir)
    return settings.model_copy(update={"webhook_secret": secret})


def ensure_first_admin(conn: psycopg.Connection[Any], data_dir: Path) -> str | None:
    """The demo's first login. When no active admin exists and the username ``admin`` is
    free, make ``admin`` with a random password, written to
    ``<data_dir>/first-admin-password`` (mode 0600). Returns that password while the file
    exists (every later run shows it again, until someone changes the password and deletes
    the file), else None."""
    path = data_dir / FIRST_ADMIN_FILE
    admins = [p for p in list_people(conn) if p.role is Role.ADMIN and p.active]
    if not admins and get_person_by_username(conn, FIRST_ADMIN) is None:
        password = secrets.token_urlsafe(12)
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(password + "\n")
        add_person(
            conn,
            username=FIRST_ADMIN,
            role=Role.ADMIN,
            display_name="First administrator",
            password_hash=hash_password(password),
            actor="firewatch up",
        )
        log.info("made the first admin %r; its password is in %s", FIRST_ADMIN, path)
    if path.exists():
        return path.read_text("utf-8").strip() or None
    return None


def seeded_devices(settings: Settings) -> list[str]:
    """The demo city's device ids (none when ``FIREWATCH_UP_SEED`` is off)."""
    if not settings.up_seed:
        return []
    return [d.id for unit in read_seed().units for d in unit.devices]


def _without_password(url: str) -> str:
    """``url`` with its password masked, for the start-up banner."""
    addr = BrokerAddress.parse(url)
    who = f"{addr.username}:***@" if addr.username else ""
    return f"mqtt://{who}{addr.host}:{addr.port}"


def prepare_database(settings: Settings, url: str) -> tuple[str, str | None]:
    """Migrate, make partitions and load the demo city (with its first admin); return the
    schema flavour and the first admin's password while its file exists."""
    with psycopg.connect(url, autocommit=True) as conn:
        upgrade(conn, settings.storage_flavour)
        maintain(conn, settings)
        password = None
        if settings.up_seed:
            load_seed(conn, read_seed())
            password = ensure_first_admin(conn, settings.data_dir)
        return current_flavour(conn) or "?", password


def run_up(settings: Settings, stop: threading.Event, simulate: bool = True) -> int:
    """Run everything until ``stop`` is set. Returns the process exit code.

    Before starting anything, raises the errors of :func:`with_webhook_secret` and
    :func:`firewatch.alerting.dispatcher.check_webhook_secret` (a configured webhook URL with
    an insecure configured secret): the alerting child would only exit and be restarted."""
    started = time.monotonic()
    generated_secret = "webhook_secret" not in settings.model_fields_set
    # absolute, so that the children's settings do not depend on their working directory
    settings = with_webhook_secret(
        settings.model_copy(update={"data_dir": settings.data_dir.resolve()})
    )
    check_webhook_secret(settings)
    with ExitStack() as stack:
        embedded_db = settings.database_url is None
        embedded_mqtt = settings.mqtt_url is None
        db_url = resolve_database_url(settings, create=True)
        flavour, first_password = prepare_database(settings, db_url)
        mqtt_url = settings.mqtt_url
        logins: dict[str, Any] = {}
        sim_args: list[str] = []
        if mqtt_url is None:
            # Authentication on, as in production: accounts from the registry (ADR 0012).
            with psycopg.connect(db_url, autocommit=True) as conn:
                accounts = prepare_accounts(conn, settings, seeded_devices(settings))
            url = stack.enter_context(
                mosquitto(
                    settings.mosquitto_dir, port=_broker_port(settings), dynsec=accounts.dynsec
                )
            )
            addr = BrokerAddress.parse(url)
            mqtt_url = (
                f"mqtt://{accounts.ingest_username}:{accounts.ingest_password}"
                f"@{addr.host}:{addr.port}"
            )
            logins["mqtt_admin_password"] = accounts.admin_password
            logins["gateway_mqtt_username"] = accounts.gateway_username
            logins["gateway_mqtt_password"] = accounts.gateway_password
            sim_args = ["--credentials", str(accounts.simulator_credentials)]
        ports = _free_ports(settings)
        resolved = settings.model_copy(
            update={"database_url": db_url, "mqtt_url": mqtt_url, **logins, **ports}
        )
        settings = resolved
        env = child_env(
            resolved,
            FIREWATCH_WEBHOOK_SECRET=resolved.webhook_secret,
            **{f"FIREWATCH_{k.upper()}": str(v) for k, v in ports.items()},
        )
        gbt_target = f"127.0.0.1:{settings.gateway_port}"
        children = [
            Child("ingest", ["ingest"], env),
            Child("analytics", ["analytics", "run"], env),
            Child("alerting", ["alerting"], env),
            Child("api", ["api"], env),
            Child("analysis", ["analysis", "run"], env),  # tiered rollups
            Child("risk", ["risk", "run"], env),  # unit risk scores and warnings
            Child("supervision", ["supervise", "run"], env),  # hazards, credit
            Child("gateway", ["gateway"], env),  # GB/T 26875.3 transmission devices over TCP
        ]
        if settings.mqtt_admin_password:  # device accounts follow the registry
            children.append(Child("broker-sync", ["broker", "sync"], env))
        if simulate:
            children.append(
                Child(
                    "simulator",
                    # the registry's GB/T panels report through the gateway, the rest over MQTT
                    ["simulate", "--scenario", "builtin:demo", *sim_args, "--gbt", gbt_target],
                    env,
                )
            )
        for child in children:
            child.start()
        metrics = (
            f"http://{settings.metrics_host}:{settings.ingest_metrics_port}/metrics"
            if settings.ingest_metrics_port
            else "disabled"
        )
        analytics_metrics = (
            f"http://{settings.metrics_host}:{settings.analytics_metrics_port}/metrics"
            if settings.analytics_metrics_port
            else "disabled"
        )
        secret_file = settings.data_dir / WEBHOOK_SECRET_FILE
        secret_line = (
            f"  webhooks   signed with the secret in {secret_file}\n" if generated_secret else ""
        )

        broker_note = (
            " (authentication on: device accounts from the registry; simulated devices' "
            f"passwords in {settings.data_dir / SIMULATOR_CREDENTIALS})"
            if embedded_mqtt
            else ""
        )
        console = f"http://{settings.api_host}:{settings.api_port}/"
        login_lines = (
            f"  console    {console}  log in as {FIRST_ADMIN} / {first_password}\n"
            f"             (from {settings.data_dir / FIRST_ADMIN_FILE}: change it with "
            f"firewatch user passwd {FIRST_ADMIN}, then delete the file)\n"
            if first_password
            else f"  console    {console}  (log in with your account)\n"
        ) + (
            "  people     .venv/bin/firewatch user add NAME --role operator|shift_leader|"
            "supervisor|inspector|unit|vendor|admin\n"
            "             (roles, tokens, sessions: docs/people.md; the console: docs/console.md)"
        )

        def pid(name: str) -> str:
            child = next(c for c in children if c.name == name)
            return str(child.proc.pid) if child.proc else "?"

        print(
            "Firewatch is up:\n"
            f"  database   {'embedded pgserver, ' if embedded_db else ''}{db_url} [{flavour}]\n"
            f"  broker     {'embedded mosquitto, ' if embedded_mqtt else ''}"
            f"{_without_password(mqtt_url)}"
            f"{broker_note}\n"
            f"  ingest     pid {children[0].proc.pid if children[0].proc else '?'}, "
            f"metrics {metrics}\n"
            f"  analytics  pid {children[1].proc.pid if children[1].proc else '?'}, "
            f"metrics {analytics_metrics}\n"
            f"  alerting   pid {children[2].proc.pid if children[2].proc else '?'} "
            f"(alerts, escalation, offline checks, notification outbox)\n"
            f"  api        http://{settings.api_host}:{settings.api_port}/alerts "
            f"(live stream: /alerts/stream)\n"
            f"  analysis   pid {pid('analysis')} (rollups: /regions/xuchang/rollups)\n"
            f"  risk       pid {pid('risk')} (unit risk: /risk/regions/xuchang, "
            f"firewatch risk show --unit U-WD-001)\n"
            f"  supervise  pid {pid('supervision')} (hazard work orders, credit; draws: "
            f"firewatch supervise draw --help)\n"
            f"  gateway    GB/T 26875.3 devices on tcp://{settings.gateway_host}:"
            f"{settings.gateway_port} (docs/gateway.md)\n"
            f"  simulator  {'running (demo city of Xuchang)' if simulate else 'off'}\n"
            f"  data dir   {settings.data_dir}\n"
            f"{secret_line}"
            "  stats      .venv/bin/firewatch db stats   (Ctrl-C stops everything)\n"
            "  anomalies  .venv/bin/firewatch db anomalies\n"
            f"{login_lines}",
            flush=True,
        )
        while not stop.wait(0.5):
            now = time.monotonic()
            for child in children:
                child.check(now)
        codes = {c.name: c.stop() for c in reversed(children)}
    print(
        f"firewatch up stopped after {time.monotonic() - started:.0f}s: "
        + ", ".join(
            f"{name} exit {code} ({c.restarts} restarts)"
            for c, (name, code) in zip(reversed(children), codes.items(), strict=True)
        ),
        flush=True,
    )
    return 0
