#!/usr/bin/env bash
# `digitlab train` (the tutorial's recipe) end to end, this checkout against an earlier revision,
# alternating, in the same .venv: did a change make training slower?
#   bash benchmarks/train_speed_versions.sh c7b49af 4
# Prints one line per run: which code, round, seconds from process start to metrics.json written,
# test accuracy, fit and import seconds. The first round warms JAX's compilation cache for both.
set -euo pipefail
cd "$(dirname "$0")/.."
revision="${1:?give a git revision to compare with, e.g. c7b49af}"
rounds="${2:-4}"
scratch=$(mktemp -d)
trap 'git worktree remove --force "$scratch/old" >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT
git worktree add --quiet --detach "$scratch/old" "$revision"
for round in $(seq 1 "$rounds"); do
  for which in old new; do
    source_dir="$PWD/src"; [ "$which" = old ] && source_dir="$scratch/old/src"
    run_dir="$scratch/$which-$round"
    started=$(date +%s.%N)
    PYTHONPATH="$source_dir" .venv/bin/python -m digitlab train --quiet --run-dir "$run_dir" > /dev/null
    saved=$(stat -c %.9Y "$run_dir/metrics.json")
    .venv/bin/python -c "import json, sys; m = json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], \
f'{float(sys.argv[5]) - float(sys.argv[4]):.2f} s', f\"accuracy {m['test_accuracy']:.2%}\", \
f\"fit {m['fit_seconds']:.2f} s\", f\"import {m['import_seconds']:.2f} s\")" \
      "$run_dir/metrics.json" "$which" "round $round" "$started" "$saved"
  done
done
