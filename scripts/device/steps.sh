# Sourced by the prepared device scripts (after OUT is set): a global deadline, steps with caps and logs, and
# packing of the results. `. steps.sh NAME` sets up:
#   WORK       the work folder (DUET_WORK, default a fresh /tmp folder); results are written there
#   OUT/log.txt everything printed; OUT/steps.csv one row per step (step, cap_s, rc, seconds, status);
#   OUT/NAME.tar.gz the work folder, packed again after every step (the device tool brings back 8 files at most)
#   step NAME CAP CMD...  runs CMD under min(CAP, time left before the deadline less DUET_RESERVE_S) with its output
#              in WORK/NAME.log (tail printed); a step with under DUET_MIN_STEP_S left is skipped; returns CMD's
#              status; any failure, timeout or skip sets failed=1
# The deadline is DUET_DEADLINE_S seconds (default 540) after sourcing: inside the device tool's 600 s limit.
PACK_NAME=${1:?usage: . steps.sh NAME}
DEADLINE=${DUET_DEADLINE_S:-540}
RESERVE=${DUET_RESERVE_S:-10}
MIN_STEP=${DUET_MIN_STEP_S:-15}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=${DUET_WORK:-$(mktemp -d "/tmp/duet-$PACK_NAME.XXXXXX")}
mkdir -p "$WORK"
exec > >(tee "$OUT/log.txt") 2>&1
T0=$SECONDS
failed=0
echo "== $(date -u +%FT%TZ) $PACK_NAME: deadline ${DEADLINE}s, work folder $WORK"
echo "step,cap_s,rc,seconds,status" > "$WORK/steps.csv"

pack() {
  cp "$WORK/steps.csv" "$OUT/steps.csv"
  tar czf "$OUT/$PACK_NAME.tar.gz.tmp" -C "$WORK" . 2>/dev/null && mv "$OUT/$PACK_NAME.tar.gz.tmp" "$OUT/$PACK_NAME.tar.gz"
}

step() {
  local name=$1 cap=$2
  shift 2
  local left=$((DEADLINE - (SECONDS - T0) - RESERVE))
  if ((left < MIN_STEP)); then
    echo "== $name: skipped, ${left}s left before the ${DEADLINE}s deadline"
    echo "$name,$cap,,0,skipped" >> "$WORK/steps.csv"
    pack
    failed=1
    return 1
  fi
  ((cap > left)) && cap=$left
  echo "== $name (cap ${cap}s, at $((SECONDS - T0))s): $*"
  local t=$SECONDS
  timeout --kill-after=5 "$cap" "$@" > "$WORK/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$WORK/$name.log"
  local status=ok
  if ((rc == 124 || rc == 137)); then status=timeout; elif ((rc != 0)); then status=failed; fi
  echo "== $name: $status (exit $rc) after $((SECONDS - t))s"
  echo "$name,$cap,$rc,$((SECONDS - t)),$status" >> "$WORK/steps.csv"
  [ "$status" = ok ] || failed=1
  pack
  return $rc
}

# first_steps: device facts, the CUDA libraries and the driver step (`duet-gpu info`); a failed driver step stops
# the script with exit 3. Needs BIN (cuda-env.sh).
first_steps() {
  step facts 20 bash "$(dirname "${BASH_SOURCE[0]}")/facts.sh"
  step libs 15 "$BIN" libs
  if ! step info 30 "$BIN" info; then
    echo "== the driver step failed: stopping here (exit 3) after $((SECONDS - T0))s"
    grep -m1 '^error:' "$WORK/info.log"
    exit 3
  fi
}
