//! `duet trace stats | convert | gen | bench`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use duet_traces::stats::{self, TokenStats, TraceStats};
use duet_traces::{TraceData, Workload, canonical, load_path};

use crate::cli::TraceCommand;
use duet_args::workload::{build, load_options};

/// Runs a `duet trace` subcommand.
pub fn run(cmd: TraceCommand) -> Result<()> {
    match cmd {
        TraceCommand::Stats { file, json, burstgpt_model, burstgpt_log } => {
            let data = load_path(&file, &load_options(burstgpt_model.as_ref(), burstgpt_log.as_ref()))?;
            let (s, notes) = match &data {
                TraceData::Timed(w) => (stats::of_workload(w), w.notes.clone()),
                TraceData::Lengths(t) => (stats::of_lengths(&t.pairs), Vec::new()),
            };
            for n in &notes {
                eprintln!("note: {n}");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", table(&file, &s));
            }
            Ok(())
        }
        TraceCommand::Convert { input, output } => match load_path(&input, &Default::default())? {
            TraceData::Timed(w) => write(&w, &output),
            TraceData::Lengths(_) => bail!(
                "{} holds lengths only; pair it with arrivals: duet trace gen --trace {} --rate R --out {}",
                input.display(),
                input.display(),
                output.display()
            ),
        },
        TraceCommand::Gen { workload, out } => {
            let w = build(&workload, None)?;
            for n in &w.notes {
                eprintln!("note: {n}");
            }
            write(&w, &out)?;
            eprintln!("wrote {} requests ({}) to {}", w.len(), w.source, out.display());
            Ok(())
        }
        TraceCommand::Bench { file, runs } => bench(&file, runs),
    }
}

/// Writes `w` in canonical CSV or JSONL, chosen by the extension of `out`.
fn write(w: &Workload, out: &Path) -> Result<()> {
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let f = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut bw = BufWriter::new(f);
    match ext.as_str() {
        "csv" => canonical::write_csv(w, &mut bw)?,
        "jsonl" => canonical::write_jsonl(w, &mut bw)?,
        _ => bail!("{}: the output must end in .csv or .jsonl", out.display()),
    }
    bw.flush()?;
    Ok(())
}

fn table(file: &Path, s: &TraceStats) -> String {
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |x| format!("{x:.prec$}"));
    let tok = |t: &TokenStats| format!("{:>10.1} {:>9.1} {:>9.1} {:>9.1} {:>9}", t.mean, t.median, t.p90, t.p99, t.max);
    let mut out = format!("{}\n", file.display());
    out += &format!("  rows              {}\n", s.rows);
    out += &format!("  span              {} s\n", opt(s.span_s, 1));
    out += &format!("  mean rate         {} req/s\n", opt(s.mean_rate, 3));
    out += &format!("  inter-arrival CV  {}\n", opt(s.interarrival_cv, 3));
    out += &format!("  peak per minute   {}\n", s.peak_per_minute.map_or("-".to_string(), |v| v.to_string()));
    if let Some(r) = s.prefix_block_reuse {
        out += &format!("  prefix-block reuse {:.3}\n", r);
    }
    out += &format!("  {:<16}{:>10} {:>9} {:>9} {:>9} {:>9}\n", "tokens", "mean", "median", "p90", "p99", "max");
    out += &format!("  {:<16}{}\n", "input", tok(&s.input_tokens));
    out += &format!("  {:<16}{}\n", "output", tok(&s.output_tokens));
    out
}

fn bench(file: &Path, runs: usize) -> Result<()> {
    if runs == 0 {
        bail!("--runs must be >= 1");
    }
    let mut times = Vec::with_capacity(runs);
    let mut rows = 0;
    for i in 0..=runs {
        let t = Instant::now();
        let data = load_path(file, &Default::default())?;
        let elapsed = t.elapsed().as_secs_f64();
        rows = match data {
            TraceData::Timed(w) => w.len(),
            TraceData::Lengths(t) => t.pairs.len(),
        };
        if i > 0 {
            times.push(elapsed);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{}: {rows} rows; load time over {runs} runs: min {:.2} ms, median {:.2} ms, max {:.2} ms",
        file.display(),
        times[0] * 1e3,
        times[times.len() / 2] * 1e3,
        times[times.len() - 1] * 1e3
    );
    Ok(())
}
