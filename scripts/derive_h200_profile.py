#!/usr/bin/env python3
"""Derives the bundled H200 profile from the fitted H100-SXM profile.

The H200 has the H100's SMs and clocks with faster, larger HBM (4.8 vs 3.35 TB/s, 141 GB). No kernel profiles
of an H200 are at hand, so compute parameters (efficiencies, floors, blend, padding) are kept and every bandwidth
table is scaled by the datasheet ratio 4.8 / 3.35. Usage:
    python3 scripts/derive_h200_profile.py calibration/profiles/h100-sxm.json > calibration/profiles/h200.json
"""
import json
import sys

RATIO = 4.8 / 3.35
p = json.load(open(sys.argv[1]))
p["gpu"].update({"name": "h200", "memory_bytes": 143771 * 2**20, "hbm_bandwidth": 4.8e12, "driver": None, "cuda": None})
p["provenance"] = {
    "kind": "published",
    "date": p["provenance"]["date"],
    "source": "derived from the fitted h100-sxm profile by scripts/derive_h200_profile.py: compute parameters kept, "
              "bandwidth tables scaled by the datasheet ratio 4.8/3.35 TB/s; not measured on an H200",
}
scale = lambda v: [x * RATIO for x in v]
p["gemm"]["bandwidth"] = scale(p["gemm"]["bandwidth"])
p["attention"]["decode_bandwidth"] = scale(p["attention"]["decode_bandwidth"])
for e in p["elementwise"].values():
    e["bandwidth"] = scale(e["bandwidth"])
p["contention"]["hbm_bandwidth"] *= RATIO
print(json.dumps(p, indent=2))
