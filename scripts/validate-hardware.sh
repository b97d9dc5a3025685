#!/usr/bin/env bash
# `duet validate` on every complete replay of a device measurement folder, twice: with the bundled profile of the
# GPU (published numbers) and with the profile fitted from the same session's calibration records
# (profile-duet-gpu.json, `duet calibrate fit`; no replay enters the fit). Results: <run>/validation/ and
# <run>/validation-calibrated/ beside each replay; then `python3 scripts/hardware-table.py FOLDER` prints the tables.
# Usage: scripts/validate-hardware.sh [FOLDER] [DUET]   (default: measurements/h200/2026-12-04-validate, target/release/duet)
set -euo pipefail
M=${1:-measurements/h200/2026-12-04-validate}
DUET=${2:-target/release/duet}
for d in "$M"/run*/*/; do
  d=${d%/}
  [ -f "$d/summary.json" ] && [ -f "$d/steps.csv" ] || continue
  echo "== $d"
  "$DUET" validate --replay "$d" --out "$d/validation" > /dev/null
  "$DUET" validate --replay "$d" --profile "$M/profile-duet-gpu.json" --out "$d/validation-calibrated" > /dev/null
done
