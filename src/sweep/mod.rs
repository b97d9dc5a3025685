//! `duet sweep` and `duet capacity`: sweep files ([`spec`]), running them ([`run`]) and the capacity search
//! ([`capacity`]).

pub mod capacity;
pub mod run;
pub mod spec;

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use duet_reports::markdown;
use duet_reports::table::Table;

use spec::SweepSpec;

/// The output folder: `--out`, else the file's `out`, else `results/NAME`.
fn out_dir(spec: &SweepSpec, out: Option<PathBuf>) -> PathBuf {
    out.or_else(|| spec.out.clone()).unwrap_or_else(|| PathBuf::from("results").join(&spec.name))
}

/// `duet sweep CONFIG --list`: the points (of the shard), validated, without running them.
pub fn list(config: &Path, out: Option<PathBuf>, shard: Option<&str>) -> Result<()> {
    let spec = SweepSpec::load(config)?;
    let out = out_dir(&spec, out);
    let shard = shard.map(run::parse_shard).transpose()?;
    let mut pending = 0;
    let mut shown = 0;
    let mut text = String::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for p in spec.points.iter().filter(|p| p.in_shard(shard)) {
        let (args, _) = run::prepare(&spec, p)?;
        // Each trace once: a missing or unreadable file is named here, not when the sweep runs.
        if let Some(t) = args.workload.trace.as_ref().filter(|t| !seen.contains(t)) {
            if let Err(e) = std::fs::File::open(t) {
                bail!(
                    "point {} ({}): cannot read trace {}: {e} (the public traces: scripts/fetch-data.sh downloads \
                     them into data/)",
                    p.index,
                    p.label,
                    t.display()
                );
            }
            seen.push(t.clone());
        }
        let done = run::is_done(&out, p);
        pending += usize::from(!done);
        shown += 1;
        text.push_str(&format!(
            "{:>5} {} {:<7} {:<24} {}\n",
            p.index,
            p.id(),
            if done { "done" } else { "pending" },
            p.label,
            p.argv().join(" ")
        ));
    }
    text.push_str(&format!("{shown} points, {pending} pending, output folder {}\n", out.display()));
    // A closed pipe (`duet sweep F --list | head`) is not an error.
    match std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    Ok(())
}

/// `duet capacity CONFIG --list`: the file checked and its points listed, each at the search's `low` rate with
/// its workload loaded (so that a missing trace is named), without searching.
pub fn capacity_list(config: &Path) -> Result<()> {
    let spec = SweepSpec::load(config)?;
    let rows = capacity::check(&spec)?;
    let mut text = String::new();
    for (p, requests) in spec.points.iter().zip(&rows) {
        text.push_str(&format!("{:>5} {:<24} {} requests  {}\n", p.index, p.label, requests, p.argv().join(" ")));
    }
    text.push_str(&format!("{} points\n", rows.len()));
    match std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    Ok(())
}

/// `duet sweep CONFIG`.
pub fn sweep(config: &Path, out: Option<PathBuf>, shard: Option<&str>, jobs: Option<usize>) -> Result<()> {
    let spec = SweepSpec::load(config)?;
    let out = out_dir(&spec, out);
    let shard = shard.map(run::parse_shard).transpose()?;
    let o = run::run(&spec, &run::RunOptions { out: out.clone(), shard, jobs })?;
    println!(
        "sweep {}: {} points{} ({} run now, {} already done, {} failed) in {:.1} s",
        spec.name,
        o.selected,
        shard.map_or(String::new(), |(i, n)| format!(" in shard {i}/{n} of {}", spec.points.len())),
        o.ran,
        o.skipped,
        o.failed.len(),
        o.seconds
    );
    for t in &o.tables {
        println!("wrote {}", t.display());
    }
    if !o.failed.is_empty() {
        for (i, e) in &o.failed {
            eprintln!("point {i} failed: {e}");
        }
        bail!(
            "{} of {} points failed (the others are stored; re-run to retry the failed ones)",
            o.failed.len(),
            o.selected
        );
    }
    Ok(())
}

/// The capacity table as Markdown: one row per policy label, one column per group, cells in req/s (`< low`
/// when even the lowest rate failed, `>= high` when the highest met the limits).
pub fn capacity_markdown(rows: &[serde_json::Map<String, serde_json::Value>]) -> String {
    let text = |r: &serde_json::Map<String, serde_json::Value>, k: &str| {
        r.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string()
    };
    let mut labels: Vec<String> = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    for r in rows {
        for (v, list) in [(text(r, "label"), &mut labels), (text(r, "group"), &mut groups)] {
            if !list.contains(&v) {
                list.push(v);
            }
        }
    }
    let cell = |r: &serde_json::Map<String, serde_json::Value>| {
        let num = |k: &str| r.get(k).and_then(serde_json::Value::as_f64);
        match (text(r, "status").as_str(), num("capacity_rps"), num("failing_rps")) {
            ("below low", _, Some(f)) => format!("< {f}"),
            ("at least high", Some(c), _) => format!(">= {c}"),
            (_, Some(c), _) => format!("{c:.2}"),
            _ => "-".into(),
        }
    };
    let table_rows: Vec<Vec<String>> = labels
        .iter()
        .map(|l| {
            let mut row = vec![l.clone()];
            for g in &groups {
                let r = rows.iter().find(|r| &text(r, "label") == l && &text(r, "group") == g);
                row.push(r.map_or("-".into(), cell));
            }
            row
        })
        .collect();
    let mut header = vec!["policy".to_string()];
    header.extend(groups.iter().map(|g| if g.is_empty() { "capacity (req/s)".to_string() } else { g.clone() }));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let right: Vec<bool> = (0..header.len()).map(|i| i > 0).collect();
    markdown::table(&header, &right, &table_rows)
}

/// `duet capacity CONFIG`.
pub fn capacity(config: &Path, out: Option<PathBuf>, jobs: Option<usize>) -> Result<()> {
    let spec = SweepSpec::load(config)?;
    let rows = capacity::run(&spec, jobs)?;
    let limits = rows.first().and_then(|r| r.get("limits")).and_then(|v| v.as_str()).unwrap_or("");
    let tolerance = spec.capacity.as_ref().map_or(0.0, |c| c.tolerance);
    let md = format!(
        "Capacity (req/s): highest request rate meeting {limits}, by bisection to {tolerance} req/s.\n\n{}",
        capacity_markdown(&rows)
    );
    print!("{md}");
    if let Some(dir) = out {
        std::fs::create_dir_all(&dir)?;
        let t = Table::from_rows(&rows)?;
        t.write_csv(&dir.join("capacity.csv"))?;
        t.write_parquet(&dir.join("capacity.parquet"))?;
        std::fs::write(dir.join("capacity.md"), &md)?;
        println!("wrote {0}/capacity.csv, capacity.parquet and capacity.md", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn capacity_table_pivots_policies_against_groups() {
        let row = |label: &str, group: &str, cap: serde_json::Value, fail: serde_json::Value, status: &str| {
            json!({"label": label, "group": group, "capacity_rps": cap, "failing_rps": fail, "status": status})
                .as_object()
                .cloned()
                .unwrap()
        };
        let rows = vec![
            row("chunked", "ablation=baseline", json!(3.456), json!(3.5), "bracketed"),
            row("chunked", "ablation=linear", json!(null), json!(0.25), "below low"),
            row("duet", "ablation=baseline", json!(32.0), json!(null), "at least high"),
        ];
        assert_eq!(
            super::capacity_markdown(&rows),
            "| policy | ablation=baseline | ablation=linear |\n|---|---:|---:|\n| chunked | 3.46 | < 0.25 |\n\
             | duet | >= 32 | - |\n"
        );
    }
}
