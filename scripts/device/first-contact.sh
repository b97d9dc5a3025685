#!/usr/bin/env bash
# Prepared device script (issue 16): duet-gpu's first hardware run, on an H200 or an H100, as ONE device-tool
# command inside its 600 s limit.
#
# Here first (the device has no Rust toolchain): scripts/device/build-dist.sh (release build, stripped, into dist/,
# with the glibc it needs). Then the device tool: run `bash scripts/device/first-contact.sh "$OUT"`, carry ["dist"],
# timeout_s 600. Dry run here: `bash scripts/device/first-contact.sh "$(mktemp -d)"` stops after the driver step
# with "error: no CUDA driver found" and exit 3.
#
# Steps, each with a cap (seconds) and its own log, under one global deadline (DUET_DEADLINE_S, default 540 s; a
# step gets min(cap, what is left less 10 s), and one with under 15 s left is skipped and recorded as such):
#   facts            20  card, driver, clocks, glibc against the binary's, PyTorch and wheel paths
#   libs             15  every CUDA library's path and version
#   info             30  device facts and the split menu: the driver step; its failure stops the script (exit 3)
#   check            60  every kernel against its float64 reference, whole GPU and smallest partition
#   replay-static   120  static split 100:32 with 4 look-ahead decode steps per batch (CUDA graphs), 20 s window
#   calibrate       150  microbenchmarks (--quick) on every SM count; records appended as measured
#   replay-duet     120  duet with a 40 ms TBT target, 20 s window
# A failing step does not stop later ones. Each replay and the calibration write what they measured as they go
# (steps.partial.csv, records.jsonl), so a step cut at its cap keeps its data.
#
# The device tool brings back at most 8 files, so results go to a work folder (DUET_WORK, default a fresh /tmp
# folder) and are packed after every step into OUT/first-contact.tar.gz; OUT also gets log.txt (everything
# printed) and steps.csv (step, cap_s, rc, seconds, status). Exit status: 3 when the driver step fails, else 0
# when every step passed, else 1.
set -uo pipefail
OUT=${1:?usage: scripts/device/first-contact.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/device/steps.sh
. "$HERE/steps.sh" first-contact
# shellcheck source=scripts/device/cuda-env.sh
. "$HERE/cuda-env.sh"

MODEL=(--model qwen3-8b)
REPLAY=(--granularity green "${MODEL[@]}" --window 20s --rate 8 "${SITE_ARGS[@]}")

first_steps
step check 60 "$BIN" check "${MODEL[@]}" "${SITE_ARGS[@]}"
step replay-static 120 "$BIN" replay --out "$WORK/replay-static" "${REPLAY[@]}" \
  --policy static-split --split 100:32 --max-lookahead 4
step calibrate 150 "$BIN" calibrate --out "$WORK/calibrate" "${MODEL[@]}" --quick "${SITE_ARGS[@]}"
step replay-duet 120 "$BIN" replay --out "$WORK/replay-duet" "${REPLAY[@]}" --policy duet --tbt-target-ms 40
echo "== done after $((SECONDS - T0))s; results in $OUT/first-contact.tar.gz"
cat "$WORK/steps.csv"
exit $failed
