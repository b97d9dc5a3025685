#!/usr/bin/env bash
# SHA-256 of every output file of a fixed set of runs, for refactors that must not change output (issues 17, 23):
# the bundled default run, each policy on the full Azure conv trace, the Mooncake conversation trace with the prefix
# cache, --replicas 2, --disagg 1P1D, --tp 2, CodeLlama-34B 4 x TP 2 on A100 (issue 23), adaptive on conv and Mooncake,
# muxwise with the H200 profile fitted on the device, the vLLM engine preset, and `duet replay --dry-run`. Needs ../shared (the full traces).
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
run codellama-4x-tp2 sim --trace "$S/azure2023/AzureLLMInferenceTrace_conv.csv" --model sim/models/codellama-34b.json \
  --replicas 4 --tp 2 --gpu a100-80gb --policy chunked --token-budget 512
run adaptive-conv sim --trace "$S/azure2023/AzureLLMInferenceTrace_conv.csv" --rate 16 --granularity green --policy adaptive
run adaptive-mooncake sim --trace "$S/mooncake/conversation_trace.jsonl" --cap-to-context --model qwen3-14b --rate 0.9 \
  --granularity green --policy adaptive
run muxwise-code-h200 sim --trace "$S/azure2023/AzureLLMInferenceTrace_code.csv" --rate 2 --granularity green --policy muxwise \
  --profile measurements/h200/2026-12-04-validate/profile-duet-gpu.json --gpu h200
run vllm-engine sim --trace "$S/azure2023/AzureLLMInferenceTrace_conv.csv" --engine vllm-0.11 --num-requests 3000
run dry-run replay --dry-run --num-requests 300 --policy duet --token-budget 2048 --tbt-target-ms 40
(cd "$OUT" && find . -type f | sort | xargs sha256sum)
rm -rf "$OUT"
