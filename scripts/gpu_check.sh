#!/usr/bin/env bash
# One call on a lent GPU machine: every measurement of issue 14 into ONE results file.
#
#   bash scripts/gpu_check.sh [--out FILE] [--budget SECONDS] [other scripts/gpu_check.py options]
#
# Default results file: $OUT/gpu_check.json where $OUT is set (the device tool), else
# outputs/gpu_check.json. Default budget: 540 s (a 600 s device call with room to copy back).
# Tiny CPU run (what the test does):
#   bash scripts/gpu_check.sh --out /tmp/r.json --budget 300 --experiment tiny --device cpu \
#       --no-compile --throughput-batch 4 --graph-batch 2 --train-steps 2 --repeat 3
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
default_out="${OUT:-outputs}/gpu_check.json"
has_out=0
for arg in "$@"; do [ "$arg" = "--out" ] && has_out=1; done
extra=()
[ "$has_out" = 1 ] || extra=(--out "$default_out")
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"
export PYTHONUNBUFFERED=1
exec "$PYTHON" scripts/gpu_check.py "${extra[@]}" "$@"
