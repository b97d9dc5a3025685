#!/usr/bin/env bash
# Prepared device script (issue 8): duet-gpu's kernel checks and calibration microbenchmarks on one H100.
#
# Built here (the device has no Rust toolchain), then run through the device tool with the binary carried:
#   cargo build --release -p duet-gpu && mkdir -p dist && cp target/release/duet-gpu dist/
#   run: bash scripts/device/calibrate.sh "$OUT"      (carry: ["dist"])
# Then, back here:
#   cargo run --release -- calibrate fit --gpu h100-sxm --measured OUT/records.jsonl OUT/corun.csv \
#       --out calibration/profiles/h100-sxm.measured.json
#
# Writes under OUTDIR: log.txt, device.txt (card, driver, CUDA, clocks, date), checks.json, corun.csv,
# bandwidth.csv, records.jsonl, summary.json, summary.md. Budget: under 5 minutes (the calibration itself is
# capped at 270 s; records.jsonl is rewritten after each section, so a cut-short run keeps what it measured).
set -uo pipefail
OUT=${1:?usage: scripts/device/calibrate.sh OUTDIR}
MODEL=${DUET_MODEL:-qwen3-8b}
EXTRA=${DUET_CALIBRATE_ARGS:-}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1

echo "== $(date -u +%FT%TZ) duet-gpu calibrate, model $MODEL"
# shellcheck source=scripts/device/cuda-env.sh
. "$(dirname "$0")/cuda-env.sh"
device_facts | tee "$OUT/device.txt"

"$BIN" libs
"$BIN" info || exit 3
# shellcheck disable=SC2086
timeout 270 "$BIN" calibrate --out "$OUT" --model "$MODEL" "${SITE_ARGS[@]}" $EXTRA
rc=$?
echo "== calibrate exit status $rc after ${SECONDS}s"
ls -la "$OUT"
exit $rc
