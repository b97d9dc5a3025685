#!/usr/bin/env bash
# Per-SM-count GEMM, weight-streaming and copy throughput under green contexts, and co-running contention.
# Usage (device tool): bash scripts/device/green_sm_scaling.sh "$OUT"
set -euo pipefail
out=${1:?usage: green_sm_scaling.sh OUT_DIR}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
export PYTHONUNBUFFERED=1
timeout 240 python3 "$(dirname "$0")/green_sm_scaling.py" "$out" 2>&1 | tee "$out/log.txt"
