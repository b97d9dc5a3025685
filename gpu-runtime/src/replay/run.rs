//! `duet-gpu replay`: a trace window under a policy on the GPU, with exactly the options of `duet sim`, writing
//! what `duet sim --out` writes plus `steps.csv` (every step's work and GPU time) and `replay.json` (device,
//! executor counters, GPU idle fraction between decode steps).

use anyhow::{Context, Result, bail};
use duet_args::SimArgs;
use std::sync::Arc;

use duet_sim::cost::CostModel;
use duet_sim::executor::SimExecutor;
use duet_sim::kv::KvCapacity;
use duet_sim::partition::Granularity;
use duet_sim::realtime::FakeExecutor;
use duet_sim::run::SimConfig;
use duet_sim::validate::{decode_idle_fraction, steps_csv, steps_from_run};
use duet_sim::{report, run};
use serde_json::json;

use super::executor::{CudaExecutor, ExecutorConfig};
use crate::bench::{Setup, choose_prefill_kernel};
use crate::lookahead::{graph_buckets, window_graph_keys};

/// Options besides the simulation's.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Output folder.
    pub out: std::path::PathBuf,
    /// Replay look-ahead steps from CUDA graphs.
    pub graphs: bool,
    /// Extra folders to look for CUDA headers in.
    pub include_search: Vec<std::path::PathBuf>,
}

/// Most sequences a replay step holds.
pub const MAX_SEQS: u32 = 512;

/// The graphs to capture at start-up: (decode partition SMs, bucket) of every look-ahead window of the same run on
/// the cost model's clock (`duet_sim::realtime::FakeExecutor`; milliseconds of CPU). The GPU run may still open a
/// window the prediction did not; its graph is captured then and counted in `late_captures`.
pub fn startup_graphs(w: &duet_traces::Workload, cfg: &SimConfig, cost: Arc<CostModel>) -> Result<Vec<(u32, u32)>> {
    let mut fake = FakeExecutor::new(SimExecutor::new(cost));
    run::run_wall_clock(w, cfg, &mut fake)?;
    Ok(window_graph_keys(&fake.windows, &graph_buckets(MAX_SEQS)))
}

/// Runs the replay; progress lines go to `log`.
pub fn replay(a: &SimArgs, o: &ReplayOptions, log: &mut dyn FnMut(&str)) -> Result<()> {
    let cfg = run::device_config(duet_args::config(a)?);
    if cfg.granularity != Granularity::Green {
        bail!("a replay partitions SMs with green contexts: pass --granularity green");
    }
    if !cfg.cluster.is_single() {
        bail!("a replay drives one instance on one GPU (no --replicas, --disagg or --tp)");
    }
    let w = duet_args::load_workload(a, &cfg)?;
    let model = cfg.model.clone();
    let setup = Setup::open(&model, &o.include_search, log)?;
    if setup.gpu.facts.sm.total != cfg.num_sms {
        bail!(
            "the device has {} SMs but the run is configured for {} (--num-sms)",
            setup.gpu.facts.sm.total,
            cfg.num_sms
        );
    }
    let checks = setup.checks(&model, log)?;
    let failed: Vec<&str> =
        checks.iter().filter(|c| !c.passed && c.kernel != "prefill_attention_tc").map(|c| c.kernel.as_str()).collect();
    if !failed.is_empty() {
        bail!("kernel checks failed ({failed:?}); a replay on wrong kernels measures nothing");
    }
    let kv = KvCapacity::compute(&model, &cfg.gpu, &cfg.kv)?;
    let cost = run::cost_model(&cfg)?;
    let ecfg = ExecutorConfig {
        max_tokens: cfg.policy.token_budget().max(256) + 256,
        max_seqs: MAX_SEQS,
        max_context: model
            .max_context
            .unwrap_or(32_768)
            .max(w.requests.iter().map(|r| r.input_tokens + r.output_tokens).max().unwrap_or(1)),
        kv_blocks: kv.total_blocks,
        graphs: o.graphs,
        prefill_kernel: choose_prefill_kernel(&checks),
        seed: cfg.seed,
        startup_graphs: if o.graphs { startup_graphs(&w, &cfg, Arc::clone(&cost))? } else { Vec::new() },
    };
    log(&format!("executor: {ecfg:?}"));
    let mut exec = CudaExecutor::new(&setup, cost, ecfg)?;
    let n = exec.capture_startup()?;
    log(&format!("captured {n} look-ahead graphs at start-up in {:.0} ms", exec.stats.startup_capture_ms));
    log(&format!("replaying {} requests ({}) under {}", w.len(), w.source, a.policy));
    let r = run::run_wall_clock(&w, &cfg, &mut exec)?;
    println!("{}", report::table(&r));
    report::write_dir(&r, &o.out).with_context(|| format!("writing {}", o.out.display()))?;
    let mut steps = steps_from_run(&r.output.iterations, &exec.log);
    // Each step's GPU time between its own events, found by the ticket of its call.
    for (s, &t) in steps.iter_mut().zip(&exec.log_tickets) {
        let g = exec.gpu_ns[t as usize];
        if g > 0 {
            s.measured_ns = g;
        }
    }
    std::fs::write(o.out.join("steps.csv"), steps_csv(&steps)).context("writing steps.csv")?;
    let meta = json!({
        "device": setup.gpu.facts,
        "executor": exec.stats,
        "decode_idle_fraction": decode_idle_fraction(&r.output.iterations),
        "steps": steps.len(),
        "graphs": o.graphs,
    });
    std::fs::write(o.out.join("replay.json"), serde_json::to_string_pretty(&meta)?).context("writing replay.json")?;
    log(&format!("{meta}"));
    Ok(())
}
