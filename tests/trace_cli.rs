//! `duet trace` subcommands and the workload options of `duet sim`, end to end through the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn duet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_duet")).args(args).output().expect("run duet")
}

fn ok(args: &[&str]) -> String {
    let o = duet(args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(args: &[&str]) -> String {
    let o = duet(args);
    assert!(!o.status.success(), "{args:?} succeeded");
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!e.contains("panicked"), "{e}");
    e
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("duet-trace-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn excerpt() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("traces/data/azure_conv_excerpt.csv").display().to_string()
}

#[test]
fn stats_json_has_the_documented_keys() {
    let v: serde_json::Value = serde_json::from_str(&ok(&["trace", "stats", &excerpt(), "--json"])).unwrap();
    assert_eq!(v["rows"], 1000);
    for k in ["span_s", "mean_rate", "interarrival_cv", "peak_per_minute"] {
        assert!(v[k].as_f64().is_some(), "{k}");
    }
    for dim in ["input_tokens", "output_tokens"] {
        for k in ["mean", "median", "p90", "p99", "max"] {
            assert!(v[dim][k].as_f64().is_some(), "{dim}.{k}");
        }
    }
    assert!(v.get("prefix_block_reuse").is_none(), "no hashes, no reuse key");
    let mc = tmp("m.jsonl");
    std::fs::write(
        &mc,
        "{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 3, \"hash_ids\": [1, 2]}\n\
         {\"timestamp\": 3000, \"input_length\": 700, \"output_length\": 4, \"hash_ids\": [1, 3]}\n",
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(&["trace", "stats", mc.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(v["prefix_block_reuse"], 0.25);
}

#[test]
fn convert_round_trips_through_both_canonical_formats() {
    let before = ok(&["trace", "stats", &excerpt(), "--json"]);
    for ext in ["csv", "jsonl"] {
        let out = tmp(&format!("conv.{ext}"));
        ok(&["trace", "convert", &excerpt(), out.to_str().unwrap()]);
        assert_eq!(ok(&["trace", "stats", out.to_str().unwrap(), "--json"]), before, "{ext}");
        // Converting the converted file again changes nothing.
        let again = tmp(&format!("conv2.{ext}"));
        ok(&["trace", "convert", out.to_str().unwrap(), again.to_str().unwrap()]);
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    }
    assert!(
        err(&["trace", "convert", &excerpt(), tmp("x.txt").to_str().unwrap()]).contains("must end in .csv or .jsonl")
    );
}

#[test]
fn gen_is_deterministic_and_follows_its_parameters() {
    let (a, b) = (tmp("g1.csv"), tmp("g2.csv"));
    let args = |p: &PathBuf| {
        vec![
            "trace".to_string(),
            "gen".into(),
            "--synthetic".into(),
            "2000".into(),
            "--rate".into(),
            "4".into(),
            "--arrivals".into(),
            "gamma:cv=2".into(),
            "--input-len".into(),
            "uniform:100,200".into(),
            "--output-len".into(),
            "50".into(),
            "--seed".into(),
            "3".into(),
            "--out".into(),
            p.display().to_string(),
        ]
    };
    let run = |p: &PathBuf| ok(&args(p).iter().map(String::as_str).collect::<Vec<_>>());
    run(&a);
    run(&b);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let v: serde_json::Value = serde_json::from_str(&ok(&["trace", "stats", a.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(v["rows"], 2000);
    assert!((v["interarrival_cv"].as_f64().unwrap() - 2.0).abs() < 0.3);
    assert!(v["input_tokens"]["max"].as_u64().unwrap() <= 200 && v["output_tokens"]["max"] == 50);
}

#[test]
fn length_only_traces_need_a_rate() {
    let lens = tmp("lens.csv");
    std::fs::write(
        &lens,
        "num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n100,20,120,5\n300,40,340,7.5\n",
    )
    .unwrap();
    assert!(err(&["sim", "--trace", lens.to_str().unwrap()]).contains("has no arrival times: pass --rate"));
    let out = ok(&["sim", "--trace", lens.to_str().unwrap(), "--rate", "2"]);
    assert!(out.contains("Completed requests:               2"), "{out}");
    assert!(
        err(&["trace", "convert", lens.to_str().unwrap(), tmp("l.csv").to_str().unwrap()]).contains("lengths only")
    );
}

#[test]
fn requests_longer_than_the_context_are_rejected_with_a_count_or_capped() {
    let t = tmp("long.csv");
    std::fs::write(
        &t,
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,40000,2000\n2023-11-16 18:15:47,100,10\n",
    )
    .unwrap();
    let e = err(&["sim", "--trace", t.to_str().unwrap()]);
    assert!(e.contains("1 request(s) exceed the model context of 40960 tokens"), "{e}");
    let o = duet(&["sim", "--trace", t.to_str().unwrap(), "--cap-to-context"]);
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("note: 1 request(s) capped to the model context of 40960 tokens")
    );
}

#[test]
fn window_filters_caps_and_shuffle_compose() {
    let dir = tmp("win");
    let out = ok(&[
        "sim",
        "--window",
        "60s",
        "--window-start",
        "30s",
        "--input-range",
        "100:",
        "--cap-output",
        "64",
        "--shuffle-lengths",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let n = summary["completed"].as_u64().unwrap();
    assert!(n > 100 && n < 1000, "{n}: {out}");
    let notes = summary["trace_notes"].as_array().unwrap();
    assert!(notes.iter().any(|v| v.as_str().unwrap().contains("outside the time window")), "{notes:?}");
    assert!(summary["trace"].as_str().unwrap().contains("shuffled"));
    let csv = std::fs::read_to_string(dir.join("requests.csv")).unwrap();
    assert!(csv.lines().skip(1).all(|l| {
        let f: Vec<&str> = l.split(',').collect();
        f[2].parse::<u32>().unwrap() >= 100 && f[3].parse::<u32>().unwrap() <= 64
    }));
    assert!(err(&["sim", "--window", "5 fortnights"]).contains("unknown unit"));
    assert!(err(&["sim", "--input-range", "9:3"]).contains("MIN > MAX"));
}
