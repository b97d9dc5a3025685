//! `duet sim --out` killed at spread-out moments (SIGKILL: no destructor runs) leaves its folder complete or
//! absent, never half-written: the run writes into a staging folder beside it and renames it into place last
//! (`duet_sim::outdir`).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

/// Whether `dir` holds a complete run: a parseable summary whose `completed` matches the rows of requests.csv, and
/// every CSV ending in a newline.
fn complete(dir: &std::path::Path) -> Result<(), String> {
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("summary.json")).map_err(|e| format!("summary.json: {e}"))?,
    )
    .map_err(|e| format!("summary.json: {e}"))?;
    for f in ["requests.csv", "decisions.csv", "iterations.csv"] {
        let text = std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{f}: {e}"))?;
        if !text.ends_with('\n') {
            return Err(format!("{f} is cut mid-row"));
        }
    }
    let rows = std::fs::read_to_string(dir.join("requests.csv")).unwrap().lines().count() - 1;
    if summary["completed"].as_u64() != Some(rows as u64) {
        return Err(format!("summary says {} completed, requests.csv has {rows}", summary["completed"]));
    }
    Ok(())
}

#[test]
fn a_killed_run_leaves_a_complete_folder_or_none() {
    let root = common::tmp("interrupt", "kill");
    let args = |out: &std::path::Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_duet"));
        c.args(["sim", "--synthetic", "20000", "--rate", "50", "--input-len", "512", "--output-len", "128", "--out"])
            .arg(out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    // How long a whole run takes here, then kills spread over 0..1.2x of it.
    let t0 = Instant::now();
    assert!(args(&root.join("whole")).status().unwrap().success());
    let whole = t0.elapsed();
    complete(&root.join("whole")).unwrap();
    let (mut absent, mut present) = (0, 0);
    for i in 0..12u32 {
        let out = root.join(format!("k{i}"));
        let mut child = args(&out).spawn().unwrap();
        std::thread::sleep(whole.mul_f64(f64::from(i) / 10.0).min(Duration::from_secs(5)));
        let _ = child.kill();
        let _ = child.wait();
        if out.exists() {
            complete(&out)
                .unwrap_or_else(|e| panic!("kill {i} after {:?}: {} is incomplete: {e}", whole, out.display()));
            present += 1;
        } else {
            absent += 1;
        }
    }
    eprintln!("whole run {whole:?}; of 12 kills, {absent} left no folder and {present} a complete one");
    // Staging folders (".k3.duet-tmp-PID") may remain after a kill; no folder named k* is ever partial.
}
