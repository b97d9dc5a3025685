#!/usr/bin/env bash
# Prepared device script (issue 21), the third after validate.sh and validate-splits.sh: muxwise again after the
# executor fix (a whole decode step may run while a layered prefill holds its buffer set), static split near
# overload, and the full calibration on every SM count of the menu but the 4-SM remainder (cuBLASLt offers only
# 4x1x1-cluster GEMMs there, measurements/h200/2026-12-04-validate). Global deadline DUET_DEADLINE_S (default 380 s).
# Here first: scripts/device/build-dist.sh; device tool: `bash scripts/device/validate-rest.sh "$OUT"`, carry
# ["dist"]; dry run here exits 3 after the driver step.
set -uo pipefail
OUT=${1:?usage: scripts/device/validate-rest.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
export DUET_DEADLINE_S=${DUET_DEADLINE_S:-380}
# shellcheck source=scripts/device/steps.sh
. "$HERE/steps.sh" validate-rest
# shellcheck source=scripts/device/cuda-env.sh
. "$HERE/cuda-env.sh"
M=(--model qwen3-8b)
first_steps
step steady-muxwise-green8 70 "$BIN" replay --out "$WORK/steady-muxwise-green8" --granularity green8 "${M[@]}" \
  --window 20s --rate 8 "${SITE_ARGS[@]}" --policy muxwise
step overload-static-split 45 "$BIN" replay --out "$WORK/overload-static-split" --granularity green "${M[@]}" \
  --window 15s --rate 16 "${SITE_ARGS[@]}" --policy static-split --split 100:32 --max-lookahead 4
SMS=$(seq -s, 8 4 128)
step calibrate 240 "$BIN" calibrate --out "$WORK/calibrate" "${M[@]}" --sms "$SMS" "${SITE_ARGS[@]}"
echo "== done after $((SECONDS - T0))s; results in $OUT/validate-rest.tar.gz"
cat "$WORK/steps.csv"
exit $failed
