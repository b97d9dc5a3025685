#!/usr/bin/env bash
# Prepared device script (issues 9, 16): trace replays on one H100 or H200 under the simulator's policies, for
# `duet validate`, as one device-tool command (global deadline DUET_DEADLINE_S, default 540 s; see steps.sh).
#
# Here first: scripts/device/build-dist.sh. Device tool: `bash scripts/device/replay.sh "$OUT"`, carry ["dist"].
# Then, back here: tar xzf OUT/replay.tar.gz -C R; for each run folder R/<run>:
#   cargo run --release -- validate --replay R/<run> --out R/<run>/validation
# (the options, GPU and KV size are read from R/<run>/replay.json).
#
# Replays of the bundled Azure conversation excerpt, Qwen3-8B, green-context partitions, most important first
# (a run that no longer fits before the deadline is skipped and recorded as such):
#   stable-duet, stable-chunked, stable-static-split: 30 s window at 8 req/s (duet with a 40 ms TBT target: at
#     100 ms it never splits on this load);
#   stable-duet-no-lookahead: 20 s at 8 req/s, duet with --max-lookahead 1 (GPU idle between decode steps);
#   overload-chunked, overload-duet: 20 s at 16 req/s.
# Each run: about 30 s of arrivals (dry run: `duet replay --dry-run` with the same options) plus start-up.
set -uo pipefail
OUT=${1:?usage: scripts/device/replay.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/device/steps.sh
. "$HERE/steps.sh" replay
# shellcheck source=scripts/device/cuda-env.sh
. "$HERE/cuda-env.sh"
first_steps
R=(--granularity green --model qwen3-8b "${SITE_ARGS[@]}")
step stable-duet 100 "$BIN" replay --out "$WORK/stable-duet" "${R[@]}" --window 30s --rate 8 --policy duet --tbt-target-ms 40
step stable-chunked 90 "$BIN" replay --out "$WORK/stable-chunked" "${R[@]}" --window 30s --rate 8 --policy chunked
step stable-static-split 90 "$BIN" replay --out "$WORK/stable-static-split" "${R[@]}" --window 30s --rate 8 \
  --policy static-split --split 100:32
step stable-duet-no-lookahead 80 "$BIN" replay --out "$WORK/stable-duet-no-lookahead" "${R[@]}" --window 20s \
  --rate 8 --policy duet --tbt-target-ms 40 --max-lookahead 1
step overload-chunked 80 "$BIN" replay --out "$WORK/overload-chunked" "${R[@]}" --window 20s --rate 16 --policy chunked
step overload-duet 80 "$BIN" replay --out "$WORK/overload-duet" "${R[@]}" --window 20s --rate 16 --policy duet \
  --tbt-target-ms 40
echo "== done after $((SECONDS - T0))s, results in $OUT/replay.tar.gz"
exit $failed
