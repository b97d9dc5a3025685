#!/usr/bin/env bash
# Prepared device script (issue 21): duet-gpu's first contact with an H200 or H100 and the replays that check the
# simulator against it, as ONE device-tool command (global deadline DUET_DEADLINE_S, here 565 s by default, inside
# the tool's 600 s limit; caps, logs, skips and packing as in steps.sh).
#
# Here first: scripts/device/build-dist.sh. Device tool: `bash scripts/device/validate.sh "$OUT"`, carry ["dist"],
# timeout_s 600. Dry run here: `bash scripts/device/validate.sh "$(mktemp -d)"` stops after the driver step with
# "error: no CUDA driver found" and exit 3. Back here: tar xzf OUT/validate.tar.gz -C R, then for each run folder:
#   duet validate --replay R/<run> --out R/<run>/validation
#
# Bundled Azure conversation excerpt, Qwen3-8B, green-context partitions; most important first, a step that no
# longer fits before the deadline is skipped and recorded as such. Window lengths from `duet replay --dry-run`
# (same options): a 20 s window at 8 req/s is 73 requests and about 22 s of replay (muxwise about 33 s); a 15 s
# window at 16 req/s is 161 requests and about 19 s.
#   check                 every kernel against its float64 reference (whole GPU and smallest partition)
#   steady-static-split   static split 100:32, 4 look-ahead decode steps per batch (CUDA graphs)
#   steady-chunked        chunked prefill, 2048-token budget
#   steady-duet           DuetServe with a 40 ms TBT target (at 100 ms it never splits on this load)
#   calibrate             microbenchmarks --quick on 8, 16, 32, 64, 100 and 132 SMs, launch/switch overheads,
#                         co-running slowdowns; records appended as measured
#   steady-muxwise        muxwise
#   overload-chunked, overload-duet   16 req/s
set -uo pipefail
OUT=${1:?usage: scripts/device/validate.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
export DUET_DEADLINE_S=${DUET_DEADLINE_S:-565}
# shellcheck source=scripts/device/steps.sh
. "$HERE/steps.sh" validate
# shellcheck source=scripts/device/cuda-env.sh
. "$HERE/cuda-env.sh"

M=(--model qwen3-8b)
STEADY=(--granularity green "${M[@]}" --window 20s --rate 8 "${SITE_ARGS[@]}")
OVER=(--granularity green "${M[@]}" --window 15s --rate 16 "${SITE_ARGS[@]}")
replay() { local name=$1 cap=$2; shift 2; step "$name" "$cap" "$BIN" replay --out "$WORK/$name" "$@"; }

first_steps
step check 45 "$BIN" check "${M[@]}" "${SITE_ARGS[@]}"
replay steady-static-split 75 "${STEADY[@]}" --policy static-split --split 100:32 --max-lookahead 4
replay steady-chunked 70 "${STEADY[@]}" --policy chunked
replay steady-duet 70 "${STEADY[@]}" --policy duet --tbt-target-ms 40
step calibrate 110 "$BIN" calibrate --out "$WORK/calibrate" "${M[@]}" --quick --sms 8,16,32,64,100 "${SITE_ARGS[@]}"
replay steady-muxwise 80 "${STEADY[@]}" --policy muxwise
replay overload-chunked 60 "${OVER[@]}" --policy chunked
replay overload-duet 60 "${OVER[@]}" --policy duet --tbt-target-ms 40
echo "== done after $((SECONDS - T0))s; results in $OUT/validate.tar.gz"
cat "$WORK/steps.csv"
exit $failed
