//! `duet replay --dry-run`: the wall-clock replay path on a fake device, without a GPU.
//!
//! The same trace window, model and policy as `duet sim`, run through the engine's wall-clock mode
//! (`duet_sim::realtime`) on a fake device whose steps take the cost model's time x `--device-scale`. It writes
//! what `duet-gpu replay` writes on an H100 (`summary.json`, `requests.csv`, `decisions.csv`, `iterations.csv`,
//! `steps.csv`, and `replay.json` with the recorded options), so the replay-to-`duet validate` pipeline can be
//! exercised anywhere. Contention and partition switches are left to the device (on the fake one: none).

use std::path::Path;

use anyhow::{Context, Result, bail};
use duet_sim::executor::SimExecutor;
use duet_sim::realtime::FakeExecutor;
use duet_sim::run::{cost_model, device_config, run_wall_clock};
use duet_sim::validate::{steps_csv, steps_from_run};
use duet_sim::{Nanos, report};

use crate::cli::SimArgs;
use crate::commands::{config, load_workload};

/// Runs the dry-run replay and writes its files into `out`.
pub fn run(a: &SimArgs, out: &Path, overwrite: bool, dry_run: bool, scale: f64) -> Result<()> {
    if !dry_run {
        bail!(
            "the duet binary does not link the GPU runtime: replay on an H100 with `duet-gpu replay`, or add \
             --dry-run to replay on a fake device here"
        );
    }
    if !(scale.is_finite() && scale > 0.0) {
        bail!("--device-scale must be a positive number, got {scale}");
    }
    let full = config(a)?;
    let staged = duet_sim::outdir::Staged::begin(out, overwrite)?;
    let dir = staged.path();
    let kv = duet_sim::kv::KvCapacity::compute(&full.model, &full.gpu, &full.kv)?;
    let cfg = device_config(full.clone());
    let w = load_workload(a, &cfg)?;
    let cost = cost_model(&cfg)?;
    let mut dev = FakeExecutor::with_durations(
        SimExecutor::new(cost),
        Box::new(move |_, d| Nanos((d.0 as f64 * scale).round() as u64)),
    );
    let run = run_wall_clock(&w, &cfg, &mut dev)?;
    println!("{}", report::table(&run));
    report::write_dir(&run, dir).with_context(|| format!("writing results for {}", out.display()))?;
    let steps = steps_from_run(&run.output.iterations, &dev.log);
    std::fs::write(dir.join("steps.csv"), steps_csv(&steps)).context("writing steps.csv")?;
    let mut meta = duet_args::record::record(a, &full, &kv);
    meta["device"] = serde_json::json!({ "name": "fake (cost model)", "scale": scale });
    meta["steps"] = steps.len().into();
    std::fs::write(dir.join("replay.json"), serde_json::to_string_pretty(&meta)?).context("writing replay.json")?;
    staged.commit()?;
    println!(
        "dry-run replay of {} requests, {} steps (device = model x {scale}) -> {}",
        w.len(),
        steps.len(),
        out.display()
    );
    Ok(())
}
