#!/usr/bin/env bash
# `make test` after lint: the whole suite on both storage flavours, at the same time.
#
#   pass 1: plain PostgreSQL (the embedded pgserver), every test;
#   pass 2: TimescaleDB (a throwaway PostgreSQL 15 cluster with the extension, built first
#           if missing: firewatch/lab/timescale.py), every test that uses a database.
#
# The two run concurrently: the suite waits on services far more than it computes (a pass
# without coverage uses about a third of one core), so together they take little longer
# than one alone; pass 2 runs its tests in reverse order so that the CPU-heavy stretches of
# the two do not coincide. Pass 2's output is printed after pass 1's. Coverage is measured
# on pass 1 (tracing would double pass 2's CPU), with the floor applied to it. With FIREWATCH_TEST_DATABASE_URL set, one pass runs on that server, whatever
# flavour it has (docs/deployment.md, "Testing on TimescaleDB"). Extra arguments go to both
# pytest runs (e.g. `scripts/test.sh tests/storage -x`).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
COV_FLOOR=${COV_FLOOR:-90}
work=$(mktemp -d /tmp/firewatch-test-XXXXXX)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)

if [ -n "${FIREWATCH_TEST_DATABASE_URL:-}" ]; then
  "$BIN/pytest" --cov --cov-report=term:skip-covered --cov-fail-under="$COV_FLOOR" "$@"
  exit $?
fi

(
  "$BIN/python" -m firewatch.lab.timescale || true  # the pass says why if it is missing
  FIREWATCH_TEST_FLAVOUR=timescale "$BIN/pytest" --basetemp "$work/timescale" "$@"
  echo $? > "$work/timescale.rc"
) > "$work/timescale.log" 2>&1 &
ts_job=$!

FIREWATCH_TEST_FLAVOUR=postgres "$BIN/pytest" --basetemp "$work/postgres" \
  --cov --cov-report=term:skip-covered --cov-fail-under="$COV_FLOOR" "$@"
pg_rc=$?
pg_done=$(date +%s)
wait "$ts_job"
ts_rc=$(cat "$work/timescale.rc" 2>/dev/null || echo 1)

echo
echo "================ TimescaleDB pass (FIREWATCH_TEST_FLAVOUR=timescale) ================"
cat "$work/timescale.log"
end=$(date +%s)
echo "make test: plain PostgreSQL pass (with coverage) exit $pg_rc after $((pg_done - started)) s," \
  "TimescaleDB pass exit $ts_rc; both done in $((end - started)) s"
[ "$pg_rc" = 0 ] && [ "$ts_rc" = 0 ]
