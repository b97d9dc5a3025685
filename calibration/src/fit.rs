//! Fitting a profile from measurements.
//!
//! Records measured on the whole GPU with no co-runner fit the whole-GPU parameters; GEMM records measured on
//! fewer SMs (green-context partitions) then fit the per-SM rows ([`fit_sm_rows`]); records with a co-runner are
//! counted as skipped, with the reason. For GEMMs the fit chooses, by coordinate descent with golden-section line searches,
//! the fixed time `floor_ns`, the weight-streaming bandwidth, and one efficiency per point of a log2 token grid
//! (1, 2, 4, ... up to the largest measured token count), minimising the mean absolute log error
//! `|ln(predicted / measured)|`. For each elementwise operator it fits a bandwidth and a fixed time the same way,
//! and for all-reduce records the ring model's per-step latency and bus bandwidth.
//! Without per-SM records, the other SM counts keep the base profile's SM scaling (efficiency per SM constant;
//! bandwidth scaled as the base profile scales it).

use duet_sim::cost::DeviceCurves;

use crate::check::predict_ms;
use crate::error::CalibrationError;
use crate::profile::{AllReduce, AllReduceFit, ELEMENTWISE_OPS, Profile};
use crate::record::{OpClass, Record};

/// What the fit used and skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct FitSummary {
    /// Records used per class.
    pub used: Vec<(String, usize)>,
    /// Records skipped, with the reason.
    pub skipped: Vec<(String, usize)>,
}

/// Golden-section minimisation of `f` on `[lo, hi]`.
fn golden(mut lo: f64, mut hi: f64, f: impl Fn(f64) -> f64) -> f64 {
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (hi - g * (hi - lo), lo + g * (hi - lo));
    let (mut fa, mut fb) = (f(a), f(b));
    for _ in 0..48 {
        if fa < fb {
            hi = b;
            b = a;
            fb = fa;
            a = hi - g * (hi - lo);
            fa = f(a);
        } else {
            lo = a;
            a = b;
            fa = fb;
            b = lo + g * (hi - lo);
            fb = f(b);
        }
    }
    (lo + hi) / 2.0
}

/// Mean absolute log error of `p` on `records`.
fn loss(p: &Profile, records: &[&Record]) -> f64 {
    let c = p.curves();
    let dc: &dyn DeviceCurves = &c;
    records.iter().map(|r| (predict_ms(dc, r) / r.time_ms.median).ln().abs()).sum::<f64>() / records.len().max(1) as f64
}

/// Coordinate descent on the GEMM parameters: floor, blend, bandwidth, per-token-grid efficiency.
fn fit_gemm(p: &mut Profile, linear: &[&Record], grid: &[f64], bw_scale: &[f64], peak_bw: f64, sweeps: usize) {
    for _sweep in 0..sweeps {
        let f = golden(0.0, 50_000.0, |v| {
            let mut q = p.clone();
            q.gemm.floor_ns = v;
            loss(&q, linear)
        });
        p.gemm.floor_ns = f;
        let bl = golden(1.0, 16.0, |v| {
            let mut q = p.clone();
            q.gemm.blend = Some(v);
            loss(&q, linear)
        });
        p.gemm.blend = Some(bl);
        let b = golden(0.2 * peak_bw, 1.0 * peak_bw, |v| {
            let mut q = p.clone();
            q.gemm.bandwidth = bw_scale.iter().map(|s| s * v).collect();
            loss(&q, linear)
        });
        p.gemm.bandwidth = bw_scale.iter().map(|s| s * b).collect();
        for j in 0..grid.len() {
            // Only records near this grid point matter: keep the line search cheap.
            let near: Vec<&Record> =
                linear.iter().copied().filter(|r| ((r.tokens as f64).log2() - grid[j].log2()).abs() < 1.0).collect();
            if near.is_empty() {
                continue;
            }
            let e = golden(0.02, 1.0, |v| {
                let mut q = p.clone();
                for r in &mut q.gemm.efficiency {
                    r[j] = v;
                }
                loss(&q, &near)
            });
            for r in &mut p.gemm.efficiency {
                r[j] = e;
            }
        }
    }
}

/// Per-SM rows from GEMM records measured on partitions: for each measured SM count, a bandwidth and a compute
/// scale (multiplying the whole-GPU efficiency curve) fitted to its records; rows between measured counts are
/// interpolated linearly, rows below the smallest are scaled in proportion to the SM count, and both curves are
/// made non-decreasing in the SM count (running maxima over the measured noise). Elementwise and
/// decode-attention bandwidth follow the GEMM bandwidth's ratio to the whole GPU; prefill-attention throughput
/// follows the compute scale.
fn fit_sm_rows(p: &mut Profile, partial: &[&Record]) {
    let full = p.gpu.num_sms;
    let last = p.sm_counts.len() - 1;
    let base = p.clone();
    let mut counts: Vec<u32> = partial.iter().map(|r| r.sms).collect();
    counts.sort_unstable();
    counts.dedup();
    // (sms, bandwidth ratio to the whole GPU, compute scale)
    let mut points: Vec<(f64, f64, f64)> = Vec::new();
    for s in counts {
        let recs: Vec<&Record> = partial.iter().copied().filter(|r| r.sms == s).collect();
        // A two-row profile (s SMs, whole GPU) whose first row holds the candidate values exactly.
        let with = |bw_ratio: f64, scale: f64| {
            let mut q = base.clone();
            let two = |top: f64, v: f64| vec![v, top];
            q.sm_counts = vec![s, full];
            q.gemm.bandwidth = two(base.gemm.bandwidth[last], base.gemm.bandwidth[last] * bw_ratio);
            q.gemm.efficiency = vec![
                base.gemm.efficiency[last].iter().map(|e| e * scale).collect(),
                base.gemm.efficiency[last].clone(),
            ];
            q.attention.prefill_flops = two(base.attention.prefill_flops[last], base.attention.prefill_flops[last]);
            q.attention.decode_bandwidth =
                two(base.attention.decode_bandwidth[last], base.attention.decode_bandwidth[last]);
            for e in q.elementwise.values_mut() {
                let top = *e.bandwidth.last().expect("validated");
                e.bandwidth = two(top, top);
            }
            q
        };
        let (mut bw, mut sc) = (0.5, 1.0);
        for _ in 0..6 {
            bw = golden(0.02, 1.2, |v| loss(&with(v, sc), &recs));
            sc = golden(0.3, 1.6, |v| loss(&with(bw, v), &recs));
        }
        points.push((f64::from(s), bw, sc));
    }
    points.push((f64::from(full), 1.0, 1.0));
    let xs: Vec<f64> = points.iter().map(|t| t.0).collect();
    let bws: Vec<f64> = points.iter().map(|t| t.1).collect();
    let scs: Vec<f64> = points.iter().map(|t| t.2).collect();
    // Measured rows are noisy; keep the curves monotone in SMs (more SMs never deliver less): running maxima
    // of the bandwidth ratio and of the compute throughput (scale x SMs).
    let (mut prev_bw, mut prev_compute) = (0.0f64, 0.0f64);
    for (i, &row) in base.sm_counts.iter().enumerate() {
        let x = f64::from(row);
        let (bw_ratio, scale) = if x < xs[0] {
            (bws[0] * x / xs[0], scs[0])
        } else {
            (crate::interp::linear(&xs, &bws, x), crate::interp::linear(&xs, &scs, x))
        };
        let bw_ratio = bw_ratio.max(prev_bw);
        let scale = scale.max(prev_compute / x);
        (prev_bw, prev_compute) = (bw_ratio, scale * x);
        p.gemm.bandwidth[i] = base.gemm.bandwidth[last] * bw_ratio;
        p.gemm.efficiency[i] = base.gemm.efficiency[last].iter().map(|e| e * scale).collect();
        p.attention.decode_bandwidth[i] = base.attention.decode_bandwidth[last] * bw_ratio;
        p.attention.prefill_flops[i] = base.attention.prefill_flops[last] * scale * x / f64::from(full);
        for e in p.elementwise.values_mut() {
            let top = *e.bandwidth.last().expect("validated");
            e.bandwidth[i] = top * bw_ratio;
        }
    }
}

/// Attention rows from attention records: per measured SM count, prefill FLOP/s (`decode = false`) or decode
/// KV-read bandwidth (`decode = true`) fitted to its records; other rows interpolated in the SM count (scaled in
/// proportion below the smallest measured count, held above the largest), non-decreasing.
fn fit_attention_rows(p: &mut Profile, recs: &[&Record], decode: bool) {
    let mut counts: Vec<u32> = recs.iter().map(|r| r.sms).collect();
    counts.sort_unstable();
    counts.dedup();
    let table =
        |q: &Profile| if decode { q.attention.decode_bandwidth.clone() } else { q.attention.prefill_flops.clone() };
    let top = *table(p).last().expect("validated");
    let mut points: Vec<(f64, f64)> = Vec::new();
    for s in counts {
        let at_s: Vec<&Record> = recs.iter().copied().filter(|r| r.sms == s).collect();
        let with = |v: f64| {
            let mut q = p.clone();
            let t = if decode { &mut q.attention.decode_bandwidth } else { &mut q.attention.prefill_flops };
            t.iter_mut().for_each(|x| *x = v);
            q
        };
        let v = golden((top * 0.01).ln(), (top * 3.0).ln(), |lv| loss(&with(lv.exp()), &at_s)).exp();
        points.push((f64::from(s), v));
    }
    let xs: Vec<f64> = points.iter().map(|t| t.0).collect();
    let ys: Vec<f64> = points.iter().map(|t| t.1).collect();
    let rows = p.sm_counts.clone();
    let mut prev = 0.0f64;
    let t = if decode { &mut p.attention.decode_bandwidth } else { &mut p.attention.prefill_flops };
    for (i, &row) in rows.iter().enumerate() {
        let x = f64::from(row);
        let v = if x < xs[0] { ys[0] * x / xs[0] } else { crate::interp::linear(&xs, &ys, x) };
        t[i] = v.max(prev);
        prev = t[i];
    }
}

/// Fits `base` (whose identity, SM rows, attention and overheads are kept) to `records`.
pub fn fit(
    base: &Profile,
    records: &[Record],
    source: &str,
    date: &str,
) -> Result<(Profile, FitSummary), CalibrationError> {
    let full = base.gpu.num_sms;
    let mut skipped = Vec::new();
    let over: usize = records.iter().filter(|r| r.sms > full).count();
    if over > 0 {
        return Err(CalibrationError::NoData(format!(
            "{over} record(s) ran on more SMs than {} has ({full})",
            base.gpu.name
        )));
    }
    let corun = records.iter().filter(|r| r.corunner.is_some()).count();
    if corun > 0 {
        skipped.push(("measured with a co-runner".to_string(), corun));
    }
    let usable: Vec<&Record> = records.iter().filter(|r| r.sms == full && r.corunner.is_none()).collect();
    let of = |op: OpClass| usable.iter().copied().filter(|r| r.op == op).collect::<Vec<&Record>>();
    let linear = of(OpClass::Linear);
    if linear.is_empty() {
        return Err(CalibrationError::NoData("no whole-GPU linear-layer record to fit".into()));
    }
    let mut p = base.clone();
    p.gemm.split_k = true;
    let row = p.sm_counts.len() - 1;
    // Token grid up to the largest measurement.
    let max_m = linear.iter().map(|r| r.tokens).max().unwrap_or(1).max(1);
    let mut grid = vec![1.0];
    while *grid.last().expect("non-empty") < max_m as f64 {
        grid.push(grid.last().expect("non-empty") * 2.0);
    }
    let start_eff = p.gemm_efficiency(full, 1 << 12);
    p.gemm.m_grid = grid.clone();
    p.gemm.efficiency = vec![vec![start_eff; grid.len()]; p.sm_counts.len()];
    let bw_scale: Vec<f64> = p.gemm.bandwidth.iter().map(|b| b / p.gemm.bandwidth[row]).collect();
    let peak_bw = p.gpu.hbm_bandwidth;
    // Discrete shape parameters, one at a time: each candidate gets a brief fit and the lowest loss wins.
    let pick = |p: &Profile, set: &dyn Fn(&mut Profile, usize), n: usize| -> usize {
        let mut best = (f64::INFINITY, 0);
        for i in 0..n {
            let mut q = p.clone();
            set(&mut q, i);
            fit_gemm(&mut q, &linear, &grid, &bw_scale, peak_bw, 2);
            let l = loss(&q, &linear);
            if l < best.0 {
                best = (l, i);
            }
        }
        best.1
    };
    // The row tile sets both the row padding and the wave tiles (separate choices overfit the training shapes:
    // tried, worse on other models).
    let rows = [1u64, 32, 64, 128, 256];
    let set_rows = |q: &mut Profile, i: usize| {
        q.gemm.tile_m = rows[i];
        q.gemm.pad_m = (rows[i] > 1).then_some(rows[i]);
    };
    let i = pick(&p, &set_rows, rows.len());
    set_rows(&mut p, i);
    let pads_n = [None, Some(64), Some(128), Some(256)];
    let i = pick(&p, &|q, i| q.gemm.pad_n = pads_n[i], pads_n.len());
    p.gemm.pad_n = pads_n[i];
    fit_gemm(&mut p, &linear, &grid, &bw_scale, peak_bw, 6);
    let mut used = vec![("linear".to_string(), linear.len())];
    for name in ELEMENTWISE_OPS {
        let op = match name {
            "rmsnorm" => OpClass::Rmsnorm,
            "silu_mul" => OpClass::SiluMul,
            "rotary" => OpClass::Rotary,
            "embedding" => OpClass::Embedding,
            _ => OpClass::Add,
        };
        let recs = of(op);
        if recs.is_empty() {
            continue;
        }
        used.push((name.to_string(), recs.len()));
        let scale: Vec<f64> =
            p.elementwise[name].bandwidth.iter().map(|b| b / p.elementwise[name].bandwidth[row]).collect();
        for _ in 0..4 {
            let fl = golden(0.0, 50_000.0, |v| {
                let mut q = p.clone();
                q.elementwise.get_mut(name).expect("validated").floor_ns = v;
                loss(&q, &recs)
            });
            p.elementwise.get_mut(name).expect("validated").floor_ns = fl;
            let b = golden(0.05 * peak_bw, 1.0 * peak_bw, |v| {
                let mut q = p.clone();
                q.elementwise.get_mut(name).expect("validated").bandwidth = scale.iter().map(|s| s * v).collect();
                loss(&q, &recs)
            });
            p.elementwise.get_mut(name).expect("validated").bandwidth = scale.iter().map(|s| s * b).collect();
        }
    }
    let ar = of(OpClass::AllReduce);
    if !ar.is_empty() {
        used.push(("allreduce".to_string(), ar.len()));
        let mut counts: Vec<u32> = ar.iter().filter_map(|r| r.workers).collect();
        counts.sort_unstable();
        counts.dedup();
        p.allreduce.by_workers.clear();
        for n in counts {
            let recs: Vec<&&Record> = ar.iter().filter(|r| r.workers == Some(n)).collect();
            let loss_of = |lat: f64, bw: f64| {
                let q = AllReduce { latency_ns: lat, bus_bandwidth: bw, by_workers: Vec::new() };
                recs.iter().map(|r| (q.time_s(r.work().bytes, n) * 1e3 / r.time_ms.median).ln().abs()).sum::<f64>()
                    / recs.len() as f64
            };
            let (mut lat, mut bw) = (p.allreduce.latency_ns, p.allreduce.bus_bandwidth);
            for _ in 0..8 {
                lat = golden(0.0, 200_000.0, |v| loss_of(v, bw));
                bw = golden(1e9, 2e12, |v| loss_of(lat, v));
            }
            p.allreduce.by_workers.push(AllReduceFit { workers: n, latency_ns: lat, bus_bandwidth: bw });
        }
    }
    let partial: Vec<&Record> =
        records.iter().filter(|r| r.sms < full && r.corunner.is_none() && r.op == OpClass::Linear).collect();
    let other_partial =
        records.iter().filter(|r| r.sms < full && r.corunner.is_none() && r.op != OpClass::Linear).count();
    if other_partial > 0 {
        skipped.push((format!("non-GEMM records on fewer than {full} SMs (per-SM fitting uses GEMMs)"), other_partial));
    }
    if !partial.is_empty() {
        used.push(("linear (per SM count)".to_string(), partial.len()));
        fit_sm_rows(&mut p, &partial);
    }
    for (op, decode) in [(OpClass::AttentionPrefill, false), (OpClass::AttentionDecode, true)] {
        let recs: Vec<&Record> = records.iter().filter(|r| r.op == op && r.corunner.is_none()).collect();
        if !recs.is_empty() {
            used.push((op.as_str().to_string(), recs.len()));
            fit_attention_rows(&mut p, &recs, decode);
        }
    }
    p.provenance.kind = "fitted".into();
    p.provenance.date = date.into();
    p.provenance.source = source.into();
    p.validate().map_err(|m| CalibrationError::NoData(format!("the fit produced an invalid profile: {m}")))?;
    Ok((p, FitSummary { used, skipped }))
}

/// Sets the contention interference from co-running measurements: the median slowdown of the memory-bound
/// decode-side kernel (with the HBM demand of these pairs below what the GPU delivers, the bandwidth model stretches
/// nothing, so the whole slowdown is interference).
pub fn fit_contention(p: &mut Profile, corun: &[crate::record::Corun]) {
    if corun.is_empty() {
        return;
    }
    let mut v: Vec<f64> = corun.iter().map(|c| c.decode_slowdown.max(0.0)).collect();
    v.sort_by(f64::total_cmp);
    p.contention.interference = v[v.len() / 2];
}
