//! `duet calibrate fit | check`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use duet_calibration::launch::{fit_graph_launch_ns, is_graph, read_graph};
use duet_calibration::mixed::{fit_mixed_attention_penalty, is_mixed, read_mixed};
use duet_calibration::record::{Record, is_corun, read_any, read_corun};
use duet_calibration::{Profile, check, fit};
use duet_sim::GpuSpec;

use crate::cli::CalibrateCommand;

fn records(files: &[PathBuf], num_sms: u32) -> Result<Vec<Record>> {
    let mut all = Vec::new();
    for f in files.iter().filter(|f| !is_corun(f) && !is_mixed(f) && !is_graph(f)) {
        all.extend(read_any(f, num_sms)?);
    }
    Ok(all)
}

fn today() -> String {
    // Days since the epoch -> civil date (Howard Hinnant's algorithm), so no date crate is needed.
    let days =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Runs a `duet calibrate` subcommand.
pub fn run(cmd: CalibrateCommand) -> Result<()> {
    match cmd {
        CalibrateCommand::Fit { measured, gpu, out } => {
            let g = GpuSpec::by_name(&gpu)?;
            let recs = records(&measured, g.num_sms)?;
            let base = Profile::from_gpu_spec(&g);
            let files: Vec<String> = measured.iter().map(|p| p.display().to_string()).collect();
            let source = format!("duet calibrate fit --gpu {gpu} --measured {}", files.join(" "));
            let (mut p, summary) = fit::fit(&base, &recs, &source, &today())?;
            for f in measured.iter().filter(|f| is_corun(f)) {
                let rows = read_corun(f)?;
                fit::fit_contention(&mut p, &rows);
                println!(
                    "contention interference {:.3} from {} co-running measurement(s)",
                    p.contention.interference,
                    rows.len()
                );
            }
            for f in measured.iter().filter(|f| is_mixed(f)) {
                let samples = read_mixed(f)?;
                p.overheads.mixed_attention_penalty = fit_mixed_attention_penalty(f, &samples.one_call)?;
                println!(
                    "mixed attention penalty {:.3} (one call) from {} mixed-batch measurement(s); as two calls in \
                     one step (duet's replay executor) {:.3}",
                    p.overheads.mixed_attention_penalty,
                    samples.one_call.len(),
                    fit_mixed_attention_penalty(f, &samples.two_calls)?
                );
            }
            for f in measured.iter().filter(|f| is_graph(f)) {
                let samples = read_graph(f)?;
                let g = fit_graph_launch_ns(f, &samples)?;
                p.overheads.graph_launch_ns = g.graph_launch_ns;
                println!(
                    "graph launch {} ns per decode step (median graph - eager step {:+.2} us) from {} measurement(s)",
                    g.graph_launch_ns,
                    g.median_extra_us,
                    samples.len()
                );
            }
            std::fs::write(&out, p.to_json()).with_context(|| format!("cannot write {}", out.display()))?;
            for (class, n) in &summary.used {
                println!("fitted {class} on {n} record(s)");
            }
            for (why, n) in &summary.skipped {
                println!("skipped {n} record(s): {why}");
            }
            let preds = check::predict(&p, &recs);
            print!("{}", check::table(&check::report(&preds), &recs, &preds, 3));
            println!("wrote {}", out.display());
            Ok(())
        }
        CalibrateCommand::Check { profile, measured, gpu, csv, json, worst } => {
            let g = GpuSpec::by_name(&gpu)?;
            let p = if profile == "datasheet" { Profile::from_gpu_spec(&g) } else { Profile::resolve(&profile)? };
            let recs = records(&measured, p.gpu.num_sms)?;
            if let Some(r) = recs.iter().find(|r| r.sms > p.gpu.num_sms) {
                anyhow::bail!("a record ran on {} SMs, more than {} has ({})", r.sms, p.gpu.name, p.gpu.num_sms);
            }
            let preds = check::predict(&p, &recs);
            let report = check::report(&preds);
            if let Some(path) = &csv {
                write(path, &check::predictions_csv(&recs, &preds))?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("profile {profile} ({}, {}) vs {} record(s)", p.gpu.name, p.provenance.kind, recs.len());
                print!("{}", check::table(&report, &recs, &preds, worst));
            }
            Ok(())
        }
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
