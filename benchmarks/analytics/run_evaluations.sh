#!/usr/bin/env bash
# Detector evaluation reports committed under benchmarks/analytics/ (docs/analytics.md).
# Usage: benchmarks/analytics/run_evaluations.sh [DIR]   (two runs at a time; ~10 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-benchmarks/analytics/$(date -u +%F)}
mkdir -p "$out"
fw=.venv/bin/firewatch
run() {  # scenario seed name
  "$fw" analytics evaluate --scenario "$1" --seed "$2" --json "$out/$3.json" > "$out/$3.txt"
}
run builtin:standard 7 standard-seed7 &
run builtin:standard 1 standard-seed1 &
wait
run builtin:standard 2 standard-seed2 &
run builtin:standard 3 standard-seed3 &
wait
run builtin:detectors-water 11 detectors-water-seed11 &
run builtin:detectors-sheds 12 detectors-sheds-seed12 &
wait
run builtin:detectors-panels 13 detectors-panels-seed13 &
run builtin:detectors-water 21 detectors-water-seed21 &
wait
run builtin:detectors-sheds 22 detectors-sheds-seed22 &
run builtin:detectors-panels 23 detectors-panels-seed23 &
wait
# seeds never looked at while the detectors were developed: a held-out check
run builtin:standard 101 standard-seed101 &
run builtin:detectors-water 303 detectors-water-seed303 &
wait
"$fw" analytics evaluate --scenario builtin:standard --seed 7 --no-models \
  --json "$out/standard-seed7-no-models.json" > "$out/standard-seed7-no-models.txt"
echo "reports in $out"
