"""Qwen3-8B's linear layers measured on green-context partitions of several sizes, written as duet measurement
records (JSON lines, `calibration/src/record.rs`) so that `duet calibrate check` can test the profile's per-SM rows
on shapes they were not fitted on.

For each SM count S (a green context of S SMs; 132 = the whole GPU through the primary context), each operator
(QKV 4096 -> 6144, O 4096 -> 4096, gate+up 4096 -> 24576, down 12288 -> 4096, LM head 4096 -> 151936) and each
token count (1, 32, 256, 2048): torch F.linear in bf16 on the partition's stream, cycling through >= 512 MB of
weight copies; CUDA events around back-to-back launches, median of 5 repetitions.
Usage: python3 partition_check.py OUT_DIR
"""
import datetime
import json
import os
import subprocess
import sys

import torch
import torch.nn.functional as F
from cuda.bindings import driver as drv

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
dev = torch.device("cuda:0")
torch.empty(1, device=dev)


def ok(res):
    if int(res[0]) != 0:
        raise RuntimeError(f"CUDA driver error {res[0]}")
    rest = res[1:]
    return rest[0] if len(rest) == 1 else rest


cu_dev = ok(drv.cuDeviceGet(0))
full = ok(drv.cuDeviceGetDevResource(cu_dev, drv.CUdevResourceType.CU_DEV_RESOURCE_TYPE_SM))
total = full.sm.smCount


def green_stream(count):
    groups, _n, _rem = ok(drv.cuDevSmResourceSplitByCount(1, full, 0, count))
    desc = ok(drv.cuDevResourceGenerateDesc([groups[0]], 1))
    g = ok(drv.cuGreenCtxCreate(desc, cu_dev, drv.CUgreenCtxCreate_flags.CU_GREEN_CTX_DEFAULT_STREAM))
    s = ok(drv.cuGreenCtxStreamCreate(g, drv.CUstream_flags.CU_STREAM_NON_BLOCKING, 0))
    return torch.cuda.get_stream_from_external(int(s)), groups[0].sm.smCount


ops = {
    "qkv": (4096, 6144),
    "o": (4096, 4096),
    "gate_up": (4096, 24576),
    "down": (12288, 4096),
    "lm_head": (4096, 151936),
}
weights = {}
for name, (k, n) in ops.items():
    per = k * n * 2
    copies = max(1, -(-512 * 2**20 // per))
    weights[name] = [torch.randn(n, k, device=dev, dtype=torch.bfloat16) * 0.02 for _ in range(copies)]
inputs = {(k, m): torch.randn(m, k, device=dev, dtype=torch.bfloat16) for k in (4096, 12288) for m in (1, 32, 256, 2048)}


def timed(stream, fn, reps, rounds=5):
    with torch.cuda.stream(stream):
        fn(0)
        fn(1)
        times = []
        for _ in range(rounds):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record(stream)
            for i in range(reps):
                fn(i)
            e1.record(stream)
            e1.synchronize()
            times.append(e0.elapsed_time(e1) / reps)
    times.sort()
    return times[len(times) // 2]


records = []
targets = [(16, None), (32, None), (64, None), (100, None), (132, "primary")]
for want, kind in targets:
    stream, got = (torch.cuda.current_stream(), total) if kind == "primary" else green_stream(want)
    for name, (k, n) in ops.items():
        ws = weights[name]
        for m in (1, 32, 256, 2048):
            x = inputs[(k, m)]
            reps = 3 if name == "lm_head" and m == 2048 else 10
            t = timed(stream, lambda i: F.linear(x, ws[i % len(ws)]), reps)
            records.append({"op": "linear", "name": f"qwen3-8b {name}@{got}sms", "tokens": m, "d_in": k, "d_out": n,
                            "dtype_bytes": 2, "sms": got, "corunner": None, "time_ms": {"median": t}})
            print(f"{got:4d} SMs {name:8s} m={m:5d}: {t:.4f} ms", flush=True)

with open(os.path.join(out_dir, "qwen3-8b_linear_partitions.jsonl"), "w") as f:
    for r in records:
        f.write(json.dumps(r) + "\n")
smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm",
                      "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
meta = {"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(0), "nvidia_smi": smi, "torch": torch.__version__,
        "cuda": torch.version.cuda, "method": __doc__.strip()}
with open(os.path.join(out_dir, "device.json"), "w") as f:
    json.dump(meta, f, indent=2)
print(json.dumps(meta, indent=2))
