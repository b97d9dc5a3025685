#!/usr/bin/env python3
"""How well can any GEMM latency model fitted on one model's shapes predict another's? (calibration issue)

Reads Vidur's H100 profiles of Llama-2-7B (training) and CodeLlama-34B (checking), takes the four linear
projections (QKV, O, gate+up, down) at every TP degree and token count, and prints, as Markdown:

1. Model families fitted on Llama-2-7B and checked on CodeLlama-34B (median and p90 absolute % error):
   the plain roofline `max(FLOPs/peak, bytes/bandwidth) + c`; a tile/wave model (output tiles of 64x128,
   128x128 and 128x256 with wave quantisation on 132 SMs, split-K below one wave, mixed by fitted weights and
   blended with the memory time); and, when scikit-learn is installed, gradient-boosted trees and a random forest
   on shape and wave features (Vidur's own approach, which fits one model per LLM).
2. What the checking data itself allows: the share of CodeLlama GEMMs that take more than 15% longer than the
   same GEMM (same K, N) with more tokens (cuBLAS picked a slower kernel), and the largest share within 6/10/15%
   that any latency curve non-decreasing in the token count can reach when fitted to each GEMM of the checking
   file separately (an upper bound for every model whose time does not fall when tokens are added).

Usage: python3 scripts/gemm_transfer.py [--shared ../shared]   (needs numpy and scipy; scikit-learn optional)
"""
import argparse
import csv
import os
import sys

import numpy as np
from scipy.optimize import minimize

SMS = 132
OPS = ["attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj"]


def load(path):
    """GEMM records (op, tp, m, K, N, median ms) of a Vidur mlp.csv; sharded dimensions divided by TP."""
    out = []
    with open(path) as f:
        for r in csv.DictReader(f):
            h, kv, e = int(r["n_head"]), int(r["n_kv_head"]), int(r["n_embd"])
            inter, tp, m = int(r["n_expanded_embd"]), int(r["num_tensor_parallel_workers"]), int(r["num_tokens"])
            d = e // h
            up = (2 if r["use_gated_mlp"] == "True" else 1) * inter // tp
            shapes = {
                "attn_pre_proj": (e, (h // tp + 2 * max(kv // tp, 1)) * d),
                "attn_post_proj": (e // tp, e),
                "mlp_up_proj": (e, up),
                "mlp_down_proj": (inter // tp, e),
            }
            for op in OPS:
                k, n = shapes[op]
                out.append((op, tp, m, k, n, float(r[f"time_stats.{op}.median"])))
    op = np.array([x[0] for x in out])
    tp = np.array([x[1] for x in out])
    m, k, n, t = (np.array([x[i] for x in out], float) for i in (2, 3, 4, 5))
    return op, tp, m, k, n, t


def errors(pred, t):
    e = np.abs(pred / t - 1) * 100
    return np.median(e), np.percentile(e, 90)


def blend(tc, tm, b):
    hi, lo = np.maximum(tc, tm), np.minimum(tc, tm)
    return hi * (1 + (lo / hi) ** b) ** (1 / b)


def roofline(p, m, k, n):
    peak, bw, c = np.exp(p)
    return np.maximum(2 * m * k * n / peak, 2 * (k * n + m * k + m * n) / bw) * 1e3 + c * 1e-3


TILES = [(64, 128), (128, 128), (128, 256)]


def tile_wave(p, m, k, n):
    flops_sm, bw, c, b = np.exp(p[:4])
    w = np.exp(p[4:])
    w = w / w.sum()
    tc = 0
    for (tm, tn), wi in zip(TILES, w):
        tiles = np.ceil(m / tm) * np.ceil(n / tn)
        waves = np.where(tiles < SMS, tiles / SMS, np.ceil(tiles / SMS))
        tc = tc + wi * waves * tm * tn * 2 * k / flops_sm
    return blend(tc, 2 * (k * n + m * k + m * n) / bw, 1 + b) * 1e3 + c * 1e-3


def fit(model, x0, m, k, n, t):
    loss = lambda p: np.mean(np.abs(np.log(model(p, m, k, n) / t)))
    opts = {"maxiter": 8000, "xatol": 1e-7, "fatol": 1e-10}
    r = minimize(loss, x0, method="Nelder-Mead", options=opts)
    return minimize(loss, r.x, method="Nelder-Mead", options=opts).x


def features(m, k, n):
    f = [np.log2(m), np.log2(k), np.log2(n), np.log2(m * k * n), np.log2(k * n)]
    for tm, tn in [(64, 128), (128, 128), (128, 256), (256, 128)]:
        tiles = np.ceil(m / tm) * np.ceil(n / tn)
        f += [tiles / (np.ceil(tiles / SMS) * SMS), np.ceil(tiles / SMS)]
    return np.stack(f, 1)


def slower_than_larger(op, tp, m, t, tol):
    """GEMMs taking more than (1 + tol) x the time of the same GEMM with more tokens."""
    count = 0
    for o in OPS:
        for d in np.unique(tp):
            s = (op == o) & (tp == d)
            ts = t[s][np.argsort(m[s], kind="stable")]
            later = np.append(np.minimum.accumulate(ts[::-1])[::-1][1:], np.inf)
            count += int(np.sum(ts > (1 + tol) * later))
    return count


def monotone_hits(ts, tol):
    """Most points of `ts` (ordered by tokens) a non-decreasing curve can pass within `tol` of: a chain of
    intervals [t (1 - tol), t (1 + tol)] picked with non-decreasing values; Pareto states (hits, lowest value)."""
    states = [(0, 0.0)]
    for lo, hi in zip(ts * (1 - tol), ts * (1 + tol)):
        new = list(states)
        for c, v in states:
            if max(lo, v) <= hi:
                new.append((c + 1, max(lo, v)))
        new.sort(key=lambda s: (-s[0], s[1]))
        states, best = [], float("inf")
        for c, v in new:
            if v < best:
                states.append((c, v))
                best = v
    return max(c for c, _ in states)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    a = ap.parse_args()
    v = os.path.join(a.shared, "kernel-profiles", "vidur", "h100")
    train = load(os.path.join(v, "Llama-2-7b-hf.mlp.csv"))
    check = load(os.path.join(v, "CodeLlama-34b-Instruct-hf.mlp.csv"))
    _, _, m, k, n, t = train
    op2, tp2, m2, k2, n2, t2 = check
    rows = []
    p = fit(roofline, np.log([700e12, 3e12, 10.0]), m, k, n, t)
    rows.append(("plain roofline max(FLOPs/peak, bytes/bw) + c", errors(roofline(p, m, k, n), t),
                 errors(roofline(p, m2, k2, n2), t2)))
    p = fit(tile_wave, np.concatenate([np.log([5.5e12, 3e12, 5.0, 2.0]), np.zeros(len(TILES))]), m, k, n, t)
    rows.append(("tile/wave model (64x128, 128x128, 128x256 mixed)", errors(tile_wave(p, m, k, n), t),
                 errors(tile_wave(p, m2, k2, n2), t2)))
    try:
        from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

        base = lambda m, k, n: np.maximum(2 * m * k * n / 800e12, 2 * (k * n + m * k + m * n) / 3.35e12) * 1e3
        for name, est in [
            ("gradient-boosted trees on shape + wave features", GradientBoostingRegressor(
                n_estimators=600, max_depth=4, learning_rate=0.05, random_state=0)),
            ("random forest on shape + wave features", RandomForestRegressor(
                300, min_samples_leaf=2, random_state=0)),
        ]:
            est.fit(features(m, k, n), np.log(t / base(m, k, n)))
            pr = lambda mm, kk, nn: np.exp(est.predict(features(mm, kk, nn))) * base(mm, kk, nn)
            rows.append((name, errors(pr(m, k, n), t), errors(pr(m2, k2, n2), t2)))
    except ImportError:
        print("scikit-learn not installed: learned models skipped", file=sys.stderr)
    print("| model, fitted on Llama-2-7B | Llama-2-7B median / p90 % | CodeLlama-34B median / p90 % |")
    print("|---|---|---|")
    for name, (a1, b1), (a2, b2) in rows:
        print(f"| {name} | {a1:.1f} / {b1:.1f} | {a2:.1f} / {b2:.1f} |")
    print()
    total = len(t2)
    for label, (op_, tp_, mm, tt) in [("Llama-2-7B", (train[0], train[1], m, t)), ("CodeLlama-34B", (op2, tp2, m2, t2))]:
        c = slower_than_larger(op_, tp_, mm, tt, 0.15)
        print(f"- {label}: {c} of {len(tt)} GEMMs ({c / len(tt) * 100:.1f}%) take > 15% longer than the same GEMM "
              f"with more tokens.")
    for tol in (0.06, 0.10, 0.15):
        hits = 0
        for o in OPS:
            for d in np.unique(tp2):
                s = (op2 == o) & (tp2 == d)
                hits += monotone_hits(t2[s][np.argsort(m2[s], kind="stable")], tol)
        print(f"- CodeLlama-34B, best curve non-decreasing in tokens fitted per GEMM to the checking file itself: "
              f"{hits} of {total} ({hits / total * 100:.1f}%) within {tol * 100:.0f}%.")


if __name__ == "__main__":
    main()
