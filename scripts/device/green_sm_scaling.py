"""Per-SM-count throughput of an H100 under green contexts, and co-running contention between two partitions.

For each SM count S (a green context holding S SMs, created with cuDevSmResourceSplitByCount and
cuGreenCtxCreate through cuda.bindings; torch kernels launched on the context's stream):
- gemm: bf16 4096 x 4096 x 4096 matmul (cuBLAS), TFLOP/s;
- gemv: decode-like weight streaming, 32 tokens x (4096 -> 14336) bf16 over >= 512 MB of weight copies, GB/s of
  weights read;
- copy: 512 MiB device-to-device copy, GB/s counting bytes read + written.
Then, for decode/prefill splits, the gemv on the decode partition and the gemm on the prefill partition run at
the same time; each one's time is compared with its solo time on the same partition.
Timing: CUDA events on the measured stream around N back-to-back launches, median of 5 repetitions.
Usage: python3 green_sm_scaling.py OUT_DIR
"""
import csv
import os
import sys
import traceback

import torch

from greenctx import DEV as dev, TOTAL_SMS as total_sms, green_pair as green_streams, timed, write_device_json

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
print(f"device SMs: {total_sms}", flush=True)


a = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
b = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
x = torch.randn(32, 4096, device=dev, dtype=torch.bfloat16)
n_w = 5  # 5 x 117 MB = 587 MB of weights: no L2 reuse
ws = [torch.randn(14336, 4096, device=dev, dtype=torch.bfloat16) * 0.02 for _ in range(n_w)]
src = torch.empty(256 * 2**20, device=dev, dtype=torch.float16)  # 512 MiB
dst = torch.empty_like(src)
GEMM_FLOP = 2 * 4096**3
W_BYTES = 14336 * 4096 * 2
COPY_BYTES = 2 * src.numel() * 2


gemm = lambda i: torch.matmul(a, b)
gemv = lambda i: torch.nn.functional.linear(x, ws[i % n_w])
copy = lambda i: dst.copy_(src)


def measure(stream):
    return {
        "gemm_tflops": GEMM_FLOP / (timed(stream, gemm) * 1e-3) / 1e12,
        "gemv_gbps": W_BYTES / (timed(stream, gemv, reps=20) * 1e-3) / 1e9,
        "copy_gbps": COPY_BYTES / (timed(stream, copy, reps=3) * 1e-3) / 1e9,
    }


rows = []
whole = measure(torch.cuda.current_stream())
rows.append({"requested_sms": total_sms, "actual_sms": total_sms, "context": "primary", **whole})
print(f"whole GPU: {whole}", flush=True)
splits = {}
for s in [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128]:
    try:
        (st, got), (rest_st, rest_n) = green_streams(s)
        splits[s] = ((st, got), (rest_st, rest_n))
        m = measure(st)
        rows.append({"requested_sms": s, "actual_sms": got, "context": "green", **m})
        print(f"{s} -> {got} SMs (remainder {rest_n}): {m}", flush=True)
    except Exception:
        traceback.print_exc()

with open(os.path.join(out_dir, "sm_scaling.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
    w.writeheader()
    w.writerows(rows)

# Co-running: decode gemv on the small partition, prefill gemm on the remainder, at the same time.
corun = []
for d in [16, 32, 48]:
    if d not in splits:
        continue
    (ds, dn), (ps, pn) = splits[d]
    try:
        solo_d = timed(ds, gemv, reps=20)
        solo_p = timed(ps, gemm)
        # Launch long loops on both streams, then time each with its own events.
        reps_d, reps_p = 400, max(10, int(400 * solo_d / solo_p))
        torch.cuda.synchronize()
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        with torch.cuda.stream(ps):
            ev[2].record(ps)
            for i in range(reps_p):
                gemm(i)
            ev[3].record(ps)
        with torch.cuda.stream(ds):
            ev[0].record(ds)
            for i in range(reps_d):
                gemv(i)
            ev[1].record(ds)
        torch.cuda.synchronize()
        co_d = ev[0].elapsed_time(ev[1]) / reps_d
        co_p = ev[2].elapsed_time(ev[3]) / reps_p
        r = {"decode_sms": dn, "prefill_sms": pn, "gemv_solo_ms": solo_d, "gemv_corun_ms": co_d, "gemm_solo_ms": solo_p,
             "gemm_corun_ms": co_p, "gemv_slowdown": co_d / solo_d - 1, "gemm_slowdown": co_p / solo_p - 1}
        corun.append(r)
        print(f"co-run {r}", flush=True)
    except Exception:
        traceback.print_exc()

if corun:
    with open(os.path.join(out_dir, "corun.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(corun[0].keys()))
        w.writeheader()
        w.writerows(corun)

write_device_json(out_dir, __doc__)
