#!/usr/bin/env bash
# The one prepared device check of the foundation issue: measure Qwen3-8B's linear layers and the copy/GEMM
# ceilings on the lent GPU. Usage (device tool): bash scripts/device/linear_roofline.sh "$OUT"
set -euo pipefail
out=${1:?usage: linear_roofline.sh OUT_DIR}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
export PYTHONUNBUFFERED=1
timeout 240 python3 "$(dirname "$0")/linear_roofline.py" "$out" 2>&1 | tee "$out/log.txt"
