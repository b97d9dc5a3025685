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

/// `duet sweep CONFIG`.
pub fn sweep(config: &Path, out: Option<PathBuf>, shard: Option<&str>, jobs: Option<usize>) -> Result<()> {
    let spec = SweepSpec::load(config)?;
    let out = out.or_else(|| spec.out.clone()).unwrap_or_else(|| PathBuf::from("results").join(&spec.name));
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

/// `duet capacity CONFIG`.
pub fn capacity(config: &Path, out: Option<PathBuf>, jobs: Option<usize>) -> Result<()> {
    let spec = SweepSpec::load(config)?;
    let rows = capacity::run(&spec, jobs)?;
    let fmt = |v: Option<&serde_json::Value>| match v.and_then(serde_json::Value::as_f64) {
        Some(x) => format!("{x:.3}"),
        None => "-".into(),
    };
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let s = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            vec![s("label"), s("group"), fmt(r.get("capacity_rps")), fmt(r.get("failing_rps")), s("status")]
        })
        .collect();
    let limits = rows.first().and_then(|r| r.get("limits")).and_then(|v| v.as_str()).unwrap_or("");
    println!(
        "capacity: highest rate meeting {limits} (tolerance {} req/s)\n",
        spec.capacity.as_ref().map_or(0.0, |c| c.tolerance)
    );
    print!(
        "{}",
        markdown::table(
            &["policy", "group", "capacity (req/s)", "lowest failing (req/s)", "status"],
            &[false, false, true, true, false],
            &table_rows
        )
    );
    if let Some(dir) = out {
        std::fs::create_dir_all(&dir)?;
        let t = Table::from_rows(&rows)?;
        t.write_csv(&dir.join("capacity.csv"))?;
        t.write_parquet(&dir.join("capacity.parquet"))?;
        println!("wrote {0}/capacity.csv and {0}/capacity.parquet", dir.display());
    }
    Ok(())
}
