//! `duet validate`: the simulator against a device run of the same trace window, model and policy.
//!
//! Reads the device run's `steps.csv`, `summary.json` and `replay.json` (written by `duet-gpu replay`), runs the
//! simulator with the options recorded in `replay.json` (options typed here override them, e.g. `--profile` of a
//! measured profile; see `duet_args::record`), and reports per-step errors of the cost model
//! for the exact batches that ran, and the run-level TTFT/ITL/TBT/throughput errors
//! (`duet_sim::validate` documents the measures). With `--out`: `validation.md`, `validation.json`,
//! `steps_validation.csv`, figures (predicted-vs-measured step times; simulated and measured CDFs of TTFT and of each
//! request's largest gap between tokens, TBT) and `timeline.json`, a Perfetto trace with the simulated and the
//! measured steps per partition one above the other ([`duet_sim::trace_event`]).

use std::path::Path;

use anyhow::{Context, Result, bail};
use duet_reports::figure::{CdfChart, Figure, ScatterChart};
use duet_reports::style::ColorMap;
use duet_reports::table::Table;
use duet_sim::trace_event::{self, TraceRequest, TraceSource, TraceStep};
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
        let measured_reqs = read_requests(&replay.join("requests.csv"))?;
        let sim_reqs: Vec<RequestTimes> = run
            .output
            .requests
            .iter()
            .filter(|r| r.tokens_emitted > 0)
            .map(|r| RequestTimes {
                id: r.id,
                arrival_ms: r.arrival.0 as f64 / 1e6,
                ttft_ms: Some(r.first_token.0.saturating_sub(r.arrival.0) as f64 / 1e6),
                max_tbt_ms: Some(r.max_tbt.0 as f64 / 1e6),
            })
            .collect();
        let colors = ColorMap::new(vec!["simulated".to_string(), "measured".to_string()]);
        for (stem, title, label, pick) in [
            ("validation-ttft-cdf", "TTFT", "TTFT (ms)", 0),
            ("validation-tbt-cdf", "largest gap between tokens per request (TBT)", "TBT (ms)", 1),
        ] {
            let title = format!("{}, {}: simulated and measured", run.meta.policy, title);
            let values = |v: &[RequestTimes]| -> Vec<f64> {
                v.iter().filter_map(|r| if pick == 0 { r.ttft_ms } else { r.max_tbt_ms }).collect()
            };
            let fig = Figure::Cdf(CdfChart {
                title,
                x_label: label.into(),
                series: vec![("simulated".into(), values(&sim_reqs)), ("measured".into(), values(&measured_reqs))],
                limit: None,
            });
            for f in fig.render(&colors, &dir.join(stem))? {
                println!("wrote {}", f.display());
            }
        }
        let simulated = TraceSource::from_run("simulated", &run.output.iterations, &run.output.requests);
        let measured = measured_source(&steps, &measured_reqs);
        let path = dir.join("timeline.json");
        std::fs::write(&path, serde_json::to_string(&trace_event::trace(&[simulated, measured]))?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {} (open in ui.perfetto.dev)", path.display());
    }
    Ok(())
}

/// A request's times as `requests.csv` has them (ms; empty fields are `None`).
#[derive(Debug, Clone, PartialEq)]
struct RequestTimes {
    id: u32,
    arrival_ms: f64,
    ttft_ms: Option<f64>,
    max_tbt_ms: Option<f64>,
}

/// Reads `id`, `arrival_ms`, `ttft_ms` and `max_tbt_ms` from a run's `requests.csv` (columns found by name;
/// empty fields are `None`), with the reports' table reader.
fn read_requests(path: &Path) -> Result<Vec<RequestTimes>> {
    let t = Table::read(path)?;
    let (ids, arrivals) = (t.f64s("id")?, t.f64s("arrival_ms")?);
    let (ttft, tbt) = (t.f64s("ttft_ms")?, t.f64s("max_tbt_ms")?);
    (0..t.height())
        .map(|i| {
            let row = || format!("{}: row {}", path.display(), i + 1);
            Ok(RequestTimes {
                id: ids[i].with_context(|| format!("{}: no id", row()))? as u32,
                arrival_ms: arrivals[i].with_context(|| format!("{}: no arrival_ms", row()))?,
                ttft_ms: ttft[i],
                max_tbt_ms: tbt[i],
            })
        })
        .collect()
}

/// The device run as a trace source: its measured steps (GPU-event start and duration) and its requests.
fn measured_source(steps: &[validate::StepRecord], reqs: &[RequestTimes]) -> TraceSource {
    TraceSource {
        name: "measured".into(),
        steps: steps
            .iter()
            .map(|s| {
                let (prefill_tokens, decode_tokens) = s.token_counts();
                TraceStep {
                    lane: s.lane,
                    sms: s.sms,
                    start_ns: s.start_ns,
                    dur_ns: s.measured_ns,
                    seqs: s.work.len() as u32,
                    prefill_tokens,
                    decode_tokens,
                }
            })
            .collect(),
        requests: reqs
            .iter()
            .map(|r| TraceRequest {
                id: r.id,
                arrival_ns: (r.arrival_ms * 1e6).round() as u64,
                first_token_ns: r.ttft_ms.map(|t| ((r.arrival_ms + t) * 1e6).round() as u64),
            })
            .collect(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_by_column_name_with_empty_fields_as_none() {
        let dir = std::env::temp_dir().join(format!("duet-validate-requests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let text = "id,arrival_ms,input_tokens,ttft_ms,max_tbt_ms\n3,1.5,10,20.25,\n4,2,10,,\n";
        let r = read_requests(&file("ok.csv", text)).unwrap();
        assert_eq!(r[0], RequestTimes { id: 3, arrival_ms: 1.5, ttft_ms: Some(20.25), max_tbt_ms: None });
        assert_eq!((r[1].ttft_ms, r[1].max_tbt_ms), (None, None));
        let e = format!("{:#}", read_requests(&file("short.csv", "id,arrival_ms,ttft_ms\n1,2,3\n")).unwrap_err());
        assert!(e.contains("max_tbt_ms"), "{e}");
        let e = format!(
            "{:#}",
            read_requests(&file("bad.csv", "id,arrival_ms,ttft_ms,max_tbt_ms\n1,x,1,1\n")).unwrap_err()
        );
        assert!(e.contains("arrival_ms"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_measured_source_places_first_tokens_after_arrival() {
        let reqs = [RequestTimes { id: 1, arrival_ms: 2.0, ttft_ms: Some(3.5), max_tbt_ms: None }];
        let src = measured_source(&[], &reqs);
        assert_eq!(src.requests[0], TraceRequest { id: 1, arrival_ns: 2_000_000, first_token_ns: Some(5_500_000) });
        trace_event::check_trace(&trace_event::trace(&[src])).unwrap();
    }
}
