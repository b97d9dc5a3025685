#!/usr/bin/env python3
"""Tables of docs/RESULTS.md "On hardware" from a device measurement folder after scripts/validate-hardware.sh:
per replay, measured throughput, P99 TTFT, P99 ITL and P99 TBT (largest gap per request) next to the simulator's
prediction (bundled profile, and the profile fitted from the session's calibration records), and the per-step
errors. Replays under runN/ with N in --held-out are listed separately (the held-out pair).
Usage: python3 scripts/hardware-table.py [FOLDER] [--held-out run6]"""
import json
import sys
from pathlib import Path

args = sys.argv[1:]
held = {"run6"}
if "--held-out" in args:
    i = args.index("--held-out")
    held = set(args[i + 1].split(","))
    del args[i:i + 2]
root = Path(args[0] if args else "measurements/h200/2026-12-04-validate")

KEYS = [("request_throughput", "req/s", "{:.2f}"), ("p99_ttft_ms", "P99 TTFT ms", "{:.0f}"),
        ("p99_itl_ms", "P99 ITL ms", "{:.1f}"), ("p99_tbt_ms", "P99 TBT ms", "{:.0f}")]


def load(d, sub):
    p = d / sub / "validation.json"
    return json.loads(p.read_text()) if p.exists() else None


def metric(v, key):
    return next(m for m in v["metrics"] if m["key"] == key)


def rows(dirs):
    out = []
    for d in dirs:
        pub, cal = load(d, "validation"), load(d, "validation-calibrated")
        if not pub or not cal:
            continue
        s = json.loads((d / "summary.json").read_text())
        name = f"{d.parent.name}/{d.name}"
        cells = [name, s["policy"]]
        for key, _, fmt in KEYS:
            m, p, c = metric(pub, key), metric(pub, key)["simulated"], metric(cal, key)["simulated"]
            cells.append(f"{fmt.format(m['measured'])} / {fmt.format(p)} / {fmt.format(c)}")
        step = lambda v: f"{v['steps']['overall']['median_abs_pct']:.0f} / {v['steps']['overall']['p90_abs_pct']:.0f}"
        cells += [step(pub), step(cal)]
        out.append(cells)
    return out


def errors(dirs):
    out = []
    for d in dirs:
        cal = load(d, "validation-calibrated")
        if not cal:
            continue
        cells = [f"{d.parent.name}/{d.name}"]
        for key in ["p50_ttft_ms" if any(m["key"] == "p50_ttft_ms" for m in cal["metrics"]) else "median_ttft_ms",
                    "p99_ttft_ms", "median_tbt_ms", "p99_tbt_ms", "median_itl_ms", "p99_itl_ms",
                    "request_throughput"]:
            cells.append(f"{100 * metric(cal, key)['rel_err']:+.0f}")
        kinds = cal["steps"]["by_kind"]
        cells.append("; ".join(f"{k} {v['median_abs_pct']:.0f}/{v['p90_abs_pct']:.0f} (n={v['count']})"
                               for k, v in sorted(kinds.items())))
        out.append(cells)
    return out


def table(header, body):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


runs = sorted(d for d in root.glob("run*/*") if (d / "summary.json").exists() and (d / "steps.csv").exists())
fit = [d for d in runs if d.parent.name not in held]
out = [d for d in runs if d.parent.name in held]
head = ["replay", "policy"] + [f"{label}: measured / bundled / calibrated" for _, label, _ in KEYS] + \
       ["step err % med/p90 (bundled)", "step err % med/p90 (calibrated)"]
eh = ["replay", "P50 TTFT %", "P99 TTFT %", "P50 TBT %", "P99 TBT %", "P50 ITL %", "P99 ITL %", "throughput %",
      "step err % med/p90 by kind (calibrated)"]
print("### Replays\n")
print(table(head, rows(fit)))
print("\n### Held-out replays\n")
print(table(head, rows(out)))
print("\n### Relative errors of the calibrated simulator (simulated / measured - 1)\n")
print(table(eh, errors(fit) + [[f"**{r[0]}** (held out)"] + r[1:] for r in errors(out)]))
