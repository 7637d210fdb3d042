#!/usr/bin/env bash
# Regenerate this folder: run every method on the built-in synthetic dataset, then build the tables and plots.
# Usage: leaderboard/regenerate.sh            (random teacher weights: this machine cannot download DINOv2)
#        WEIGHTS=pretrained leaderboard/regenerate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-runs}"
adbench-hr run --method ts-mlp --weights "${WEIGHTS:-random}" --out "$runs" --quiet
adbench-hr leaderboard "$runs" --out leaderboard
