#!/usr/bin/env python3
"""Markdown tables of issue 19 from the capacity tables in docs/policy-cells/ (standard library only):

  baselines-TRACE.csv, strict-TRACE.csv      every tuned baseline (scripts/gen-cells.py [--strict] --no-adaptive)
  ablation-TRACE[-strict].csv                `adaptive` and each mechanism switched off (gen-cells.py --ablation)
  robust-TRACE.csv                           adaptive and the best baselines under moved parameters
                                             (scripts/gen-robustness.py)

Usage: python3 scripts/cells-tables.py [DIR] [--figure OUT]   (default DIR: docs/policy-cells)
  --figure OUT  also write OUT/capacity.csv (adaptive's capacity per cell relative to the best tuned baseline,
                under each limit) for `duet report OUT/capacity.csv --out FIGDIR`, which draws it as bars
Prints: the capacity table per SLO (best baseline vs adaptive, ratio, geometric mean), the ablation and the
robustness table (adaptive / best of the baselines run under each variant).
"""
import csv, math, os, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = [a for a in sys.argv[1:]]
FIGURE = None
if "--figure" in ARGS:
    i = ARGS.index("--figure")
    FIGURE = ARGS[i + 1]
    del ARGS[i:i + 2]
DIR = ARGS[0] if ARGS else os.path.join(ROOT, "docs/policy-cells")
TRACES = [("azure-conv", "Azure conv"), ("azure-code", "Azure code"), ("mooncake-conv", "Mooncake")]
MODELS = [("qwen3-8b", "Qwen3-8B"), ("qwen3-14b", "Qwen3-14B")]


def rows(name):
    path = os.path.join(DIR, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def cap(r):
    return float(r["capacity_rps"]) if r["capacity_rps"] else 0.0


def best(rs, model):
    mine = [r for r in rs if r["arg_model"] == model and r["label"] != "adaptive"]
    top = max(cap(r) for r in mine)
    # Configurations within 0.5% of the best are named together.
    return top, [r["label"] for r in mine if cap(r) >= top * 0.995]


def cells(base_file, abl_file):
    """Per cell (trace, model) with both tables present: (trace name, model name, best baseline capacity, the
    labels within 0.5% of it, adaptive's capacity)."""
    for t, tname in TRACES:
        base, abl = rows(base_file.format(t)), rows(abl_file.format(t))
        if not base or not abl:
            continue
        for m, mname in MODELS:
            top, labels = best(base, m)
            ad = [cap(r) for r in abl if r["arg_model"] == m and r["label"] == "adaptive"][0]
            yield tname, mname, top, labels, ad


LIMITS = [
    ("P99 ITL <= 100 ms", "baselines-{}.csv", "ablation-{}.csv"),
    ("P99 of per-request largest gap <= 100 ms", "strict-{}.csv", "ablation-{}-strict.csv"),
]


def figure_csv(out):
    """OUT/capacity.csv: adaptive's capacity per cell relative to the best tuned baseline under the same limit."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "capacity.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["label", "group", "capacity_rps", "relative_capacity"])
        for limit, base_file, abl_file in LIMITS:
            for tname, mname, top, _, ad in cells(base_file, abl_file):
                w.writerow([f"adaptive, {limit}", f"{tname} {mname.split('-')[1]}", ad, ad / top])


def capacity_table(base_file, abl_file):
    print("| cell | best tuned baseline (req/s) | `adaptive` (req/s) | ratio |")
    print("|---|---|---:|---:|")
    logs = []
    for tname, mname, top, labels, ad in cells(base_file, abl_file):
        logs.append(math.log(ad / top))
        print(f"| {tname}, {mname} | {', '.join(labels[:3])}: {top:.2f} | {ad:.2f} | {ad / top:.3f} |")
    low = math.exp(min(logs))
    print(f"| **geometric mean** (lowest cell {low:.3f}) | | | **{math.exp(sum(logs) / len(logs)):.3f}** |")


def ablation_table(abl_file):
    labels = None
    table = {}
    for t, tname in TRACES:
        for m, mname in MODELS:
            rs = [r for r in rows(abl_file.format(t)) if r["arg_model"] == m]
            labels = labels or [r["label"] for r in rs]
            table[(tname, mname)] = {r["label"]: cap(r) for r in rs}
    cells = list(table)
    print("| configuration | " + " | ".join(f"{t} {m.split('-')[1].upper()}" for t, m in cells) + " |")
    print("|---|" + "---:|" * len(cells))
    for lab in labels:
        vals = []
        for c in cells:
            v, a = table[c][lab], table[c]["adaptive"]
            vals.append(f"{v:.2f}" if lab == "adaptive" else f"{v:.2f} ({v / a:.2f}x)")
        print(f"| {lab} | " + " | ".join(vals) + " |")


def robustness_table():
    variants, table = [], {}
    for t, tname in TRACES:
        for r in rows(f"robust-{t}.csv"):
            v = dict(kv.split("=", 1) for kv in r["group"].split("; "))["variant"]
            if v not in variants:
                variants.append(v)
            table.setdefault((tname, r["arg_model"], v), []).append((r["label"], cap(r)))
    if not table:
        return
    cells = [(tname, m) for t, tname in TRACES for m, _ in MODELS]
    print("| variant | " + " | ".join(f"{t} {m.split('-')[1].upper()}" for t, m in cells) + " | geometric mean |")
    print("|---|" + "---:|" * (len(cells) + 1))
    for v in variants:
        out, logs = [], []
        for tname, m in cells:
            entries = table.get((tname, m, v), [])
            ad = [c for l, c in entries if l == "adaptive"]
            others = [(c, l) for l, c in entries if l != "adaptive"]
            if not ad or not others:
                out.append("")
                continue
            top, lab = max(others)
            ratio = ad[0] / top if top > 0 else math.inf
            logs.append(math.log(ratio))
            mark = "" if ratio >= 0.98 else " **<0.98**"
            out.append(f"{ad[0]:.2f} / {top:.2f} {lab} = {ratio:.2f}{mark}")
        geo = f"{math.exp(sum(logs) / len(logs)):.3f}" if logs else ""
        print(f"| {v} | " + " | ".join(out) + f" | {geo} |")


if __name__ == "__main__":
    if FIGURE:
        figure_csv(FIGURE)
    for i, (limit, base_file, abl_file) in enumerate(LIMITS):
        print(("\n" if i else "") + f"### {limit}\n")
        capacity_table(base_file, abl_file)
    print("\n### Ablation, P99 ITL (capacity, and as a fraction of `adaptive`)\n")
    ablation_table("ablation-{}.csv")
    print("\n### Ablation, per-request largest gap\n")
    ablation_table("ablation-{}-strict.csv")
    print("\n### Robustness: adaptive / best baseline of those run (req/s)\n")
    robustness_table()
