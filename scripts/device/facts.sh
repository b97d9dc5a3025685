#!/usr/bin/env bash
# Device facts for the prepared scripts' logs: date, card, driver, clocks, power limit, CUDA compiler, kernel,
# glibc (against what the carried binary needs, dist/GLIBC_NEEDED), python3 and where PyTorch and the NVIDIA
# wheels are. Every line is best effort: a missing tool prints that it is missing.
echo "date: $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.limit \
  --format=csv 2>&1 || echo "nvidia-smi: not available"
nvidia-smi -q -d CLOCK 2>/dev/null | grep -A4 -E "^ *(Applications Clocks|Max Clocks)" || true
nvcc --version 2>/dev/null | tail -2 || echo "nvcc: not available"
echo "kernel: $(uname -sr)"
have=$(ldd --version 2>/dev/null | head -1 | grep -o '[0-9]\+\.[0-9]\+$')
need=$(sed 's/GLIBC_//' "$(dirname "$0")/../../dist/GLIBC_NEEDED" 2>/dev/null || echo "?")
echo "glibc: device $have, binary needs $need"
if [ "$need" != "?" ] && [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
  echo "WARNING: the carried binary needs glibc $need, newer than the device's $have"
fi
python3 -c 'import sys, importlib.util as u; s = u.find_spec("torch"); print("python3", sys.version.split()[0], sys.executable, "torch at", s.origin if s else None)' 2>&1 || echo "python3: not available"
