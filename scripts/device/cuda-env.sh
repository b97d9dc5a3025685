# Sourced by the prepared device scripts: finds the CUDA libraries (the driver's libcuda is on the loader path;
# cuBLASLt and NVRTC come from the CUDA toolkit or the NVIDIA wheels beside PyTorch), exports LD_LIBRARY_PATH and
# sets SITE_ARGS (--site-packages for the CUDA headers) and BIN (the carried duet-gpu binary).
BIN=${DUET_GPU_BIN:-dist/duet-gpu}
[ -x "$BIN" ] || { echo "no executable $BIN (build it here: cargo build --release -p duet-gpu; cp to dist/; carry dist)"; exit 2; }
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
device_facts() {
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem --format=csv
  nvcc --version 2>/dev/null | tail -2
  uname -r
}
