#!/usr/bin/env bash
# Regenerate this folder: run every method on the built-in synthetic dataset (maps scored under the
# full-resolution and the 256 px low-resolution protocol), then build the tables and plots.
# Usage: leaderboard/regenerate.sh            (random backbone weights: this machine cannot download them)
#        WEIGHTS=pretrained leaderboard/regenerate.sh          (both methods' timm weights)
#        TS_MLP_WEIGHTS=/path/dinov2.safetensors PATCHCORE_WEIGHTS=/path/wrn50.pth leaderboard/regenerate.sh
#        (a local file fits one backbone only, so each method has its own variable; WEIGHTS is their default)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-runs}"
weights="${WEIGHTS:-random}"
adbench-hr run --method ts-mlp --weights "${TS_MLP_WEIGHTS:-$weights}" --out "$runs" --lowres-eval-size 256 --quiet
adbench-hr run --method patchcore --weights "${PATCHCORE_WEIGHTS:-$weights}" --out "$runs" --lowres-eval-size 256 \
  --quiet
adbench-hr leaderboard "$runs" --out leaderboard
