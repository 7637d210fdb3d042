#!/usr/bin/env bash
# The ts-mlp GPU checks and timings of docs/performance.md in one call of the `device` tool (an H100 or
# H200 with PyTorch and timm but no pip install of this project): about 5-7 minutes, most of it
# torch.compile. Writes gpu_ts_mlp.json and log.txt to $OUT (bench/out without it).
#
#   device run:  bash bench/device_ts_mlp.sh            (timeout_s 540 leaves time for nothing else)
#   extra arguments go to bench/gpu_ts_mlp.py, e.g.  bash bench/device_ts_mlp.sh --skip-consistency
set -o pipefail
cd "$(dirname "$0")/.."
# The package maps methods/ to adbench_hr.methods at install time; without an install, a link does it.
[ -e adbench_hr/methods ] || ln -s ../methods adbench_hr/methods
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
out=${OUT:-bench/out}
mkdir -p "$out"
{
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv
  python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)"
} 2>&1 | tee "$out/log.txt"
python3 bench/gpu_ts_mlp.py --out "$out/gpu_ts_mlp.json" --skip-train --breakdown bf16w+tf32+graph \
  --variants bf16,bf16w+tf32+graph,bf16w+tf32+graph+compile,fp8+tf32+graph,fp8+tf32+graph+compile \
  "$@" 2>&1 | tee -a "$out/log.txt"
# PatchCore with the official patch embedding (docs/performance.md's H100 rows predate it): one category
# of the synthetic dataset at input 224 and 512, through the CLI; about a minute in all.
for size in 224 512; do
  ADBENCH_HR_CACHE=/tmp/adbench-cache timeout 150 python3 -m adbench_hr.cli.main run --method patchcore \
    --weights random --category pcb --out "/tmp/patchcore$size" -o "input_size=$size" --quiet > /dev/null 2>&1
  python3 -c "import json; r = json.load(open('/tmp/patchcore$size/patchcore/synthetic/results/pcb.json')); \
print('patchcore input', $size, r['device'], r['timing'])" 2>&1 | tee -a "$out/log.txt"
done
