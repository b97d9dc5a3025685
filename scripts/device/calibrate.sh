#!/usr/bin/env bash
# Prepared device script (issues 8, 16): duet-gpu's kernel checks and calibration microbenchmarks on one H100 or
# H200, as one device-tool command (global deadline DUET_DEADLINE_S, default 540 s; see steps.sh).
#
# Here first: scripts/device/build-dist.sh. Device tool: `bash scripts/device/calibrate.sh "$OUT"`, carry ["dist"].
# Then, back here (the GPU name is the device's, recorded in calibrate/summary.json as "gpu"):
#   tar xzf OUT/calibrate.tar.gz -C M
#   cargo run --release -- calibrate fit --gpu "$(jq -r .gpu M/calibrate/summary.json)" \
#       --measured M/calibrate/records.jsonl M/calibrate/corun.csv M/calibrate/mixed.csv M/calibrate/graph.csv --out calibration/profiles/<gpu>.measured.json
# records.jsonl gets each record as it is measured, so a calibration cut at its cap keeps what it measured.
set -uo pipefail
OUT=${1:?usage: scripts/device/calibrate.sh OUTDIR}
MODEL=${DUET_MODEL:-qwen3-8b}
EXTRA=${DUET_CALIBRATE_ARGS:-}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/device/steps.sh
. "$HERE/steps.sh" calibrate
# shellcheck source=scripts/device/cuda-env.sh
. "$HERE/cuda-env.sh"
first_steps
# shellcheck disable=SC2086
step calibrate 450 "$BIN" calibrate --out "$WORK/calibrate" --model "$MODEL" "${SITE_ARGS[@]}" $EXTRA
echo "== done after $((SECONDS - T0))s, results in $OUT/calibrate.tar.gz"
exit $failed
