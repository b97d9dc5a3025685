//! What each subcommand does: turn arguments into library calls and print the results.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use duet_sim::cost::check::{LINEAR_OPS, compare_vidur_linear, error_stats};
use duet_sim::kv::{KvCapacity, KvConfig};
use duet_sim::{GpuSpec, ModelSpec, report, simulate, trace_event};

use crate::cli::{RooflineArgs, SimArgs};
pub(crate) use duet_args::{config, load_workload};

/// `duet sim`.
pub fn sim(a: &SimArgs, out: Option<&Path>, overwrite: bool, timeline: Option<&Path>) -> Result<()> {
    let started = Instant::now();
    let mut cfg = config(a)?;
    // Only a timeline needs every iteration record in memory; --out streams them (below), else none is written.
    cfg.keep_iterations = timeline.is_some();
    // Every decision record only for decisions.csv (the printed report needs their counts).
    cfg.keep_decisions = out.is_some();
    // The output folder is checked (and its staging folder made) before the run, not after it.
    let staged = out.map(|d| duet_sim::outdir::Staged::begin(d, overwrite)).transpose()?;
    let w = load_workload(a, &cfg)?;
    for n in duet_args::option_notes(a).iter().chain(&w.notes) {
        eprintln!("note: {n}");
    }
    // With --out (and no timeline, which needs every record in memory), iterations.csv is written as the run goes.
    let streamed = staged.is_some() && timeline.is_none();
    let run = match &staged {
        Some(st) if streamed => {
            let path = st.path().join("iterations.csv");
            let sink = report::iterations_csv_sink(&path).with_context(|| format!("creating {}", path.display()))?;
            duet_sim::run::simulate_streaming(&w, &cfg, sink)?
        }
        _ => simulate(&w, &cfg)?,
    };
    let elapsed = started.elapsed();
    for n in report::run_notes(&run) {
        eprintln!("note: {n}");
    }
    println!("{}", report::table(&run));
    println!("simulated {} requests in {:.3} s wall time", w.len(), elapsed.as_secs_f64());
    if let (Some(dir), Some(staged)) = (out, staged) {
        report::write_dir_with(&run, staged.path(), !streamed)
            .with_context(|| format!("writing results for {}", dir.display()))?;
        staged.commit()?;
        println!("wrote summary.json, requests.csv, decisions.csv and iterations.csv to {}", dir.display());
    }
    if let Some(path) = timeline {
        let src = trace_event::TraceSource::from_run("simulated", &run.output.iterations, &run.output.requests);
        std::fs::write(path, serde_json::to_string(&trace_event::trace(&[src]))?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote the timeline (Perfetto trace) to {}", path.display());
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
    let mut cfg = config(a)?;
    // What `duet sim` without a timeline runs: no run keeps every iteration record in memory.
    cfg.keep_iterations = false;
    cfg.keep_decisions = false;
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for i in 0..=runs {
        let t = Instant::now();
        let w = load_workload(a, &cfg)?;
        let run = simulate(&w, &cfg)?;
        if i > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
        last = Some((w.len(), run.output.stats.iterations as usize, run.meta.policy));
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
        println!(
            "{:<16} {:>6} {:>16.1} {:>13.1}",
            op.unwrap_or("all linear"),
            s.count,
            s.median_abs_pct,
            s.p90_abs_pct
        );
    }
    Ok(())
}
