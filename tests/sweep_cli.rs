//! `duet sweep`, `duet capacity` and `duet report` end to end: resume after an interruption, sharding, a
//! capacity search with a known answer, figures, and clear errors for bad sweep files and results.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{duet, stderr};

fn tmp(name: &str) -> PathBuf {
    common::tmp("sweep", name)
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "duet failed:\n{}\n{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// 2 policies x 3 rates x 2 seeds = 12 points on the first 200 requests of the bundled excerpt.
const SWEEP: &str = r#"
name = "t"
details = true
[base]
num-requests = 200
shuffle-lengths = true
slo-ttft-ms = 2000
slo-tbt-ms = 100
[axes]
rate = [2, 5, 9]
seed = [0, 1]
[[policy]]
label = "chunked"
policy = "chunked"
[[policy]]
label = "duet 8192"
policy = "duet"
token-budget = 8192
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn csv_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn an_interrupted_sweep_resumes_with_only_the_missing_points_and_identical_results() {
    let dir = tmp("resume");
    let cfg = write(&dir, "s.toml", SWEEP);
    let full = dir.join("full");
    let out = ok(duet(&["sweep", s(&cfg), "--out", s(&full)]));
    assert!(out.contains("12 points (12 run now, 0 already done, 0 failed)"), "{out}");
    let reference = std::fs::read(full.join("results.csv")).unwrap();
    assert_eq!(csv_lines(&full.join("results.csv")).len(), 13);

    // Interrupt: a copy with 5 points removed and a half-written temporary folder left behind.
    let part = dir.join("part");
    std::fs::create_dir_all(part.join("points")).unwrap();
    let mut ids: Vec<_> = std::fs::read_dir(full.join("points")).unwrap().map(|e| e.unwrap().path()).collect();
    ids.sort();
    for (i, p) in ids.iter().enumerate() {
        if i % 2 == 0 && i < 10 {
            continue; // "not yet run"
        }
        let to = part.join("points").join(p.file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(p).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
    // A half-written temporary folder of a point that the re-run completes (removed then), and one of a point
    // that does not exist (perhaps a concurrent shard's: kept).
    let stale = format!(".{}.tmp-1", ids[0].file_name().unwrap().to_string_lossy());
    std::fs::create_dir_all(part.join("points").join(&stale)).unwrap();
    std::fs::create_dir_all(part.join("points").join(".deadbeef.tmp-1")).unwrap();
    let out = ok(duet(&["sweep", s(&cfg), "--out", s(&part)]));
    assert!(out.contains("(5 run now, 7 already done, 0 failed)"), "{out}");
    assert_eq!(std::fs::read(part.join("results.csv")).unwrap(), reference, "resumed results differ");
    assert!(!part.join("points").join(&stale).exists(), "stale temporary folder of a finished point kept");
    assert!(part.join("points").join(".deadbeef.tmp-1").exists());
    // Nothing left to do on a third run.
    let out = ok(duet(&["sweep", s(&cfg), "--out", s(&part)]));
    assert!(out.contains("(0 run now, 12 already done, 0 failed)"), "{out}");
    assert!(part.join("results.parquet").is_file());
}

#[test]
fn shards_together_give_exactly_the_unsharded_rows() {
    let dir = tmp("shard");
    let cfg = write(&dir, "s.toml", SWEEP);
    let full = dir.join("full");
    ok(duet(&["sweep", s(&cfg), "--out", s(&full), "--jobs", "1"]));
    let all = csv_lines(&full.join("results.csv"));
    let sharded = dir.join("sharded");
    let mut rows = Vec::new();
    for i in 1..=3 {
        let out = ok(duet(&["sweep", s(&cfg), "--out", s(&sharded), "--shard", &format!("{i}/3")]));
        assert!(out.contains(&format!("4 points in shard {i}/3 of 12")), "{out}");
        let lines = csv_lines(&sharded.join(format!("results.shard-{i}-of-3.csv")));
        assert_eq!(lines[0], all[0], "header");
        rows.extend(lines[1..].iter().cloned());
    }
    // Rows start with the point index: sort the union back into sweep order.
    rows.sort_by_key(|r| r.split(',').next().unwrap().parse::<usize>().unwrap());
    assert_eq!(rows, all[1..]);
    // --list shows the shard's points with their state, without running anything.
    let listed = ok(duet(&["sweep", s(&cfg), "--out", s(&sharded), "--shard", "2/3", "--list"]));
    assert!(listed.contains("4 points, 0 pending") && listed.contains("    1 "), "{listed}");
    // A final unsharded run finds every point done and writes the full table.
    let out = ok(duet(&["sweep", s(&cfg), "--out", s(&sharded)]));
    assert!(out.contains("(0 run now, 12 already done"), "{out}");
    assert_eq!(csv_lines(&sharded.join("results.csv")), all);
}

#[test]
fn report_draws_every_figure_type_and_a_summary() {
    let dir = tmp("report");
    let cfg = write(&dir, "s.toml", SWEEP);
    let out_dir = dir.join("out");
    ok(duet(&["sweep", s(&cfg), "--out", s(&out_dir)]));
    let calib = write(
        &dir,
        "check.csv",
        "name,op,tokens,d_in,d_out,sms,measured_ms,predicted_ms,abs_pct_error\na,linear,1,1,1,132,1.0,1.1,10\n\
         b,attention,2,1,1,132,2.0,1.9,5\n",
    );
    let printed = ok(duet(&["report", s(&out_dir), "--rate", "9", "--calibration", s(&calib)]));
    let figs = out_dir.join("figures");
    for stem in [
        "throughput",
        "goodput",
        "p99-ttft",
        "p99-tbt",
        "p99-itl",
        "attainment",
        "cdf-ttft",
        "cdf-tbt",
        "timeline-duet-8192",
        "calibration-check",
    ] {
        for ext in ["png", "svg"] {
            let f = figs.join(format!("{stem}.{ext}"));
            assert!(f.is_file() && std::fs::metadata(&f).unwrap().len() > 1000, "{} missing:\n{printed}", f.display());
        }
    }
    let md = std::fs::read_to_string(figs.join("summary.md")).unwrap();
    assert!(md.contains("| chunked | 9 |") && md.contains("P99 ITL") && md.contains("| duet 8192 | 2 |"), "{md}");
    // Without the duet point's decisions.csv, the timeline cannot be drawn: an error naming the file.
    let mut removed = 0;
    for e in std::fs::read_dir(out_dir.join("points")).unwrap() {
        let p = e.unwrap().path();
        let summary = std::fs::read_to_string(p.join("summary.json")).unwrap();
        if summary.contains("\"policy\": \"duet\"") {
            let f = p.join("decisions.csv");
            std::fs::remove_file(&f).unwrap();
            removed += 1;
        }
    }
    assert_eq!(removed, 6, "duet points (3 rates x 2 seeds)");
    let o = duet(&["report", s(&out_dir), "--rate", "9"]);
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains("decisions.csv is missing"), "{e}");
}

#[test]
fn capacity_recovers_the_d_d_1_saturation_rate_of_a_prefill_only_workload() {
    // Identical 1024-token prompts with one output token arriving at a constant rate, served one prompt per
    // batch (prefill-first, budget 1024): a D/D/1 queue with service time S. Below 1/S nothing waits and TTFT =
    // S; above it the k-th request waits k (S - 1/rate). With TTFT <= 1.5 S for 99% of 400 requests, the
    // boundary is 1/S within 0.2%, so the search must return 1/S within its tolerance.
    let dir = tmp("capacity");
    let common = "synthetic = 400\narrivals = \"constant\"\ninput-len = \"1024\"\noutput-len = \"1\"\n";
    let one = dir.join("one");
    ok(duet(&[
        "sim",
        "--synthetic",
        "1",
        "--rate",
        "1",
        "--input-len",
        "1024",
        "--output-len",
        "1",
        "--policy",
        "prefill-first",
        "--token-budget",
        "1024",
        "--out",
        s(&one),
    ]));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(one.join("summary.json")).unwrap()).unwrap();
    let service_ms = summary["mean_ttft_ms"].as_f64().unwrap();
    let expected = 1000.0 / service_ms;
    let tolerance = 0.02 * expected;
    let cfg = write(
        &dir,
        "c.toml",
        &format!(
            "[base]\n{common}slo-ttft-ms = {}\n[[policy]]\nlabel = \"pf\"\npolicy = \"prefill-first\"\n\
             token-budget = 1024\n[capacity]\nlow = {}\nhigh = {}\ntolerance = {tolerance}\n[capacity.min]\n\
             slo_attainment = 0.99\n",
            1.5 * service_ms,
            0.25 * expected,
            3.0 * expected
        ),
    );
    let out_dir = dir.join("cap");
    let printed = ok(duet(&["capacity", s(&cfg), "--out", s(&out_dir)]));
    let t = std::fs::read_to_string(out_dir.join("capacity.csv")).unwrap();
    let header: Vec<&str> = t.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = t.lines().nth(1).unwrap().split(',').collect();
    let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    let cap: f64 = col("capacity_rps").parse().unwrap();
    assert_eq!(col("status"), "bracketed", "{printed}");
    assert!((cap - expected).abs() <= tolerance + 0.002 * expected, "capacity {cap} vs 1/S = {expected}\n{printed}");
}

#[test]
fn report_draws_capacity_bars_from_a_capacity_table_and_its_folder() {
    let dir = tmp("capbars");
    let cap = dir.join("cap");
    std::fs::create_dir_all(&cap).unwrap();
    // A duet capacity table (only the columns the figure reads), and one with relative capacities.
    write(
        &cap,
        "capacity.csv",
        "label,group,capacity_rps\nchunked,model=qwen3-8b,14.5\nduet,model=qwen3-8b,15.2\nduet,model=qwen3-14b,8.8\n",
    );
    let printed = ok(duet(&["report", s(&cap)]));
    let svg = std::fs::read_to_string(cap.join("figures/capacity.svg")).unwrap();
    assert!(
        printed.contains("capacity.png") && svg.contains("qwen3-14b") && svg.contains("capacity (req/s)"),
        "{printed}"
    );
    let rel = dir.join("rel");
    std::fs::create_dir_all(&rel).unwrap();
    let table = write(&rel, "capacity.csv", "label,group,capacity_rps,relative_capacity\nadaptive,conv 8B,16.6,1.04\n");
    ok(duet(&["report", s(&table), "--out", s(&dir.join("fig"))]));
    let svg = std::fs::read_to_string(dir.join("fig/capacity.svg")).unwrap();
    assert!(svg.contains("capacity / reference capacity") && svg.contains("reference (1.0)"), "relative axis and line");
}

#[test]
fn bad_sweep_files_and_results_are_clear_errors() {
    let dir = tmp("bad");
    let cases = [
        (
            "unknown.toml",
            "[base]\nmodle = \"qwen3-8b\"\n[[policy]]\npolicy = \"chunked\"\n",
            "unknown key `modle` in [base]",
        ),
        ("policy.toml", "[[policy]]\npolicy = \"fifo\"\n", "fifo"),
        ("value.toml", "[axes]\nrate = [1, \"fast\"]\n[[policy]]\npolicy = \"chunked\"\n", "fast"),
        ("toplevel.toml", "rates = [1]\n[[policy]]\npolicy = \"chunked\"\n", "unknown top-level key `rates`"),
    ];
    for (name, text, needle) in cases {
        let cfg = write(&dir, name, text);
        let o = duet(&["sweep", s(&cfg), "--out", s(&dir.join("o"))]);
        let e = stderr(&o);
        assert!(!o.status.success() && e.contains(needle) && e.contains(name), "{name}: {e}");
        assert!(!e.contains("panicked"), "{e}");
    }
    // Capacity without [capacity], or with `rate` set.
    let cfg = write(&dir, "nocap.toml", "[[policy]]\npolicy = \"chunked\"\n");
    let e = stderr(&duet(&["capacity", s(&cfg)]));
    assert!(e.contains("no [capacity] table"), "{e}");
    // An empty results file and a missing decisions.csv.
    let empty = write(&dir, "results.csv", "point,label,arg_rate\n");
    let e = stderr(&duet(&["report", s(&empty)]));
    assert!(e.contains("results.csv") && e.contains("no row"), "{e}");
    let cfg = write(&dir, "nodetail.toml", &SWEEP.replace("details = true", "details = false"));
    let out_dir = dir.join("nodetail");
    ok(duet(&["sweep", s(&cfg), "--out", s(&out_dir)]));
    let o = duet(&["report", s(&out_dir), "--rate", "5"]);
    let e = stderr(&o);
    assert!(!o.status.success() && e.contains("requests.csv is missing") && e.contains("details = true"), "{e}");
    let e = stderr(&duet(&["sweep", s(&cfg), "--shard", "4/3"]));
    assert!(e.contains("1 <= I <= N"), "{e}");
}

#[test]
fn a_failing_point_is_a_row_with_its_error_and_the_others_still_run() {
    let dir = tmp("failed-point");
    let cfg = write(
        &dir,
        "s.toml",
        "name = \"t\"\n[axes]\nrate = [1e-9, 4]\n[base]\nnum-requests = 20\n[[policy]]\nlabel = \"c\"\npolicy = \"chunked\"\n",
    );
    let out = dir.join("out");
    let o = duet(&["sweep", s(&cfg), "--out", s(&out)]);
    assert!(!o.status.success() && o.status.code() != Some(101), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 of 2 points failed"), "{}", stderr(&o));
    let lines = csv_lines(&out.join("results.csv"));
    assert_eq!(lines.len(), 3, "{lines:?}");
    let header: Vec<&str> = lines[0].split(',').collect();
    let err_col = header.iter().position(|h| *h == "error").expect("an error column");
    assert!(lines[1].contains("use a higher rate"), "{}", lines[1]);
    // The successful point has no error and its metrics.
    assert!(lines[2].split(',').nth(err_col) == Some(""), "{}", lines[2]);
    // `duet report` draws the rest and names the failed row.
    let o = duet(&["report", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("row 1 is a failed point, left out"), "{}", stderr(&o));
}
