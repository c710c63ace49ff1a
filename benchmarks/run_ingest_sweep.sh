#!/usr/bin/env bash
# The committed ingest sweep: rates up to past saturation, 1 and 2 workers.
# Usage: benchmarks/run_ingest_sweep.sh [OUTDIR]   (each run ~30 s)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/ingest/$(date -u +%Y-%m-%d)}
mkdir -p "$out"
for workers in 1 2; do
  for rate in 5000 10000 15000 20000 30000; do
    .venv/bin/firewatch bench ingest --rate "$rate" --devices 1000 --duration 15 \
      --workers "$workers" --json "$out/rate${rate}-w${workers}.json" | tail -1
  done
done
