"""The API burst against an earlier commit's API, with today's client: the "before" figures.

    .venv/bin/python benchmarks/api/baseline.py e85f601 \
        --json benchmarks/api/2026-12-06/baseline-e85f601-a.json

That commit's ``firewatch`` package is exported (``git archive``, read-only) into a temporary
directory; with it first on ``PYTHONPATH``, a throwaway embedded PostgreSQL is migrated by
that commit's ``firewatch db upgrade``, seeded with that commit's ``raise_alert`` (100 open
alerts, as ``firewatch bench api`` seeds), and served by that commit's ``firewatch api`` as
its own process. The burst (``firewatch.lab.apibench.fire``: 500 fresh clients at once, one
GET /alerts each) and the figures (``summarize``) are this checkout's, as in
``firewatch bench api``. Prints the figures and writes them as JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from psycopg.conninfo import make_conninfo

from firewatch.lab.apibench import fire, machine, summarize
from firewatch.lab.scratch import throwaway_server
from firewatch.runtime.mosquitto import free_port

ROOT = Path(__file__).resolve().parents[2]
SEED = """
import sys, time, psycopg
from firewatch.alerting.store import raise_alert
from firewatch.storage.seed import load_seed, read_seed
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    city = read_seed(); load_seed(conn, city); units = [u.id for u in city.units]
    n, now = int(sys.argv[2]), time.time()
    for i in range(n):
        raise_alert(conn, type="low_pressure", severity="high", unit_id=units[i % len(units)],
                    device_id=f"D-BENCH-{i:05d}", seen_at=now - n + i,
                    explanation=f"static pressure low (bench alert {i})")
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("commit")
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=500)
    ap.add_argument("--alerts", type=int, default=100)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with ExitStack() as stack:
        old = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fw-baseline-")))
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.commit, "firewatch"],
            check=True,
            capture_output=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(old, filter="data")
        admin = throwaway_server(stack)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute('CREATE DATABASE "fw_baseline"')
        db = make_conninfo(admin, dbname="fw_baseline")
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(old),
            "FIREWATCH_DATABASE_URL": db,
            "FIREWATCH_API_HOST": "127.0.0.1",
            "FIREWATCH_API_PORT": str(port),
        }
        where = subprocess.run(
            [sys.executable, "-c", "import firewatch; print(firewatch.__file__)"],
            env=env,
            cwd=old,  # python -c puts the working directory first on sys.path
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        if not where.startswith(str(old)):  # the editable install must not shadow the export
            raise SystemExit(f"the child imports firewatch from {where.strip()}, not {old}")
        upgrade = [sys.executable, "-m", "firewatch", "db", "upgrade"]
        subprocess.run(upgrade, env=env, cwd=old, check=True)
        subprocess.run(
            [sys.executable, "-c", SEED, db, str(args.alerts)], env=env, cwd=old, check=True
        )
        api = subprocess.Popen([sys.executable, "-m", "firewatch", "api"], env=env, cwd=old)
        stack.callback(api.wait, 30)
        stack.callback(api.terminate)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the baseline API did not become healthy within 60 s")
            time.sleep(0.2)  # polling a child process's readiness, not synchronising threads
        began = time.perf_counter()
        shots = fire(f"{url}/alerts", args.requests, args.concurrency, 60.0)
        wall = time.perf_counter() - began
    result = {
        "benchmark": "api-baseline",
        "command": f"python benchmarks/api/baseline.py {args.commit} --requests {args.requests}"
        f" --concurrency {args.concurrency} --alerts {args.alerts}",
        "commit": args.commit,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **summarize(shots, wall),
    }
    print(json.dumps({k: result[k] for k in ("by_status", "unanswered", "latency_ms", "wall_s")}))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
