#!/usr/bin/env bash
# Prepared device script (issue 9): trace replays on one H100 under the simulator's policies, for `duet validate`.
#
# Built here (the device has no Rust toolchain), then run through the device tool with the binary carried:
#   cargo build --release -p duet-gpu && mkdir -p dist && cp target/release/duet-gpu dist/
#   run: bash scripts/device/replay.sh "$OUT"      (carry: ["dist"])
# Then, back here, for each run folder R with the same options:
#   cargo run --release -- validate --replay R --out R/validation --granularity green <the run's options>
#
# Replays of the bundled Azure conversation excerpt, Qwen3-8B, green-context partitions:
#   busy but stable: 60 s window at 8 req/s under chunked, static-split (100:32) and duet;
#   look-ahead off:  30 s window at 8 req/s under duet with --max-lookahead 1 (GPU idle between decode steps);
#   near overload:   30 s window at 16 req/s under chunked and duet.
# duet runs with a 40 ms TBT target: at 8 req/s with the default 100 ms its mixed batches always meet the target,
# it never splits and the run would equal chunked (checked with `duet replay --dry-run`: 0 decode-partition steps
# at 100 ms; 224 decode-partition steps, 98 of them look-ahead graph steps, at 40 ms).
# 4.5 minutes of arrivals plus six start-ups (kernel compile, checks, weights, start-up graphs) and drains: about
# 6-7 minutes. Each run folder holds summary.json, requests.csv, decisions.csv, iterations.csv, steps.csv,
# replay.json and log.txt.
set -uo pipefail
OUT=${1:?usage: scripts/device/replay.sh OUTDIR}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
echo "== $(date -u +%FT%TZ) duet-gpu replay"
# shellcheck source=scripts/device/cuda-env.sh
. "$(dirname "$0")/cuda-env.sh"
device_facts | tee "$OUT/device.txt"
"$BIN" libs
"$BIN" info >/dev/null || exit 3

status=0
run() {
  local name=$1; shift
  echo "== $name: $*"
  timeout 150 "$BIN" replay --out "$OUT/$name" --granularity green --model qwen3-8b "${SITE_ARGS[@]}" "$@" \
    > "$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.log"
  echo "== $name exit status $rc after ${SECONDS}s"
  [ $rc -eq 0 ] || status=$rc
}
run stable-chunked      --window 60s --rate 8 --policy chunked
run stable-static-split --window 60s --rate 8 --policy static-split --split 100:32
run stable-duet         --window 60s --rate 8 --policy duet --tbt-target-ms 40
run stable-duet-no-lookahead --window 30s --rate 8 --policy duet --tbt-target-ms 40 --max-lookahead 1
run overload-chunked    --window 30s --rate 16 --policy chunked
run overload-duet       --window 30s --rate 16 --policy duet --tbt-target-ms 40
echo "== done after ${SECONDS}s, status $status"
exit $status
