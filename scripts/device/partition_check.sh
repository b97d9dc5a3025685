#!/usr/bin/env bash
# Qwen3-8B linear layers on green-context partitions, as duet measurement records.
# Usage (device tool): bash scripts/device/partition_check.sh "$OUT"
set -euo pipefail
out=${1:?usage: partition_check.sh OUT_DIR}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
export PYTHONUNBUFFERED=1
timeout 300 python3 "$(dirname "$0")/partition_check.py" "$out" 2>&1 | tee "$out/log.txt"
