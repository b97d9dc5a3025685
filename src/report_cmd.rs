//! `duet report`: figures and a Markdown summary from a sweep's results table.
//!
//! Rows are grouped by `group` (the sweep's axis values other than rate and seed); within a group, every
//! policy `label` is one series over `arg_rate`, averaged over seeds (the band shows min-max over seeds). Per
//! group: request throughput, goodput, P99 TTFT and P99 TBT (with the SLO line), SLO attainment against rate;
//! at one rate, TTFT and TBT CDFs (from each point's `requests.csv`) and, for `duet` and `muxwise`, the
//! SM-partition timeline (from `decisions.csv`); likewise for `adaptive`. `--calibration` adds predicted-vs-measured
//! scatter plots. A `duet capacity` table (`capacity.csv`, or its folder) instead gives one grouped bar chart:
//! each policy's capacity per group, `capacity.png`/`.svg`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use duet_reports::figure::{
    BarChart, Block, CdfChart, Figure, Lane, Limit, Line, LineChart, ScatterChart, TimelineChart,
};
use duet_reports::markdown;
use duet_reports::style::ColorMap;
use duet_reports::table::Table;

/// Options of `duet report`.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Results table (`.parquet`/`.csv`) or the sweep folder holding `results.parquet`.
    pub results: PathBuf,
    /// Output folder (default: `figures/` beside the results).
    pub out: Option<PathBuf>,
    /// Rate for CDFs and timelines (default: the middle rate, when the sweep stored details).
    pub rate: Option<f64>,
    /// Seconds of timeline to draw, from 1 s before the first split.
    pub timeline_seconds: f64,
    /// `duet calibrate check --csv` files for predicted-vs-measured scatter plots.
    pub calibration: Vec<PathBuf>,
}

/// Policies whose partition timeline is drawn (the ones that change partitions as they run).
const TIMELINE_POLICIES: [&str; 3] = ["duet", "muxwise", "adaptive"];

/// One results row, the fields the figures use.
#[derive(Debug, Clone)]
struct Row {
    point_id: String,
    label: String,
    group: String,
    policy: String,
    rate: f64,
    num_sms: f64,
    fields: BTreeMap<&'static str, Option<f64>>,
}

const FIELDS: [&str; 8] = [
    "request_throughput",
    "request_goodput",
    "p99_ttft_ms",
    "p99_itl_ms",
    "p99_tbt_ms",
    "slo_attainment",
    "slo_ttft_ms",
    "slo_tbt_ms",
];

fn load_rows(path: &Path) -> Result<Vec<Row>> {
    let t = Table::read(path)?;
    if !t.has("arg_rate") {
        bail!(
            "{}: no column `arg_rate`: sweep `rate` as an axis (or in [base]) to draw figures against it",
            path.display()
        );
    }
    let text = |c: &str| t.strings(c);
    let (ids, labels, groups, policies) = (text("point_id")?, text("label")?, text("group")?, text("policy")?);
    let rates = t.f64s("arg_rate")?;
    let sms = t.f64s("num_sms")?;
    let mut cols = BTreeMap::new();
    for f in FIELDS {
        cols.insert(f, t.f64s(f)?);
    }
    // Points that failed are in the table with their error and no metrics (`duet sweep`): left out, named.
    let errors = if t.has("error") { t.strings("error")? } else { vec![None; t.height()] };
    let mut rows = Vec::with_capacity(t.height());
    for i in 0..t.height() {
        if let Some(e) = &errors[i] {
            eprintln!("note: {}: row {} is a failed point, left out: {e}", path.display(), i + 1);
            continue;
        }
        let need = |v: &Option<String>, c: &str| {
            v.clone().with_context(|| format!("{}: row {} has no `{c}`", path.display(), i + 1))
        };
        rows.push(Row {
            point_id: need(&ids[i], "point_id")?,
            label: need(&labels[i], "label")?,
            group: groups[i].clone().unwrap_or_default(),
            policy: need(&policies[i], "policy")?,
            rate: rates[i].with_context(|| format!("{}: row {} has no `arg_rate`", path.display(), i + 1))?,
            num_sms: sms[i].unwrap_or(0.0),
            fields: FIELDS.iter().map(|f| (*f, cols[f][i])).collect(),
        });
    }
    Ok(rows)
}

/// Ordered distinct values.
fn distinct<'a>(it: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for s in it {
        if !v.iter().any(|x| x == s) {
            v.push(s.to_string());
        }
    }
    v
}

/// Per rate: (rate, mean, min, max) of `field` over seeds; rows with a null value are left out.
fn series(rows: &[&Row], field: &str, scale: f64) -> Vec<(f64, f64, f64, f64)> {
    let mut by_rate: Vec<(f64, Vec<f64>)> = Vec::new();
    for r in rows {
        let Some(v) = r.fields.get(field).copied().flatten() else { continue };
        match by_rate.iter_mut().find(|(x, _)| *x == r.rate) {
            Some((_, vs)) => vs.push(v * scale),
            None => by_rate.push((r.rate, vec![v * scale])),
        }
    }
    by_rate.sort_by(|a, b| a.0.total_cmp(&b.0));
    by_rate
        .into_iter()
        .map(|(x, vs)| {
            let mean = vs.iter().sum::<f64>() / vs.len() as f64;
            let lo = vs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (x, mean, lo, hi)
        })
        .collect()
}

struct Ctx<'a> {
    out: &'a Path,
    colors: &'a ColorMap,
    /// The sweep's `points/` folder.
    points: PathBuf,
    /// Seconds of timeline to draw.
    timeline_s: f64,
    written: Vec<PathBuf>,
}

/// One rate figure: summary field, file stem, y label, scale, log axis, limit line.
struct RateFigure {
    field: &'static str,
    stem: &'static str,
    y_label: &'static str,
    scale: f64,
    log_y: bool,
    limit: Option<Limit>,
}

impl Ctx<'_> {
    fn draw(&mut self, fig: Figure, stem: &str) -> Result<()> {
        self.written.extend(fig.render(self.colors, &self.out.join(stem))?);
        Ok(())
    }
}

fn slug(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let mut out = String::new();
    for part in s.split('-').filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(part);
    }
    out.chars().take(60).collect()
}

fn rate_figures(ctx: &mut Ctx, rows: &[&Row], labels: &[String], title: &str, prefix: &str) -> Result<()> {
    let limit = |field: &str, name: &str| slo_limit(rows, field, name);
    let fig = |field, stem, y_label, scale, log_y, limit| RateFigure { field, stem, y_label, scale, log_y, limit };
    let specs = [
        fig("request_throughput", "throughput", "request throughput (req/s)", 1.0, false, None),
        fig("request_goodput", "goodput", "goodput (req/s meeting every SLO)", 1.0, false, None),
        fig("p99_ttft_ms", "p99-ttft", "P99 TTFT (ms, log scale)", 1.0, true, limit("slo_ttft_ms", "TTFT")),
        fig(
            "p99_tbt_ms",
            "p99-tbt",
            "P99 of per-request max TBT (ms, log scale)",
            1.0,
            true,
            limit("slo_tbt_ms", "TBT"),
        ),
        fig("p99_itl_ms", "p99-itl", "P99 inter-token latency (ms, log scale)", 1.0, true, limit("slo_tbt_ms", "TBT")),
        fig("slo_attainment", "attainment", "requests meeting every SLO (%)", 100.0, false, None),
    ];
    for RateFigure { field, stem, y_label, scale, log_y, limit } in specs {
        let mut lines = Vec::new();
        for l in labels {
            let mine: Vec<&Row> = rows.iter().copied().filter(|r| &r.label == l).collect();
            let s = series(&mine, field, scale);
            if s.is_empty() {
                continue;
            }
            let band = if s.iter().any(|p| p.2 != p.3) { s.iter().map(|p| (p.0, p.2, p.3)).collect() } else { vec![] };
            lines.push(Line { label: l.clone(), points: s.iter().map(|p| (p.0, p.1)).collect(), band });
        }
        if lines.is_empty() {
            continue; // e.g. goodput and attainment without SLOs
        }
        let fig = Figure::Line(LineChart {
            title: format!("{} vs request rate{title}", y_label.split(" (").next().unwrap_or(field)),
            x_label: "request rate (req/s)".into(),
            y_label: y_label.into(),
            lines,
            limit,
            log_y,
        });
        ctx.draw(fig, &format!("{prefix}{stem}"))?;
    }
    Ok(())
}

/// The SLO line of `field` (e.g. `slo_tbt_ms`) from the first row that has one.
fn slo_limit(rows: &[&Row], field: &str, name: &str) -> Option<Limit> {
    rows.iter().find_map(|r| r.fields[field]).map(|v| Limit { label: format!("{name} SLO {v} ms"), value: v })
}

fn detail_file(points: &Path, id: &str, file: &str) -> Result<PathBuf> {
    let p = points.join(id).join(file);
    if !p.is_file() {
        bail!(
            "{} is missing: list {file:?} in the sweep file's `details` (or set `details = true`) to draw CDFs and \
             timelines",
            p.display()
        );
    }
    Ok(p)
}

fn detail_figures(ctx: &mut Ctx, rows: &[&Row], labels: &[String], rate: f64, title: &str, prefix: &str) -> Result<()> {
    let at: Vec<&Row> = {
        let mut v: Vec<&Row> = Vec::new();
        for l in labels {
            if let Some(r) = rows.iter().find(|r| &r.label == l && (r.rate - rate).abs() < 1e-9) {
                v.push(r);
            }
        }
        v
    };
    if at.is_empty() {
        bail!("no point at rate {rate} req/s{title}: rates in the results are {:?}", distinct_rates(rows));
    }
    // One read of each point's requests.csv serves both CDFs.
    let mut samples = Vec::with_capacity(at.len());
    for r in &at {
        let t = Table::read(&detail_file(&ctx.points, &r.point_id, "requests.csv")?)?;
        let col = |name: &str| -> Result<Vec<f64>> { Ok(t.f64s(name)?.into_iter().flatten().collect()) };
        samples.push((r.label.clone(), col("ttft_ms")?, col("max_tbt_ms")?));
    }
    for (name, field) in [("TTFT", "slo_ttft_ms"), ("TBT", "slo_tbt_ms")] {
        let series =
            samples.iter().map(|(l, ttft, tbt)| (l.clone(), if name == "TBT" { tbt } else { ttft }.clone())).collect();
        let x_label = if name == "TBT" { "per-request max TBT (ms, log scale)" } else { "TTFT (ms, log scale)" };
        let fig = Figure::Cdf(CdfChart {
            title: format!("{name} CDF at {rate} req/s{title}"),
            x_label: x_label.into(),
            series,
            limit: slo_limit(&at, field, name),
        });
        ctx.draw(fig, &format!("{prefix}cdf-{}", name.to_ascii_lowercase()))?;
    }
    for r in at.iter().filter(|r| TIMELINE_POLICIES.contains(&r.policy.as_str())) {
        let fig = timeline(ctx, r, rate, title)?;
        ctx.draw(fig, &format!("{prefix}timeline-{}", slug(&r.label)))?;
    }
    Ok(())
}

/// The SM-partition timeline of one point: batches from `iterations.csv`, split decisions from
/// `decisions.csv`, over `timeline_s` seconds from 1 s before the first split decision.
fn timeline(ctx: &Ctx, r: &Row, rate: f64, title: &str) -> Result<Figure> {
    let decisions = Table::read(&detail_file(&ctx.points, &r.point_id, "decisions.csv")?)?;
    let (times, modes) = (decisions.f64s("time_ms")?, decisions.strings("mode")?);
    let splits: Vec<f64> = (0..decisions.height())
        .filter(|&i| modes[i].as_deref() == Some("split"))
        .filter_map(|i| times[i].map(|t| t / 1e3))
        .collect();
    let lo = (splits.first().copied().unwrap_or(0.0) - 1.0).max(0.0);
    let hi = lo + ctx.timeline_s;
    let iterations = Table::read(&detail_file(&ctx.points, &r.point_id, "iterations.csv")?)?;
    let (lanes, sms, starts, ends) = (
        iterations.strings("lane")?,
        iterations.f64s("sms")?,
        iterations.f64s("start_ms")?,
        iterations.f64s("end_ms")?,
    );
    let mut blocks: Vec<Block> = Vec::new();
    for i in 0..iterations.height() {
        let (Some(lane), Some(n), Some(s), Some(e)) = (lanes[i].as_deref(), sms[i], starts[i], ends[i]) else {
            continue;
        };
        let (s, e) = (s / 1e3, e / 1e3);
        if e <= lo || s >= hi {
            continue;
        }
        let lane = match lane {
            "prefill" => Lane::Prefill,
            "decode" => Lane::Decode,
            _ => Lane::Whole,
        };
        let b = Block { start_s: s.max(lo), end_s: e.min(hi), lane, sms: n as u32 };
        // Merge back-to-back batches of the same partition (one rectangle instead of thousands).
        match blocks.iter_mut().rev().find(|x| x.lane == b.lane) {
            Some(x) if x.sms == b.sms && (b.start_s - x.end_s).abs() < 1e-9 => x.end_s = b.end_s,
            _ => blocks.push(b),
        }
    }
    Ok(Figure::Timeline(TimelineChart {
        title: format!("SM partitions of {} at {rate} req/s{title}", r.label),
        total_sms: r.num_sms as u32,
        blocks,
        splits: splits.into_iter().filter(|t| (lo..hi).contains(t)).collect(),
    }))
}

fn distinct_rates(rows: &[&Row]) -> Vec<f64> {
    let mut v: Vec<f64> = rows.iter().map(|r| r.rate).collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

fn summary_markdown(rows: &[Row], groups: &[String], labels: &[String]) -> String {
    let mut md = String::from(
        "# Sweep summary\n\nMeans over seeds. ITL pools every inter-token gap; TBT is each request's largest \
         inter-token gap; attainment is the share of requests meeting every SLO.\n",
    );
    let f = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
    for g in groups {
        md.push_str(&format!("\n## {}\n\n", if g.is_empty() { "all points" } else { g }));
        let mine: Vec<&Row> = rows.iter().filter(|r| &r.group == g).collect();
        let mut table_rows = Vec::new();
        for l in labels {
            let lr: Vec<&Row> = mine.iter().copied().filter(|r| &r.label == l).collect();
            for rate in distinct_rates(&lr) {
                let at: Vec<&Row> = lr.iter().copied().filter(|r| r.rate == rate).collect();
                let mean = |k: &str| {
                    let v: Vec<f64> = at.iter().filter_map(|r| r.fields[k]).collect();
                    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
                };
                table_rows.push(vec![
                    l.clone(),
                    format!("{rate}"),
                    f(mean("request_throughput"), 2),
                    f(mean("request_goodput"), 2),
                    f(mean("p99_ttft_ms"), 1),
                    f(mean("p99_itl_ms"), 1),
                    f(mean("p99_tbt_ms"), 1),
                    f(mean("slo_attainment").map(|v| v * 100.0), 1),
                ]);
            }
        }
        md.push_str(&markdown::table(
            &[
                "policy",
                "rate (req/s)",
                "throughput (req/s)",
                "goodput (req/s)",
                "P99 TTFT (ms)",
                "P99 ITL (ms)",
                "P99 TBT (ms)",
                "attainment (%)",
            ],
            &[false, true, true, true, true, true, true, true],
            &table_rows,
        ));
    }
    md
}

fn calibration_figure(ctx: &mut Ctx, path: &Path) -> Result<()> {
    let t = Table::read(path)?;
    let (ops, measured, predicted) = (t.strings("op")?, t.f64s("measured_ms")?, t.f64s("predicted_ms")?);
    let mut groups: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for i in 0..t.height() {
        let (Some(op), Some(m), Some(p)) = (ops[i].clone(), measured[i], predicted[i]) else { continue };
        match groups.iter_mut().find(|(g, _)| *g == op) {
            Some((_, v)) => v.push((m, p)),
            None => groups.push((op, vec![(m, p)])),
        }
    }
    let name = path.file_stem().map_or("calibration".into(), |s| s.to_string_lossy().into_owned());
    let fig = Figure::Scatter(ScatterChart {
        title: format!("cost model vs measurement ({name})"),
        quantity: "kernel time (ms)".into(),
        groups,
        band: 0.10,
    });
    // Operator classes get their own colours (policy labels are not involved here).
    let colors = ColorMap::new(groups_of(&fig));
    ctx.written.extend(fig.render(&colors, &ctx.out.join(format!("calibration-{}", slug(&name))))?);
    Ok(())
}

fn groups_of(fig: &Figure) -> Vec<String> {
    match fig {
        Figure::Scatter(c) => c.groups.iter().map(|(g, _)| g.clone()).collect(),
        _ => Vec::new(),
    }
}

/// Runs `duet report`; returns the files written.
pub fn run(o: &ReportOptions) -> Result<Vec<PathBuf>> {
    let capacity = o.results.join("capacity.csv");
    if o.results.is_dir() && capacity.is_file() && !o.results.join("results.parquet").is_file() {
        return capacity_figure(&capacity, o.out.as_deref());
    }
    if o.results.file_name().is_some_and(|n| n == "capacity.csv" || n == "capacity.parquet") {
        return capacity_figure(&o.results, o.out.as_deref());
    }
    if o.results.is_dir() && !o.results.join("results.parquet").is_file() && o.results.join("summary.json").is_file() {
        bail!(
            "{} is one run's folder (`duet sim --out`); `duet report` draws a sweep's results: run `duet sweep FILE` \
             (or `duet capacity FILE`) first and report its folder (docs/SWEEPS.md)",
            o.results.display()
        );
    }
    let results = if o.results.is_dir() { o.results.join("results.parquet") } else { o.results.clone() };
    let sweep_dir = results.parent().unwrap_or(Path::new(".")).to_path_buf();
    let out = o.out.clone().unwrap_or_else(|| sweep_dir.join("figures"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let rows = load_rows(&results)?;
    let groups = distinct(rows.iter().map(|r| r.group.as_str()));
    let labels = distinct(rows.iter().map(|r| r.label.as_str()));
    let colors = ColorMap::new(labels.iter().cloned());
    let points = sweep_dir.join("points");
    let mut ctx =
        Ctx { out: &out, colors: &colors, points: points.clone(), timeline_s: o.timeline_seconds, written: Vec::new() };
    for (gi, g) in groups.iter().enumerate() {
        let mine: Vec<&Row> = rows.iter().filter(|r| &r.group == g).collect();
        let title = if g.is_empty() { String::new() } else { format!(" ({})", short_group(g)) };
        let prefix = if groups.len() == 1 { String::new() } else { format!("g{}-", gi + 1) };
        rate_figures(&mut ctx, &mine, &labels, &title, &prefix)?;
        let rate = match o.rate {
            Some(r) => Some(r),
            None => {
                let have = mine.first().is_some_and(|r| points.join(&r.point_id).join("requests.csv").is_file());
                let rates = distinct_rates(&mine);
                have.then(|| rates[rates.len() / 2])
            }
        };
        match rate {
            Some(r) => detail_figures(&mut ctx, &mine, &labels, r, &title, &prefix)?,
            None if gi == 0 => eprintln!(
                "note: no CDFs or partition timelines: the sweep stored no requests.csv (set `details = true`)"
            ),
            None => {}
        }
    }
    for c in &o.calibration {
        calibration_figure(&mut ctx, c)?;
    }
    let md = out.join("summary.md");
    std::fs::write(&md, summary_markdown(&rows, &groups, &labels))
        .with_context(|| format!("writing {}", md.display()))?;
    ctx.written.push(md);
    Ok(ctx.written)
}

/// A group string shortened for titles: file paths reduced to their names.
fn short_group(g: &str) -> String {
    g.split("; ")
        .map(|kv| match kv.split_once('=') {
            Some(("trace", v)) => {
                format!("{}", Path::new(v).file_stem().map_or(v.into(), |s| s.to_string_lossy()))
            }
            Some((_, v)) => v.to_string(),
            None => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Capacity per policy (series) and group (category) from a `duet capacity` table: `OUT/capacity.{png,svg}`
/// (default OUT: `figures/` beside the table). Points whose lowest rate already failed have no bar. A table with
/// a `relative_capacity` column (capacity / a reference's, e.g. the best tuned baseline's) is drawn from that
/// column instead, with the reference as a line at 1.
fn capacity_figure(path: &Path, out: Option<&Path>) -> Result<Vec<PathBuf>> {
    let t = Table::read(path)?;
    let relative = t.has("relative_capacity");
    let column = if relative { "relative_capacity" } else { "capacity_rps" };
    let (labels, groups, caps) = (t.strings("label")?, t.strings("group")?, t.f64s(column)?);
    let (labels, groups): (Vec<String>, Vec<String>) = (
        labels.into_iter().map(Option::unwrap_or_default).collect(),
        groups.into_iter().map(Option::unwrap_or_default).collect(),
    );
    let categories = distinct(groups.iter().map(String::as_str));
    let names = distinct(labels.iter().map(String::as_str));
    let series = names
        .iter()
        .map(|n| {
            let v = categories
                .iter()
                .map(|g| (0..caps.len()).find(|&i| &labels[i] == n && &groups[i] == g).and_then(|i| caps[i]))
                .collect();
            (n.clone(), v)
        })
        .collect();
    let fig = Figure::Bar(BarChart {
        title: "Capacity (highest rate meeting the limits)".into(),
        y_label: if relative { "capacity / reference capacity" } else { "capacity (req/s)" }.into(),
        categories: categories.iter().map(|g| short_group(g)).collect(),
        series,
        limit: relative.then(|| Limit { label: "reference (1.0)".into(), value: 1.0 }),
    });
    let out = out.map(Path::to_path_buf).unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")).join("figures"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    Ok(fig.render(&ColorMap::new(names.iter().cloned()), &out.join("capacity"))?)
}
