#!/usr/bin/env bash
# The test suite on a GPU machine of the `device` tool, where every method made with device "auto" runs on the
# GPU (CI has none). No pip install there: the machine's own torch, timm and pytest-xdist, this repository on
# PYTHONPATH. Each test's outcome is written to $OUT/pytest.txt as it finishes (pytest -v), so that a call cut
# short by its time limit still names the failures so far; the failures are listed at the end.
#
#   device run:  bash bench/device_tests.sh                 (timeout_s 600)
#   or a part:   bash bench/device_tests.sh tests/methods tests/bench
#
# On an H200 (2026-11-28) half of the suite took 240 s with 16 workers, each with torch's default of a thread per
# core, many times more threads than cores. One thread a worker (below) should bring the suite to a few minutes.
cd "$(dirname "$0")/.."
[ -e adbench_hr/methods ] || ln -s ../methods adbench_hr/methods
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1  # keeps carried wheels (/tmp/site)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1  # the 16 workers are the parallelism
out=${OUT:-bench/out}
mkdir -p "$out"
nvidia-smi -L
timeout 560 python3 -m pytest -v -n 16 -p no:cacheprovider --no-header -rfE "${@:-tests}" > "$out/pytest.txt" 2>&1
status=$?
[ "$status" -eq 124 ] && echo "stopped by the 560 s limit: the outcomes so far are in pytest.txt"
grep -c " PASSED " "$out/pytest.txt" | sed 's/$/ passed/'
grep -E " (FAILED|ERROR) |^(FAILED|ERROR) " "$out/pytest.txt" | sort -u
tail -3 "$out/pytest.txt"
exit $status
