"""Qwen3-8B's linear layers measured on green-context partitions of several sizes, written as duet measurement
records (JSON lines, `calibration/src/record.rs`) so that `duet calibrate check` can test the profile's per-SM rows
on shapes they were not fitted on.

For each SM count S (a green context of S SMs; 132 = the whole GPU through the primary context), each operator
(QKV 4096 -> 6144, O 4096 -> 4096, gate+up 4096 -> 24576, down 12288 -> 4096, LM head 4096 -> 151936) and each
token count (1, 32, 256, 2048): torch F.linear in bf16 on the partition's stream, cycling through >= 512 MB of
weight copies; CUDA events around back-to-back launches, median of 5 repetitions.
Usage: python3 partition_check.py OUT_DIR
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

from greenctx import DEV as dev, partition, timed, write_device_json

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)

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


records = []
targets = [16, 32, 64, 100, 132]
for want in targets:
    stream, got = partition(want)
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
write_device_json(out_dir, __doc__)
