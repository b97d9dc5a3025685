//! `duet validate`: the simulator against a device run of the same trace window, model and policy.
//!
//! Reads the device run's `steps.csv`, `summary.json` and `replay.json` (written by `duet-gpu replay`), runs the
//! simulator with the options recorded in `replay.json` (options typed here override them, e.g. `--profile` of a
//! measured profile; see `duet_args::record`), and reports per-step errors of the cost model
//! for the exact batches that ran, and the run-level TTFT/ITL/TBT/throughput errors
//! (`duet_sim::validate` documents the measures). With `--out`: `validation.md`, `validation.json`,
//! `steps_validation.csv` and a predicted-vs-measured figure.

use std::path::Path;

use anyhow::{Context, Result, bail};
use duet_reports::figure::{Figure, ScatterChart};
use duet_reports::style::ColorMap;
use duet_sim::validate::{self, StepComparison, compare_steps, compare_summaries, read_steps};
use duet_sim::{report, run::simulate};
use serde_json::{Value, json};

use crate::cli::SimArgs;
use crate::commands::{config, load_workload};

/// The options to re-simulate `replay` with: those recorded in its `replay.json` with the ones typed on the
/// command line (`explicit`, their ids) laid over them, the recorded settings, and the options typed over them. A
/// replay without recorded options (written before they were recorded) takes the typed options alone.
pub fn options(typed: &SimArgs, explicit: &[String], replay: &Path) -> Result<(SimArgs, Value, Vec<String>)> {
    let path = replay.join("replay.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((typed.clone(), Value::Null, Vec::new())),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    match duet_args::record::recorded(&text, &path)? {
        Some((rec, settings)) => {
            let (merged, changed) = duet_args::record::merge(&rec, typed, explicit)?;
            Ok((merged, settings, changed))
        }
        None => {
            eprintln!("note: {} records no options; re-simulating with the options typed here", path.display());
            Ok((typed.clone(), Value::Null, Vec::new()))
        }
    }
}

/// Runs the validation; prints the report and writes files under `out` when given.
pub fn run(typed: &SimArgs, explicit: &[String], replay: &Path, out: Option<&Path>) -> Result<()> {
    let (a, recorded, changed) = options(typed, explicit, replay)?;
    if !recorded.is_null() {
        println!(
            "re-simulating with the options recorded in {}{}",
            replay.join("replay.json").display(),
            if changed.is_empty() { String::new() } else { format!(", with {} as typed here", changed.join(", ")) }
        );
    }
    let a = &a;
    let steps = read_steps(&replay.join("steps.csv"))?;
    let summary_path = replay.join("summary.json");
    let text = std::fs::read_to_string(&summary_path).with_context(|| format!("reading {}", summary_path.display()))?;
    let measured: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", summary_path.display()))?;
    let cfg = config(a)?;
    let w = load_workload(a, &cfg)?;
    let kv = duet_sim::kv::KvCapacity::compute(&cfg.model, &cfg.gpu, &cfg.kv)?;
    duet_args::record::check_same(&recorded, &duet_args::record::settings(&cfg, &kv), &changed)?;
    let run = simulate(&w, &cfg)?;
    for (key, ours) in [("model", run.meta.model.as_str()), ("policy", run.meta.policy.as_str())] {
        if let Some(theirs) = measured.get(key).and_then(Value::as_str)
            && theirs != ours
        {
            bail!("the device run used {key} {theirs:?} but these options give {ours:?}: pass the same options");
        }
    }
    let cost = duet_sim::run::cost_model(&cfg)?;
    let sc = compare_steps(&steps, &cost);
    let mc = compare_summaries(&report::summary_json(&run), &measured)?;
    let md = format!(
        "# duet validate: {} steps of {}\n\nSimulator: {} with profile {}.\n\n{}",
        steps.len(),
        replay.display(),
        run.meta.policy,
        run.meta.profile,
        validate::table(&sc, &mc)
    );
    println!("{md}");
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let write = |name: &str, text: String| {
            std::fs::write(dir.join(name), text).with_context(|| format!("writing {}", dir.join(name).display()))
        };
        write("validation.md", md)?;
        let j = json!({ "steps": { "overall": sc.overall, "by_kind": sc.by_kind }, "metrics": mc });
        write("validation.json", serde_json::to_string_pretty(&j)?)?;
        write("steps_validation.csv", steps_csv(&steps, &sc))?;
        for f in figure(&steps, &sc).render(&ColorMap::new(kinds(&steps)), &dir.join("validation-steps"))? {
            println!("wrote {}", f.display());
        }
    }
    Ok(())
}

fn kinds(steps: &[validate::StepRecord]) -> Vec<String> {
    let mut k: Vec<String> = steps.iter().map(|s| validate::step_kind(s).to_string()).collect();
    k.sort();
    k.dedup();
    k
}

fn steps_csv(steps: &[validate::StepRecord], sc: &StepComparison) -> String {
    let mut s = String::from("step,kind,sms,measured_ms,predicted_ms\n");
    for (i, (st, (m, p))) in steps.iter().zip(&sc.pairs).enumerate() {
        s.push_str(&format!("{i},{},{},{:.6},{:.6}\n", validate::step_kind(st), st.sms, m / 1e6, p / 1e6));
    }
    s
}

fn figure(steps: &[validate::StepRecord], sc: &StepComparison) -> Figure {
    let mut groups: Vec<(String, Vec<(f64, f64)>)> = kinds(steps).into_iter().map(|k| (k, Vec::new())).collect();
    for (st, (m, p)) in steps.iter().zip(&sc.pairs) {
        if let Some((_, v)) = groups.iter_mut().find(|(g, _)| g == validate::step_kind(st)) {
            v.push((m / 1e6, p / 1e6));
        }
    }
    Figure::Scatter(ScatterChart {
        title: "simulated vs measured step time".into(),
        quantity: "step time (ms)".into(),
        groups,
        band: 0.10,
    })
}
