#!/usr/bin/env bash
# Detector evaluations on the existing and the harder scenarios (issue 16), per-detector
# figures included (docs/analytics.md#harder-scenarios). Two runs at a time.
# Usage: benchmarks/analytics/2026-12-07-hard/run.sh [tune|heldout|all] [DIR]
set -euo pipefail
cd "$(dirname "$0")/../../.."
what=${1:-all}
out=${2:-benchmarks/analytics/2026-12-07-hard}
mkdir -p "$out"
fw=.venv/bin/firewatch
run() {  # scenario seed
  name="${1#builtin:}-seed$2"
  "$fw" analytics evaluate --scenario "$1" --seed "$2" --json "$out/$name.json" > "$out/$name.txt"
}
lane() { for job in "$@"; do run ${job/:seed/ }; done; }  # jobs "builtin:x:seedN"
if [[ $what == tune || $what == all ]]; then
  # tune seeds: the existing scenarios' own seeds (the detectors were developed on them)
  # and seeds 1-3 of the hard ones (looked at while this work was done)
  lane builtin:hard-water:seed1 builtin:hard-water:seed2 builtin:hard-water:seed3 \
       builtin:standard:seed7 builtin:detectors-water:seed11 &
  lane builtin:hard-sheds:seed1 builtin:hard-sheds:seed2 builtin:hard-sheds:seed3 \
       builtin:hard-city:seed1 builtin:detectors-sheds:seed12 &
  wait
  lane builtin:hard-city:seed2 builtin:detectors-panels:seed13 &
  lane builtin:hard-city:seed3 &
  wait
fi
if [[ $what == heldout || $what == all ]]; then
  # held-out seeds: run once, after the detectors were frozen
  lane builtin:hard-water:seed101 builtin:hard-water:seed102 builtin:hard-water:seed103 \
       builtin:hard-city:seed101 builtin:standard:seed101 builtin:detectors-panels:seed101 &
  lane builtin:hard-sheds:seed101 builtin:hard-sheds:seed102 builtin:hard-sheds:seed103 \
       builtin:hard-city:seed102 builtin:hard-city:seed103 builtin:detectors-water:seed101 \
       builtin:detectors-sheds:seed101 &
  wait
fi
echo "reports in $out"
