//! What each subcommand does: turn arguments into library calls and print the results.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use std::sync::Arc;

use duet_calibration::Profile;
use duet_sim::cluster::{ClusterConfig, KvLink, Layout, Router};
use duet_sim::cost::check::{LINEAR_OPS, compare_vidur_linear, error_stats};
use duet_sim::cost::{CostConfig, DefaultCurves, DeviceCurves, LinearSmScaling};
use duet_sim::engine::Contention;
use duet_sim::kv::{KvCapacity, KvConfig};
use duet_sim::metrics::Slo;
use duet_sim::partition::Granularity;
use duet_sim::policy::{PolicyConfig, PolicyOptions};
use duet_sim::{GpuSpec, ModelSpec, SimConfig, report, simulate};
use duet_traces::Workload;

use crate::cli::{RooflineArgs, SimArgs};
use crate::workload;

/// Parses `P:D` (prefill SMs, decode SMs).
fn parse_split(s: &str) -> Result<(u32, u32)> {
    let (p, d) = s.split_once(':').with_context(|| format!("--split {s:?} must be PREFILL_SMS:DECODE_SMS"))?;
    let num = |v: &str| v.trim().parse::<u32>().with_context(|| format!("--split {s:?}: {v:?} is not a number of SMs"));
    Ok((num(p)?, num(d)?))
}

/// Builds the simulation configuration the arguments describe.
pub fn config(a: &SimArgs) -> Result<SimConfig> {
    let model = ModelSpec::resolve(&a.model)?;
    let mut gpu = GpuSpec::by_name(&a.gpu)?;
    if let Some(s) = a.bw_saturation_sms {
        if s == 0 || s > gpu.num_sms {
            bail!("--bw-saturation-sms must be between 1 and {}, got {s}", gpu.num_sms);
        }
        gpu.bandwidth_saturation_sms = s;
    }
    let split = a.split.as_deref().map(parse_split).transpose()?;
    let opts = PolicyOptions {
        token_budget: a.token_budget,
        tbt_target_ms: a.tbt_target_ms,
        max_lookahead: a.max_lookahead,
        split,
        guard: a.decode_guard,
    };
    let policy = PolicyConfig::by_name(&a.policy, &opts)?;
    let granularity: Granularity = a.granularity.parse()?;
    let mut cost = CostConfig::default();
    if let Some(us) = a.iteration_overhead_us {
        cost.iteration_overhead_ns = us * 1_000;
    }
    if let Some(us) = a.graph_launch_us {
        cost.graph_launch_ns = us * 1_000;
    }
    let profile = match a.profile.as_deref() {
        Some("datasheet") => None,
        Some(p) => Some(Profile::resolve(p)?),
        None => Profile::bundled(&gpu.name),
    };
    let profile = match (profile, a.bw_saturation_sms) {
        (Some(p), Some(sat)) => Some(p.with_bandwidth_saturation(sat)),
        (p, _) => p,
    };
    if let Some(p) = &profile
        && p.gpu.num_sms != gpu.num_sms
    {
        bail!(
            "profile {} is for {} ({} SMs), not {} ({} SMs)",
            p.gpu.name,
            p.gpu.name,
            p.gpu.num_sms,
            gpu.name,
            gpu.num_sms
        );
    }
    if let Some(p) = &profile {
        cost.iteration_overhead_ns = a.iteration_overhead_us.map_or(p.overheads.iteration_overhead_ns, |us| us * 1_000);
        cost.graph_launch_ns = a.graph_launch_us.map_or(p.overheads.graph_launch_ns, |us| us * 1_000);
    }
    let (hbm, interference) = match &profile {
        Some(p) => (p.contention.hbm_bandwidth, p.contention.interference),
        None => (gpu.hbm_bandwidth * gpu.bandwidth_efficiency, 0.1),
    };
    let check = |v: f64, name: &str| {
        if v.is_finite() && v >= 0.0 { Ok(v) } else { Err(anyhow::anyhow!("{name} must be a fraction >= 0, got {v}")) }
    };
    let contention = match (a.contention_decode, a.contention_prefill) {
        (None, None) => {
            let interference = a
                .contention_interference
                .map(|v| check(v, "--contention-interference"))
                .transpose()?
                .unwrap_or(interference);
            Contention::Bandwidth { hbm_bandwidth: hbm, interference }
        }
        (d, p) => Contention::Fixed {
            decode_slowdown: check(d.unwrap_or(0.15), "--contention-decode")?,
            prefill_slowdown: check(p.unwrap_or(0.05), "--contention-prefill")?,
        },
    };
    let mut curves: Option<Arc<dyn DeviceCurves>> =
        profile.as_ref().map(|p| Arc::new(p.curves()) as Arc<dyn DeviceCurves>);
    let mut sat = a.bw_saturation_sms.map_or(String::new(), |s| format!(", bandwidth saturating at {s} SMs"));
    match a.sm_scaling.as_str() {
        "profile" => {}
        "linear" => {
            let inner = curves.take().unwrap_or_else(|| Arc::new(DefaultCurves::new(gpu.clone())));
            curves = Some(Arc::new(LinearSmScaling::new(inner, gpu.num_sms)));
            sat.push_str(", linear SM scaling");
        }
        other => bail!("--sm-scaling {other:?}: expected profile or linear"),
    }
    let curves_name = match &profile {
        Some(p) => format!("{} ({}{sat})", a.profile.as_deref().unwrap_or(&p.gpu.name), p.provenance.kind),
        None => format!("datasheet{sat}"),
    };
    let partition_switch_ns = a.partition_switch_us.map_or(20_000, |us| us * 1_000);
    let mut kv = KvConfig { total_blocks_override: a.kv_blocks, ..KvConfig::default() };
    if let Some(u) = a.gpu_memory_utilization {
        kv.gpu_memory_utilization = u;
    }
    let num_sms = a.num_sms.unwrap_or(gpu.num_sms);
    let slo = Slo { ttft_ms: a.slo_ttft_ms, tbt_ms: a.slo_tbt_ms, tpot_ms: a.slo_tpot_ms };
    slo.validate()?;
    Ok(SimConfig {
        model,
        gpu,
        num_sms,
        policy,
        granularity,
        contention: Some(contention),
        partition_switch_ns,
        cost,
        curves,
        curves_name,
        kv,
        prefix_cache: !a.no_prefix_cache,
        slo,
        seed: a.workload.seed,
        cluster: cluster_config(a)?,
    })
}

/// Instances, TP, router and KV link of `a`.
fn cluster_config(a: &SimArgs) -> Result<ClusterConfig> {
    let layout = match &a.disagg {
        Some(d) => {
            if a.replicas != 1 {
                bail!("--disagg {d} sets the instances; it cannot be combined with --replicas {}", a.replicas);
            }
            Layout::parse_disagg(d)?
        }
        None => Layout::Replicas(a.replicas),
    };
    if a.kv_link.is_some() && a.disagg.is_none() {
        bail!("--kv-link only applies with --disagg (replicas do not move KV)");
    }
    let c = ClusterConfig {
        layout,
        tp: a.tp,
        router: a.router.as_deref().map(Router::parse).transpose()?.unwrap_or_default(),
        link: a.kv_link.as_deref().map(KvLink::parse).transpose()?.unwrap_or(KvLink::NVLINK),
        gpus: a.gpus,
    };
    c.validate()?;
    Ok(c)
}

/// The workload of `a`, checked against the model's context.
pub(crate) fn load_workload(a: &SimArgs, cfg: &SimConfig) -> Result<Workload> {
    workload::build(&a.workload, cfg.model.max_context)
}

/// `duet sim`.
pub fn sim(a: &SimArgs, out: Option<&Path>) -> Result<()> {
    let started = Instant::now();
    let cfg = config(a)?;
    let w = load_workload(a, &cfg)?;
    for n in &w.notes {
        eprintln!("note: {n}");
    }
    let run = simulate(&w, &cfg)?;
    let elapsed = started.elapsed();
    println!("{}", report::table(&run));
    println!("simulated {} requests in {:.3} s wall time", w.len(), elapsed.as_secs_f64());
    if let Some(dir) = out {
        report::write_dir(&run, dir).with_context(|| format!("writing results to {}", dir.display()))?;
        println!("wrote summary.json, requests.csv, decisions.csv and iterations.csv to {}", dir.display());
    }
    Ok(())
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), if available.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `duet bench`: one warm-up, then `runs` timed end-to-end runs (load or generate, simulate, metrics).
pub fn bench(a: &SimArgs, runs: usize) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be >= 1");
    }
    let cfg = config(a)?;
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for i in 0..=runs {
        let t = Instant::now();
        let w = load_workload(a, &cfg)?;
        let run = simulate(&w, &cfg)?;
        if i > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
        last = Some((w.len(), run.output.iterations.len(), run.meta.policy));
    }
    times.sort_by(f64::total_cmp);
    let (n, iters, policy) = last.expect("at least one run");
    println!(
        "requests: {n}, iterations per run: {iters}, policy: {policy}, model: {}, gpu: {}",
        cfg.model.name, cfg.gpu.name
    );
    println!(
        "wall time over {runs} runs: min {:.3} s, median {:.3} s, max {:.3} s",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
    match peak_rss_bytes() {
        Some(b) => println!("peak RSS (VmHWM): {:.1} MB", b as f64 / 1e6),
        None => println!("peak RSS: not available on this OS"),
    }
    Ok(())
}

/// `duet models`.
pub fn models() -> Result<()> {
    println!(
        "{:<15} {:<27} {:>8} {:>7} {:>6} {:>5} {:>9} {:>12}",
        "name", "hugging face", "params", "layers", "hidden", "heads", "kv heads", "KV B/token"
    );
    for (m, repo) in ModelSpec::bundled() {
        println!(
            "{:<15} {:<27} {:>7.2}B {:>7} {:>6} {:>5} {:>9} {:>12}",
            m.name,
            repo,
            m.num_params() as f64 / 1e9,
            m.num_layers,
            m.hidden_size,
            m.num_q_heads,
            m.num_kv_heads,
            m.kv_bytes_per_token()
        );
    }
    println!("Any other dense model: --model path/to/config.json (Hugging Face format).");
    Ok(())
}

/// `duet gpus`.
pub fn gpus() -> Result<()> {
    println!(
        "{:<10} {:>4} {:>12} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9}",
        "name", "SMs", "BF16 TFLOP/s", "HBM TB/s", "mem GiB", "L2 MB", "gemm eff", "attn eff", "bw eff"
    );
    for g in GpuSpec::all() {
        println!(
            "{:<10} {:>4} {:>12.1} {:>9.2} {:>9.1} {:>7} {:>9.2} {:>9.2} {:>9.2}",
            g.name,
            g.num_sms,
            g.peak_flops / 1e12,
            g.hbm_bandwidth / 1e12,
            g.memory_bytes as f64 / (1u64 << 30) as f64,
            g.l2_bytes / 1_000_000,
            g.gemm_efficiency,
            g.attention_efficiency,
            g.bandwidth_efficiency
        );
    }
    let m = ModelSpec::resolve("qwen3-8b")?;
    let cap = KvCapacity::compute(&m, &GpuSpec::by_name("h100-sxm")?, &KvConfig::default())?;
    println!("Example: qwen3-8b on h100-sxm holds {} KV tokens with the default settings.", cap.total_tokens());
    Ok(())
}

/// `duet roofline-check`.
pub fn roofline_check(a: &RooflineArgs) -> Result<()> {
    let gpu = GpuSpec::by_name(&a.gpu)?;
    let rows = compare_vidur_linear(&a.profile, &gpu, a.tp)?;
    if a.rows {
        println!("{:<16} {:>7} {:>12} {:>13} {:>8}", "op", "tokens", "measured ms", "predicted ms", "abs err%");
        for r in &rows {
            println!(
                "{:<16} {:>7} {:>12.4} {:>13.4} {:>8.1}",
                r.op,
                r.num_tokens,
                r.measured_ms,
                r.predicted_ms,
                r.abs_pct_error()
            );
        }
    }
    println!("roofline vs {} (TP={}, {} on all {} SMs)", a.profile.display(), a.tp, gpu.name, gpu.num_sms);
    println!("{:<16} {:>6} {:>16} {:>13}", "op", "rows", "median abs err%", "p90 abs err%");
    for op in LINEAR_OPS.iter().map(|o| Some(*o)).chain([None]) {
        let s = error_stats(&rows, op);
        println!("{:<16} {:>6} {:>16.1} {:>13.1}", op.unwrap_or("all linear"), s.count, s.median_pct, s.p90_pct);
    }
    Ok(())
}
