#!/usr/bin/env bash
# Prepared device script (issue 21), the second of validate.sh: the split policies again after the first run's
# finding (measurements/h200/2026-12-04-validate: duet and muxwise stopped at their first step on the 4-SM
# remainder partition with CUBLAS_STATUS_EXECUTION_FAILED), then the full calibration. One device-tool command,
# global deadline DUET_DEADLINE_S (default 420 s, so that a third start still fits in the lease).
#
# Here first: scripts/device/build-dist.sh. Device tool: `bash scripts/device/validate-splits.sh "$OUT"`, carry
# ["dist"]. Dry run here: exits 3 after the driver step. Back here as validate.sh (OUT/validate-splits.tar.gz).
#   calibrate-4sm   projections on the 4-SM remainder with the cluster-free cuBLASLt choice (gemm.rs), isolated
#   steady-duet, steady-muxwise, overload-duet, steady-adaptive, overload-adaptive   under --granularity green;
#                   each that fails is run again as <name>-green8 (the menu without partitions under 8 SMs)
#   calibrate       the full microbenchmarks on every SM count of the menu, records appended as measured
set -uo pipefail
OUT=${1:?usage: scripts/device/validate-splits.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
export DUET_DEADLINE_S=${DUET_DEADLINE_S:-420}
# shellcheck source=scripts/device/steps.sh
. "$HERE/steps.sh" validate-splits
# shellcheck source=scripts/device/cuda-env.sh
. "$HERE/cuda-env.sh"

M=(--model qwen3-8b)
STEADY=("${M[@]}" --window 20s --rate 8 "${SITE_ARGS[@]}")
OVER=("${M[@]}" --window 15s --rate 16 "${SITE_ARGS[@]}")
# replay NAME CAP ARGS...: under green, and again under green8 if that fails.
replay() {
  local name=$1 cap=$2
  shift 2
  step "$name" "$cap" "$BIN" replay --out "$WORK/$name" --granularity green "$@" ||
    step "$name-green8" "$cap" "$BIN" replay --out "$WORK/$name-green8" --granularity green8 "$@"
}

first_steps
step calibrate-4sm 30 "$BIN" calibrate --out "$WORK/calibrate-4sm" "${M[@]}" --quick --sms 4 "${SITE_ARGS[@]}"
replay steady-duet 60 "${STEADY[@]}" --policy duet --tbt-target-ms 40
replay steady-muxwise 70 "${STEADY[@]}" --policy muxwise
replay overload-duet 50 "${OVER[@]}" --policy duet --tbt-target-ms 40
replay steady-adaptive 50 "${STEADY[@]}" --policy adaptive
replay overload-adaptive 50 "${OVER[@]}" --policy adaptive
step calibrate 150 "$BIN" calibrate --out "$WORK/calibrate" "${M[@]}" "${SITE_ARGS[@]}"
echo "== done after $((SECONDS - T0))s; results in $OUT/validate-splits.tar.gz"
cat "$WORK/steps.csv"
exit $failed
