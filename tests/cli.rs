//! The `duet` binary end to end: default run, outputs, determinism, golden numbers, and clear errors with a
//! non-zero exit (never a panic) for bad input.

mod common;

use std::path::{Path, PathBuf};

use common::{duet, stderr, stdout};

fn tmp(name: &str) -> PathBuf {
    common::tmp("cli", name)
}

#[test]
fn default_sim_prints_table_and_writes_results() {
    let dir = tmp("default");
    let o = duet(&["sim", "--out", dir.to_str().unwrap(), "--slo-ttft-ms", "200", "--slo-tbt-ms", "100"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in
        ["duet sim", "bundled:azure_conv_excerpt.csv", "qwen3-8b on h100-sxm", "chunked", "TTFT", "TPOT", "ITL", "E2EL"]
    {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    for key in [
        "completed",
        "duration",
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
        "request_goodput",
        "mean_ttft_ms",
        "median_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "p99_tpot_ms",
        "mean_itl_ms",
        "p99_itl_ms",
        "mean_e2el_ms",
        "p99_e2el_ms",
        "p99_tbt_ms",
        "slo_attainment",
        "policy",
        "model",
        "gpu",
        "seed",
    ] {
        assert!(summary.get(key).is_some_and(|v| !v.is_null()), "summary.json lacks {key}");
    }
    assert_eq!(summary["completed"], 1000);
    let csv = std::fs::read_to_string(dir.join("requests.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1001);
    assert!(csv.starts_with(
        "id,arrival_ms,input_tokens,output_tokens,queue_ms,ttft_ms,e2el_ms,tpot_ms,max_tbt_ms,preemptions\n"
    ));
}

fn summary_bytes(args: &[&str], name: &str) -> Vec<u8> {
    let dir = tmp(name);
    let mut all = args.to_vec();
    all.extend(["--out", dir.to_str().unwrap()]);
    let o = duet(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::read(dir.join("summary.json")).unwrap()
}

#[test]
fn same_seed_gives_identical_summary_bytes() {
    let args = ["sim", "--synthetic", "400", "--rate", "12", "--seed", "42"];
    let a = summary_bytes(&args, "det-a");
    let b = summary_bytes(&args, "det-b");
    assert_eq!(a, b);
    let c = summary_bytes(&["sim", "--synthetic", "400", "--rate", "12", "--seed", "43"], "det-c");
    assert_ne!(a, c, "a different seed must change the workload");
}

#[test]
fn default_run_matches_golden_summary() {
    // Pins the numbers of the default run. After an intended model or policy change, regenerate with
    // `UPDATE_GOLDEN=1 cargo test --release --test cli default_run_matches_golden_summary` and review the diff.
    let got = summary_bytes(&["sim", "--slo-ttft-ms", "200", "--slo-tbt-ms", "100"], "golden");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/default_summary.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read(&golden).expect("golden file (UPDATE_GOLDEN=1 creates it)");
    assert!(got == want, "summary.json differs from {}:\n{}", golden.display(), String::from_utf8_lossy(&got));
}

#[test]
fn any_hf_config_json_is_a_model() {
    let dir = tmp("model");
    let cfg = dir.join("config.json");
    std::fs::write(
        &cfg,
        r#"{"hidden_size":2048,"num_hidden_layers":16,"num_attention_heads":16,"num_key_value_heads":4,
            "intermediate_size":8192,"vocab_size":32000,"torch_dtype":"bfloat16"}"#,
    )
    .unwrap();
    let o = duet(&["sim", "--model", cfg.to_str().unwrap(), "--num-requests", "50"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("{} on h100-sxm", cfg.display())), "{}", stdout(&o));
}

#[test]
fn an_unreachable_tbt_target_falls_back_and_says_so() {
    let dir = tmp("fallback");
    let o = duet(&["sim", "--policy", "duet", "--tbt-target-ms", "1", "--rate", "20", "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let decisions = std::fs::read_to_string(dir.join("decisions.csv")).unwrap();
    assert!(decisions.starts_with("time_ms,mode,prefill_sms,decode_sms,lookahead,"));
    assert!(decisions.lines().any(|l| l.split(',').nth(1) == Some("fallback")), "no fallback logged");
    assert!(decisions.lines().skip(1).all(|l| l.split(',').nth(1) != Some("split")), "a 1 ms target cannot be met");
}

#[test]
fn partitioned_policies_write_their_decisions() {
    let dir = tmp("split");
    let o = duet(&["sim", "--policy", "static-split", "--split", "100:32", "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["completed"], 1000);
    assert_eq!(summary["peak_sms_in_use"], 132);
    // The same folder again: refused (it holds the first run), then replaced with --overwrite.
    let again = ["sim", "--policy", "muxwise", "--granularity", "green", "--out", dir.to_str().unwrap()];
    let o = duet(&again);
    assert!(!o.status.success() && stderr(&o).contains("--overwrite"), "{}", stderr(&o));
    let o = duet(&[&again[..], &["--overwrite"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let decisions = std::fs::read_to_string(dir.join("decisions.csv")).unwrap();
    for row in decisions.lines().skip(1) {
        let decode: u32 = row.split(',').nth(3).unwrap().parse().unwrap();
        assert!(decode.is_multiple_of(8) || (132 - decode).is_multiple_of(8), "{row}");
    }
}

#[test]
fn models_and_gpus_are_listed() {
    let o = duet(&["models"]);
    assert!(o.status.success());
    for m in ["qwen3-8b", "qwen3-14b", "qwen3-32b", "llama-3.1-8b", "llama-3.1-70b"] {
        assert!(stdout(&o).contains(m), "{m}");
    }
    let o = duet(&["gpus"]);
    assert!(o.status.success());
    for g in ["h100-sxm", "h200", "a100-80gb"] {
        assert!(stdout(&o).contains(g), "{g}");
    }
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let dir = tmp("bad");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let header = "TIMESTAMP,ContextTokens,GeneratedTokens\n";
    let malformed =
        write("malformed.csv", &format!("{header}2023-11-16 18:15:46.68,374,44\n2023-11-16 18:15:47.0,12\n"));
    let zero = write("zero.csv", &format!("{header}2023-11-16 18:15:46.68,374,44\n2023-11-16 18:15:47.0,0,5\n"));
    let negative = write("negative.csv", &format!("{header}2023-11-16 18:15:46.68,374,-3\n"));
    let unknown = write("unknown.csv", "a,b\n1,2\n");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["sim", "--trace", "/nonexistent/trace.csv"], "cannot read trace /nonexistent/trace.csv".into()),
        (vec!["sim", "--trace", &malformed], format!("{malformed}:3: expected 3 comma-separated fields")),
        (vec!["sim", "--trace", &zero], format!("{zero}:3: ContextTokens: expected an integer >= 1, found '0'")),
        (
            vec!["sim", "--trace", &negative],
            format!("{negative}:2: GeneratedTokens: expected an integer >= 1, found '-3'"),
        ),
        (vec!["sim", "--trace", &unknown], "unrecognised trace format".into()),
        (vec!["sim", "--model", "gpt-9"], "unknown model \"gpt-9\"; bundled models: qwen3-8b, qwen3-14b".into()),
        (
            vec!["sim", "--model", "/nonexistent/config.json"],
            "cannot read model config /nonexistent/config.json".into(),
        ),
        (vec!["sim", "--gpu", "tpu-v5"], "known GPUs: h100-sxm, h200, a100-80gb".into()),
        (vec!["sim", "--model", "llama-3.1-70b"], "llama-3.1-70b does not fit on h100-sxm".into()),
        (vec!["sim", "--slo-ttft-ms", "0"], "TTFT SLO must be a positive number of ms, got 0".into()),
        (vec!["sim", "--tp", "3"], "--tp 3 does not divide the 32 attention heads of qwen3-8b".into()),
        (vec!["sim", "--replicas", "4", "--gpus", "2"], "4 instance(s) x --tp 1 need 4 GPUs, but --gpus is 2".into()),
        (
            vec!["sim", "--disagg", "1P1D", "--kv-link", "0:10"],
            "--kv-link \"0:10\": the link bandwidth must be > 0 GB/s".into(),
        ),
        (vec!["sim", "--disagg", "1P"], "--disagg \"1P\": expected xPyD".into()),
        (vec!["sim", "--router", "random"], "unknown router \"random\"".into()),
        (vec!["sim", "--slo-tbt-ms=-5"], "TBT SLO must be a positive number of ms, got -5".into()),
        (vec!["sim", "--policy", "fifo"], "unknown policy \"fifo\"; known policies: chunked, prefill-first".into()),
        (vec!["sim", "--token-budget", "0"], "token budget must be >= 1".into()),
        (vec!["sim", "--rate", "0"], "rate must be > 0".into()),
        (vec!["sim", "--num-sms", "200"], "SM count must be in 1..=132".into()),
        (vec!["sim", "--kv-blocks", "10"], "can never fit in the KV cache".into()),
        (vec!["sim", "--policy", "static-split"], "static-split needs --split PREFILL_SMS:DECODE_SMS".into()),
        (vec!["sim", "--policy", "static-split", "--split", "100:40"], "impossible static split 100:40".into()),
        (
            vec!["sim", "--policy", "static-split", "--split", "101:31"],
            "101 prefill SMs is not a legal tpc partition of 132 SMs".into(),
        ),
        (vec!["sim", "--policy", "static-split", "--split", "100-32"], "must be PREFILL_SMS:DECODE_SMS".into()),
        (
            vec!["sim", "--granularity", "mig"],
            "unknown partition granularity \"mig\"; known: tpc, green, green8, sm".into(),
        ),
        (
            vec!["sim", "--policy", "duet", "--num-sms", "7", "--granularity", "green"],
            "granularity green cannot split a GPU of 7 SMs".into(),
        ),
        (vec!["sim", "--policy", "duet", "--tbt-target-ms", "0"], "TBT target must be a positive number of ms".into()),
        (vec!["sim", "--policy", "duet", "--max-lookahead", "0"], "max look-ahead must be >= 1".into()),
        (vec!["sim", "--contention-decode=-1"], "--contention-decode must be a fraction >= 0, got -1".into()),
    ];
    for (args, needle) in cases {
        let o = duet(&args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(&needle), "{args:?}: expected {needle:?} in {err:?}");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
}

#[test]
fn sim_timeline_is_a_trace_event_file_with_a_track_per_partition() {
    let dir = tmp("timeline");
    let path = dir.join("t.json");
    let o = duet(&[
        "sim",
        "--policy",
        "static-split",
        "--split",
        "100:32",
        "--granularity",
        "green",
        "--num-requests",
        "20",
        "--timeline",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    duet_sim::trace_event::check_trace(&v).unwrap();
    let ev = v["traceEvents"].as_array().unwrap();
    // Both partitions' steps, on their own tracks, with the SM counts of the split; 20 arrivals, 20 first tokens.
    for (tid, name) in [(2, "prefill 100 SMs"), (3, "decode 32 SMs")] {
        assert!(ev.iter().any(|e| e["ph"] == "X" && e["tid"] == tid && e["name"] == name), "no {name:?} on {tid}");
    }
    let instants =
        |prefix: &str| ev.iter().filter(|e| e["ph"] == "i" && e["name"].as_str().unwrap().starts_with(prefix)).count();
    assert_eq!((instants("arrival"), instants("first token")), (20, 20));
}

#[test]
fn preemption_thrash_is_noted_with_the_requests_it_hits() {
    // Ten 120k-token prompts on one H100 under prefill-first: three at a time fill the KV cache, and recompute
    // preemption discards 26.7x the trace's prompt tokens. The run completes; the note says what it cost.
    let o = duet(&[
        "sim",
        "--synthetic",
        "10",
        "--rate",
        "5",
        "--input-len",
        "120000",
        "--output-len",
        "2000",
        "--model",
        "llama-3.1-8b",
        "--policy",
        "prefill-first",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("note: preemption thrash: 375 preemptions") && err.contains("26.7x"), "{err}");
    assert!(err.contains("#3 (125 times, 120000 prompt tokens)"), "{err}");
    // A run without preemptions has no such note.
    assert!(!stderr(&duet(&["sim", "--num-requests", "50"])).contains("thrash"));
}

#[test]
fn a_run_without_out_keeps_a_bounded_history_and_prints_the_same_results() {
    // Without --out the engine keeps only the recent iteration records (peak memory); the results, the iteration
    // count and adaptive's learning from its own history must not change. The bundled run has ~23k iterations,
    // several times the kept tail.
    let dir = tmp("bounded");
    for policy in ["adaptive", "muxwise", "chunked"] {
        let strip = |o: &std::process::Output| {
            stdout(o)
                .lines()
                .filter(|l| !l.contains("wall time") && !l.starts_with("wrote"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let base = ["sim", "--policy", policy, "--granularity", "green"];
        let a = duet(&base);
        let out = dir.join(policy);
        let b = duet(&[&base[..], &["--out", out.to_str().unwrap()]].concat());
        assert!(a.status.success() && b.status.success(), "{}", stderr(&a));
        assert_eq!(strip(&a), strip(&b), "{policy}");
        let iterations = std::fs::read_to_string(out.join("iterations.csv")).unwrap().lines().count() - 1;
        assert!(iterations > 3 * 4096, "{policy}: {iterations} iterations");
        assert!(strip(&a).contains(&format!("{iterations} iterations")), "{policy}: {}", strip(&a));
        // --out streams iterations.csv as the run goes; with --timeline every record stays in memory and the file
        // is written at the end: the same bytes.
        let kept = dir.join(format!("{policy}-kept"));
        let t = dir.join(format!("{policy}.json"));
        let c = duet(&[&base[..], &["--out", kept.to_str().unwrap(), "--timeline", t.to_str().unwrap()]].concat());
        assert!(c.status.success(), "{}", stderr(&c));
        assert!(
            std::fs::read(out.join("iterations.csv")).unwrap() == std::fs::read(kept.join("iterations.csv")).unwrap(),
            "{policy}: streamed iterations.csv differs"
        );
    }
}

#[test]
fn duet_on_the_bundled_defaults_shows_its_mechanism() {
    // Its default budget (8192, the paper's) lets mixed batches miss the 100 ms target, so it splits; the summary
    // says in how many of the decisions that had both prefill and decode work.
    let o = duet(&["sim", "--policy", "duet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let line = out.lines().find(|l| l.starts_with("Partitioning:")).expect("a partitioning line");
    let pct: f64 = line.split("split the GPU (").nth(1).unwrap().split('%').next().unwrap().parse().unwrap();
    assert!(pct >= 10.0, "{line}");
    let p99_tbt = |text: &str| -> String {
        text.lines().find(|l| l.starts_with("TBT (max/request)")).unwrap().split_whitespace().last().unwrap().into()
    };
    let chunked = stdout(&duet(&["sim", "--policy", "chunked"]));
    assert_ne!(p99_tbt(&out), p99_tbt(&chunked), "duet's P99 TBT equals chunked's");
}
