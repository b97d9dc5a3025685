#!/usr/bin/env bash
# Issue 19's figures: P99 ITL, P99 TTFT and P99 largest gap against the rate for `adaptive` and the best tuned
# baselines of the cells (docs/policy-cells/), and `adaptive`'s partition timeline, on the full Azure conv and
# Mooncake conversation traces with Qwen3-8B and Qwen3-14B (H100 profile, green-context granularity).
#
# Usage: scripts/adaptive-figures.sh [OUT]    (default OUT: results/adaptive-figures; about 10 min on 2 cores)
# Needs ../shared/traces and a release build (cargo build --release). Writes OUT/sweep-TRACE (results and, at the
# timeline rate, each point's logs) and OUT/figures/TRACE (PNG and SVG; g1- = Qwen3-8B, g2- = Qwen3-14B).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/rate-sweeps.sh
OUT=${1:-results/adaptive-figures}
DUET=${DUET:-./target/release/duet}
[ -x "$DUET" ] || { echo "no $DUET: run cargo build --release first" >&2; exit 2; }
mkdir -p "$OUT/config"

# name | trace | rates | timeline rate | TTFT limit (ms) | extra [base] line
TRACES=(
  "azure-conv|data/traces/azure2023/AzureLLMInferenceTrace_conv.csv|[4, 8, 12, 14, 16, 18, 20]|14|5000|"
  "mooncake-conv|data/traces/mooncake/conversation_trace.jsonl|[0.4, 0.8, 1.2, 1.5, 1.8, 2.1]|1.5|30000|cap-to-context = true"
)

policies() {
  cat <<'P'
[[policy]]
label = "adaptive"
policy = "adaptive"
tbt-target-ms = 100

[[policy]]
label = "static-split 108:24"
policy = "static-split"
split = "108:24"

[[policy]]
label = "duet 2048"
policy = "duet"
token-budget = 2048
tbt-target-ms = 100

[[policy]]
label = "chunked 2048"
policy = "chunked"
token-budget = 2048

[[policy]]
label = "muxwise"
policy = "muxwise"
tbt-target-ms = 100
P
}

for entry in "${TRACES[@]}"; do
  IFS='|' read -r name trace rates tl_rate ttft extra <<<"$entry"
  write_rate_sweeps "$OUT/config" "$name" "adaptive-$name" scripts/adaptive-figures.sh "$trace" "$rates" \
    "$tl_rate" "$ttft" "granularity = \"green\"
$extra" "$(policies)"
  echo "== $name"
  # The timeline rate first, with each point's logs; the full sweep then finds those points done.
  "$DUET" sweep "$OUT/config/detail-$name.toml" --out "$OUT/sweep-$name" >/dev/null
  "$DUET" sweep "$OUT/config/sweep-$name.toml" --out "$OUT/sweep-$name" >/dev/null
  "$DUET" report "$OUT/sweep-$name" --out "$OUT/figures/$name" --rate "$tl_rate" >/dev/null
done
echo "figures in $OUT/figures"
