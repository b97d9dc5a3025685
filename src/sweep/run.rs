//! Running a sweep: validates every point, runs the missing ones in parallel (rayon) with a progress bar
//! (indicatif; drawn only on a terminal), stores each point's results under `OUT/points/ID/` (written to a
//! temporary folder and renamed, so an interrupted run leaves no half-written point), and writes one row per
//! point to `results.parquet` and `results.csv` (`results.shard-I-of-N.*` for a shard).
//!
//! A row is the point's position (`point`), `point_id`, `label`, `group`, its options as `arg_*` columns (dashes
//! become underscores) and every field of its `summary.json`. Rows are read back from the stored summaries, so
//! a resumed sweep writes exactly the table an uninterrupted one would.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde_json::{Map, Value};

use duet_reports::table::Table;
use duet_sim::{SimConfig, report, simulate};

use super::spec::{Point, SweepSpec};
use crate::cli::SimArgs;
use crate::commands;
use duet_args::workload;

/// How to run a sweep.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Output directory.
    pub out: PathBuf,
    /// Run only points with `index % n == i - 1`: `(i, n)`, 1-based.
    pub shard: Option<(usize, usize)>,
    /// Worker threads (default: all cores).
    pub jobs: Option<usize>,
}

/// What a sweep run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Points of this run (the shard's, or all).
    pub selected: usize,
    /// Points simulated now.
    pub ran: usize,
    /// Points found done and skipped.
    pub skipped: usize,
    /// Points that failed, with the error.
    pub failed: Vec<(usize, String)>,
    /// Results files written.
    pub tables: Vec<PathBuf>,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Parses `I/N` (1 <= I <= N).
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let (i, n) = s.split_once('/').with_context(|| format!("--shard {s:?} must be I/N, e.g. 2/3"))?;
    let (i, n): (usize, usize) = (
        i.trim().parse().with_context(|| format!("--shard {s:?}: {i:?} is not a number"))?,
        n.trim().parse().with_context(|| format!("--shard {s:?}: {n:?} is not a number"))?,
    );
    if n == 0 || i == 0 || i > n {
        bail!("--shard {s:?}: need 1 <= I <= N");
    }
    Ok((i, n))
}

/// The simulation options of a point, built from its typed values (no command line is formed and parsed again):
/// `duet sim`'s defaults with each of the point's options set. An option that takes text (a path, a duration, a
/// name) gets the value as written; a number or flag stays a number or flag. A value of the wrong type is an
/// error naming the option.
pub fn sim_args(point: &Point) -> Result<SimArgs> {
    use duet_args::record::option_mut;
    let defaults = serde_json::to_value(duet_args::record::defaults())?;
    // `args` with option `o` set; an error for an option `duet sim` does not have.
    let set = |args: &mut Value, o: &super::spec::Opt| -> Result<()> {
        let id = o.key.replace('-', "_");
        let v = option_value(&defaults, &id, o);
        *option_mut(args, &id).with_context(|| format!("`{}` is not an option of `duet sim`", o.key))? = v;
        Ok(())
    };
    let mut args = defaults.clone();
    for o in &point.opts {
        set(&mut args, o)?;
    }
    serde_json::from_value(args).or_else(|e| {
        // Name the option with the bad value: each one alone on the defaults.
        for o in &point.opts {
            let mut alone = defaults.clone();
            set(&mut alone, o)?;
            if let Err(e) = serde_json::from_value::<SimArgs>(alone) {
                bail!("`{}` = {}: {e}", o.key, o.value);
            }
        }
        Err(e.into())
    })
}

/// The JSON value of option `o` (id `id`): a flag is `true`; a number or boolean stays one unless the option
/// takes text (tried on `defaults`), which then gets the value as written; text stays text.
fn option_value(defaults: &Value, id: &str, o: &super::spec::Opt) -> Value {
    use toml::Value as T;
    if o.flag {
        return Value::Bool(true);
    }
    let typed = match &o.typed {
        T::Integer(i) => Value::from(*i),
        T::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        T::Boolean(b) => Value::Bool(*b),
        _ => return Value::from(o.value.clone()),
    };
    let mut probe = defaults.clone();
    if let Some(slot) = duet_args::record::option_mut(&mut probe, id) {
        *slot = Value::from("x");
    }
    if serde_json::from_value::<SimArgs>(probe).is_ok() { Value::from(o.value.clone()) } else { typed }
}

/// Validates a point and returns its arguments and configuration.
pub fn prepare(spec: &SweepSpec, point: &Point) -> Result<(SimArgs, SimConfig)> {
    let ctx =
        || format!("{}: point {} ({}, {})", spec.path.display(), point.index, point.label, point.argv().join(" "));
    let args = sim_args(point).with_context(ctx)?;
    let mut cfg = commands::config(&args).with_context(ctx)?;
    // Every iteration record stays in memory only for a point that writes iterations.csv (the summary needs none).
    cfg.keep_iterations = spec.details.iter().any(|f| f == "iterations.csv");
    cfg.keep_decisions = spec.details.iter().any(|f| f == "decisions.csv");
    Ok((args, cfg))
}

/// Runs one point and returns its `summary.json` object; the `details` files (names from
/// [`super::spec::DETAIL_FILES`]) are written into `dir`.
pub fn simulate_point(args: &SimArgs, cfg: &SimConfig, details: &[String], dir: &Path) -> Result<Value> {
    let w = workload::build(&args.workload, cfg.model.max_context)?;
    let run = simulate(&w, cfg)?;
    for f in details {
        let text = match f.as_str() {
            "requests.csv" => report::requests_csv(&run.output.requests),
            "decisions.csv" => report::decisions_csv(&run.output.decisions),
            _ => report::iterations_csv(&run.output.iterations),
        };
        let path = dir.join(f);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report::summary_json(&run))
}

fn point_dir(out: &Path, point: &Point) -> PathBuf {
    out.join("points").join(point.id())
}

/// Whether `point` has a stored summary under `out`.
pub fn is_done(out: &Path, point: &Point) -> bool {
    point_dir(out, point).join("summary.json").is_file()
}

fn run_one(spec: &SweepSpec, out: &Path, point: &Point, args: &SimArgs, cfg: &SimConfig) -> Result<()> {
    let final_dir = point_dir(out, point);
    let tmp = out.join("points").join(format!(".{}.tmp-{}", point.id(), std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let summary = simulate_point(args, cfg, &spec.details, &tmp)
        .with_context(|| format!("point {} ({})", point.index, point.argv().join(" ")))?;
    let mut text = serde_json::to_string_pretty(&summary)?;
    text.push('\n');
    std::fs::write(tmp.join("summary.json"), text)?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir)?;
    }
    std::fs::rename(&tmp, &final_dir).with_context(|| format!("moving results to {}", final_dir.display()))?;
    Ok(())
}

/// Removes `.ID.tmp-PID` folders left by interrupted runs whose point has since been completed (those of
/// unfinished points may belong to a concurrent shard and are left alone).
fn remove_stale_temporaries(points: &Path) {
    let Ok(entries) = std::fs::read_dir(points) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some((id, _)) = name.strip_prefix('.').and_then(|n| n.split_once(".tmp-"))
            && points.join(id).join("summary.json").is_file()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// JSON value of an option: integers and numbers as numbers, flags as `true`, the rest as strings.
fn arg_value(value: &str, flag: bool) -> Value {
    if flag {
        return Value::Bool(true);
    }
    if let Ok(i) = value.parse::<i64>() {
        return Value::from(i);
    }
    match value.parse::<f64>() {
        Ok(f) if f.is_finite() => Value::from(f),
        _ => Value::from(value),
    }
}

/// The results row of a finished point.
pub fn row(point: &Point, summary: Map<String, Value>, arg_keys: &[String]) -> Map<String, Value> {
    let mut r = Map::new();
    r.insert("point".into(), Value::from(point.index));
    r.insert("point_id".into(), Value::from(point.id()));
    r.insert("label".into(), Value::from(point.label.clone()));
    r.insert("group".into(), Value::from(point.group.clone()));
    for (axis, label) in &point.bundles {
        r.insert(format!("axis_{}", axis.replace('-', "_")), Value::from(label.clone()));
    }
    for k in arg_keys {
        let v = point.opts.iter().find(|o| &o.key == k).map_or(Value::Null, |o| arg_value(&o.value, o.flag));
        r.insert(format!("arg_{}", k.replace('-', "_")), v);
    }
    r.extend(summary);
    r
}

/// Every option key used by any point of `spec`, in first-use order.
pub fn arg_keys(spec: &SweepSpec) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for p in &spec.points {
        for o in &p.opts {
            if !keys.contains(&o.key) {
                keys.push(o.key.clone());
            }
        }
    }
    keys
}

fn read_summary(path: &Path) -> Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    match serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))? {
        Value::Object(m) => Ok(m),
        _ => bail!("{}: not a JSON object", path.display()),
    }
}

/// Runs the sweep (or the shard of it) and writes the results tables.
pub fn run(spec: &SweepSpec, opts: &RunOptions) -> Result<Outcome> {
    let started = Instant::now();
    let selected: Vec<&Point> = spec.points.iter().filter(|p| p.in_shard(opts.shard)).collect();
    // Every point of the run is validated before anything runs; the pending ones keep their configuration.
    let mut pending = Vec::new();
    for p in &selected {
        let (args, cfg) = prepare(spec, p)?;
        if !is_done(&opts.out, p) {
            pending.push((*p, args, cfg));
        }
    }
    std::fs::create_dir_all(opts.out.join("points"))
        .with_context(|| format!("creating {}", opts.out.join("points").display()))?;
    let bar = ProgressBar::new(pending.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} points, ETA {eta} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let failed = Mutex::new(Vec::new());
    let work = || {
        pending.par_iter().for_each(|(p, args, cfg)| {
            if let Err(e) = run_one(spec, &opts.out, p, args, cfg) {
                failed.lock().expect("no panics while locked").push((p.index, format!("{e:#}")));
            }
            bar.inc(1);
        })
    };
    match opts.jobs {
        Some(j) => rayon::ThreadPoolBuilder::new().num_threads(j.max(1)).build()?.install(work),
        None => work(),
    }
    bar.finish_and_clear();
    remove_stale_temporaries(&opts.out.join("points"));
    let mut failed = failed.into_inner().expect("no panics while locked");
    failed.sort();
    let keys = arg_keys(spec);
    let mut rows = Vec::new();
    for p in &selected {
        let path = point_dir(&opts.out, p).join("summary.json");
        if path.is_file() {
            rows.push(row(p, read_summary(&path)?, &keys));
        } else if let Some((_, e)) = failed.iter().find(|(i, _)| *i == p.index) {
            // A failed point stays in the table with its error (and no metrics), so the table says what ran.
            let mut m = Map::new();
            m.insert("error".into(), Value::from(e.clone()));
            rows.push(row(p, m, &keys));
        }
    }
    let mut tables = Vec::new();
    if !rows.is_empty() {
        let stem = match opts.shard {
            Some((i, n)) => format!("results.shard-{i}-of-{n}"),
            None => "results".to_string(),
        };
        let table = Table::from_rows(&rows)?;
        for ext in ["parquet", "csv"] {
            let path = opts.out.join(format!("{stem}.{ext}"));
            if ext == "csv" {
                table.write_csv(&path)?
            } else {
                table.write_parquet(&path)?
            }
            tables.push(path);
        }
    }
    Ok(Outcome {
        selected: selected.len(),
        ran: pending.len() - failed.len(),
        skipped: selected.len() - pending.len(),
        failed,
        tables,
        seconds: started.elapsed().as_secs_f64(),
    })
}
