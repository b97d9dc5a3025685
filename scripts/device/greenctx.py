"""Shared helpers of the device scripts: green-context partitions through cuda.bindings with torch streams on them,
CUDA-event timing, and the device.json that records card, driver and method.

Imported by green_sm_scaling.py, partition_check.py and attention_sm_scaling.py (Python puts the script's folder
on sys.path).
"""
import datetime
import json
import os
import subprocess

import torch
from cuda.bindings import driver as drv

DEV = torch.device("cuda:0")
torch.empty(1, device=DEV)  # make the primary context current


def ok(res):
    """Unpacks a cuda.bindings result tuple, raising on a driver error."""
    if int(res[0]) != 0:
        raise RuntimeError(f"CUDA driver error {res[0]}")
    rest = res[1:]
    return rest[0] if len(rest) == 1 else rest


CU_DEV = ok(drv.cuDeviceGet(0))
FULL = ok(drv.cuDeviceGetDevResource(CU_DEV, drv.CUdevResourceType.CU_DEV_RESOURCE_TYPE_SM))
TOTAL_SMS = FULL.sm.smCount


def green_pair(count):
    """A green context of `count` SMs (rounded by the driver) and one for the remainder: [(stream, SMs), ...]."""
    groups, _n, remaining = ok(drv.cuDevSmResourceSplitByCount(1, FULL, 0, count))
    out = []
    for res in (groups[0], remaining):
        desc = ok(drv.cuDevResourceGenerateDesc([res], 1))
        g = ok(drv.cuGreenCtxCreate(desc, CU_DEV, drv.CUgreenCtxCreate_flags.CU_GREEN_CTX_DEFAULT_STREAM))
        s = ok(drv.cuGreenCtxStreamCreate(g, drv.CUstream_flags.CU_STREAM_NON_BLOCKING, 0))
        out.append((torch.cuda.get_stream_from_external(int(s)), res.sm.smCount))
    return out


def partition(count):
    """(stream, SMs) of a green context of `count` SMs; the whole GPU's primary stream when `count` is all SMs."""
    if count >= TOTAL_SMS:
        return torch.cuda.current_stream(), TOTAL_SMS
    return green_pair(count)[0]


def timed(stream, fn, reps=10, rounds=5):
    """Median over `rounds` of the per-launch time (ms) of `reps` back-to-back `fn(i)` on `stream`."""
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


def write_device_json(out_dir, method):
    """Writes device.json (card, driver, clocks, versions, date, method) and prints it."""
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm",
                          "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    meta = {"date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "device": torch.cuda.get_device_name(0), "nvidia_smi": smi, "torch": torch.__version__,
            "cuda": torch.version.cuda, "method": method.strip()}
    with open(os.path.join(out_dir, "device.json"), "w") as f:
        json.dump(meta, f, indent=2)
    print(json.dumps(meta, indent=2))
