#!/usr/bin/env bash
# SHA-256 of every output file of a fixed set of runs, for refactors that must not change output (issues 17, 23):
# the bundled default run, each policy on the full Azure conv trace, the Mooncake conversation trace with the prefix
# cache, --replicas 2, --disagg 1P1D, --tp 2, and `duet replay --dry-run`. Needs ../shared (the full traces).
# Usage: scripts/output-checksums.sh [BIN] > checksums.txt ; diff two such files.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/duet}
S=../shared/traces
OUT=$(mktemp -d)
run() {
  local name=$1; shift
  "$BIN" "$@" --out "$OUT/$name" > /dev/null
}
run default sim
for p in chunked prefill-first duet static-split muxwise; do
  extra=()
  [ "$p" = static-split ] && extra=(--split 100:32)
  # Budgets named, so that a change of a policy's default does not change this reference.
  [ "$p" = duet ] && extra=(--token-budget 2048)
  run "conv-$p" sim --trace "$S/azure2023/AzureLLMInferenceTrace_conv.csv" --policy "$p" "${extra[@]}"
done
run mooncake sim --trace "$S/mooncake/conversation_trace.jsonl" --model qwen3-8b --cap-to-context
run replicas2 sim --trace "$S/azure2023/AzureLLMInferenceTrace_conv.csv" --replicas 2
run disagg sim --trace "$S/azure2023/AzureLLMInferenceTrace_conv.csv" --disagg 1P1D
run tp2 sim --trace "$S/azure2023/AzureLLMInferenceTrace_conv.csv" --tp 2 --model qwen3-32b
run dry-run replay --dry-run --num-requests 300 --policy duet --token-budget 2048 --tbt-target-ms 40
(cd "$OUT" && find . -type f | sort | xargs sha256sum)
rm -rf "$OUT"
