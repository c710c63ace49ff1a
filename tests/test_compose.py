"""The production deployment (docker-compose.yml, Dockerfile, deploy/, mosquitto/) is checked
statically here, because Docker is not available where the tests run: every FIREWATCH_* name
is a real setting with a valid value, every command is a real subcommand, every mounted file
exists, Prometheus scrapes what the ingest workers serve, every MQTT login is an account the
broker's access control (``firewatch.runtime.brokerconf``) gives what the service does. The
account tool (``mosquitto/passwd.py``) is run for real, outside the venv's site-packages,
and its file is loaded by a real broker.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from firewatch import cli
from firewatch.core.contract import subscription
from firewatch.core.settings import Settings
from firewatch.runtime import brokerconf
from firewatch.runtime.mosquitto import mosquitto, write_config
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
    "INGEST_1_MQTT_PASSWORD": "ingest-1-secret",
    "INGEST_2_MQTT_PASSWORD": "ingest-2-secret",
    "SIMULATOR_MQTT_PASSWORD": "sim-secret",
    "WEBHOOK_SECRET": "webhook-secret",
}

DYNSEC_JSON = "dynsec.json"  # mosquitto/dynsec.json, written by passwd.py


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
        "migrate",
        "ingest-1",
        "analytics-1",
        "alerting-1",
        "analysis-1",
        "risk-1",
        "supervision-1",
        "api",
        "simulator",
        "prometheus",
    }
    assert expected <= set(svcs)
    assert svcs["timescaledb"]["image"].startswith("timescale/timescaledb:")
    assert svcs["timescaledb"]["image"].endswith("-pg16")
    assert svcs["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert svcs["prometheus"]["image"].startswith("prom/prometheus")
    # The production stack starts without profiles; only the demo pieces need one.
    for name in (
        "timescaledb",
        "mosquitto",
        "migrate",
        "ingest-1",
        "analytics-1",
        "alerting-1",
        "analysis-1",
        "risk-1",
        "supervision-1",
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
        "api": cli.cmd_api,
        "simulator": cli.cmd_simulate,
        "seed": cli.cmd_db_seed,
    }
    apps = app_services()
    assert set(expected) <= set(apps)
    for name, svc in apps.items():
        assert svc["image"] == APP_IMAGE, name
        command = svc["command"]
        assert isinstance(command, list), f"{name}: use the exec (list) form"
        args = cli.build_parser().parse_args(command)  # SystemExit if not a subcommand
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
        if svc["command"] in (["ingest"], ["simulate"]):
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
    sim_deps = svcs["simulator"]["depends_on"]
    assert "mosquitto" in sim_deps
    if "seed" in svcs:
        assert svcs["seed"]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )


def test_long_running_services_restart_and_volumes_are_named() -> None:
    compose = load_compose()
    declared = set(compose.get("volumes") or {})
    for name, svc in services().items():
        one_shot = svc.get("command") in (["db", "upgrade"], ["db", "seed"])
        if one_shot:
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
            assert host.exists(), f"{name}: {source} -> {target} does not exist in the repo"
            assert host.is_relative_to(ROOT), f"{name}: {source} is outside the repository"


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
    """Every MQTT login in compose is an account that ``passwd.py`` creates with its
    defaults (docs/deployment.md): the ingest workers with ``--ingest`` (username = client
    id, which the broker binds to the account), the simulator with ``--publisher``."""
    svcs = services()
    listeners = [
        int(v.split()[0])
        for k, v in conf_directives(MOSQUITTO_DIR / "mosquitto.conf")
        if k == "listener"
    ]
    assert listeners
    assert set(listeners) <= container_ports(svcs["mosquitto"])
    accounts: list[brokerconf.Account] = []
    for name, svc in app_services().items():
        with monkeypatch.context() as m:
            s = settings_for(svc, m)
        if not s.mqtt_url:
            continue
        url = urlsplit(s.mqtt_url)
        assert url.scheme == "mqtt", name
        assert url.hostname == "mosquitto", name
        assert url.port in listeners, name
        assert url.username, f"{name}: the broker refuses anonymous clients"
        assert url.password, name
        # passwd.py's defaults grant exactly this root (and group), nothing else.
        assert s.topic_root == brokerconf.DEFAULT_TOPIC_ROOT, name
        if svc["command"] == ["ingest"]:
            assert url.username == s.ingest_client_id, f"{name}: account bound to its client id"
            assert subscription(
                s.topic_root, s.ingest_group or None
            ) in brokerconf.ingest_subscriptions(
                brokerconf.DEFAULT_TOPIC_ROOT, brokerconf.DEFAULT_INGEST_GROUP
            ), f"{name}: the ingest accounts may subscribe to these filters only"
            kind = brokerconf.Kind.INGEST
        else:
            assert svc["command"] == ["simulate"], f"{name}: which account kind is this?"
            kind = brokerconf.Kind.PUBLISHER
        accounts.append(brokerconf.Account(kind, url.username, url.password))
    assert {a.kind for a in accounts} == {brokerconf.Kind.INGEST, brokerconf.Kind.PUBLISHER}
    assert len({a.password for a in accounts}) == len(accounts), "one password per account"
    brokerconf.build_dynsec(accounts)  # refuses duplicate or unusable names


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
def test_mosquitto_config_mount_references_existing_files() -> None:
    svc = services()["mosquitto"]
    mounts = {target: (source, ro) for source, target, ro in bind_mounts(svc)}
    source, read_only = mounts["/mosquitto/config"]
    assert (ROOT / source).resolve() == MOSQUITTO_DIR
    assert read_only, "the broker must not rewrite its own config or account file"
    config_root = PurePosixPath("/mosquitto/config")
    directives = dict(conf_directives(MOSQUITTO_DIR / "mosquitto.conf"))
    for key in ("plugin_opt_config_file", "include_dir"):
        in_container = PurePosixPath(directives[key])
        assert in_container.is_relative_to(config_root), key
        on_host = MOSQUITTO_DIR / in_container.relative_to(config_root)
        if key == "plugin_opt_config_file":
            # Generated per deployment by mosquitto/passwd.py (hashes: never committed).
            assert on_host.name == DYNSEC_JSON
            assert DYNSEC_JSON in (MOSQUITTO_DIR / ".gitignore").read_text("utf-8").split()
        else:
            assert on_host.exists(), f"{key} {in_container}: {on_host} is missing"
    assert list((MOSQUITTO_DIR / "conf.d").glob("*.conf")), "include_dir has no *.conf"
    persistence = PurePosixPath(directives["persistence_location"])
    data_targets = [PurePosixPath(t) for _s, t in named_volumes(svc)]
    assert any(persistence.is_relative_to(t) for t in data_targets), (
        "persistence_location must be on a named volume"
    )
    assert directives.get("allow_anonymous") == "false"


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


def test_deployment_doc_covers_the_generated_password_file() -> None:
    doc = (ROOT / "docs" / "deployment.md").read_text("utf-8")
    for needle in (
        "mosquitto/passwd.py",
        "--ingest firewatch-ingest-1",
        "--from-seed",
        "--new-only",
        "INGEST_1_MQTT_PASSWORD",
        "docker compose restart mosquitto",
        "--profile demo",
        "ingest-2",
        "firewatch ingest retire",
        "prometheus",
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


def test_passwd_tool_default_is_the_file_the_broker_loads() -> None:
    spec = importlib.util.spec_from_file_location("passwd_tool", PASSWD_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines names only; runs nothing
    assert module.DEFAULT_OUT == MOSQUITTO_DIR / DYNSEC_JSON


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
    # The broker (uid 1883 in the container) reads it through a read-only bind mount.
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
