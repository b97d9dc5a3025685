"""Measures the linear layers of Qwen3-8B (bf16, torch F.linear = cuBLAS) on the whole GPU, plus the two
ceilings (device-to-device copy bandwidth, a large bf16 GEMM), and writes them in Vidur's mlp.csv column layout
so that `duet roofline-check --profile FILE` compares them with the roofline.

Usage: python3 linear_roofline.py OUT_DIR
Timing: CUDA events around R back-to-back launches, cycling through enough weight copies (>= 256 MB) that no
weight stays in L2 between uses; median of 7 such repetitions after warm-up; times in ms per launch.
"""
import csv
import datetime
import json
import os
import subprocess
import sys

import torch
import torch.nn.functional as F

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
dev = torch.device("cuda")
props = torch.cuda.get_device_properties(0)
torch.backends.cuda.matmul.allow_tf32 = False

# Qwen3-8B shapes.
h, hq, hkv, dh, inter, vocab = 4096, 32, 8, 128, 12288, 151936
ops = {
    "attn_pre_proj": (h, (hq + 2 * hkv) * dh),
    "attn_post_proj": (hq * dh, h),
    "mlp_up_proj": (h, 2 * inter),
    "mlp_down_proj": (inter, h),
}
tokens = [1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256, 320, 384, 512, 640, 768, 1024, 1280, 1536, 2048, 2560,
          3072, 4096, 5120, 6144, 8192]
REPS, R = 7, 20


def timed(fn, r=R):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(3):
        fn(0)
    times = []
    for _ in range(REPS):
        torch.cuda.synchronize()
        start.record()
        for i in range(r):
            fn(i)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / r)
    times.sort()
    return times


results = {}
for op, (d_in, d_out) in ops.items():
    wbytes = d_in * d_out * 2
    copies = max(2, -(-256 * 2**20 // wbytes))
    ws = [torch.randn(d_out, d_in, device=dev, dtype=torch.bfloat16) * 0.02 for _ in range(copies)]
    for n in tokens:
        x = torch.randn(n, d_in, device=dev, dtype=torch.bfloat16)
        t = timed(lambda i: F.linear(x, ws[i % copies]))
        results[(op, n)] = t
        print(f"{op:16s} n={n:5d} median {t[len(t)//2]:.4f} ms  min {t[0]:.4f}  max {t[-1]:.4f}", flush=True)
    del ws

# Ceilings.
buf_a = torch.empty(2**30, dtype=torch.uint8, device=dev)
buf_b = torch.empty_like(buf_a)
t = timed(lambda i: buf_b.copy_(buf_a), r=5)
copy_tbs = 2 * 2**30 / (t[len(t) // 2] * 1e-3) / 1e12
del buf_a, buf_b
a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
t = timed(lambda i: a @ b, r=10)
gemm_tflops = 2 * 8192**3 / (t[len(t) // 2] * 1e-3) / 1e12

with open(os.path.join(out_dir, "qwen3-8b_linear.csv"), "w", newline="") as f:
    w = csv.writer(f)
    cols = []
    for op in ops:
        cols += [f"time_stats.{op}.{s}" for s in ("min", "max", "median")]
    w.writerow(cols + ["n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size", "use_gated_mlp",
                       "num_tokens", "num_tensor_parallel_workers"])
    for n in tokens:
        row = []
        for op in ops:
            t = results[(op, n)]
            row += [f"{t[0]:.6f}", f"{t[-1]:.6f}", f"{t[len(t)//2]:.6f}"]
        w.writerow(row + [hq, hkv, h, inter, vocab, "True", n, 1])

smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm",
                      "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
meta = {
    "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "device": props.name,
    "multiprocessors": props.multi_processor_count,
    "total_memory_bytes": props.total_memory,
    "nvidia_smi": smi,
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "method": __doc__.strip(),
    "d2d_copy_tb_per_s_read_plus_write": round(copy_tbs, 3),
    "bf16_gemm_8192_tflop_per_s": round(gemm_tflops, 1),
}
with open(os.path.join(out_dir, "device.json"), "w") as f:
    json.dump(meta, f, indent=2)
print(json.dumps(meta, indent=2))
