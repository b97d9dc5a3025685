//! Profiles, fitting and checking: bundled profiles load, the datasheet profile reproduces the default curves,
//! the schema round-trips, fitting recovers known parameters from synthetic records, and bad input is refused.

use std::path::{Path, PathBuf};

use duet_calibration::record::{OpClass, Record, TimeStats, read_vidur};
use duet_calibration::{CalibrationError, Profile, check, fit};
use duet_sim::GpuSpec;
use duet_sim::cost::{DefaultCurves, DeviceCurves, Elementwise, ops};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("duet-cal-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn bundled_profiles_load_and_match_their_gpu() {
    for name in ["h100-sxm", "h200", "a100-80gb"] {
        let p = Profile::resolve(name).unwrap();
        let g = GpuSpec::by_name(name).unwrap();
        assert_eq!((p.gpu.name.as_str(), p.gpu.num_sms), (name, g.num_sms));
        assert!(!p.provenance.source.is_empty());
        // Monotone in SMs: throughput tables never decrease, so a GEMM without wave quantisation (fewer tiles
        // than SMs) never gets slower with more SMs. (Wave quantisation itself is not monotone: 1,536 tiles take
        // 19 waves on 82 and on 84 SMs.)
        let c = p.curves();
        let w = ops::linear(16, 4096, 4096, 2);
        let (mut last_t, mut last_bw, mut last_fl) = (f64::INFINITY, 0.0, 0.0);
        for sms in 1..=g.num_sms {
            let t = c.gemm_time(sms, 16, 4096, w);
            assert!(t <= last_t * (1.0 + 1e-12), "{name}: {sms} SMs");
            assert!(c.bandwidth(sms) >= last_bw && c.attention_flops(sms) >= last_fl, "{name}: {sms} SMs");
            (last_t, last_bw, last_fl) = (t, c.bandwidth(sms), c.attention_flops(sms));
        }
    }
    assert!(matches!(Profile::resolve("tpu-v5"), Err(CalibrationError::UnknownProfile(_))));
}

/// The cost model evaluates attention from `attention_rates` when the curves give them: the very `f64` that
/// `attention_time` returns, for bundled profiles and the datasheet curves, every SM count, both phases.
#[test]
fn attention_rates_give_the_same_times_as_attention_time() {
    let mut curves: Vec<(String, Box<dyn DeviceCurves>)> = Vec::new();
    for name in ["h100-sxm", "h200", "a100-80gb"] {
        curves.push((format!("{name} profile"), Box::new(Profile::resolve(name).unwrap().curves())));
        curves.push((format!("{name} datasheet"), Box::new(DefaultCurves::new(GpuSpec::by_name(name).unwrap()))));
    }
    for (label, c) in &curves {
        for sms in [1, 7, 8, 33, 64, 100, 108, 131, 132, 200] {
            let r = c.attention_rates(sms).unwrap_or_else(|| panic!("{label}: rates"));
            for (q, ctx) in [(1, 0), (1, 17), (1, 4095), (1, 100_000), (2, 0), (512, 3000), (8192, 0)] {
                let w = ops::attention(q, ctx, 32, 8, 128, 2);
                let (a, b) = (r.time(w, q == 1), c.attention_time(sms, w, q == 1));
                assert_eq!(a.to_bits(), b.to_bits(), "{label}: {sms} SMs, q {q}, context {ctx}");
            }
        }
    }
}

/// The cost model times a decoding request's attention as its bytes over the decode bandwidth where every decode
/// is memory-bound: the very `f64` of the curves' `max(F / Pi, B / BW)`, for every bundled model on the bundled
/// profiles and datasheet curves, every SM count, contexts up to the longest; and that shortcut is taken.
#[test]
fn memory_bound_decodes_are_timed_as_the_curves_time_them() {
    use duet_sim::ModelSpec;
    use duet_sim::cost::{CostConfig, CostModel};
    use std::sync::Arc;
    let mut taken = 0;
    for name in ["h100-sxm", "h200", "a100-80gb"] {
        let g = GpuSpec::by_name(name).unwrap();
        let curves: [Arc<dyn DeviceCurves>; 2] =
            [Arc::new(Profile::resolve(name).unwrap().curves()), Arc::new(DefaultCurves::new(g.clone()))];
        for c in curves {
            for model in ModelSpec::bundled_names() {
                let m = ModelSpec::resolve(model).unwrap();
                let cm = CostModel::with_curves(m.clone(), g.clone(), c.clone(), CostConfig::default());
                for sms in 1..=g.num_sms {
                    taken += usize::from(cm.decode_is_memory_bound(sms));
                    for ctx in [0, 1, 17, 4095, 32_768, 131_071, 1 << 20] {
                        let w = ops::attention(1, ctx, m.num_q_heads, m.num_kv_heads, m.head_dim, m.dtype_bytes);
                        let (a, b) = (cm.attention_time(sms, 1, ctx), c.attention_time(sms, w, true));
                        assert_eq!(a.to_bits(), b.to_bits(), "{name} {model}: {sms} SMs, context {ctx}");
                    }
                }
            }
        }
    }
    assert!(taken > 0, "the memory-bound shortcut was never taken");
}

#[test]
fn datasheet_profile_reproduces_the_default_curves() {
    for name in ["h100-sxm", "a100-80gb"] {
        let g = GpuSpec::by_name(name).unwrap();
        let (p, d) = (Profile::from_gpu_spec(&g).curves(), DefaultCurves::new(g.clone()));
        for sms in [2, 8, 30, 64, 100, g.num_sms] {
            for (m, n, k) in [(1, 4096, 4096), (300, 22016, 4096), (4096, 1280, 8192)] {
                let w = ops::linear(m, k, n, 2);
                let (a, b) = (p.gemm_time(sms, m, n, w), d.gemm_time(sms, m, n, w));
                assert!((a - b).abs() <= 1e-12 * b, "{name} {sms} {m}x{n}: {a} vs {b}");
            }
            let w = ops::rmsnorm(100, 4096, 2);
            assert!(
                (p.elementwise_time(sms, Elementwise::RmsNorm, w) - d.elementwise_time(sms, Elementwise::RmsNorm, w))
                    .abs()
                    < 1e-15
            );
            let a = ops::attention(1, 1000, 32, 8, 128, 2);
            assert!((p.attention_time(sms, a, true) - d.attention_time(sms, a, true)).abs() < 1e-15);
        }
    }
}

#[test]
fn schema_round_trips_and_newer_versions_are_refused() {
    let p = Profile::resolve("h100-sxm").unwrap();
    let back = Profile::from_json(Path::new("x.json"), &p.to_json()).unwrap();
    assert_eq!(back, p);
    let newer = p.to_json().replacen("\"schema_version\": 1", "\"schema_version\": 2", 1);
    let e = Profile::from_json(Path::new("new.json"), &newer).unwrap_err().to_string();
    assert!(e.contains("schema version 2 is newer than this duet understands (1)"), "{e}");
    let mut bad = p.clone();
    bad.gemm.bandwidth.pop();
    let e = Profile::from_json(Path::new("b.json"), &bad.to_json()).unwrap_err().to_string();
    assert!(e.contains("gemm.bandwidth"), "{e}");
    bad = p.clone();
    bad.sm_counts.reverse();
    assert!(Profile::from_json(Path::new("b.json"), &bad.to_json()).is_err());
}

fn synthetic(truth: &Profile) -> Vec<Record> {
    // Records generated by the model itself, with deterministic +-3% noise.
    let c = truth.curves();
    let mut out = Vec::new();
    let mut noise = 0.37f64;
    for &(k, n) in &[(4096u64, 12288u64), (4096, 4096), (4096, 22016), (11008, 4096), (8192, 1280), (8192, 11008)] {
        for m in (0..=12).map(|i| 1u64 << i).chain([24, 48, 96, 192, 384, 768, 1536, 3072]) {
            noise = (noise * 9301.0 + 49297.0) % 233280.0 / 233280.0;
            let w = ops::linear(m, k, n, 2);
            let t = c.gemm_time(132, m, n, w) * 1e3 * (1.0 + 0.06 * (noise - 0.5));
            out.push(Record::linear(format!("synthetic {m}x{k}x{n}"), m, k, n, 132, t));
        }
    }
    out
}

#[test]
fn fitting_recovers_known_parameters_from_synthetic_records() {
    let g = GpuSpec::by_name("h100-sxm").unwrap();
    let mut truth = Profile::from_gpu_spec(&g);
    truth.gemm.split_k = true;
    truth.gemm.floor_ns = 6_000.0;
    truth.gemm.blend = Some(2.0);
    truth.gemm.bandwidth.iter_mut().for_each(|b| *b *= 0.9);
    let records = synthetic(&truth);
    let (fitted, summary) = fit::fit(&Profile::from_gpu_spec(&g), &records, "synthetic", "2026-11-26").unwrap();
    assert_eq!(summary.used, vec![("linear".to_string(), records.len())]);
    let full = |p: &Profile| *p.gemm.bandwidth.last().unwrap();
    println!(
        "fitted: bandwidth {:.3e} (truth {:.3e}), floor {:.0} ns (6000), blend {:?} (2), efficiency@4096 {:.3} (0.75), tile_m {}, pad_m {:?}, pad_n {:?}",
        full(&fitted),
        full(&truth),
        fitted.gemm.floor_ns,
        fitted.gemm.blend,
        fitted.gemm.gemm_efficiency_probe(),
        fitted.gemm.tile_m,
        fitted.gemm.pad_m,
        fitted.gemm.pad_n
    );
    assert!((full(&fitted) / full(&truth) - 1.0).abs() < 0.10, "bandwidth {} vs {}", full(&fitted), full(&truth));
    assert!((fitted.gemm.floor_ns - 6_000.0).abs() < 1_000.0, "floor {}", fitted.gemm.floor_ns);
    assert!(
        (fitted.gemm.gemm_efficiency_probe() - 0.75).abs() < 0.06,
        "efficiency {}",
        fitted.gemm.gemm_efficiency_probe()
    );
    // Its predictions are within the noise of the generating model.
    let r = check::report(&check::predict(&fitted, &records));
    assert!(r.overall.median_abs_pct < 2.0 && r.overall.p90_abs_pct < 4.0, "{:?}", r.overall);
}

trait Probe {
    fn gemm_efficiency_probe(&self) -> f64;
}

impl Probe for duet_calibration::profile::GemmTable {
    /// Efficiency at 4096 tokens on the whole GPU (the last SM row).
    fn gemm_efficiency_probe(&self) -> f64 {
        let j = self.m_grid.iter().position(|&m| m == 4096.0).unwrap();
        self.efficiency.last().unwrap()[j]
    }
}

#[test]
fn bad_measurements_are_refused_with_their_line() {
    let header = "time_stats.mlp_up_proj.median,n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,use_gated_mlp,num_tokens,num_tensor_parallel_workers";
    let p = tmp("v.csv");
    std::fs::write(
        &p,
        format!("{header}\n0.5,32,32,4096,11008,32000,True,16,1\n-0.2,32,32,4096,11008,32000,True,32,1\n"),
    )
    .unwrap();
    let e = read_vidur(&p, 132).unwrap_err().to_string();
    assert!(e.contains("v.csv:3: time_stats.mlp_up_proj.median must be > 0 ms, found -0.2"), "{e}");
    std::fs::write(&p, "time_stats.mlp_up_proj.median,n_head\n0.5,32\n").unwrap();
    let e = read_vidur(&p, 132).unwrap_err().to_string();
    assert!(e.contains("missing column \"num_tokens\""), "{e}");
    // A record on more SMs than the GPU has.
    let g = GpuSpec::by_name("h100-sxm").unwrap();
    let mut recs = synthetic(&Profile::from_gpu_spec(&g));
    recs[0].sms = 200;
    let e = fit::fit(&Profile::from_gpu_spec(&g), &recs, "x", "d").unwrap_err().to_string();
    assert!(e.contains("ran on more SMs than h100-sxm has (132)"), "{e}");
    // Co-runner records and non-GEMM records on partitions are skipped with a count and reason; a GEMM on a
    // partition fits the per-SM rows.
    let mut recs = synthetic(&Profile::from_gpu_spec(&g));
    recs[0].sms = 66;
    recs[1].corunner = Some("decode".into());
    recs[2].op = OpClass::Add;
    recs[2].sms = 66;
    let (_, s) = fit::fit(&Profile::from_gpu_spec(&g), &recs, "x", "d").unwrap();
    assert_eq!(s.skipped.len(), 2, "{:?}", s.skipped);
    assert!(s.skipped.iter().all(|(_, n)| *n == 1));
    assert!(s.used.contains(&("linear (per SM count)".to_string(), 1)), "{:?}", s.used);
}

#[test]
fn allreduce_fit_recovers_the_ring_model() {
    let g = GpuSpec::by_name("h100-sxm").unwrap();
    let truth =
        duet_calibration::profile::AllReduce { latency_ns: 7_000.0, bus_bandwidth: 300e9, by_workers: Vec::new() };
    let mut recs = synthetic(&Profile::from_gpu_spec(&g));
    for (i, bytes) in [4_096u64, 65_536, 1 << 20, 8 << 20, 64 << 20].iter().enumerate() {
        for workers in [2u32, 4] {
            recs.push(Record {
                op: OpClass::AllReduce,
                name: format!("ar{i}"),
                tokens: 1,
                d_in: 0,
                d_out: *bytes,
                dtype_bytes: 1,
                sms: 132,
                corunner: None,
                workers: Some(workers),
                q_heads: None,
                kv_heads: None,
                batch: None,
                time_ms: TimeStats::median_only(truth.time_s(*bytes as f64, workers) * 1e3),
            });
        }
    }
    let (p, _) = fit::fit(&Profile::from_gpu_spec(&g), &recs, "x", "d").unwrap();
    assert_eq!(p.allreduce.by_workers.len(), 2);
    for f in &p.allreduce.by_workers {
        assert!((f.latency_ns - 7_000.0).abs() < 100.0 && (f.bus_bandwidth / 300e9 - 1.0).abs() < 0.01, "{f:?}");
    }
}

#[test]
fn per_sm_records_set_the_sm_rows() {
    let g = GpuSpec::by_name("h100-sxm").unwrap();
    // Truth: bandwidth saturating at 32 SMs instead of the datasheet base's 64.
    let truth = Profile::from_gpu_spec(&g).with_bandwidth_saturation(32);
    let c = truth.curves();
    let mut recs = synthetic(&truth);
    for sms in [8u32, 16, 24, 32, 48, 64, 96] {
        for (m, k, n) in [(4096u64, 4096u64, 4096u64), (32, 4096, 14336)] {
            let t = c.gemm_time(sms, m, n, ops::linear(m, k, n, 2)) * 1e3;
            recs.push(Record::linear(format!("{m}@{sms}"), m, k, n, sms, t));
        }
    }
    let (fitted, summary) = fit::fit(&Profile::from_gpu_spec(&g), &recs, "x", "d").unwrap();
    assert!(summary.used.iter().any(|(c, n)| c == "linear (per SM count)" && *n == 14), "{:?}", summary.used);
    let (f, t) = (fitted.curves(), truth.curves());
    for sms in [8u32, 16, 24, 32, 64] {
        let ratio = f.bandwidth(sms) / t.bandwidth(sms);
        assert!((ratio - 1.0).abs() < 0.1, "{sms} SMs: fitted/true bandwidth {ratio}");
    }
}

#[test]
fn attention_records_fit_the_attention_rows() {
    let g = GpuSpec::by_name("h100-sxm").unwrap();
    let mut truth = Profile::from_gpu_spec(&g);
    truth.attention.decode_bandwidth.iter_mut().for_each(|b| *b *= 1.2);
    truth.attention.prefill_flops.iter_mut().for_each(|f| *f *= 0.8);
    let c = truth.curves();
    let mut recs = synthetic(&Profile::from_gpu_spec(&g));
    for sms in [16u32, 32, 64, 132] {
        for (decode, q, cached) in [(false, 2048u64, 0u64), (false, 4096, 0), (true, 1, 1024), (true, 1, 4096)] {
            let w = ops::attention(q, cached, 32, 8, 128, 2);
            let t = c.attention_time(sms, w, decode) * 32.0 * 1e3;
            recs.push(Record {
                op: if decode { OpClass::AttentionDecode } else { OpClass::AttentionPrefill },
                name: "attn".into(),
                tokens: q,
                d_in: cached,
                d_out: 128,
                dtype_bytes: 2,
                sms,
                corunner: None,
                workers: None,
                q_heads: Some(32),
                kv_heads: Some(8),
                batch: Some(32),
                time_ms: TimeStats::median_only(t),
            });
        }
    }
    let (fitted, _) = fit::fit(&Profile::from_gpu_spec(&g), &recs, "x", "d").unwrap();
    let (f, t) = (fitted.curves(), truth.curves());
    for sms in [16u32, 32, 64, 132] {
        let w = ops::attention(1, 2000, 32, 8, 128, 2);
        let (a, b) = (f.attention_time(sms, w, true), t.attention_time(sms, w, true));
        assert!((a / b - 1.0).abs() < 0.02, "decode at {sms} SMs: {a} vs {b}");
        let (a, b) = (f.attention_flops(sms), t.attention_flops(sms));
        assert!((a / b - 1.0).abs() < 0.02, "prefill at {sms} SMs: {a} vs {b}");
    }
    // Attention records need their head counts.
    let mut bad = recs.last().unwrap().clone();
    bad.q_heads = None;
    let p = tmp("attn.jsonl");
    std::fs::write(&p, duet_calibration::record::to_jsonl(&[bad])).unwrap();
    let e = duet_calibration::record::read_jsonl(&p).unwrap_err().to_string();
    assert!(e.contains("q_heads, kv_heads and batch (>= 1) are required for attention records"), "{e}");
}
