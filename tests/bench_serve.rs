//! `duet bench serve`: vLLM's benchmark options in, vLLM's report and result JSON out, under an engine preset.

use std::process::{Command, Output};

fn duet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_duet")).args(args).output().expect("run duet")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const SMALL: &[&str] = &[
    "bench",
    "serve",
    "--model",
    "Qwen/Qwen3-8B",
    "--gpu",
    "h100-sxm",
    "--random-input-len",
    "512",
    "--random-output-len",
    "16",
    "--num-prompts",
    "40",
];

#[test]
fn prints_vllms_block_with_its_labels_and_widths() {
    let mut args = SMALL.to_vec();
    args.extend(["--backend", "openai-chat", "--endpoint", "/v1/chat/completions"]);
    let o = duet(&args);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "============ Serving Benchmark Result ============");
    assert_eq!(lines[1], format!("{:<40} {:<10}", "Successful requests:", 40));
    assert_eq!(lines[3], format!("{:<40} {:<10}", "Total input tokens:", 40 * 512));
    for label in ["Mean TTFT (ms):", "P99 TPOT (ms):", "Median ITL (ms):", "Peak concurrent requests:"] {
        assert!(out.contains(label), "{label} missing:\n{out}");
    }
    assert!(out.contains("---------------Time to First Token----------------"));
    assert_eq!(*lines.last().unwrap(), "=".repeat(50));
    // All 40 requests are sent at once (request rate inf): 40 outstanding at the peak.
    assert!(out.contains(&format!("{:<40} {:<10}", "Peak concurrent requests:", "40.00")), "{out}");
    // Flags that only address the server are accepted and named as not affecting the prediction.
    assert!(String::from_utf8_lossy(&o.stderr).contains("--endpoint addresses a server"));
}

#[test]
fn max_concurrency_is_a_closed_loop_and_the_result_json_has_vllms_keys() {
    let dir = std::env::temp_dir().join(format!("duet-bench-serve-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    let mut args = SMALL.to_vec();
    args.extend([
        "--max-concurrency",
        "4",
        "--save-result",
        "--result-dir",
        d,
        "--metric-percentiles",
        "50,99.9",
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
    ]);
    let out = stdout(&duet(&args));
    assert!(out.contains(&format!("{:<40} {:<10}", "Maximum request concurrency:", 4)), "{out}");
    assert!(out.contains("P99.9 E2EL (ms):") && out.contains("P50 ITL (ms):"), "{out}");
    let path = dir.join("vllm-infqps-concurrency4-Qwen3-8B.json");
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for k in ["duration", "completed", "total_input_tokens", "request_throughput", "mean_ttft_ms", "p99.9_e2el_ms"] {
        assert!(j.get(k).is_some(), "{k} missing in {j}");
    }
    assert_eq!(j["max_concurrent_requests"], 4.0, "a closed loop of 4 never has more outstanding");
    assert_eq!(j["completed"], 40);
    assert_eq!(j["duet"]["policy"], "vllm");
    // An open-loop run of the same prompts queues them all at once: its mean TTFT is larger.
    let open = duet(&[SMALL, &["--save-result", "--result-dir", d, "--result-filename", "open.json"]].concat());
    stdout(&open);
    let o: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("open.json")).unwrap()).unwrap();
    assert!(o["mean_ttft_ms"].as_f64().unwrap() > j["mean_ttft_ms"].as_f64().unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_burst_reaches_the_engine_after_every_input_job() {
    // vllm-0.11's frontend: 40 prompts sent at once are parsed one after another, and each hand-off to the
    // engine waits behind every input job already queued, so no token is seen before all 40 input jobs ran.
    let preset: serde_json::Value =
        serde_json::from_str(include_str!("../sim/engines/vllm-0.11.json")).expect("bundled preset parses");
    let input_ms = preset["frontend_us_per_request"].as_f64().unwrap() / 1e3;
    assert!(input_ms > 0.0);
    let dir = std::env::temp_dir().join(format!("duet-bench-burst-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    let args =
        [SMALL, &["--save-result", "--result-dir", d, "--result-filename", "b.json", "--metric-percentiles", "1"]]
            .concat();
    stdout(&duet(&args));
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("b.json")).unwrap()).unwrap();
    let p1 = j["p1_ttft_ms"].as_f64().unwrap();
    assert!(p1 >= 40.0 * input_ms, "P1 TTFT {p1} ms < 40 input jobs of {input_ms} ms");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_explicit_policy_wins_over_the_presets_scheduler() {
    let dir = std::env::temp_dir().join(format!("duet-preset-policy-{}", std::process::id()));
    for (policy, extra) in [("vllm", &[][..]), ("chunked", &["--policy", "chunked"][..])] {
        let out = dir.join(policy);
        let base = ["sim", "--synthetic", "20", "--model", "qwen3-8b", "--engine", "vllm-0.11", "--out"];
        stdout(&duet(&[&base[..], &[out.to_str().unwrap()], extra].concat()));
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(s["policy"], policy);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_benchmark_options_are_named() {
    for (extra, words) in [
        (&["--request-rate", "fast"][..], "--request-rate \"fast\" is not a number or inf"),
        (&["--random-range-ratio", "1.5"][..], "--random-range-ratio must be in [0, 1), got 1.5"),
        (&["--max-concurrency", "0"][..], "--max-concurrency must be >= 1"),
        (&["--dataset-name", "sonnet"][..], "duet supports random, sharegpt and custom"),
        (&["--engine", "vllm-9"][..], "unknown engine \"vllm-9\""),
        (&["--dataset-name", "sharegpt"][..], "--dataset-name sharegpt needs --dataset-path"),
    ] {
        let o = duet(&[SMALL, extra].concat());
        assert_eq!(o.status.code(), Some(1), "{extra:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(words), "{extra:?}: {err}");
    }
}

#[test]
fn the_vllm_accounting_refuses_what_vllm_cannot_start() {
    // Qwen3-32B on one 80 GB H100 leaves vLLM 4.46 GiB of KV (18,288 tokens): a 32,000-token prompt never fits.
    let o = duet(&[
        "bench",
        "serve",
        "--model",
        "Qwen/Qwen3-32B",
        "--gpu",
        "h100-sxm",
        "--random-input-len",
        "32000",
        "--random-output-len",
        "8",
        "--num-prompts",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("18288 tokens"), "{err}");
}
