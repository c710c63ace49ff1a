"""``firewatch bench credentials``: how fast device logins change at the broker (issue 14).

The issue asks that rotating or revoking a device's credential "takes effect at the broker
within seconds without restarting it". One run measures that, on a fresh database (as the
other benches: ``lab/scratch.py``) seeded with the demo city plus ``devices`` extra water
sensors, and a Mosquitto started from the registry (ADR 0012):

* **issue**: ``registry.credentials.issue`` for every extra device, one after another
  (database transaction + ``$CONTROL`` round trip): latency percentiles and rate; then each
  device logs in with its new password at once (every CONNACK must be 0).
* **rotate**: ``connected`` devices stay connected while their credential is rotated: from
  the call to the old connection being closed by the broker.
* **revoke via the sync**: the same devices, reconnected, are revoked with the database
  alone (no ``$CONTROL``: the NOTIFY wakes the broker sync): from the commit to the broker
  closing the connection; then a login with the revoked password must be refused.
* **reconcile**: one broker-sync round over every account (``listClients``/``listRoles``
  and the comparison), with nothing to change: what a periodic round costs at this size.

Everything is measured twice in one run, against the broker as shipped and with
``set_tcp_nodelay true`` (Nagle's algorithm off on the broker's sockets): a ``$CONTROL``
answer is one small packet, which Nagle's algorithm and the client's delayed ACK hold back.
Prints the figures and returns the result document (``--json`` writes it).
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from firewatch.core.broker import BrokerAddress
from firewatch.core.credentials import generate_password
from firewatch.core.settings import Settings
from firewatch.lab.scratch import scratch_database, throwaway_server
from firewatch.registry import credentials as service
from firewatch.registry.sync import BrokerSync
from firewatch.runtime.brokerconf import Account, Kind, write_dynsec
from firewatch.runtime.dynsec_control import DynsecControl
from firewatch.runtime.mosquitto import Broker
from firewatch.storage import credentials as store
from firewatch.storage.maintenance import maintain
from firewatch.storage.migrate import upgrade
from firewatch.storage.seed import load_seed, read_seed

UNIT = "U-WD-001"
ADMIN = "bench-admin"
TIMEOUT_S = 30.0


class CredentialBenchError(Exception):
    """The benchmark could not run, or the broker did not do what it must."""


@dataclass(frozen=True)
class CredentialBenchConfig:
    devices: int = 500
    connected: int = 50  # devices rotated / revoked while connected

    def command(self) -> str:
        return f"firewatch bench credentials --devices {self.devices} --connected {self.connected}"


class _Login:
    """One device connection; ``closed`` is set when the broker ends it."""

    def __init__(self, addr: BrokerAddress, device: str, password: str) -> None:
        self.connack: int | None = None
        self.ready = threading.Event()
        self.closed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=device,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        self.client.username_pw_set(device, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.closed.set()
        self.client.connect(addr.host, addr.port, keepalive=60)
        self.client.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.connack = rc.value
        self.ready.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _login(addr: BrokerAddress, device: str, password: str) -> _Login:
    login = _Login(addr, device, password)
    if not login.ready.wait(TIMEOUT_S):
        login.close()
        raise CredentialBenchError(f"no CONNACK for {device} within {TIMEOUT_S:.0f} s")
    return login


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p95, max (ms) of ``values`` (seconds)."""
    if not values:
        return {}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(p95 * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "n": len(ordered),
    }


def _timed(fn: Callable[[], Any]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


#: The broker configurations compared in one run: the project's (conf.d/firewatch.conf), and
#: the same with Nagle's algorithm off on the broker's sockets (`set_tcp_nodelay`).
VARIANTS = {"default": "", "set_tcp_nodelay": "set_tcp_nodelay true"}


def run_credential_bench(settings: Settings, cfg: CredentialBenchConfig) -> dict[str, Any]:
    """One run (see the module docstring): every measurement once per broker configuration
    of :data:`VARIANTS`, each on a fresh database and broker; the result document."""
    if cfg.devices < 1 or not 1 <= cfg.connected <= cfg.devices:
        raise CredentialBenchError("need devices >= 1 and 1 <= connected <= devices")
    return {
        "benchmark": "credentials",
        "command": cfg.command(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "variants": {name: _measure(settings, cfg, extra) for name, extra in VARIANTS.items()},
    }


def _measure(settings: Settings, cfg: CredentialBenchConfig, extra: str) -> dict[str, Any]:
    """The measurements against one broker configuration (``extra`` config lines)."""
    root = settings.topic_root
    with ExitStack() as stack:
        admin_url = settings.database_url or throwaway_server(stack)
        db_url = scratch_database(stack, admin_url, "fw_credbench")
        conn = stack.enter_context(psycopg.connect(db_url, autocommit=True))
        upgrade(conn)
        maintain(conn, settings)
        load_seed(conn, read_seed())
        ids = [f"D-BENCH-{i:05d}" for i in range(cfg.devices)]
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO devices (id, unit_id, kind, vendor) VALUES (%s, %s, 'water', 'acme')",
                [(d, UNIT) for d in ids],
            )
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fw-credbench-")))
        admin_pw = generate_password()
        doc = service.broker_document(
            conn,
            [Account(Kind.ADMIN, ADMIN, admin_pw)],
            topic_root=root,
            ingest_group="",
        )
        write_dynsec(tmp / "dynsec.json", doc, mode=0o600)
        broker = stack.enter_context(
            Broker(tmp / "broker", dynsec=tmp / "dynsec.json", extra=extra)
        )
        addr = BrokerAddress(broker.host, broker.port)
        control = stack.enter_context(
            DynsecControl(BrokerAddress(broker.host, broker.port, ADMIN, admin_pw))
        )

        # issue, then log in at once
        passwords: dict[str, str] = {}
        issue_s: list[float] = []
        began = time.perf_counter()
        for device in ids:
            t0 = time.perf_counter()
            issued = service.issue(conn, control, device, actor="bench", topic_root=root)
            issue_s.append(time.perf_counter() - t0)
            passwords[device] = issued.password
        issue_wall = time.perf_counter() - began
        refused_fresh = 0
        for device in ids[: cfg.connected]:
            login = _login(addr, device, passwords[device])
            refused_fresh += login.connack != 0
            login.close()

        # rotate while connected: until the broker closes the old connection
        logins = [_login(addr, d, passwords[d]) for d in ids[: cfg.connected]]
        rotate_s: list[float] = []
        for device, login in zip(ids, logins, strict=False):
            t0 = time.perf_counter()
            passwords[device] = service.issue(
                conn, control, device, actor="bench", topic_root=root
            ).password
            if not login.closed.wait(TIMEOUT_S):
                raise CredentialBenchError(f"{device} stayed connected after its rotation")
            rotate_s.append(time.perf_counter() - t0)
            login.close()

        # revoke through the database alone: the broker sync applies it
        sync_settings = settings.model_copy(
            update={"database_url": db_url, "broker_sync_interval_s": 3600.0}
        )
        sync = BrokerSync(sync_settings, control)
        stop = threading.Event()
        thread = threading.Thread(target=sync.run, args=(stop,), daemon=True)
        thread.start()
        stack.callback(thread.join, 30)
        stack.callback(stop.set)
        if not sync.ready.wait(TIMEOUT_S):
            raise CredentialBenchError("the broker sync did not start")
        reconcile_s = [_timed(lambda: sync.reconcile(conn)) for _ in range(5)]
        logins = [_login(addr, d, passwords[d]) for d in ids[: cfg.connected]]
        revoke_s: list[float] = []
        for device, login in zip(ids, logins, strict=False):
            t0 = time.perf_counter()
            with conn.transaction():
                store.revoke(conn, device, actor="bench")
            if not login.closed.wait(TIMEOUT_S):
                raise CredentialBenchError(f"{device} stayed connected after its revocation")
            revoke_s.append(time.perf_counter() - t0)
            login.close()
        refused_revoked = sum(
            _login(addr, d, passwords[d]).connack != 0 for d in ids[: cfg.connected]
        )
        if refused_revoked != cfg.connected:
            raise CredentialBenchError(
                f"only {refused_revoked} of {cfg.connected} revoked logins were refused"
            )
        accounts = len(doc["clients"]) + cfg.devices
    return {
        "broker_config": extra or "(as shipped)",
        "broker_accounts": accounts,
        "issue": {
            **percentiles(issue_s),
            "per_s": round(cfg.devices / issue_wall, 1),
            "fresh_logins_refused": refused_fresh,
        },
        "rotate_until_old_login_closed": percentiles(rotate_s),
        "revoke_via_sync_until_closed": percentiles(revoke_s),
        "revoked_logins_refused": refused_revoked,
        "reconcile_round": percentiles(reconcile_s),
    }


def format_result(r: dict[str, Any]) -> str:
    """The figures of one run, for a terminal."""

    def line(name: str, p: dict[str, Any]) -> str:
        return (
            f"    {name:<34} p50 {p['p50_ms']:>8.2f} ms  p95 {p['p95_ms']:>8.2f} ms  "
            f"max {p['max_ms']:>8.2f} ms  (n={p['n']})"
        )

    out = [f"credentials bench ({r['command']})"]
    for name, v in r["variants"].items():
        issue = v["issue"]
        out += [
            f"  broker {name} ({v['broker_config']}; {v['broker_accounts']} accounts)",
            line("issue (db + $CONTROL)", issue),
            f"    {'':<34} {issue['per_s']}/s; fresh logins refused: "
            f"{issue['fresh_logins_refused']}",
            line("rotate -> old login closed", v["rotate_until_old_login_closed"]),
            line("revoke (db only) -> closed by sync", v["revoke_via_sync_until_closed"]),
            line("reconcile round, nothing to do", v["reconcile_round"]),
            f"    revoked logins refused afterwards: {v['revoked_logins_refused']}",
        ]
    return "\n".join(out)
