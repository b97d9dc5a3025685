//! `duet replay --dry-run` and `duet validate` end to end: a fake device 10% slower than the cost model on every
//! step, replayed in wall-clock mode, then validated: every step's error is the same -9.09%, the run-level
//! latencies come out lower in the simulator, and bad inputs are clear errors.

mod common;

use common::{duet, stderr, stdout};

fn tmp(name: &str) -> std::path::PathBuf {
    common::tmp("validate", name)
}

fn window() -> Vec<&'static str> {
    vec!["--num-requests", "300", "--policy", "duet", "--tbt-target-ms", "40"]
}

#[test]
fn a_device_ten_percent_slower_shows_as_minus_nine_percent_per_step() {
    let (rp, val) = (tmp("replay"), tmp("val"));
    let mut args = vec!["replay", "--dry-run", "--device-scale", "1.1", "--out", rp.to_str().unwrap()];
    args.extend(window());
    let o = duet(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["summary.json", "requests.csv", "iterations.csv", "decisions.csv", "steps.csv"] {
        assert!(rp.join(f).is_file(), "{f} missing");
    }
    // No options typed: the replay's recorded options (replay.json) are what is re-simulated.
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rp.join("replay.json")).unwrap()).unwrap();
    assert_eq!(recorded["sim_args"]["policy"], "duet");
    assert_eq!(recorded["settings"]["gpu"], "h100-sxm");
    assert!(recorded["settings"]["kv_blocks"].as_u64().unwrap() > 0);
    let o = duet(&["validate", "--replay", rp.to_str().unwrap(), "--out", val.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("| all |"), "{}", stdout(&o));
    assert!(stdout(&o).contains("re-simulating with the options recorded in"), "{}", stdout(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(val.join("validation.json")).unwrap()).unwrap();
    // predicted / measured - 1 = 1 / 1.1 - 1 = -9.0909% on every step (ns rounding aside).
    let all = &v["steps"]["overall"];
    for k in ["median_abs_pct", "p90_abs_pct", "max_abs_pct"] {
        let e = all[k].as_f64().unwrap();
        assert!((e - 9.0909).abs() < 0.01, "{k} = {e}");
    }
    assert!((all["mean_signed_pct"].as_f64().unwrap() + 9.0909).abs() < 0.01);
    let kinds: Vec<&str> = v["steps"]["by_kind"].as_object().unwrap().keys().map(String::as_str).collect();
    assert!(kinds.contains(&"decode-graph") && kinds.contains(&"prefill"), "duet splits and looks ahead: {kinds:?}");
    // The simulator (the model's times, contention modelled) predicts lower TTFT than the slower device.
    let m = v["metrics"].as_array().unwrap();
    let ttft = m.iter().find(|x| x["key"] == "mean_ttft_ms").unwrap();
    assert!(ttft["rel_err"].as_f64().unwrap() < 0.0, "{ttft}");
    assert_eq!(m.len(), 11);
    for f in ["validation.md", "steps_validation.csv", "validation-steps.png", "validation-steps.svg"] {
        assert!(val.join(f).is_file(), "{f} missing");
    }
}

#[test]
fn mismatched_options_and_bad_replays_are_clear_errors() {
    let rp = tmp("replay-mismatch");
    let mut args = vec!["replay", "--dry-run", "--out", rp.to_str().unwrap()];
    args.extend(window());
    assert!(duet(&args).status.success());
    // Validating with another policy than the replay used.
    let o = duet(&["validate", "--replay", rp.to_str().unwrap(), "--num-requests", "300", "--policy", "chunked"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("the device run used policy \"duet\""), "{}", stderr(&o));
    // A recording whose settings the options no longer give (an edited KV size) is refused.
    let path = rp.join("replay.json");
    let good = std::fs::read_to_string(&path).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["settings"]["kv_blocks"] = 7.into();
    std::fs::write(&path, v.to_string()).unwrap();
    let o = duet(&["validate", "--replay", rp.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("recorded 7"), "{}", stderr(&o));
    std::fs::write(&path, good).unwrap();
    // A corrupted steps.csv names the file and line.
    let steps = std::fs::read_to_string(rp.join("steps.csv")).unwrap();
    let mut lines: Vec<&str> = steps.lines().collect();
    lines[3] = "2,sideways,132,eager,1,0,1,0,1000,1,1+5*";
    std::fs::write(rp.join("steps.csv"), lines.join("\n")).unwrap();
    let mut args = vec!["validate", "--replay", rp.to_str().unwrap()];
    args.extend(window());
    let o = duet(&args);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("steps.csv:4: unknown lane \"sideways\""), "{}", stderr(&o));
    // Replay without --dry-run: the duet binary has no GPU runtime.
    let o = duet(&["replay", "--out", rp.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("duet-gpu replay"), "{}", stderr(&o));
}

#[test]
fn muxwise_layer_groups_replay_and_validate_as_their_share() {
    let (rp, val) = (tmp("replay-muxwise"), tmp("val-muxwise"));
    let opts = ["--num-requests", "100", "--policy", "muxwise", "--granularity", "green"];
    let mut args = vec!["replay", "--dry-run", "--device-scale", "1.1", "--out", rp.to_str().unwrap()];
    args.extend(opts);
    let o = duet(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let steps = std::fs::read_to_string(rp.join("steps.csv")).unwrap();
    let groups = steps.lines().skip(1).filter(|l| l.split(',').nth(9).is_some_and(|g| g != "1")).count();
    assert!(groups > 100, "muxwise prefill runs in layer groups ({groups} group steps)");
    let mut args = vec!["validate", "--replay", rp.to_str().unwrap(), "--out", val.to_str().unwrap()];
    args.extend(opts);
    let o = duet(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(val.join("validation.json")).unwrap()).unwrap();
    // Each group is predicted as its share of the step: 1 / 1.1 - 1 on every step, groups included.
    let all = &v["steps"]["overall"];
    for k in ["median_abs_pct", "max_abs_pct"] {
        let e = all[k].as_f64().unwrap();
        assert!((e - 9.0909).abs() < 0.01, "{k} = {e}");
    }
}
