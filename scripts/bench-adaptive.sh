#!/usr/bin/env bash
# Cost of `adaptive` per simulated run against `chunked`'s, one binary, one sitting (issue 19's 2x budget): on each
# workload the two policies alternate `ROUNDS` times, each `duet bench --runs R` (median of R runs after a
# warm-up); the ratio is adaptive / chunked of the medians of those medians.
# Usage: scripts/bench-adaptive.sh [BIN] [ROUNDS]   (needs the full traces: scripts/fetch-data.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/duet}; ROUNDS=${2:-5}
DATA=${DUET_DATA:-data}
CONV="$DATA/traces/azure2023/AzureLLMInferenceTrace_conv.csv"
MOONCAKE="$DATA/traces/mooncake/conversation_trace.jsonl"
for f in "$CONV" "$MOONCAKE"; do [ -f "$f" ] || { echo "error: $f not found (scripts/fetch-data.sh)" >&2; exit 1; }; done
WORKLOADS=(
  "Azure conv, Qwen3-8B, 16 req/s|5|--trace $CONV --rate 16 --granularity green"
  "Mooncake, Qwen3-14B, 0.9 req/s|3|--trace $MOONCAKE --cap-to-context --model qwen3-14b --rate 0.9 --granularity green"
)
source scripts/bench-lib.sh
bench() { "$BIN" bench $1 --policy "$2" --runs "$3" 2>/dev/null | sed -n 's/.*median \([0-9.]*\) s.*/\1/p'; }
printf '| workload | chunked median (s) | adaptive median (s) | adaptive / chunked |\n|---|---:|---:|---:|\n'
for w in "${WORKLOADS[@]}"; do
  name=${w%%|*}; rest=${w#*|}; runs=${rest%%|*}; args=${rest#*|}
  chunked() { bench "$args" chunked "$runs"; }
  adaptive() { bench "$args" adaptive "$runs"; }
  read -r cm am < <(alternate "$ROUNDS" chunked adaptive)
  printf '| %s | %s | %s | %.2fx |\n' "$name" "$cm" "$am" "$(echo "$am / $cm" | bc -l)"
done
