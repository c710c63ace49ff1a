"""The production deployment (docker-compose.yml, Dockerfile, deploy/, mosquitto/) is checked
statically here, because Docker is not available where the tests run: every FIREWATCH_* name
is a real setting with a valid value, every command is a real subcommand, every mounted file
exists, Prometheus scrapes what the ingest workers serve, every MQTT login is an account that
the ``broker-config`` service writes into the broker's file from the registry with the
grants the service needs (``firewatch.runtime.brokerconf``; docs/adr/0012), that file is on
a volume the broker can write and is written before the broker starts, every required
variable is documented, MQTT leaves the broker's container over TLS only, and every MQTT
client verifies the broker with the CA that ``firewatch broker certs`` makes (run for real
here, its certificate shown to a real broker's TLS listener under the compose host name).
The account tool for brokers without a database (``mosquitto/passwd.py``) is run for real,
outside the venv's site-packages, and its file is loaded by a real broker.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from firewatch import cli
from firewatch.cli import broker_accounts
from firewatch.core.contract import subscription, topic_for
from firewatch.core.domain import Channel
from firewatch.core.settings import Settings
from firewatch.gateway import server as gateway_server
from firewatch.gateway.translate import event_topic
from firewatch.runtime import brokerconf, certs
from firewatch.runtime.mosquitto import Broker, TlsFiles, mosquitto, write_config
from firewatch.storage.seed import read_seed

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
MOSQUITTO_DIR = ROOT / "mosquitto"
PASSWD_PY = MOSQUITTO_DIR / "passwd.py"
PROMETHEUS_YML = ROOT / "deploy" / "prometheus.yml"
APP_IMAGE = "firewatch:latest"
PREFIX = "FIREWATCH_"

# What compose interpolates the ${...} references with in these tests.
TEST_VARS = {
    "POSTGRES_PASSWORD": "pg-secret",
    "BROKER_ADMIN_PASSWORD": "broker-admin-secret",
    "INGEST_1_MQTT_PASSWORD": "ingest-1-secret",
    "INGEST_2_MQTT_PASSWORD": "ingest-2-secret",
    "GATEWAY_MQTT_PASSWORD": "gateway-secret",
    "SIMULATOR_MQTT_PASSWORD": "sim-secret",
    "WEBHOOK_SECRET": "webhook-secret",
}

DYNSEC_JSON = "dynsec.json"  # the broker's account file (broker-config; passwd.py's default)
#: The broker's uid/gid in the eclipse-mosquitto image: the account file must be its.
BROKER_UID = "1883:1883"
#: Written per deployment by `firewatch broker certs --out mosquitto/certs` (never committed),
#: so the only bind-mount sources that may be missing from a checkout.
CERTS_DIR = MOSQUITTO_DIR / "certs"
CERTS_IN_BROKER = PurePosixPath("/mosquitto/config/certs")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


# --- helpers -------------------------------------------------------------------------------
def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    svcs = load_compose()["services"]
    assert isinstance(svcs, dict)
    return svcs


def is_app(svc: dict[str, Any]) -> bool:
    return svc.get("image") == APP_IMAGE or "build" in svc


def app_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services().items() if is_app(svc)}


def ingest_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in app_services().items() if s.get("command") == ["ingest"]}


_VAR = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        value = env.get(name)
        missing = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in ("-", ":-"):
            return arg if missing else str(value)
        if op in ("?", ":?"):
            if missing:
                raise AssertionError(f"required variable {name} is unset: {arg}")
            return str(value)
        return value or ""

    return _VAR.sub(sub, text)


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """A service's environment (mapping or KEY=VALUE list), interpolated with TEST_VARS."""
    raw = svc.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {str(k): interpolate(str(v), TEST_VARS) for k, v in raw.items()}


def settings_for(svc: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings the service's process would build from its compose environment."""
    for key in list(os.environ):
        if key.upper().startswith(PREFIX):
            monkeypatch.delenv(key)
    for key, value in environment(svc).items():
        monkeypatch.setenv(key, value)
    return Settings()


def bind_mounts(svc: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(host source, container target, read_only) of a service's bind mounts."""
    mounts: list[tuple[str, str, bool]] = []
    for vol in svc.get("volumes", []):
        if isinstance(vol, dict):
            if vol.get("type") == "bind":
                mounts.append((vol["source"], vol["target"], bool(vol.get("read_only"))))
            continue
        source, target, *opts = str(vol).split(":")
        if source.startswith((".", "/", "~")):
            mounts.append((source, target, "ro" in ",".join(opts).split(",")))
    return mounts


def named_volumes(svc: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for vol in svc.get("volumes", []):
        if isinstance(vol, dict):
            if vol.get("type") == "volume":
                out.append((vol["source"], vol["target"]))
            continue
        source, target, *_ = str(vol).split(":")
        if not source.startswith((".", "/", "~")):
            out.append((source, target))
    return out


def conf_directives(path: Path) -> list[tuple[str, str]]:
    """Mosquitto config lines as (option, rest), comments and blanks dropped."""
    out: list[tuple[str, str]] = []
    for line in path.read_text("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.append((key, value.strip()))
    return out


def listeners(path: Path) -> dict[int, tuple[str | None, dict[str, str]]]:
    """A Mosquitto config's listeners: port -> (bind address or None for every interface,
    the options between its ``listener`` line and the next one). Listener options (certfile,
    ...) belong to the listener whose line they follow; the global options that follow the
    last listener are collected with it too, which is harmless for these checks."""
    out: dict[int, tuple[str | None, dict[str, str]]] = {}
    current: dict[str, str] | None = None
    for key, value in conf_directives(path):
        if key == "listener":
            port, *bind = value.split()
            current = {}
            out[int(port)] = (bind[0] if bind else None, current)
        elif current is not None:
            current[key] = value
    return out


def generated_mount(svc: dict[str, Any], source: str) -> bool:
    """Whether ``source`` is a bind mount of what ``firewatch broker certs`` writes, mounted
    with the long syntax and ``create_host_path: false`` (compose then refuses to start
    without it instead of mounting an empty directory in its place)."""
    host = (ROOT / source).resolve()
    if host != CERTS_DIR and host.parent != CERTS_DIR:
        return False
    if host != CERTS_DIR:
        assert host.name in (certs.CA_CERT, certs.SERVER_CERT, certs.SERVER_KEY), source
    long_form = [
        v for v in svc.get("volumes", []) if isinstance(v, dict) and v.get("source") == source
    ]
    assert long_form, f"{source}: use the long syntax with bind.create_host_path: false"
    for vol in long_form:
        assert vol.get("bind", {}).get("create_host_path") is False, source
        assert vol.get("read_only") is True, source
    return True


def command_args(svc: dict[str, Any]) -> argparse.Namespace:
    """The service's command as the ``firewatch`` CLI parses it, interpolated with TEST_VARS
    (SystemExit if it is not a subcommand)."""
    command = svc["command"]
    assert isinstance(command, list), "use the exec (list) form"
    return cli.build_parser().parse_args([interpolate(str(arg), TEST_VARS) for arg in command])


def broker_config_accounts(
    env: dict[str, str] = TEST_VARS,
) -> dict[str, tuple[brokerconf.Kind, str]]:
    """username -> (kind, password) of the service accounts broker-config writes, with the
    variables ``env``; a ``--publisher NAME:`` with an empty password is left out, as the
    command does."""
    command = [interpolate(str(arg), env) for arg in services()["broker-config"]["command"]]
    args = cli.build_parser().parse_args(command)
    out: dict[str, tuple[brokerconf.Kind, str]] = {}
    kinds = (
        brokerconf.Kind.ADMIN,
        brokerconf.Kind.INGEST,
        brokerconf.Kind.GATEWAY,
        brokerconf.Kind.PUBLISHER,
    )
    for kind in kinds:
        for spec in getattr(args, kind.value):
            name, _, password = spec.partition(":")
            if kind is brokerconf.Kind.PUBLISHER and not password:
                continue
            assert password, f"{name}: compose must give every service account its password"
            assert name not in out, f"{name} given twice"
            out[name] = (kind, password)
    return out


def compose_strings(node: Any) -> Iterator[str]:
    """Every string value of the compose file, which compose interpolates (comments are
    not values)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from compose_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from compose_strings(value)


def header_comment() -> str:
    """The comment block at the top of docker-compose.yml."""
    lines: list[str] = []
    for line in COMPOSE.read_text("utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def container_ports(svc: dict[str, Any]) -> set[int]:
    ports: set[int] = set()
    for p in svc.get("ports", []):
        spec = interpolate(str(p["target"] if isinstance(p, dict) else p), {})
        ports.add(int(str(spec).rsplit(":", 1)[-1].split("/")[0]))
    return ports


# --- services --------------------------------------------------------------------------------
def test_expected_services_exist() -> None:
    svcs = services()
    expected = {
        "timescaledb",
        "mosquitto",
        "broker-accounts-volume",
        "broker-config",
        "broker-sync",
        "migrate",
        "ingest-1",
        "analytics-1",
        "alerting-1",
        "analysis-1",
        "risk-1",
        "supervision-1",
        "gateway",
        "api",
        "simulator",
        "prometheus",
    }
    assert expected <= set(svcs)
    assert svcs["timescaledb"]["image"].startswith("timescale/timescaledb:")
    assert svcs["timescaledb"]["image"].endswith("-pg16")
    assert svcs["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert svcs["broker-accounts-volume"]["image"] == svcs["mosquitto"]["image"]
    assert svcs["prometheus"]["image"].startswith("prom/prometheus")
    # The production stack starts without profiles; only the demo pieces need one.
    for name in (
        "timescaledb",
        "mosquitto",
        "broker-accounts-volume",
        "broker-config",
        "broker-sync",
        "migrate",
        "ingest-1",
        "analytics-1",
        "alerting-1",
        "analysis-1",
        "risk-1",
        "supervision-1",
        "gateway",
        "api",
        "prometheus",
    ):
        assert "profiles" not in svcs[name], name
    assert svcs["simulator"]["profiles"] == ["demo"]
    assert "demo" in svcs.get("seed", {}).get("profiles", ["demo"])


def test_app_services_run_valid_firewatch_subcommands() -> None:
    expected = {
        "migrate": cli.cmd_db_upgrade,
        "ingest-1": cli.cmd_ingest,
        "analytics-1": cli.cmd_analytics_run,
        "alerting-1": cli.cmd_alerting,
        "analysis-1": cli.tiers.cmd_analysis_run,
        "risk-1": cli.risk.cmd_risk_run,
        "supervision-1": cli.supervise.cmd_run,
        "gateway": cli.gateway.cmd_gateway,
        "api": cli.cmd_api,
        "simulator": cli.cmd_simulate,
        "seed": cli.cmd_db_seed,
        "broker-config": broker_accounts.cmd_config,
        "broker-sync": broker_accounts.cmd_sync,
    }
    apps = app_services()
    assert set(expected) <= set(apps)
    for name, svc in apps.items():
        assert svc["image"] == APP_IMAGE, name
        args = command_args(svc)
        if name in expected:
            assert args.func is expected[name], name


def test_every_firewatch_variable_is_a_settings_field() -> None:
    fields = set(Settings.model_fields)
    text = COMPOSE.read_text("utf-8")
    used = set(re.findall(r"\bFIREWATCH_[A-Z0-9_]+", text))
    assert used, "compose configures the app through FIREWATCH_* variables"
    unknown = {v for v in used if v.removeprefix(PREFIX).lower() not in fields}
    assert not unknown, f"not Settings fields: {sorted(unknown)}"
    for name, svc in services().items():
        for key in environment(svc):
            if key.startswith(PREFIX):
                assert key.removeprefix(PREFIX).lower() in fields, (name, key)


def test_app_environments_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, svc in app_services().items():
        with monkeypatch.context() as m:
            s = settings_for(svc, m)  # raises ValidationError on a bad value
        assert s.database_url or name == "simulator", f"{name} would start embedded PostgreSQL"
        if svc["command"] in (["ingest"], ["simulate"], ["gateway"]):
            assert s.mqtt_url, name


def test_database_url_points_at_the_timescaledb_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = environment(services()["timescaledb"])
    for name, svc in app_services().items():
        url = environment(svc).get("FIREWATCH_DATABASE_URL")
        if url is None:
            continue
        parts = urlsplit(url)
        assert parts.scheme in ("postgresql", "postgres"), name
        assert (parts.hostname, parts.port) == ("timescaledb", 5432), name
        assert parts.username == db["POSTGRES_USER"], name
        assert parts.password == db["POSTGRES_PASSWORD"] == TEST_VARS["POSTGRES_PASSWORD"]
        assert parts.path.lstrip("/") == db["POSTGRES_DB"], name


def test_startup_order() -> None:
    svcs = services()
    health = svcs["timescaledb"]["healthcheck"]["test"]
    assert "pg_isready" in " ".join(health)
    assert svcs["migrate"]["depends_on"]["timescaledb"]["condition"] == "service_healthy"
    assert svcs["migrate"].get("restart") == "no"
    for name, svc in ingest_services().items():
        deps = svc["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert "mosquitto" in deps, name
    gateway_deps = svcs["gateway"]["depends_on"]
    assert gateway_deps["migrate"]["condition"] == "service_completed_successfully"
    assert "mosquitto" in gateway_deps
    sim_deps = svcs["simulator"]["depends_on"]
    assert "mosquitto" in sim_deps
    if "seed" in svcs:
        assert svcs["seed"]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


def test_long_running_services_restart_and_volumes_are_named() -> None:
    """One-shots (what others wait for with ``service_completed_successfully``) run once per
    ``up``; everything else comes back after a crash or a reboot."""
    compose = load_compose()
    declared = set(compose.get("volumes") or {})
    one_shots = {
        dep
        for svc in services().values()
        for dep, cond in (svc.get("depends_on") or {}).items()
        if cond.get("condition") == "service_completed_successfully"
    }
    assert {"migrate", "seed", "broker-config", "broker-accounts-volume"} <= one_shots
    for name, svc in services().items():
        if name in one_shots:
            assert svc.get("restart") == "no", name
        else:
            assert svc.get("restart") in ("unless-stopped", "always"), name
        for source, _target in named_volumes(svc):
            assert source in declared, f"{name}: volume {source} is not declared"
    for name in ("timescaledb", "mosquitto", "prometheus"):
        assert named_volumes(services()[name]), f"{name} keeps its data in a named volume"


def test_bind_mounted_host_paths_exist() -> None:
    for name, svc in services().items():
        for source, target, _ro in bind_mounts(svc):
            assert not source.startswith("~"), f"{name}: {source} depends on the user's home"
            host = (ROOT / source).resolve()
            assert host.is_relative_to(ROOT), f"{name}: {source} is outside the repository"
            if generated_mount(svc, source):
                continue  # made per deployment (docs/deployment.md, "TLS")
            assert host.exists(), f"{name}: {source} -> {target} does not exist in the repo"


# --- ingest workers -------------------------------------------------------------------------
def test_ingest_workers_have_fixed_distinct_identities_and_one_subscription(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Production runs one worker with a plain subscription (the only kind Mosquitto 2.0
    restores after a restart, docs/reliability.md); more workers must share one group."""
    workers = ingest_services()
    assert len(workers) >= 1
    settings: dict[str, Settings] = {}
    for name, svc in workers.items():
        with monkeypatch.context() as m:
            settings[name] = settings_for(svc, m)
        # The default client id follows the (container) hostname, which changes when the
        # container is recreated: that would orphan the persistent session.
        assert "FIREWATCH_INGEST_CLIENT_ID" in environment(svc), name
    ids = [s.ingest_client_id for s in settings.values()]
    assert len(set(ids)) == len(ids), f"client ids must differ: {ids}"
    groups = {s.ingest_group for s in settings.values()}
    assert len(groups) == 1
    # several plain subscribers would each store everything: a group is required then
    assert len(workers) == 1 or groups != {""}
    assert len({s.topic_root for s in settings.values()}) == 1


def test_mqtt_logins_are_accounts_with_the_grants_their_service_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every MQTT login in compose is an account that broker-config writes, of the kind the
    service needs and with the same password: the ingest workers' ``--ingest`` (username =
    client id, which the broker binds to the account), the gateway's ``--gateway`` (its
    ``FIREWATCH_GATEWAY_MQTT_*`` login, also its client id), the simulator's
    ``--publisher``, and the ``$CONTROL`` login of the api and broker-sync
    (``FIREWATCH_MQTT_ADMIN_*``) ``--admin``. Devices are not in compose: their accounts come
    from the registry."""
    tls_ports = {
        port
        for port, (_bind, options) in listeners(MOSQUITTO_DIR / "mosquitto.conf").items()
        if "certfile" in options
    }
    assert tls_ports
    written = broker_config_accounts()
    with monkeypatch.context() as m:
        writer = settings_for(services()["broker-config"], m)
    used: set[str] = set()
    for name, svc in app_services().items():
        with monkeypatch.context() as m:
            s = settings_for(svc, m)
        if not s.mqtt_url:
            continue
        url = urlsplit(s.mqtt_url)
        assert url.scheme == "mqtts", f"{name}: passwords cross the network over TLS only"
        assert url.hostname == "mosquitto", name
        assert url.port in tls_ports, name
        # broker-config's roles grant this root (and group), nothing else.
        assert s.topic_root == writer.topic_root, name
        if svc["command"] == ["ingest"]:
            kind, login, password = brokerconf.Kind.INGEST, url.username, url.password
            assert login == s.ingest_client_id, f"{name}: account bound to its client id"
            assert subscription(
                s.topic_root, s.ingest_group or None
            ) in brokerconf.ingest_subscriptions(
                writer.topic_root, writer.ingest_group or brokerconf.DEFAULT_INGEST_GROUP
            ), f"{name}: the ingest accounts may subscribe to these filters only"
        elif svc["command"] == ["simulate"]:
            kind, login, password = brokerconf.Kind.PUBLISHER, url.username, url.password
        elif svc["command"] == ["gateway"]:
            # The URL is the broker's address; the login is the gateway account's.
            assert url.username is None, f"{name}: the login is FIREWATCH_GATEWAY_MQTT_*"
            assert url.password is None, name
            kind = brokerconf.Kind.GATEWAY
            login, password = s.gateway_mqtt_username, s.gateway_mqtt_password
            _addr, client_id = gateway_server.broker_address(s)
            assert client_id == login, f"{name}: account bound to its client id"
        else:
            # A $CONTROL client: the URL is the broker's address, the login the admin's.
            assert url.username is None, f"{name}: which account kind is this?"
            assert url.password is None, name
            kind = brokerconf.Kind.ADMIN
            login, password = s.mqtt_admin_username, s.mqtt_admin_password
        assert login, f"{name}: the broker refuses anonymous clients"
        assert password, name
        assert written.get(login) == (kind, password), (
            f"{name} logs in as {login}: broker-config must write it as a {kind} account "
            "with the same password"
        )
        used.add(login)
    assert used == set(written), "broker-config writes only accounts that compose uses"
    assert {kind for kind, _ in written.values()} == set(brokerconf.Kind) - {
        brokerconf.Kind.DEVICE,
    }
    assert len({pw for _, pw in written.values()}) == len(written), "one password per account"
    # Refuses duplicate or unusable names.
    brokerconf.build_dynsec(brokerconf.Account(k, n, pw) for n, (k, pw) in written.items())


def test_the_demo_publisher_exists_only_with_its_password() -> None:
    """``${SIMULATOR_MQTT_PASSWORD:-}`` unset gives ``--publisher firewatch-simulator:``,
    which broker-config skips (tests/test_broker_config_cli.py); the other accounts are
    required, so compose stops with a message instead of writing an account without one."""
    without = {k: v for k, v in TEST_VARS.items() if k != "SIMULATOR_MQTT_PASSWORD"}
    kinds = {kind for kind, _ in broker_config_accounts(without).values()}
    assert kinds == {brokerconf.Kind.ADMIN, brokerconf.Kind.INGEST, brokerconf.Kind.GATEWAY}
    for required in ("BROKER_ADMIN_PASSWORD", "INGEST_1_MQTT_PASSWORD", "GATEWAY_MQTT_PASSWORD"):
        env = {k: v for k, v in TEST_VARS.items() if k != required}
        with pytest.raises(AssertionError, match=f"required variable {required} is unset"):
            broker_config_accounts(env)


def test_the_gateway_account_publishes_for_every_device_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gateway's account (``--gateway``) may publish on any unit's, any device's event
    and status topics (the topics it publishes on, for whichever device connects), bound to
    its one client id; it may neither subscribe nor receive anything."""
    svc = services()["gateway"]
    with monkeypatch.context() as m:
        s = settings_for(svc, m)
    written = broker_config_accounts()
    assert s.gateway_mqtt_username is not None
    assert written[s.gateway_mqtt_username][0] is brokerconf.Kind.GATEWAY
    with monkeypatch.context() as m:
        writer = settings_for(services()["broker-config"], m)
    doc = brokerconf.build_dynsec(
        (brokerconf.Account(k, n, pw) for n, (k, pw) in written.items()),
        topic_root=writer.topic_root,
        ingest_group=writer.ingest_group or brokerconf.DEFAULT_INGEST_GROUP,
    )
    client = next(c for c in doc["clients"] if c["username"] == s.gateway_mqtt_username)
    assert client["clientid"] == s.gateway_mqtt_username, "one connection, its own client id"
    roles = {r["rolename"]: r["acls"] for r in doc["roles"]}
    acls = [acl for r in client["roles"] for acl in roles[r["rolename"]]]
    assert {acl["acltype"] for acl in acls} == {"publishClientSend"}, "publish only"
    assert all(acl["allow"] for acl in acls)
    sends = [acl["topic"] for acl in acls]
    for unit, device in (("U-1", "D-1"), ("U-XC-0042", "D-XC-0042-P1")):
        # event_topic: where the gateway publishes a device's information objects.
        granted = [event_topic(s.topic_root, unit, device)]
        granted.append(topic_for(s.topic_root, unit, device, Channel.STATUS))
        for topic in granted:
            assert any(mqtt.topic_matches_sub(f, topic) for f in sends), topic
        command = f"{s.topic_root}/{unit}/{device}/{brokerconf.COMMAND_CHANNEL}"
        assert not any(mqtt.topic_matches_sub(f, command) for f in sends), command


def test_the_gateway_port_is_published_for_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Legacy transmission devices connect from outside: the gateway's TCP port is published
    on every interface (unlike the loopback-only database, API and Prometheus ports), and
    it is the port the gateway listens on."""
    svc = services()["gateway"]
    with monkeypatch.context() as m:
        s = settings_for(svc, m)
    assert container_ports(svc) == {s.gateway_port}
    for spec in svc["ports"]:
        host = interpolate(str(spec), {}).rsplit(":", 1)[0]
        assert ":" not in host, f"{spec}: bound to one address; devices reach it from outside"
    assert interpolate(str(svc["ports"][0]), {}) == f"{s.gateway_port}:{s.gateway_port}"
    assert s.gateway_host == "0.0.0.0"


def test_every_variable_is_documented_in_the_header_and_required_ones_say_so() -> None:
    """The header comment lists every ``${VAR}`` compose substitutes; an entry says
    "(required)" exactly when compose refuses to start without it (``${VAR:?...}``)."""
    entries: dict[str, str] = {}
    current: list[str] = []
    in_list = False
    for line in header_comment().splitlines():
        if line.startswith("# Variables"):
            in_list = True
            continue
        if not in_list:
            continue
        entry = re.match(r"#   ([A-Z][A-Z0-9_]*(?:, [A-Z][A-Z0-9_]*)*)\s+(.*)", line)
        if entry:
            current = entry[1].split(", ")
            for name in current:
                entries[name] = entry[2]
        elif line.startswith("#    ") and current:
            for name in current:
                entries[name] += " " + line.lstrip("# ")
        elif current or line.strip() == "#":
            break  # the list ends at the next paragraph
    referenced: dict[str, bool] = {}  # name -> required
    for text in compose_strings(load_compose()):
        for m in _VAR.finditer(text):
            name = m.group("name") or m.group("bare")
            if name:
                required = (m.group("op") or "").endswith("?")
                referenced[name] = referenced.get(name, False) or required
    assert {"BROKER_ADMIN_PASSWORD", "INGEST_1_MQTT_PASSWORD", "GATEWAY_MQTT_PASSWORD"} <= {
        name for name, required in referenced.items() if required
    }
    for name, required in referenced.items():
        assert name in entries, f"${{{name}}} is not in the header's list of variables"
        assert ("(required)" in entries[name]) == required, (name, entries[name])


def test_prometheus_scrapes_every_ingest_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    config = yaml.safe_load(PROMETHEUS_YML.read_text("utf-8"))
    targets = {
        t
        for job in config["scrape_configs"]
        for sc in job.get("static_configs", [])
        for t in sc["targets"]
    }
    default_port = Settings.model_fields["ingest_metrics_port"].default
    expected: set[str] = set()
    for name, svc in ingest_services().items():
        env = environment(svc)
        port = int(env.get("FIREWATCH_INGEST_METRICS_PORT", default_port))
        assert port > 0, f"{name}: metrics disabled"
        with monkeypatch.context() as m:
            s = settings_for(svc, m)
        assert s.ingest_metrics_port == port
        assert s.metrics_host not in ("127.0.0.1", "localhost", "::1"), (
            f"{name}: metrics bound to loopback are unreachable from the prometheus container"
        )
        assert f":{port}/metrics" in " ".join(svc["healthcheck"]["test"]), name
        expected.add(f"{name}:{port}")
    for name, svc in services().items():
        if name.startswith("analytics"):
            with monkeypatch.context() as m:
                s = settings_for(svc, m)
            assert s.analytics_metrics_port > 0, f"{name}: metrics disabled"
            assert s.metrics_host not in ("127.0.0.1", "localhost", "::1"), name
            assert f":{s.analytics_metrics_port}/metrics" in " ".join(svc["healthcheck"]["test"])
            expected.add(f"{name}:{s.analytics_metrics_port}")
        if name.startswith("alerting"):
            with monkeypatch.context() as m:
                s = settings_for(svc, m)
            assert s.alerting_metrics_port > 0, f"{name}: metrics disabled"
            assert s.metrics_host not in ("127.0.0.1", "localhost", "::1"), name
            assert f":{s.alerting_metrics_port}/metrics" in " ".join(svc["healthcheck"]["test"])
            expected.add(f"{name}:{s.alerting_metrics_port}")
        if svc.get("command") == ["gateway"]:
            with monkeypatch.context() as m:
                s = settings_for(svc, m)
            assert s.gateway_metrics_port > 0, f"{name}: metrics disabled"
            assert s.metrics_host not in ("127.0.0.1", "localhost", "::1"), name
            assert f":{s.gateway_metrics_port}/metrics" in " ".join(svc["healthcheck"]["test"])
            expected.add(f"{name}:{s.gateway_metrics_port}")
        for worker in ("analysis", "risk", "supervision"):
            if name.startswith(f"{worker}-"):
                with monkeypatch.context() as m:
                    s = settings_for(svc, m)
                port = getattr(s, f"{worker}_metrics_port")
                assert port > 0, f"{name}: metrics disabled"
                assert s.metrics_host not in ("127.0.0.1", "localhost", "::1"), name
                assert f":{port}/metrics" in " ".join(svc["healthcheck"]["test"])
                expected.add(f"{name}:{port}")
    app_targets = {t for t in targets if t.split(":")[0] in services()}
    assert app_targets == expected
    mounts = {target: source for source, target, _ in bind_mounts(services()["prometheus"])}
    assert (ROOT / mounts["/etc/prometheus/prometheus.yml"]).resolve() == PROMETHEUS_YML


# --- mosquitto ----------------------------------------------------------------------------
def volume_mounts(svc: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """A service's named volumes: container target -> (volume, read_only)."""
    out: dict[str, tuple[str, bool]] = {}
    for vol in svc.get("volumes", []):
        if isinstance(vol, dict):
            if vol.get("type") == "volume":
                out[vol["target"]] = (vol["source"], bool(vol.get("read_only")))
            continue
        source, target, *opts = str(vol).split(":")
        if not source.startswith((".", "/", "~")):
            out[target] = (source, "ro" in ",".join(opts).split(","))
    return out


def test_mosquitto_config_mount_references_existing_files() -> None:
    svc = services()["mosquitto"]
    mounts = {target: (source, ro) for source, target, ro in bind_mounts(svc)}
    source, read_only = mounts["/mosquitto/config"]
    assert (ROOT / source).resolve() == MOSQUITTO_DIR
    assert read_only, "the broker must not rewrite its own config"
    config_root = PurePosixPath("/mosquitto/config")
    directives = dict(conf_directives(MOSQUITTO_DIR / "mosquitto.conf"))
    in_container = PurePosixPath(directives["include_dir"])
    assert in_container.is_relative_to(config_root)
    on_host = MOSQUITTO_DIR / in_container.relative_to(config_root)
    assert on_host.exists(), f"include_dir {in_container}: {on_host} is missing"
    assert list((MOSQUITTO_DIR / "conf.d").glob("*.conf")), "include_dir has no *.conf"
    persistence = PurePosixPath(directives["persistence_location"])
    data_targets = [PurePosixPath(t) for _s, t in named_volumes(svc)]
    assert any(persistence.is_relative_to(t) for t in data_targets), (
        "persistence_location must be on a named volume"
    )
    assert directives.get("allow_anonymous") == "false"


def test_the_account_file_is_written_from_the_registry_before_the_broker_starts() -> None:
    """ADR 0012: broker-config (``firewatch broker config``, after the migrations) writes the
    plugin's file, as the broker's uid, onto a named volume that the broker mounts writable
    at the same place (the plugin saves its state there after every ``$CONTROL`` change);
    a one-shot first gives that volume to uid 1883 (a new volume is root's); the broker
    starts only after broker-config succeeded."""
    svcs = services()
    broker, writer, owner = svcs["mosquitto"], svcs["broker-config"], svcs["broker-accounts-volume"]
    assert broker["depends_on"]["broker-config"]["condition"] == "service_completed_successfully"
    assert writer["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert writer["depends_on"]["broker-accounts-volume"]["condition"] == (
        "service_completed_successfully"
    )
    assert "mosquitto" not in writer["depends_on"], "it runs while the broker is down"
    assert writer["user"] == BROKER_UID, "the file must be the broker's: the plugin rewrites it"
    assert writer["restart"] == "no"

    plugin_file = PurePosixPath(
        dict(conf_directives(MOSQUITTO_DIR / "mosquitto.conf"))["plugin_opt_config_file"]
    )
    assert plugin_file.name == DYNSEC_JSON
    args = command_args(writer)
    assert args.func is broker_accounts.cmd_config
    assert PurePosixPath(str(args.out)) == plugin_file, "broker-config writes the plugin's file"
    assert args.mode & 0o600 == 0o600, "the broker must read and write it"

    def volume_at(svc: dict[str, Any], path: PurePosixPath) -> tuple[str, str, bool]:
        """(volume, mount target, read_only) of the named volume holding ``path``."""
        found = [
            (volume, target, ro)
            for target, (volume, ro) in volume_mounts(svc).items()
            if path.is_relative_to(PurePosixPath(target))
        ]
        assert len(found) == 1, f"{path} must be on exactly one named volume: {found}"
        return found[0]

    volume, target, ro = volume_at(broker, plugin_file)
    assert not ro, "the plugin saves the file: the broker mounts it writable"
    assert volume_at(writer, plugin_file) == (volume, target, False)
    assert volume != "mosquitto-data", "broker-config sees the accounts, not the sessions"
    assert volume in (load_compose().get("volumes") or {})
    # No bind mount covers the file (the read-only config directory in particular).
    for source, mounted, _ro in bind_mounts(broker):
        assert not plugin_file.is_relative_to(PurePosixPath(mounted)), (source, mounted)

    assert owner["image"] == broker["image"]
    assert owner["restart"] == "no"
    assert volume_mounts(owner) == {target: (volume, False)}
    assert owner["command"] == ["chown", BROKER_UID, target]


def test_the_control_clients_have_the_admin_login_and_the_ca(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The api (credential routes) and broker-sync push to the broker over ``$CONTROL`` as
    the admin account, whose password compose requires, over TLS verified with the CA."""
    for name in ("api", "broker-sync"):
        svc = services()[name]
        raw = svc["environment"]["FIREWATCH_MQTT_ADMIN_PASSWORD"]
        assert raw.startswith("${BROKER_ADMIN_PASSWORD:?"), f"{name}: required, not defaulted"
        with monkeypatch.context() as m:
            s = settings_for(svc, m)
        assert s.mqtt_admin_password == TEST_VARS["BROKER_ADMIN_PASSWORD"], name
        assert s.mqtt_url is not None
        assert urlsplit(s.mqtt_url).scheme == "mqtts", name
        assert s.mqtt_ca_file is not None, name
        mounts = {target: source for source, target, _ro in bind_mounts(svc)}
        assert (ROOT / mounts[str(s.mqtt_ca_file)]).resolve() == CERTS_DIR / certs.CA_CERT
    sync = services()["broker-sync"]
    assert command_args(sync).func is broker_accounts.cmd_sync
    assert sync["restart"] == "unless-stopped"
    assert sync["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "mosquitto" in sync["depends_on"]


def test_tests_run_the_production_access_control(tmp_path: Path) -> None:
    """tests/test_broker_acl.py starts its broker with write_config(dynsec=...): it must
    configure access control the way mosquitto/mosquitto.conf does."""
    production = conf_directives(MOSQUITTO_DIR / "mosquitto.conf")
    # Only writes the config (the plugin must be installed, as for the broker tests).
    tested = conf_directives(write_config(tmp_path, 1883, dynsec=tmp_path / DYNSEC_JSON))
    for directives in (production, tested):
        keys = dict(directives)
        # acl_file does not check SUBSCRIBE and password_file binds no client id (ADR 0005).
        assert "acl_file" not in keys
        assert "password_file" not in keys
        assert keys["per_listener_settings"] == "false", "one access control for every listener"
        assert keys["allow_anonymous"] == "false"
        assert PurePosixPath(keys["plugin"]).name == "mosquitto_dynamic_security.so"
        assert PurePosixPath(keys["plugin_opt_config_file"]).name == DYNSEC_JSON
    # The eclipse-mosquitto image installs the plugin here (Debian: /usr/lib/<arch>/).
    assert dict(production)["plugin"] == "/usr/lib/mosquitto_dynamic_security.so"


def test_broker_does_not_drop_queued_messages() -> None:
    """Mosquitto's default max_queued_messages (1000) silently drops QoS 1 messages queued
    for a slow or restarting consumer; conf.d must lift it and persist sessions."""
    values: dict[str, str] = {}
    for conf in sorted((MOSQUITTO_DIR / "conf.d").glob("*.conf")):  # include_dir order
        values.update(conf_directives(conf))
    own = dict(conf_directives(MOSQUITTO_DIR / "conf.d" / "firewatch.conf"))
    assert "max_queued_messages" in own
    limit = int(values["max_queued_messages"])
    assert limit == 0 or limit >= 1_000_000, f"max_queued_messages {limit} loses bursts"
    assert own.get("persistence") == "true"
    assert values.get("persistence") == "true"


def test_mqtt_leaves_the_broker_container_over_tls_only() -> None:
    """Issue 14: plain MQTT only on the container's loopback; the listener that is published
    serves the files ``firewatch broker certs --out mosquitto/certs`` writes, at TLS 1.2 or
    newer."""
    svc = services()["mosquitto"]
    found = listeners(MOSQUITTO_DIR / "mosquitto.conf")
    published = container_ports(svc)
    plain = {port for port, (_bind, options) in found.items() if "certfile" not in options}
    tls = {port: options for port, (_bind, options) in found.items() if "certfile" in options}
    assert plain, "a plain listener for `docker compose exec` clients"
    for port in plain:
        assert found[port][0] in LOOPBACK, f"plain listener {port} must be bound to loopback"
        assert port not in published, f"{port}: nothing listens there outside the container"
    assert set(tls) == {8883}
    assert published == {8883}
    options = tls[8883]
    files = {
        "cafile": certs.CA_CERT,
        "certfile": certs.SERVER_CERT,
        "keyfile": certs.SERVER_KEY,
    }
    for key, name in files.items():
        assert PurePosixPath(options[key]) == CERTS_IN_BROKER / name, key
    assert options["tls_version"] == "tlsv1.2"
    # The broker sees mosquitto/certs/ at CERTS_IN_BROKER (mounted on its own, so compose
    # stops if it was never made), read-only, and git never sees it.
    mounts = {target: (source, ro) for source, target, ro in bind_mounts(svc)}
    source, read_only = mounts[str(CERTS_IN_BROKER)]
    assert (ROOT / source).resolve() == CERTS_DIR
    assert read_only
    assert "mosquitto/certs/" in (ROOT / ".gitignore").read_text("utf-8").split()


def test_mqtt_clients_verify_the_broker_with_the_ca_the_documented_command_makes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every service with an MQTT URL has FIREWATCH_MQTT_CA_FILE, mounted from
    mosquitto/certs/ca.crt; the certificate docs/deployment.md's command makes is accepted,
    under the host name in the services' URLs, by a real broker's TLS listener."""
    hostnames: set[str] = set()
    for name, svc in app_services().items():
        with monkeypatch.context() as m:
            s = settings_for(svc, m)
        if not s.mqtt_url:
            continue
        assert s.mqtt_ca_file is not None, f"{name}: mqtts:// needs FIREWATCH_MQTT_CA_FILE"
        mounts = {target: source for source, target, _ro in bind_mounts(svc)}
        source = mounts.get(str(s.mqtt_ca_file))
        assert source is not None, f"{name}: {s.mqtt_ca_file} is not mounted"
        assert (ROOT / source).resolve() == CERTS_DIR / certs.CA_CERT, name
        hostnames.add(str(urlsplit(s.mqtt_url).hostname))
    assert hostnames == {"mosquitto"}

    doc = (ROOT / "docs" / "deployment.md").read_text("utf-8")
    command = re.search(r"firewatch broker certs --out mosquitto/certs( --host \S+)+", doc)
    assert command, "docs/deployment.md shows how to make the broker's certificates"
    host_args = command[0].split()[5:]  # --host NAME ...
    assert "mosquitto" in host_args[1::2]
    out = tmp_path / "certs"
    assert cli.main(["broker", "certs", "--out", str(out), *host_args]) == 0
    ca = ssl.create_default_context(cafile=out / certs.CA_CERT)
    with Broker(tmp_path / "broker", tls=TlsFiles.in_dir(out)) as broker:
        assert broker.tls_port is not None
        for hostname in hostnames:
            # As the services connect to mosquitto:8883: this address, that name.
            with (
                socket.create_connection((broker.host, broker.tls_port), timeout=10) as raw,
                ca.wrap_socket(raw, server_hostname=hostname) as tls,
            ):
                assert tls.version() in ("TLSv1.2", "TLSv1.3")


# --- image ------------------------------------------------------------------------------------
def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text("utf-8").replace("\\\n", " ")
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile() -> None:
    instructions = _dockerfile_instructions()
    args = dict(rest.split("=", 1) for op, rest in instructions if op == "ARG" and "=" in rest)
    bases = [interpolate(rest.split()[0], args) for op, rest in instructions if op == "FROM"]
    assert bases
    assert all(b == "python:3.11-slim" for b in bases), bases
    ops = dict(instructions)  # last one of each kind
    assert ops["ENTRYPOINT"] == '["firewatch"]'
    user = ops["USER"].split(":")[0]
    assert user not in ("root", "0"), "the image must run as a non-root user"
    assert any("pip install" in rest for op, rest in instructions if op == "RUN")
    for op, rest in instructions:
        if op != "COPY" or rest.startswith("--from"):
            continue
        *sources, _dest = rest.split()
        for src in sources:
            if not any(c in src for c in "*?["):
                assert (ROOT / src).exists(), f"COPY {src}: missing from the build context"


def _dockerignore_excludes(rel: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; a pattern matching a
    parent directory matches everything below it."""

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
            out += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                token, re.escape(token)
            )
        return re.compile(out)

    parts = rel.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        rx = regex(raw.removeprefix("!").strip("/"))
        if any(rx.fullmatch(p) for p in prefixes):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_secrets_out_of_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    for needed in (
        "pyproject.toml",
        "firewatch/cli/__init__.py",
        "firewatch/storage/migrations/0001_registry.sql",
        "firewatch/storage/seeds/xuchang.toml",
        "firewatch/py.typed",
    ):
        assert not _dockerignore_excludes(needed, patterns), needed
    for secret in (
        "mosquitto/passwd",
        "mosquitto/dynsec.json",
        ".env",
        ".venv/bin/python",
        ".git/config",
        ".firewatch/pgdata/PG_VERSION",
        "firewatch/__pycache__/cli.cpython-311.pyc",
    ):
        assert _dockerignore_excludes(secret, patterns), secret


def test_deployment_doc_covers_the_accounts_from_the_registry() -> None:
    doc = (ROOT / "docs" / "deployment.md").read_text("utf-8")
    for needle in (
        "BROKER_ADMIN_PASSWORD",
        "INGEST_1_MQTT_PASSWORD",
        "GATEWAY_MQTT_PASSWORD",
        "--gateway",
        "SIMULATOR_MQTT_PASSWORD",
        "secrets.token_urlsafe(24)",
        "broker-config",
        "broker-sync",
        "mosquitto-accounts",
        "POST /devices/{id}/credentials",
        "DELETE /devices/{id}/credentials",
        "(registry.md)",
        "(vendor-guide.md)",
        "docker compose run --rm broker-config",
        "docker compose restart mosquitto",
        "docker compose stop mosquitto",
        "mosquitto/passwd.py",
        "--profile demo",
        "ingest-2",
        "firewatch ingest retire",
        "prometheus",
        "firewatch broker certs --out mosquitto/certs --host mosquitto",
        "FIREWATCH_MQTT_CA_FILE",
        "mqtts://",
    ):
        assert needle in doc, needle


# --- mosquitto/passwd.py ------------------------------------------------------------------------
SEED = ROOT / "firewatch" / "storage" / "seeds" / "xuchang.toml"


def run_passwd(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """passwd.py as an operator runs it: no site-packages (-S), no environment (-I), so
    only the standard library and this checkout are importable."""
    return subprocess.run(
        [sys.executable, "-I", "-S", str(PASSWD_PY), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def dynsec_clients(path: Path) -> dict[str, dict[str, Any]]:
    return {c["username"]: c for c in json.loads(path.read_text("utf-8"))["clients"]}


def generated(stdout: str) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in stdout.splitlines() if line)


def test_passwd_tool_default_file_stays_out_of_git_and_the_image() -> None:
    """passwd.py (service accounts, brokers without a Firewatch database) writes hashes to
    mosquitto/dynsec.json by default: never committed, never in the build context. Compose's
    broker no longer reads it (its file comes from the registry: broker-config)."""
    spec = importlib.util.spec_from_file_location("passwd_tool", PASSWD_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines names only; runs nothing
    assert module.DEFAULT_OUT == MOSQUITTO_DIR / DYNSEC_JSON
    assert DYNSEC_JSON in (MOSQUITTO_DIR / ".gitignore").read_text("utf-8").split()


def test_passwd_tool_writes_accounts(tmp_path: Path) -> None:
    out = tmp_path / DYNSEC_JSON
    r = run_passwd(
        "--out",
        out,
        "--ingest",
        "firewatch-ingest-1:s3cret:with:colons",
        "--ingest",
        "firewatch-ingest-2",
        "--publisher",
        "firewatch-simulator",
    )
    assert r.returncode == 0, r.stderr
    clients = dynsec_clients(out)
    assert set(clients) == {"firewatch-ingest-1", "firewatch-ingest-2", "firewatch-simulator"}
    assert brokerconf.check_password(clients["firewatch-ingest-1"], "s3cret:with:colons")
    # Bound: no other client id may log in as a worker; the simulator opens many connections.
    assert clients["firewatch-ingest-1"]["clientid"] == "firewatch-ingest-1"
    assert "clientid" not in clients["firewatch-simulator"]
    # Only generated passwords are printed, once, and they are what was hashed.
    printed = generated(r.stdout)
    assert set(printed) == {"firewatch-ingest-2", "firewatch-simulator"}
    for name, password in printed.items():
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", password)
        assert brokerconf.check_password(clients[name], password)
    assert "s3cret" not in r.stdout + r.stderr + out.read_text()
    assert "restart the broker" in r.stderr
    # A broker without a database (uid 1883 in a container) may read it through a read-only
    # bind mount.
    assert out.stat().st_mode & 0o777 == 0o644
    assert list(tmp_path.iterdir()) == [out], "no temporary files left behind"


def test_passwd_tool_adds_seed_devices_to_an_existing_file(tmp_path: Path) -> None:
    out = tmp_path / DYNSEC_JSON
    assert run_passwd("--out", out, "--ingest", "firewatch-ingest-1:s3cret").returncode == 0
    before = dynsec_clients(out)
    devices = {d.id for unit in read_seed(SEED).units for d in unit.devices}
    r = run_passwd("--out", out, "--from-seed", SEED)
    assert r.returncode == 0, r.stderr
    clients = dynsec_clients(out)
    assert set(clients) == devices | {"firewatch-ingest-1"}
    assert clients["firewatch-ingest-1"] == before["firewatch-ingest-1"], "kept as it is"
    assert all(clients[d]["clientid"] == d for d in devices), "a device's client id is its id"
    printed = generated(r.stdout)
    assert set(printed) == devices
    assert len(set(printed.values())) == len(devices), "every device gets its own password"
    # A device added to the seed later: --new-only leaves the others' passwords alone.
    seed = tmp_path / "city.toml"
    seed.write_text(
        SEED.read_text("utf-8") + '\n[[units]]\nid = "U-NEW"\ndevices = [{ id = "D-NEW-1" }]\n',
        "utf-8",
    )
    r = run_passwd("--out", out, "--from-seed", seed, "--new-only")
    assert r.returncode == 0, r.stderr
    assert set(generated(r.stdout)) == {"D-NEW-1"}
    after = dynsec_clients(out)
    assert all(after[name] == clients[name] for name in clients), "existing accounts untouched"
    # --replace starts over.
    r = run_passwd("--out", out, "--replace", "--ingest", "firewatch-ingest-1")
    assert r.returncode == 0, r.stderr
    assert set(dynsec_clients(out)) == {"firewatch-ingest-1"}


def test_passwd_tool_fails_clearly(tmp_path: Path) -> None:
    out = tmp_path / DYNSEC_JSON
    for args, message in (
        (["--device", "bad/name"], "bad account name"),
        (["--ingest", "firewatch-ingest-1:"], "empty password"),
        (["--device", "D-1", "--ingest", "D-1"], "more than once"),
        ([], "no accounts given"),
    ):
        r = run_passwd("--out", out, *args)
        assert r.returncode == 1, args
        assert message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
        assert not out.exists()
    out.write_text("not json")
    r = run_passwd("--out", out, "--device", "D-1")
    assert r.returncode == 1
    assert "cannot read" in r.stderr
    assert out.read_text() == "not json", "a file it cannot read is left alone"


def mqtt_login(url: str, username: str, password: str, client_id: str) -> int:
    """The broker's MQTT 5 CONNACK reason code for this login (0: accepted)."""
    codes: list[int] = []
    done = threading.Event()

    def on_connect(c: mqtt.Client, _u: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        if not done.is_set():
            codes.append(reason_code.value)
            done.set()
        c.disconnect()

    addr = urlsplit(url)
    assert addr.hostname is not None
    assert addr.port is not None
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    client.on_connect = on_connect
    client.connect(addr.hostname, addr.port)
    client.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0]


def test_broker_loads_the_generated_file(tmp_path: Path) -> None:
    out = tmp_path / DYNSEC_JSON
    r = run_passwd("--out", out, "--ingest", "firewatch-ingest-1:right-password")
    assert r.returncode == 0, r.stderr
    with mosquitto(tmp_path / "broker", dynsec=out) as url:
        ingest = "firewatch-ingest-1"
        assert mqtt_login(url, ingest, "right-password", ingest) == 0
        assert mqtt_login(url, ingest, "wrong-password", ingest) == 0x87
        assert mqtt_login(url, ingest, "right-password", "another-client-id") == 0x87
        assert mqtt_login(url, "nobody", "right-password", "nobody") == 0x87
