"""Attention kernels of Qwen3-8B's shape (32 query heads, 8 KV heads, head size 128, bf16) on green-context
partitions, written as duet measurement records (`attention_prefill`, `attention_decode`).

- prefill: torch scaled_dot_product_attention, causal, one sequence of L tokens (no cache), L in {1024, 4096};
- decode: one new token per sequence over C cached tokens, 32 sequences, C in {1024, 4096}.
On green contexts of 16, 32, 64 and 104 SMs and on the whole GPU (primary context). CUDA events around
back-to-back launches, median of 5 repetitions.
Usage: python3 attention_sm_scaling.py OUT_DIR
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

from greenctx import DEV as dev, partition, timed, write_device_json

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)

HQ, HKV, DH = 32, 8, 128


def sdpa(q, k, v, causal):
    try:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
    except TypeError:
        rep = q.shape[1] // k.shape[1]
        return F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), is_causal=causal)


cases = []
for L in (1024, 4096):
    q = torch.randn(1, HQ, L, DH, device=dev, dtype=torch.bfloat16)
    k = torch.randn(1, HKV, L, DH, device=dev, dtype=torch.bfloat16)
    v = torch.randn_like(k)
    cases.append(("attention_prefill", 1, L, 0, (q, k, v), True))
for C in (1024, 4096):
    # Several KV caches so the reads do not hit L2 between launches.
    qs = torch.randn(32, HQ, 1, DH, device=dev, dtype=torch.bfloat16)
    kvs = [(torch.randn(32, HKV, C, DH, device=dev, dtype=torch.bfloat16), torch.randn(32, HKV, C, DH, device=dev, dtype=torch.bfloat16)) for _ in range(3)]
    cases.append(("attention_decode", 32, 1, C, (qs, kvs), False))


records = []
for want in [16, 32, 64, 100, 132]:
    stream, got = partition(want)
    for op, batch, qlen, cached, tensors, causal in cases:
        if op == "attention_prefill":
            q, k, v = tensors
            fn = lambda i: sdpa(q, k, v, True)
        else:
            qs, kvs = tensors
            fn = lambda i: sdpa(qs, kvs[i % 3][0], kvs[i % 3][1], False)
        t = timed(stream, fn)
        records.append({"op": op, "name": f"qwen3-8b {op}@{got}sms", "tokens": qlen, "d_in": cached, "d_out": DH,
                        "dtype_bytes": 2, "sms": got, "corunner": None, "q_heads": HQ, "kv_heads": HKV, "batch": batch,
                        "time_ms": {"median": t}})
        print(f"{got:4d} SMs {op:18s} batch {batch:3d} q {qlen:5d} cached {cached:5d}: {t:.4f} ms", flush=True)

with open(os.path.join(out_dir, "qwen3-8b_attention_partitions.jsonl"), "w") as f:
    for r in records:
        f.write(json.dumps(r) + "\n")
write_device_json(out_dir, __doc__)
