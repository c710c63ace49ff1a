"""The production deployment (docker-compose.yml, Dockerfile, deploy/, mosquitto/) is checked
statically here, because Docker is not available where the tests run: every FIREWATCH_* name
is a real setting with a valid value, every command is a real subcommand, every mounted file
exists, Prometheus scrapes what the ingest workers serve. The password tool is run for real
against ``mosquitto_passwd`` and a real broker.
"""

from __future__ import annotations

import os
import re
import shutil
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
from firewatch.core.settings import Settings
from firewatch.runtime.mosquitto import free_port, wait_for_port
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
    "INGEST_MQTT_PASSWORD": "ingest-secret",
    "SIMULATOR_MQTT_PASSWORD": "sim-secret",
    "WEBHOOK_SECRET": "webhook-secret",
}

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
needs_mosquitto_passwd = pytest.mark.skipif(
    not Path(MOSQUITTO_PASSWD).exists(), reason="mosquitto_passwd is not installed"
)


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


def acl_rules(path: Path) -> dict[str | None, list[tuple[str, str]]]:
    """Mosquitto ACL: {user (None = before any user line, or patterns): [(access, topic)]}."""
    rules: dict[str | None, list[tuple[str, str]]] = {None: []}
    user: str | None = None
    for key, value in conf_directives(path):
        if key == "user":
            user = value
            rules.setdefault(user, [])
        elif key == "topic":
            access, _, topic = value.partition(" ")
            rules[user].append((access, topic) if topic else ("readwrite", access))
    return rules


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
        "ingest-2",
        "analytics-1",
        "alerting-1",
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
    for name in ("timescaledb", "mosquitto", "migrate", "ingest-1", "ingest-2", "analytics-1",
                 "alerting-1", "api", "prometheus"):  # fmt: skip
        assert "profiles" not in svcs[name], name
    assert svcs["simulator"]["profiles"] == ["demo"]
    assert "demo" in svcs.get("seed", {}).get("profiles", ["demo"])


def test_app_services_run_valid_firewatch_subcommands() -> None:
    expected = {
        "migrate": cli.cmd_db_upgrade,
        "ingest-1": cli.cmd_ingest,
        "ingest-2": cli.cmd_ingest,
        "analytics-1": cli.cmd_analytics_run,
        "alerting-1": cli.cmd_alerting,
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
def test_ingest_workers_share_a_group_with_distinct_client_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workers = ingest_services()
    assert len(workers) >= 2
    settings: dict[str, Settings] = {}
    for name, svc in workers.items():
        with monkeypatch.context() as m:
            settings[name] = settings_for(svc, m)
        # The default client id follows the (container) hostname, which changes when the
        # container is recreated: that would orphan the persistent session.
        assert "FIREWATCH_INGEST_CLIENT_ID" in environment(svc), name
    ids = [s.ingest_client_id for s in settings.values()]
    assert len(set(ids)) == len(ids), f"client ids must differ: {ids}"
    assert len({s.ingest_group for s in settings.values()}) == 1
    assert len({s.topic_root for s in settings.values()}) == 1


def test_ingest_mqtt_account_matches_broker_and_acl(monkeypatch: pytest.MonkeyPatch) -> None:
    svcs = services()
    listeners = [
        int(v.split()[0])
        for k, v in conf_directives(MOSQUITTO_DIR / "mosquitto.conf")
        if k == "listener"
    ]
    assert listeners
    assert set(listeners) <= container_ports(svcs["mosquitto"])
    acl = acl_rules(MOSQUITTO_DIR / "acl")
    for name, svc in app_services().items():
        with monkeypatch.context() as m:
            s = settings_for(svc, m)
        if not s.mqtt_url:
            continue
        url = urlsplit(s.mqtt_url)
        assert url.scheme == "mqtt", name
        assert url.hostname == "mosquitto", name
        assert url.port in listeners, name
        assert url.username in acl, f"{name}: MQTT user {url.username} has no ACL entry"
        access = "read" if svc["command"] == ["ingest"] else "write"
        wanted = f"{s.topic_root}/#"
        assert any(a in (access, "readwrite") and t == wanted for a, t in acl[url.username]), (
            f"{name}: ACL does not let {url.username} {access} {wanted}"
        )


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
        assert s.ingest_metrics_host not in ("127.0.0.1", "localhost", "::1"), (
            f"{name}: metrics bound to loopback are unreachable from the prometheus container"
        )
        assert f":{port}/metrics" in " ".join(svc["healthcheck"]["test"]), name
        expected.add(f"{name}:{port}")
    for name, svc in services().items():
        if name.startswith("analytics"):
            with monkeypatch.context() as m:
                s = settings_for(svc, m)
            assert s.analytics_metrics_port > 0, f"{name}: metrics disabled"
            assert s.ingest_metrics_host not in ("127.0.0.1", "localhost", "::1"), name
            assert f":{s.analytics_metrics_port}/metrics" in " ".join(svc["healthcheck"]["test"])
            expected.add(f"{name}:{s.analytics_metrics_port}")
        if name.startswith("alerting"):
            with monkeypatch.context() as m:
                s = settings_for(svc, m)
            assert s.alerting_metrics_port > 0, f"{name}: metrics disabled"
            assert s.ingest_metrics_host not in ("127.0.0.1", "localhost", "::1"), name
            assert f":{s.alerting_metrics_port}/metrics" in " ".join(svc["healthcheck"]["test"])
            expected.add(f"{name}:{s.alerting_metrics_port}")
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
    assert read_only, "the broker must not rewrite its own config or password file"
    config_root = PurePosixPath("/mosquitto/config")
    directives = dict(conf_directives(MOSQUITTO_DIR / "mosquitto.conf"))
    for key in ("password_file", "acl_file", "include_dir"):
        in_container = PurePosixPath(directives[key])
        assert in_container.is_relative_to(config_root), key
        on_host = MOSQUITTO_DIR / in_container.relative_to(config_root)
        if key == "password_file":
            # Generated per deployment by mosquitto/passwd.py (a secret: never committed).
            assert on_host.name == "passwd"
            assert PASSWD_PY.exists()
        else:
            assert on_host.exists(), f"{key} {in_container}: {on_host} is missing"
    assert list((MOSQUITTO_DIR / "conf.d").glob("*.conf")), "include_dir has no *.conf"
    persistence = PurePosixPath(directives["persistence_location"])
    data_targets = [PurePosixPath(t) for _s, t in named_volumes(svc)]
    assert any(persistence.is_relative_to(t) for t in data_targets), (
        "persistence_location must be on a named volume"
    )
    assert directives.get("allow_anonymous") == "false"


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
        "firewatch/cli.py",
        "firewatch/storage/migrations/0001_registry.sql",
        "firewatch/storage/seeds/xuchang.toml",
        "firewatch/py.typed",
    ):
        assert not _dockerignore_excludes(needed, patterns), needed
    for secret in (
        "mosquitto/passwd",
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
        "INGEST_MQTT_PASSWORD",
        "--profile demo",
        "ingest-2",
        "prometheus",
    ):
        assert needle in doc, needle


# --- mosquitto/passwd.py ------------------------------------------------------------------------
def run_passwd(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PASSWD_PY), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def passwd_users(path: Path) -> dict[str, str]:
    return dict(line.split(":", 1) for line in path.read_text().splitlines() if line)


def generated(stdout: str) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in stdout.splitlines() if line)


@needs_mosquitto_passwd
def test_passwd_tool_writes_users(tmp_path: Path) -> None:
    out = tmp_path / "passwd"
    r = run_passwd(
        "--out",
        out,
        "--user",
        "firewatch-ingest:s3cret:with:colons",
        "--user",
        "firewatch-simulator",
    )
    assert r.returncode == 0, r.stderr
    users = passwd_users(out)
    assert set(users) == {"firewatch-ingest", "firewatch-simulator"}
    # sha512-pbkdf2 ($7$): readable by every Mosquitto 2.x broker.
    assert all(h.startswith("$7$") for h in users.values()), users
    # Only the generated password is printed, once.
    printed = generated(r.stdout)
    assert set(printed) == {"firewatch-simulator"}
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", printed["firewatch-simulator"])
    assert "s3cret" not in r.stdout + r.stderr
    # The broker (uid 1883 in the container) reads it through a read-only bind mount.
    assert out.stat().st_mode & 0o777 == 0o644
    assert list(tmp_path.iterdir()) == [out], "no temporary files left behind"


@needs_mosquitto_passwd
def test_passwd_tool_adds_seed_devices_to_an_existing_file(tmp_path: Path) -> None:
    out = tmp_path / "passwd"
    assert run_passwd("--out", out, "--user", "firewatch-ingest:s3cret").returncode == 0
    before = passwd_users(out)
    seed = ROOT / "firewatch" / "storage" / "seeds" / "xuchang.toml"
    devices = {d.id for unit in read_seed(seed).units for d in unit.devices}
    r = run_passwd("--out", out, "--from-seed", seed)
    assert r.returncode == 0, r.stderr
    users = passwd_users(out)
    assert set(users) == devices | {"firewatch-ingest"}
    assert users["firewatch-ingest"] == before["firewatch-ingest"], "existing user kept as is"
    printed = generated(r.stdout)
    assert set(printed) == devices
    assert len(set(printed.values())) == len(devices), "every device gets its own password"
    # --replace starts over.
    r = run_passwd("--out", out, "--replace", "--user", "firewatch-ingest")
    assert r.returncode == 0, r.stderr
    assert set(passwd_users(out)) == {"firewatch-ingest"}


def test_passwd_tool_fails_clearly(tmp_path: Path) -> None:
    out = tmp_path / "passwd"
    r = run_passwd("--out", out, "--user", "u", "--mosquitto-passwd", tmp_path / "missing")
    assert r.returncode == 1
    assert "mosquitto_passwd not found" in r.stderr
    assert "apt-get install mosquitto" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_passwd("--out", out, "--user", "bad/name", "--mosquitto-passwd", sys.executable)
    assert r.returncode == 1
    assert "bad user name" in r.stderr
    assert not out.exists()


@pytest.fixture
def broker_with_passwd(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A real Mosquitto with allow_anonymous false and a password file written by us."""
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed")
    passwd = tmp_path / "passwd"
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous false\n"
        f"password_file {passwd}\n"
        "persistence false\n"
        f"log_dest file {tmp_path / 'mosquitto.log'}\n"
        # Started as root, Mosquitto drops to user `mosquitto` before reading the password
        # file, which cannot enter pytest's private tmp directory.
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    r = run_passwd("--out", passwd, "--user", "firewatch-ingest:right-password")
    assert r.returncode == 0, r.stderr
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert wait_for_port("127.0.0.1", port, 10), (tmp_path / "mosquitto.log").read_text()
        yield port, passwd
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def mqtt_login(port: int, username: str, password: str) -> bool:
    """Whether the broker accepts this login (MQTT 5 CONNACK reason code)."""
    accepted: list[bool] = []
    done = threading.Event()

    def on_connect(_c: Any, _u: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        if not done.is_set():
            accepted.append(not reason_code.is_failure)
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return accepted[0]


@needs_mosquitto_passwd
def test_broker_accepts_the_generated_passwords(broker_with_passwd: tuple[int, Path]) -> None:
    port, _passwd = broker_with_passwd
    assert mqtt_login(port, "firewatch-ingest", "right-password")
    assert not mqtt_login(port, "firewatch-ingest", "wrong-password")
    assert not mqtt_login(port, "nobody", "right-password")
