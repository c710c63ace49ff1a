"""A throwaway PostgreSQL 15 cluster with TimescaleDB, for the test suite's TimescaleDB pass
and the benchmarks that compare both storage flavours.

TimescaleDB is packaged neither for Debian 12 nor on PyPI. Machines of this project's CI
carry its 2.28.3 source and a build script (``build.sh``, beside the tarball) that builds it
and installs it into Debian's PostgreSQL 15; :func:`ensure_timescaledb` runs it once (it is
idempotent, so later runs cost nothing) and :func:`timescale_cluster` starts a cluster of
that PostgreSQL in a temporary directory, as a child process on a free loopback port, with
``shared_preload_libraries = 'timescaledb'`` and telemetry off (these machines are offline).

Where the script is absent (a user's machine), point ``FIREWATCH_TEST_DATABASE_URL`` at
any server with TimescaleDB instead (docs/deployment.md, "Testing on TimescaleDB").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from firewatch.runtime.mosquitto import free_port

VERSION = "2.28.3"
PG_BIN = Path(os.environ.get("FIREWATCH_TIMESCALEDB_PG_BIN", "/usr/lib/postgresql/15/bin"))
# Where CI machines keep the source and its build script: beside the checkout's parent.
DEFAULT_BUILD_SCRIPT = Path(__file__).resolve().parents[3] / "shared" / "timescaledb" / "build.sh"

# The test cluster's settings. The extension's job scheduler is off: Firewatch's own
# maintenance compresses and drops chunks (the scheduler's jobs fail on PostgreSQL 15.20 with
# 2.28.3, docs/deployment.md), and a running scheduler keeps a connection to every database
# with the extension, the template the per-test databases are cloned from included.
CLUSTER_CONF = {
    "shared_preload_libraries": "'timescaledb'",
    "timescaledb.telemetry_level": "off",
    "timescaledb.max_background_workers": "0",
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "300",
    "fsync": "off",  # a throwaway cluster: durability is tested on the embedded one
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "256MB",
    "max_locks_per_transaction": "256",  # dropping a database of many chunks
    "log_min_messages": "warning",
}


class TimescaleUnavailable(Exception):
    """TimescaleDB cannot be had here; the message says why and what to do instead."""


def installed(pg_bin: Path = PG_BIN) -> bool:
    """Whether TimescaleDB :data:`VERSION` is installed into the PostgreSQL at ``pg_bin``."""
    pg_config = pg_bin / "pg_config"
    if not pg_config.exists():
        return False
    share = subprocess.run(
        [str(pg_config), "--sharedir"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return (Path(share) / "extension" / f"timescaledb--{VERSION}.sql").exists()


def build_script() -> Path:
    """The build script: ``FIREWATCH_TIMESCALEDB_BUILD`` or :data:`DEFAULT_BUILD_SCRIPT`."""
    return Path(os.environ.get("FIREWATCH_TIMESCALEDB_BUILD", DEFAULT_BUILD_SCRIPT))


def ensure_timescaledb(pg_bin: Path = PG_BIN) -> None:
    """Make sure TimescaleDB is installed into the PostgreSQL at ``pg_bin``, building it
    with the build script if needed (root only: it installs packages and files).

    Raises :class:`TimescaleUnavailable` naming the reason and the alternative."""
    if installed(pg_bin):
        return
    script = build_script()
    if not script.exists():
        raise TimescaleUnavailable(
            f"TimescaleDB {VERSION} is not installed and there is no build script at "
            f"{script}: set FIREWATCH_TIMESCALEDB_BUILD, or run the suite against a server "
            "with TimescaleDB via FIREWATCH_TEST_DATABASE_URL (docs/deployment.md)"
        )
    if os.geteuid() != 0:
        raise TimescaleUnavailable(
            f"TimescaleDB {VERSION} is not installed; building it needs root: sudo bash {script}"
        )
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    if done.returncode != 0 or not installed(pg_bin):
        raise TimescaleUnavailable(
            f"building TimescaleDB with {script} failed ({done.returncode}): "
            f"{(done.stdout + done.stderr).strip()[-2000:]}"
        )


def _as_owner(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root: root runs it as the postgres account.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def timescale_cluster(pg_bin: Path = PG_BIN, *, scheduler: bool = False) -> Iterator[str]:
    """Start a fresh cluster of the PostgreSQL at ``pg_bin`` with TimescaleDB preloaded, in
    a temporary directory on a free loopback port (trust authentication, superuser
    ``postgres``); yield its URL; stop it and delete the directory on exit. ``scheduler``
    leaves the extension's job scheduler on, as on a server of a user's own.

    Raises :class:`TimescaleUnavailable` if TimescaleDB is missing (see
    :func:`ensure_timescaledb`) and :class:`RuntimeError` if the cluster does not start."""
    ensure_timescaledb(pg_bin)
    base = Path(tempfile.mkdtemp(prefix="firewatch-tsdb-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    try:
        initdb = [str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        _run(_as_owner([*initdb, "--encoding=UTF8", "--locale=C.UTF-8"]))
        port = free_port()
        conf = dict(CLUSTER_CONF, port=str(port), unix_socket_directories=f"'{base}'")
        if scheduler:
            del conf["timescaledb.max_background_workers"]
        with (data / "postgresql.auto.conf").open("a", encoding="utf-8") as f:
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())
        log = base / "server.log"
        pg_ctl = [str(pg_bin / "pg_ctl"), "-D", str(data)]
        _run(_as_owner([*pg_ctl, "-l", str(log), "-w", "-t", "60", "start"]), log)
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                _as_owner([*pg_ctl, "-m", "fast", "-w", "stop"]),
                capture_output=True,
                check=False,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run(cmd: list[str], log: Path | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({done.returncode}): {done.stdout}{done.stderr}{tail}"
        )


def main() -> int:
    """``python -m firewatch.lab.timescale``: install TimescaleDB if needed (see
    :func:`ensure_timescaledb`); says what it did or why it cannot, exit 1 then."""
    try:
        was = installed()
        ensure_timescaledb()
    except TimescaleUnavailable as err:
        print(f"timescaledb: {err}", file=sys.stderr)
        return 1
    print(f"timescaledb {VERSION}: {'installed already' if was else 'built and installed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
