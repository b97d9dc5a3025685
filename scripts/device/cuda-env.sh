# Sourced by the prepared device scripts: finds the carried duet-gpu binary (BIN) and the CUDA libraries, exports
# LD_LIBRARY_PATH and sets SITE_ARGS (--site-packages for the CUDA headers).
#
# Library order: the NVIDIA wheels beside the PyTorch that python3 imports first (they match the driver PyTorch
# was built for: cu13 wheels for driver 580 / CUDA 13.0), then PyTorch's own lib folder, then a system toolkit
# (/usr/local/cuda) last. A toolkit newer than the driver would give an NVRTC whose output the driver cannot load;
# duet-gpu compiles to an sm_90 cubin (no driver JIT) and `duet-gpu libs` prints every library's path and version.
# PyTorch is located without importing it (importlib's find_spec: no seconds of import at start-up).
BIN=${DUET_GPU_BIN:-dist/duet-gpu}
if [ ! -x "$BIN" ] && [ -z "${DUET_GPU_BIN:-}" ] && [ -x target/release/duet-gpu ]; then BIN=target/release/duet-gpu; fi
[ -x "$BIN" ] || { echo "no executable $BIN (build it here: scripts/device/build-dist.sh; carry dist)"; exit 2; }
TORCH_SITE=$(python3 -c 'import importlib.util as u, os; s = u.find_spec("torch"); print(os.path.dirname(os.path.dirname(s.origin)) if s and s.origin else "")' 2>/dev/null || true)
SITES=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null || true)
LIBDIRS=""
SITE_ARGS=()
for s in $TORCH_SITE $SITES; do
  case " ${SITE_ARGS[*]} " in *" $s "*) continue ;; esac
  for d in "$s/nvidia/cu13/lib" "$s/nvidia/cublas/lib" "$s/nvidia/cuda_nvrtc/lib" "$s/torch/lib"; do
    [ -d "$d" ] && LIBDIRS="$LIBDIRS:$d"
  done
  SITE_ARGS+=(--site-packages "$s")
done
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do [ -d "$d" ] && LIBDIRS="$LIBDIRS:$d"; done
export LD_LIBRARY_PATH="${LIBDIRS#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "BIN=$BIN"
echo "torch site-packages: ${TORCH_SITE:-none}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
