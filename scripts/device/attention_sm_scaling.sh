#!/usr/bin/env bash
# Qwen3-8B-shaped prefill and decode attention on green-context partitions, as duet measurement records.
# Usage (device tool): bash scripts/device/attention_sm_scaling.sh "$OUT"
set -euo pipefail
out=${1:?usage: attention_sm_scaling.sh OUT_DIR}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
export PYTHONUNBUFFERED=1
timeout 240 python3 "$(dirname "$0")/attention_sm_scaling.py" "$out" 2>&1 | tee "$out/log.txt"
