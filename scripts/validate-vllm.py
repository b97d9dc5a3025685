#!/usr/bin/env python3
"""Predicts the published vLLM v0.11.0 runs (docs/validation/vllm-0.11-gpustack.csv) with `duet bench serve`
and fits the engine preset's calibrated terms, reporting leave-one-out errors (docs/VALIDATION.md).

Usage: scripts/validate-vllm.py [--duet target/release/duet] [--fit] [--loo] [--out docs/validation/results.csv]
Without --fit, predicts with the bundled preset as it is. --fit refits the 9 terms on all cases and prints them
(paste into sim/engines/vllm-0.11.json); --loo also refits once per case without it and predicts it.
Only the Python standard library is used; a run takes about a second per case set on one core.
"""
import argparse, csv, json, math, os, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = [("duration", "duration_s", 1.0), ("mean_ttft_ms", "mean_ttft_ms", 1.0),
           ("mean_tpot_ms", "mean_tpot_ms", 1.0), ("median_itl_ms", "median_itl_ms", 1.0)]
# Fitted terms: host costs (us, log scale) and per-GPU efficiencies (logit scale); decode attention = memory.
# frontend_us_per_output_token is not fitted: these runs do not identify it (docs/VALIDATION.md); it stays as the
# preset sets it.
TERMS = ["step_overhead_us", "per_seq_overhead_us", "frontend_us_per_request",
         "h100-sxm.gemm", "h100-sxm.memory", "h100-sxm.prefill_attention",
         "a100-80gb.gemm", "a100-80gb.memory", "a100-80gb.prefill_attention"]


def load_cases(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def preset_with(base, values):
    p = json.loads(json.dumps(base))
    for k, v in values.items():
        if "." in k:
            gpu, term = k.split(".")
            p["gpus"][gpu]["efficiency"][term] = round(v, 4)
            if term == "memory":
                p["gpus"][gpu]["efficiency"]["decode_attention"] = round(v, 4)
                if gpu == "h100-sxm":  # the H200 takes the H100's kernels (no H200 run to fit)
                    for t in ("memory", "decode_attention"):
                        p["gpus"]["h200"]["efficiency"][t] = round(v, 4)
            elif gpu == "h100-sxm":
                p["gpus"]["h200"]["efficiency"][term] = round(v, 4)
        else:
            p[k] = round(v, 1)
    return p


def predict(duet, preset_path, case):
    with tempfile.TemporaryDirectory() as d:
        cmd = [duet, "bench", "serve", "--model", case["model"], "--gpu", case["gpu"], "--engine", preset_path,
               "--dataset-name", "random", "--random-input-len", case["input_len"],
               "--random-output-len", case["output_len"], "--num-prompts", case["num_prompts"],
               "--save-result", "--result-dir", d, "--result-filename", "r.json"] + case["extra_args"].split()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(d, "r.json")) as f:
            return json.load(f)


def errors(duet, base, values, cases):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(preset_with(base, values), f)
        path = f.name
    try:
        out = []
        for c in cases:
            r = predict(duet, path, c)
            out.append({m: r[k] / float(c[col]) for k, col, _ in METRICS for m in [k]})
        return out
    finally:
        os.unlink(path)


def loss(ratios):
    logs = [abs(math.log(r[k])) for r in ratios for k, _, _ in METRICS]
    worst = max(logs)
    return sum(logs) / len(logs) + 0.25 * max(0.0, worst - math.log(1.5))


def to_values(x):
    v = {}
    for t, xi in zip(TERMS, x):
        v[t] = 1.0 / (1.0 + math.exp(-xi)) if "." in t else math.exp(xi)
    return v


def from_values(v):
    return [math.log(v[t] / (1.0 - min(v[t], 0.999))) if "." in t else math.log(max(v[t], 1.0)) for t in TERMS]


def nelder_mead(f, x0, step=0.4, iters=900, tol=1e-5):
    n = len(x0)
    pts = [list(x0)] + [[x0[j] + (step if j == i else 0.0) for j in range(n)] for i in range(n)]
    vals = [f(p) for p in pts]
    for _ in range(iters):
        order = sorted(range(n + 1), key=lambda i: vals[i])
        pts, vals = [pts[i] for i in order], [vals[i] for i in order]
        if vals[-1] - vals[0] < tol:
            break
        c = [sum(p[j] for p in pts[:-1]) / n for j in range(n)]
        xr = [c[j] + (c[j] - pts[-1][j]) for j in range(n)]
        fr = f(xr)
        if fr < vals[0]:
            xe = [c[j] + 2 * (c[j] - pts[-1][j]) for j in range(n)]
            fe = f(xe)
            pts[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = xr, fr
        else:
            xc = [c[j] + 0.5 * (pts[-1][j] - c[j]) for j in range(n)]
            fc = f(xc)
            if fc < vals[-1]:
                pts[-1], vals[-1] = xc, fc
            else:
                for i in range(1, n + 1):
                    pts[i] = [pts[0][j] + 0.5 * (pts[i][j] - pts[0][j]) for j in range(n)]
                    vals[i] = f(pts[i])
    i = min(range(n + 1), key=lambda i: vals[i])
    return pts[i], vals[i]


def fit(duet, base, cases, start, iters=900):
    x, _ = nelder_mead(lambda x: loss(errors(duet, base, to_values(x), cases)), from_values(start), iters=iters)
    return to_values(x)


def factor(ratios, k):
    return math.exp(sum(abs(math.log(r[k])) for r in ratios) / len(ratios))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duet", default=os.path.join(ROOT, "target/release/duet"))
    ap.add_argument("--cases", default=os.path.join(ROOT, "docs/validation/vllm-0.11-gpustack.csv"))
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--loo", action="store_true")
    ap.add_argument("--out", default=None, help="write per-case ratios as CSV")
    a = ap.parse_args()
    with open(os.path.join(ROOT, "sim/engines/vllm-0.11.json")) as f:
        base = json.load(f)
    cases = load_cases(a.cases)
    current = {t: (base["gpus"][t.split(".")[0]]["efficiency"][t.split(".")[1]] if "." in t else base[t]) for t in TERMS}
    values = fit(a.duet, base, cases, current) if a.fit else current
    if a.fit:
        print("fitted:", json.dumps({k: round(v, 4) for k, v in values.items()}), flush=True)
    ratios = errors(a.duet, base, values, cases)
    loo = []
    if a.loo:
        for i, c in enumerate(cases):
            rest = cases[:i] + cases[i + 1:]
            v = fit(a.duet, base, rest, values, iters=150)  # warm start from the full fit
            loo.append(errors(a.duet, base, v, [c])[0])
            print(f"leave-one-out {c['case']}: " + " ".join(f"{k}={loo[-1][k]:.3f}" for k, _, _ in METRICS), flush=True)
    print(f"{'case':<22}" + "".join(f"{k:>15}" for k, _, _ in METRICS))
    for c, r in zip(cases, ratios):
        print(f"{c['case']:<22}" + "".join(f"{r[k]:>15.3f}" for k, _, _ in METRICS))
    print(f"{'error factor':<22}" + "".join(f"{factor(ratios, k):>15.3f}" for k, _, _ in METRICS))
    if loo:
        print(f"{'leave-one-out factor':<22}" + "".join(f"{factor(loo, k):>15.3f}" for k, _, _ in METRICS))
    if a.out:
        with open(a.out, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["case"] + [f"{k}_ratio" for k, _, _ in METRICS] + ([f"{k}_loo_ratio" for k, _, _ in METRICS] if loo else []))
            for i, (c, r) in enumerate(zip(cases, ratios)):
                w.writerow([c["case"]] + [f"{r[k]:.4f}" for k, _, _ in METRICS] + ([f"{loo[i][k]:.4f}" for k, _, _ in METRICS] if loo else []))
    return 0


if __name__ == "__main__":
    sys.exit(main())
