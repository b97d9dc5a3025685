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
BIN=${DUET_GPU_BIN:-dist/duet-gpu}
MODEL=${DUET_MODEL:-qwen3-8b}
EXTRA=${DUET_CALIBRATE_ARGS:-}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1

echo "== $(date -u +%FT%TZ) duet-gpu calibrate, model $MODEL"
[ -x "$BIN" ] || { echo "no executable $BIN (build it here and carry dist/)"; exit 2; }
{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem --format=csv
  nvcc --version 2>/dev/null | tail -2
  uname -r
} | tee "$OUT/device.txt"

# Libraries: the driver's libcuda is on the loader path; cuBLASLt and NVRTC come from the CUDA toolkit or from
# the NVIDIA wheels beside PyTorch. Every folder that exists is added, and duet-gpu prints what it loaded.
SITES=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null || true)
LIBDIRS=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do [ -d "$d" ] && LIBDIRS="$LIBDIRS:$d"; done
SITE_ARGS=()
for s in $SITES; do
  for d in "$s/nvidia/cu13/lib" "$s/nvidia/cublas/lib" "$s/nvidia/cuda_nvrtc/lib"; do [ -d "$d" ] && LIBDIRS="$LIBDIRS:$d"; done
  SITE_ARGS+=(--site-packages "$s")
done
export LD_LIBRARY_PATH="${LIBDIRS#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

"$BIN" libs
"$BIN" info || exit 3
# shellcheck disable=SC2086
timeout 270 "$BIN" calibrate --out "$OUT" --model "$MODEL" "${SITE_ARGS[@]}" $EXTRA
rc=$?
echo "== calibrate exit status $rc after ${SECONDS}s"
ls -la "$OUT"
exit $rc
