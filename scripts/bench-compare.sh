#!/usr/bin/env bash
# Speed of two duet binaries on the same workloads, measured in one sitting (issue 23): for each workload, the two
# binaries alternate `ROUNDS` times, each `duet bench --runs 5` (median of 5 runs after a warm-up); the ratio is
# old / new of the medians of those medians. Then peak RSS of one full-trace `duet sim` per binary.
# Usage: scripts/bench-compare.sh OLD_BIN NEW_BIN [ROUNDS]   (needs the full traces: scripts/fetch-data.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1; NEW=$2; ROUNDS=${3:-3}
DATA=${DUET_DATA:-data}
CONV="$DATA/traces/azure2023/AzureLLMInferenceTrace_conv.csv"
[ -f "$CONV" ] || { echo "error: $CONV not found (scripts/fetch-data.sh)" >&2; exit 1; }
CODELLAMA=(--model sim/models/codellama-34b.json --replicas 4 --tp 2 --gpu a100-80gb --policy chunked --token-budget 512)
WORKLOADS=(
  "conv chunked (Qwen3-8B, H100)|"
  "conv CodeLlama-34B 4 x TP 2 A100 chunked 512|${CODELLAMA[*]}"
  "conv duet|--policy duet"
  "conv muxwise|--policy muxwise"
)
source scripts/bench-lib.sh
bench() { "$1" bench --trace "$CONV" $2 --runs 5 2>/dev/null | sed -n 's/.*median \([0-9.]*\) s.*/\1/p'; }
printf '| workload | old median (s) | new median (s) | old / new |\n|---|---:|---:|---:|\n'
for w in "${WORKLOADS[@]}"; do
  name=${w%%|*}; args=${w#*|}
  old() { bench "$OLD" "$args"; }
  new() { bench "$NEW" "$args"; }
  read -r o n < <(alternate "$ROUNDS" old new)
  printf '| %s | %s | %s | %.2fx |\n' "$name" "$o" "$n" "$(echo "$o / $n" | bc -l)"
done
for b in "$OLD" "$NEW"; do
  /usr/bin/time -f "peak RSS of \`$(basename "$b") sim --trace conv\`: %M KB" "$b" sim --trace "$CONV" > /dev/null
done
