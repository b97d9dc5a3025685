//! `duet-gpu replay`: a trace window under a policy on the GPU, with exactly the options of `duet sim`, writing
//! what `duet sim --out` writes plus `steps.csv` (every step's work and GPU time) and `replay.json` (device,
//! recorded options and resolved settings, executor counters, GPU idle fraction between decode steps).
//!
//! Order of a replay: open the device and take the GPU to simulate from it ([`crate::device::open_identified`]);
//! create the partitions, compile and load the kernels; check every kernel (a failed check stops the replay unless
//! `--allow-failed-checks`); size the KV cache from the memory left free ([`kv_blocks_that_fit`]); write
//! `replay.json` (status `running`) so a run cut short still says what it was; capture the start-up graphs; start
//! the clock; replay, appending each step to `steps.partial.csv` as it ends; write the results and `replay.json`
//! (status `complete`).

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
use serde_json::{Value, json};

use super::executor::{CudaExecutor, ExecutorConfig, buffer_bytes};
use super::model::{kv_blocks_that_fit, replay_kv_blocks};
use crate::device::{Setup, choose_prefill_kernel, open_identified};
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
    /// Replay even when kernel checks failed (the run is marked so in `replay.json`).
    pub allow_failed_checks: bool,
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

/// The executor's sizes for a run of `w` under `cfg` with `kv_blocks` blocks.
fn executor_config(w: &duet_traces::Workload, cfg: &SimConfig, kv_blocks: u32, graphs: bool) -> ExecutorConfig {
    ExecutorConfig {
        max_tokens: cfg.policy.token_budget().max(256) + 256,
        max_seqs: MAX_SEQS,
        max_context: cfg
            .model
            .max_context
            .unwrap_or(32_768)
            .max(w.requests.iter().map(|r| r.input_tokens + r.output_tokens).max().unwrap_or(1)),
        kv_blocks,
        graphs,
        prefill_kernel: crate::ops::PrefillKernel::Simt,
        seed: cfg.seed,
        startup_graphs: Vec::new(),
    }
}

fn write_json(path: &std::path::Path, v: &Value) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(v)?).with_context(|| format!("writing {}", path.display()))
}

/// Runs the replay; progress lines go to `log`.
pub fn replay(typed: &SimArgs, o: &ReplayOptions, log: &mut dyn FnMut(&str)) -> Result<()> {
    let (gpu, id, gpu_name) = open_identified(typed.gpu.as_deref(), log)?;
    let mut a = typed.clone();
    a.gpu = Some(gpu_name);
    let first = duet_args::config(&a)?;
    if !matches!(first.granularity, Granularity::Green | Granularity::Green8) {
        bail!("a replay partitions SMs with green contexts: pass --granularity green (or green8)");
    }
    if !first.cluster.is_single() {
        bail!("a replay drives one instance on one GPU (no --replicas, --disagg or --tp)");
    }
    let w = duet_args::load_workload(&a, &first)?;
    let model = first.model.clone();
    let setup = Setup::open_on(gpu, &model, &o.include_search, log)?;
    if setup.gpu.facts.sm.total != first.num_sms {
        bail!(
            "the device has {} SMs but the run is configured for {} (--num-sms)",
            setup.gpu.facts.sm.total,
            first.num_sms
        );
    }
    let checks = setup.checks(&model, log)?;
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed && c.kernel != "prefill_attention_tc")
        .map(|c| format!("{} ({}) on {}", c.kernel, c.case, c.partition))
        .collect();
    if !failed.is_empty() && !o.allow_failed_checks {
        bail!(
            "kernel checks failed ({failed:?}); a replay on wrong kernels measures nothing (--allow-failed-checks to run anyway)"
        );
    }

    // The KV cache: the configured size when it fits in what the device has free now, else what fits (and the
    // simulation, recorded below, takes the same size).
    let kv0 = KvCapacity::compute(&model, &first.gpu, &first.kv)?;
    let (free, total) = setup.gpu.mem_info()?;
    let probe_cfg = executor_config(&w, &first, kv0.total_blocks, o.graphs);
    let buffers = buffer_bytes(&model, &probe_cfg, setup.gpu.facts.sm.total);
    let fits = kv_blocks_that_fit(&model, free as u64, buffers);
    let (blocks, reduced) = replay_kv_blocks(kv0.total_blocks, fits);
    log(&format!(
        "memory before the KV cache: {:.2} GiB free of {:.2} GiB; buffers {:.2} GiB; KV blocks configured {}, fit {}, \
         used {blocks}{}",
        free as f64 / (1u64 << 30) as f64,
        total as f64 / (1u64 << 30) as f64,
        buffers as f64 / (1u64 << 30) as f64,
        kv0.total_blocks,
        fits,
        if reduced { " (reduced to fit; the simulation is told with --kv-blocks)" } else { "" }
    ));
    if blocks == 0 {
        bail!("no KV block fits in the {:.2} GiB the device has free", free as f64 / (1u64 << 30) as f64);
    }
    if reduced {
        a.kv_blocks = Some(blocks);
    }
    let full = duet_args::config(&a)?;
    let kv = KvCapacity::compute(&model, &full.gpu, &full.kv)?;
    let cfg = run::device_config(full.clone());
    let cost = run::cost_model(&cfg)?;
    let mut ecfg = executor_config(&w, &cfg, kv.total_blocks, o.graphs);
    ecfg.prefill_kernel = choose_prefill_kernel(&checks);
    ecfg.startup_graphs = if o.graphs { startup_graphs(&w, &cfg, Arc::clone(&cost))? } else { Vec::new() };
    log(&format!("executor: {ecfg:?}"));

    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;
    let mut meta = duet_args::record::record(&a, &full, &kv);
    meta["status"] = "running".into();
    meta["device"] = json!({ "facts": setup.gpu.facts, "identity": id, "skipped_splits": setup.parts.skipped });
    meta["memory"] = json!({ "free_bytes": free, "total_bytes": total, "buffer_bytes": buffers,
                             "kv_blocks_configured": kv0.total_blocks, "kv_blocks_fit": fits, "kv_reduced": reduced });
    meta["libraries"] = json!(setup.libraries);
    meta["checks_failed"] = json!(failed);
    meta["allow_failed_checks"] = o.allow_failed_checks.into();
    meta["graphs"] = o.graphs.into();
    let meta_path = o.out.join("replay.json");
    write_json(&meta_path, &meta)?;

    let mut exec = CudaExecutor::new(&setup, cost, ecfg)?;
    let n = exec.capture_startup()?;
    log(&format!(
        "captured {n} look-ahead graphs at start-up in {:.0} ms ({} failed)",
        exec.stats.startup_capture_ms, exec.stats.capture_failures
    ));
    exec.log_progress_to(&o.out.join("steps.partial.csv"))?;
    exec.start_clock();
    log(&format!("replaying {} requests ({}) under {}", w.len(), w.source, cfg.policy.name()));
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
    meta["status"] = "complete".into();
    meta["executor"] = json!(exec.stats);
    meta["capture_errors"] = json!(exec.capture_errors);
    meta["decode_idle_fraction"] = json!(decode_idle_fraction(&r.output.iterations));
    meta["steps"] = steps.len().into();
    write_json(&meta_path, &meta)?;
    log(&format!("{}", meta["executor"]));
    Ok(())
}
