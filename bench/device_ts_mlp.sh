#!/usr/bin/env bash
# The ts-mlp GPU checks and timings of docs/performance.md in one call of the `device` tool (an H100 or
# H200 with PyTorch and timm but no pip install of this project): about 3-8 minutes, most of it
# torch.compile. Writes gpu_ts_mlp.json, log.txt and the PatchCore logs to $OUT (bench/out without it).
#
#   device run:  bash bench/device_ts_mlp.sh            (timeout_s 540; 202 s on an H200, so a session's
#                15 minutes can also hold bench/device_tests.sh, the test suite on the GPU)
#   extra arguments go to bench/gpu_ts_mlp.py, e.g.  bash bench/device_ts_mlp.sh --skip-consistency
#
# Order: training (200 images of 1024 px, 50 epochs, float32 students: about 45 s), then the predict variants
# the issue asks for (bf16 autocast, fp32) and those the 5 ms target depends on (eager, then graphed, then
# compiled), then the kernel floor and the GPU consistency checks, then the robustness stage: CUDA-graph
# memory over 11 image shapes, torch.compile recompiles with feature_batch_size 16, and the pinning of a
# bare device "cuda" (first run on an H200 on 2026-11-28: the whole call took 202 s with it, 160 s on an H100
# without it; --skip-robustness leaves it out). The JSON records the
# GPU's compute capability (fp8 variants of a GPU below 8.9 are listed as unsupported). The benchmark starts
# nothing new after 400 s, and writes its JSON after every stage, so a run cut short keeps what it measured.
set -o pipefail
cd "$(dirname "$0")/.."
# The package maps methods/ to adbench_hr.methods at install time; without an install, a link does it.
[ -e adbench_hr/methods ] || ln -s ../methods adbench_hr/methods
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1  # keeps carried wheels (/tmp/site)
out=${OUT:-bench/out}
mkdir -p "$out"
{
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv
  python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)"
} 2>&1 | tee "$out/log.txt"
python3 bench/gpu_ts_mlp.py --out "$out/gpu_ts_mlp.json" --train-tf32 no --deadline 400 \
  --breakdown bf16w+tf32+graph \
  --variants bf16,fp32,bf16w+tf32,bf16w+tf32+graph,fp8+tf32,fp8+tf32+graph,bf16w+tf32+graph+compile,fp8+tf32+graph+compile \
  "$@" 2>&1 | tee -a "$out/log.txt"
status=$?
# PatchCore with the official patch embedding (docs/performance.md's H100 and H200 rows): one category
# of the synthetic dataset at input 224 and 512, through the CLI; about a minute in all, if time is left.
for size in 224 512; do
  left=$((530 - SECONDS))  # the call's limit is 540 s: stop before it, so that the files come back
  if [ "$left" -lt 60 ]; then
    echo "patchcore input $size: skipped, ${SECONDS} s used" | tee -a "$out/log.txt"
    continue
  fi
  rm -rf "/tmp/patchcore$size"  # a warm machine's earlier run would be resumed, not measured
  ADBENCH_HR_CACHE=/tmp/adbench-cache timeout $((left < 150 ? left : 150)) python3 -m adbench_hr.cli.main run \
    --method patchcore \
    --weights random --category pcb --out "/tmp/patchcore$size" -o "input_size=$size" --quiet \
    > "$out/patchcore$size.log" 2>&1
  python3 -c "import json; r = json.load(open('/tmp/patchcore$size/patchcore/synthetic/results/pcb.json')); \
print('patchcore input', $size, r['device'], r['timing'])" 2>&1 | tee -a "$out/log.txt"
done
exit $status
