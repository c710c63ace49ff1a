#!/usr/bin/env bash
# The offline scorer's evaluation (issue 16): this tree's scorer and the windowed-Gaussian
# baseline, and the scorer of an earlier commit (default e405c86, the issue-4 scorer) on the
# same series with this tree's harness, one split.
# Usage: benchmarks/scoring/run_comparison.sh tune|held-out OUT_DIR [BEFORE_COMMIT]
set -euo pipefail
split=$1
out=$(realpath -m "$2")
before=${3:-e405c86}
cd "$(dirname "$0")/../.."
root=$PWD
mkdir -p "$out"
old=$(mktemp -d)
trap 'rm -rf "$old"' EXIT
git archive "$before" firewatch | tar -x -C "$old"
# the harness (lab/) from this tree, the scorer from the earlier commit
for f in public_series tcpd_series recorded_like recorded_like_families score_eval \
         score_metrics gaussian_baseline; do
  cp "firewatch/lab/$f.py" "$old/firewatch/lab/"
done
.venv/bin/firewatch analytics score-eval --split "$split" --scorer firewatch,gaussian \
  --json "$out/$split.json" > "$out/$split.txt" &
(cd /tmp && PYTHONPATH="$old" "$root/.venv/bin/python" - "$split" "$out" "$old" <<'PY'
import json, sys
split, out, old = sys.argv[1:]
import firewatch
assert firewatch.__file__.startswith(old), firewatch.__file__  # the earlier scorer
from firewatch.lab.public_series import default_cache_dir
from firewatch.lab.score_eval import run_score_eval
report = run_score_eval(split, scorers=["firewatch"], data_dir=default_cache_dir())
with open(f"{out}/{split}-before.txt", "w") as fh:
    fh.write(report.format_text() + "\n")
with open(f"{out}/{split}-before.json", "w") as fh:
    json.dump(report.to_json(), fh, indent=1)
PY
) &
wait
echo "wrote $out/$split.{txt,json} and $out/$split-before.{txt,json}"
