#!/usr/bin/env bash
# Regenerate this folder: run every method on the built-in synthetic dataset (maps scored under the
# full-resolution and the 256 px low-resolution protocol), then build the tables and plots.
# Usage: leaderboard/regenerate.sh            (random backbone weights: this machine cannot download them)
#        WEIGHTS=pretrained leaderboard/regenerate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-runs}"
for method in ts-mlp patchcore; do
  adbench-hr run --method "$method" --weights "${WEIGHTS:-random}" --out "$runs" --lowres-eval-size 256 --quiet
done
adbench-hr leaderboard "$runs" --out leaderboard
