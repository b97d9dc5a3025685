//! `duet calibrate fit | check` and `duet sim --profile`, end to end.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn duet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_duet")).args(args).output().expect("run duet")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("duet-cal-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn measured() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("measurements/h100-sxm/2026-11-26-linear/qwen3-8b_linear.csv")
        .display()
        .to_string()
}

#[test]
fn fit_then_check_then_simulate_with_the_profile() {
    let out = tmp("p.json");
    let o = duet(&["calibrate", "fit", "--gpu", "h100-sxm", "--measured", &measured(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = tmp("pred.csv");
    let o = duet(&[
        "calibrate",
        "check",
        "--profile",
        out.to_str().unwrap(),
        "--measured",
        &measured(),
        "--json",
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in ["count", "median_abs_pct", "p90_abs_pct", "max_abs_pct"] {
        assert!(v["overall"][k].is_number() && v["by_class"]["linear"][k].is_number(), "{k}");
    }
    assert_eq!(v["overall"]["count"], 108);
    // A fit to these records predicts them better than the unfitted datasheet curves.
    let o = duet(&["calibrate", "check", "--profile", "datasheet", "--measured", &measured(), "--json"]);
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["overall"]["median_abs_pct"].as_f64() < d["overall"]["median_abs_pct"].as_f64());
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 109);
    let o = duet(&["sim", "--profile", out.to_str().unwrap(), "--num-requests", "100"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn profile_errors_are_clear() {
    let newer = tmp("newer.json");
    let p = String::from_utf8(
        duet(&["calibrate", "check", "--profile", "h100-sxm", "--measured", &measured(), "--json"]).stdout,
    )
    .unwrap();
    assert!(p.contains("overall"));
    let bundled =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("calibration/profiles/h100-sxm.json"))
            .unwrap();
    std::fs::write(&newer, bundled.replacen("\"schema_version\": 1", "\"schema_version\": 7", 1)).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["sim", "--profile", newer.to_str().unwrap()],
            "profile schema version 7 is newer than this duet understands (1)",
        ),
        (vec!["sim", "--profile", "tpu-v5"], "unknown profile \"tpu-v5\""),
        (vec!["sim", "--profile", "a100-80gb"], "profile a100-80gb is for a100-80gb (108 SMs), not h100-sxm (132 SMs)"),
        (vec!["sim", "--bw-saturation-sms", "0"], "--bw-saturation-sms must be between 1 and 132, got 0"),
        (vec!["calibrate", "fit", "--measured", "/nonexistent.csv", "--out", "/tmp/x.json"], "/nonexistent.csv"),
    ];
    for (args, needle) in cases {
        let o = duet(&args);
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains(needle) && !e.contains("panicked"), "{args:?}: {e}");
    }
}

#[test]
fn fit_takes_the_mixed_penalty_and_graph_launch_from_their_csvs() {
    let (mixed, graph, out) = (tmp("mixed.csv"), tmp("graph.csv"), tmp("pm.json"));
    // One call: excesses (0.13 - 0.1 - 0.02) / 0.02 = 0.5, (0.25 - 0.2 - 0.04) / 0.04 = 0.25 and 0.5: median 0.5.
    // Two calls: 0, 0 and 0: median 0.
    std::fs::write(
        &mixed,
        "sms,chunk,before,batch,context,decode_ms,prefill_ms,mixed_ms,two_calls_ms\n\
         132,512,0,16,1024,0.02,0.1,0.13,0.12\n132,512,0,64,2048,0.04,0.2,0.25,0.24\n66,512,0,16,1024,0.04,0.2,0.26,0.24\n",
    )
    .unwrap();
    // Graph minus eager: 4 and 8 us, median 6 us.
    std::fs::write(
        &graph,
        "sms,nodes,eager_step_us,eager_host_us,graph_step_us,graph_host_us\n132,32,100,120,104,3\n132,512,900,1000,908,4\n",
    )
    .unwrap();
    let (m, g) = (mixed.to_str().unwrap(), graph.to_str().unwrap());
    let o = duet(&[
        "calibrate",
        "fit",
        "--gpu",
        "h100-sxm",
        "--measured",
        &measured(),
        m,
        g,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("mixed attention penalty 0.500 (one call) from 3")
            && stdout.contains("two calls in one step (duet's replay executor) 0.000")
            && stdout.contains("graph launch 6000 ns"),
        "{stdout}"
    );
    let p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(p["overheads"]["graph_launch_ns"], 6000);
    assert!((p["overheads"]["mixed_attention_penalty"].as_f64().unwrap() - 0.5).abs() < 1e-9, "{}", p["overheads"]);
    // A bad field names its file and line.
    std::fs::write(
        &mixed,
        "sms,chunk,before,batch,context,decode_ms,prefill_ms,mixed_ms,two_calls_ms\n132,512,0,16,1024,0,0.1,0.13,0.12\n",
    )
    .unwrap();
    let o =
        duet(&["calibrate", "fit", "--gpu", "h100-sxm", "--measured", &measured(), m, "--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("mixed.csv:2") && err.contains("decode_ms must be > 0"), "{err}");
}
