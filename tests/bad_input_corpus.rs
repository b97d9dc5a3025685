//! The bad-input corpus (issue 20): malformed traces in every format, bad option values and combinations, bad
//! sweep files and model configs. Each case asserts a non-zero exit that is not a panic (101), and the words of
//! the message (file, line, field, value or limit). docs/TESTING.md says what the corpus guards.

mod common;

use common::{duet, stderr};

/// One case: files to write into the case's folder (`{dir}` in args and contents is replaced by it), the
/// arguments, and words the error must contain.
struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    words: &'static [&'static str],
}

const AZ: &str = "TIMESTAMP,ContextTokens,GeneratedTokens\n";

macro_rules! az {
    ($rows:expr) => {
        concat!("TIMESTAMP,ContextTokens,GeneratedTokens\n", $rows)
    };
}
macro_rules! canon {
    ($rows:expr) => {
        concat!("arrival_ns,input_tokens,output_tokens,prefix_block_tokens,hash_ids\n", $rows)
    };
}
macro_rules! burst {
    ($rows:expr) => {
        concat!("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n", $rows)
    };
}

const CASES: &[Case] = &[
    // --- Azure CSV ---
    Case { name: "azure-empty", files: &[("t.csv", "")], args: &["sim", "--trace", "{dir}/t.csv"], words: &["t.csv"] },
    Case {
        name: "azure-header-only",
        files: &[("t.csv", AZ)],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["holds no request"],
    },
    Case {
        name: "azure-short-row",
        files: &[("t.csv", az!("2023-11-16 18:15:46.68,374\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "3 comma-separated fields"],
    },
    Case {
        name: "azure-zero-input",
        files: &[("t.csv", az!("2023-11-16 18:15:46.68,0,5\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "ContextTokens", "'0'"],
    },
    Case {
        name: "azure-text-tokens",
        files: &[("t.csv", az!("2023-11-16 18:15:46.68,abc,5\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "ContextTokens", "'abc'"],
    },
    Case {
        name: "azure-negative-output",
        files: &[("t.csv", az!("2023-11-16 18:15:46.68,3,-3\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "GeneratedTokens", "'-3'"],
    },
    Case {
        name: "azure-bad-timestamp",
        files: &[("t.csv", az!("yesterday,3,3\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "TIMESTAMP", "yesterday"],
    },
    Case {
        name: "azure-feb-31",
        files: &[("t.csv", az!("2023-02-31 00:00:00,3,3\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "2023-02 has 28 days, not 31"],
    },
    Case {
        name: "azure-month-13",
        files: &[("t.csv", az!("2023-13-01 00:00:00,3,3\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "TIMESTAMP"],
    },
    Case {
        name: "azure-before-1970",
        files: &[("t.csv", az!("1969-12-31 23:59:59,3,3\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "before 1970"],
    },
    Case {
        name: "azure-year-2600",
        files: &[("t.csv", az!("2600-01-01 00:00:00,3,3\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "after 2554-07-21"],
    },
    Case {
        name: "azure-year-9999",
        files: &[("t.csv", az!("9999-12-31 23:59:59,3,3\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "after 2554-07-21"],
    },
    Case {
        name: "azure-span-476-years",
        files: &[("t.csv", az!("2023-11-16 18:17:03.9,100,10\n2500-01-01 00:00:00,100,10\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv", "beyond the latest arrival", "100 years"],
    },
    Case {
        name: "azure-hour-25",
        files: &[("t.csv", az!("2023-11-16 25:00:00,3,3\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "TIMESTAMP"],
    },
    Case {
        name: "unknown-format",
        files: &[("t.csv", "a,b\n1,2\n")],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["unrecognised trace format"],
    },
    Case {
        name: "missing-file",
        files: &[],
        args: &["sim", "--trace", "{dir}/none.csv"],
        words: &["cannot read trace", "none.csv"],
    },
    // --- canonical CSV / JSONL ---
    Case {
        name: "canon-max-arrival",
        files: &[("t.csv", canon!("18446744073709551615,10,10,,\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "arrival_ns", "18446744073709551615", "100 years"],
    },
    Case {
        name: "canon-hash-count",
        files: &[("t.csv", canon!("0,1024,10,512,1 2 3\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "hash_ids: 3 blocks for 1024 input tokens, expected 2"],
    },
    Case {
        name: "canon-hash-repeat",
        files: &[("t.csv", canon!("0,2048,10,512,7 7 7 7\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "id 7 appears twice"],
    },
    Case {
        name: "canon-block-zero",
        files: &[("t.csv", canon!("0,512,10,0,1\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "prefix_block_tokens", "'0'"],
    },
    Case {
        name: "canon-block-mismatch",
        files: &[("t.csv", canon!("0,512,10,512,1\n5,256,10,256,2\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:3", "prefix_block_tokens: 256 differs from 512"],
    },
    Case {
        name: "canon-hash-without-block",
        files: &[("t.csv", canon!("0,512,10,,1\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "prefix_block_tokens", "found ''"],
    },
    Case {
        name: "canon-prefix-some-rows",
        files: &[("t.csv", canon!("0,512,10,512,1\n5,256,10,,\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv", "all or none"],
    },
    Case {
        name: "canon-hash-text",
        files: &[("t.csv", canon!("0,512,10,512,x\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "hash_ids", "'x'"],
    },
    Case {
        name: "canon-jsonl-huge-arrival",
        files: &[("t.jsonl", "{\"arrival_ns\":18446744073709551615,\"input_tokens\":5,\"output_tokens\":5}\n")],
        args: &["sim", "--trace", "{dir}/t.jsonl"],
        words: &["t.jsonl:1", "arrival_ns", "100 years"],
    },
    Case {
        name: "canon-jsonl-missing-field",
        files: &[("t.jsonl", "{\"arrival_ns\":0,\"input_tokens\":5}\n")],
        args: &["sim", "--trace", "{dir}/t.jsonl"],
        words: &["t.jsonl"],
    },
    // --- Mooncake ---
    Case {
        name: "mooncake-hash-count",
        files: &[("t.jsonl", "{\"timestamp\":0,\"input_length\":1000,\"output_length\":5,\"hash_ids\":[1]}\n")],
        args: &["sim", "--trace", "{dir}/t.jsonl"],
        words: &["t.jsonl:1", "hash_ids: 1 blocks for 1000 input tokens, expected 2"],
    },
    Case {
        name: "mooncake-hash-repeat",
        files: &[("t.jsonl", "{\"timestamp\":0,\"input_length\":1000,\"output_length\":5,\"hash_ids\":[4,4]}\n")],
        args: &["sim", "--trace", "{dir}/t.jsonl"],
        words: &["t.jsonl:1", "id 4 appears twice"],
    },
    Case {
        name: "mooncake-negative-time",
        files: &[("t.jsonl", "{\"timestamp\":-5,\"input_length\":10,\"output_length\":5}\n")],
        args: &["sim", "--trace", "{dir}/t.jsonl"],
        words: &["t.jsonl:1", "timestamp"],
    },
    Case {
        name: "mooncake-not-json",
        files: &[("t.jsonl", "{\"timestamp\":0,\"input_length\":10,\"output_length\":5}\n{oops\n")],
        args: &["sim", "--trace", "{dir}/t.jsonl"],
        words: &["t.jsonl:2"],
    },
    Case {
        name: "mooncake-huge-ms",
        files: &[("t.jsonl", "{\"timestamp\":1e30,\"input_length\":10,\"output_length\":5}\n")],
        args: &["sim", "--trace", "{dir}/t.jsonl"],
        words: &["t.jsonl:1", "timestamp", "beyond the latest time duet reads"],
    },
    Case {
        name: "mooncake-u64-max-ms",
        files: &[("t.jsonl", "{\"timestamp\":18446744073709551615,\"input_length\":10,\"output_length\":5}\n")],
        args: &["sim", "--trace", "{dir}/t.jsonl"],
        words: &["t.jsonl:1", "18446744073709 ms"],
    },
    // --- BurstGPT ---
    Case {
        name: "burst-huge-seconds",
        files: &[("t.csv", burst!("1e300,ChatGPT,10,10,20,Conversation log\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "Timestamp", "beyond the latest time duet reads"],
    },
    Case {
        name: "burst-span-126-years",
        files: &[(
            "t.csv",
            burst!("0,ChatGPT,10,10,20,Conversation log\n4000000000,ChatGPT,10,10,20,Conversation log\n"),
        )],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv", "beyond the latest arrival duet simulates"],
    },
    Case {
        name: "burst-short-row",
        files: &[("t.csv", burst!("5,ChatGPT,10\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2"],
    },
    Case {
        name: "burst-bad-tokens",
        files: &[("t.csv", burst!("5,ChatGPT,x,10,20,Conversation log\n"))],
        args: &["sim", "--trace", "{dir}/t.csv"],
        words: &["t.csv:2", "Request tokens"],
    },
    // --- options ---
    Case {
        name: "rate-negative",
        files: &[],
        args: &["sim", "--rate", "-5"],
        words: &["rate must be > 0 req/s, got -5"],
    },
    Case {
        name: "rate-tiny",
        files: &[],
        args: &["sim", "--rate", "1e-9", "--num-requests", "20"],
        words: &["beyond the latest arrival duet simulates", "use a higher rate"],
    },
    Case {
        name: "rate-scale-tiny",
        files: &[],
        args: &["sim", "--rate-scale", "1e-10", "--num-requests", "20"],
        words: &["beyond the latest arrival", "100 years"],
    },
    Case {
        name: "rate-scale-negative",
        files: &[],
        args: &["sim", "--rate-scale", "-1"],
        words: &["rate scale must be > 0, got -1"],
    },
    Case {
        name: "split-with-chunked",
        files: &[],
        args: &["sim", "--policy", "chunked", "--split", "100:32"],
        words: &["--split applies to static-split only", "chunked"],
    },
    Case {
        name: "split-with-duet",
        files: &[],
        args: &["sim", "--policy", "duet", "--split", "100:32"],
        words: &["--split applies to static-split only", "duet"],
    },
    Case {
        name: "guard-negative-muxwise",
        files: &[],
        args: &["sim", "--policy", "muxwise", "--decode-guard=-1"],
        words: &["--decode-guard must be a fraction >= 0, got -1"],
    },
    Case {
        name: "guard-negative-chunked",
        files: &[],
        args: &["sim", "--policy", "chunked", "--decode-guard", "-1"],
        words: &["--decode-guard must be a fraction >= 0, got -1"],
    },
    Case { name: "num-sms-negative", files: &[], args: &["sim", "--num-sms", "-4"], words: &["'-4'", "--num-sms"] },
    Case {
        name: "tbt-target-negative",
        files: &[],
        args: &["sim", "--policy", "duet", "--tbt-target-ms", "-3"],
        words: &["TBT target must be a positive number of ms, got -3"],
    },
    Case {
        name: "granularity-unknown",
        files: &[],
        args: &["sim", "--granularity", "mig"],
        words: &["unknown partition granularity \"mig\"", "green8"],
    },
    Case {
        name: "contention-negative",
        files: &[],
        args: &["sim", "--contention-interference=-0.5"],
        words: &["--contention-interference must be a fraction >= 0, got -0.5"],
    },
    Case {
        name: "adaptive-without-other-policy",
        files: &[],
        args: &["sim", "--policy", "duet", "--adaptive-without", "hrrn"],
        words: &["applies only to adaptive"],
    },
    Case {
        name: "adaptive-without-unknown",
        files: &[],
        args: &["sim", "--policy", "adaptive", "--adaptive-without", "magic"],
        words: &["magic"],
    },
    Case {
        name: "window-start-without-window",
        files: &[],
        args: &["sim", "--window-start", "10s"],
        words: &["--window"],
    },
    Case { name: "bad-duration", files: &[], args: &["sim", "--window", "ten"], words: &["ten"] },
    Case {
        name: "out-is-a-file",
        files: &[("f", "x")],
        args: &["sim", "--num-requests", "5", "--out", "{dir}/f"],
        words: &["f exists and is not a folder"],
    },
    Case {
        name: "out-holds-a-run",
        files: &[("o/summary.json", "{}"), ("o/requests.csv", "")],
        args: &["sim", "--num-requests", "5", "--out", "{dir}/o"],
        words: &["already holds a run's results (summary.json, requests.csv)", "--overwrite"],
    },
    Case {
        name: "out-unwritable",
        files: &[],
        args: &["sim", "--num-requests", "5", "--out", "/proc/duet-no/out"],
        words: &["/proc/duet-no"],
    },
    // --- model configs ---
    Case {
        name: "model-huge-hidden",
        files: &[(
            "m.json",
            "{\"hidden_size\":4294967296,\"num_hidden_layers\":36,\"num_attention_heads\":32,\"num_key_value_heads\":8,\"head_dim\":128,\"intermediate_size\":12288,\"vocab_size\":151936}",
        )],
        args: &["sim", "--model", "{dir}/m.json"],
        words: &["hidden_size 4294967296 is beyond the largest duet accepts, 1048576"],
    },
    Case {
        name: "model-huge-head-dim",
        files: &[(
            "m.json",
            "{\"hidden_size\":4096,\"num_hidden_layers\":36,\"num_attention_heads\":32,\"num_key_value_heads\":8,\"head_dim\":4294967296,\"intermediate_size\":12288,\"vocab_size\":151936}",
        )],
        args: &["sim", "--model", "{dir}/m.json"],
        words: &["head_dim 4294967296", "65536"],
    },
    Case {
        name: "model-zero-layers",
        files: &[(
            "m.json",
            "{\"hidden_size\":4096,\"num_hidden_layers\":0,\"num_attention_heads\":32,\"intermediate_size\":12288,\"vocab_size\":151936}",
        )],
        args: &["sim", "--model", "{dir}/m.json"],
        words: &["num_hidden_layers must be > 0"],
    },
    Case {
        name: "model-not-json",
        files: &[("m.json", "{hidden")],
        args: &["sim", "--model", "{dir}/m.json"],
        words: &["bad config.json"],
    },
    // --- sweep files ---
    Case {
        name: "sweep-unknown-key",
        files: &[("s.toml", "nme = \"t\"\n")],
        args: &["sweep", "{dir}/s.toml", "--out", "{dir}/o"],
        words: &["s.toml", "unknown top-level key `nme`"],
    },
    Case {
        name: "sweep-not-toml",
        files: &[("s.toml", "name = \n")],
        args: &["sweep", "{dir}/s.toml", "--out", "{dir}/o"],
        words: &["s.toml"],
    },
    Case {
        name: "sweep-unknown-option",
        files: &[(
            "s.toml",
            "name = \"t\"\n[base]\nnum-reqests = 5\n[[policy]]\nlabel = \"c\"\npolicy = \"chunked\"\n",
        )],
        args: &["sweep", "{dir}/s.toml", "--out", "{dir}/o"],
        words: &["num-reqests"],
    },
    Case {
        name: "sweep-tiny-rate-point",
        files: &[(
            "s.toml",
            "name = \"t\"\n[axes]\nrate = [1e-9, 4]\n[base]\nnum-requests = 5\n[[policy]]\nlabel = \"c\"\npolicy = \"chunked\"\n",
        )],
        args: &["sweep", "{dir}/s.toml", "--out", "{dir}/o"],
        words: &["1 of 2 points failed", "use a higher rate"],
    },
    Case {
        name: "sweep-split-on-chunked",
        files: &[(
            "s.toml",
            "name = \"t\"\n[base]\nnum-requests = 5\n[[policy]]\nlabel = \"c\"\npolicy = \"chunked\"\nsplit = \"100:32\"\n",
        )],
        args: &["sweep", "{dir}/s.toml", "--out", "{dir}/o"],
        words: &["--split applies to static-split only"],
    },
    Case { name: "sweep-missing-file", files: &[], args: &["sweep", "{dir}/none.toml"], words: &["none.toml"] },
];

#[test]
fn every_bad_input_is_a_clear_error_not_a_panic() {
    assert!(CASES.len() >= 50, "the corpus has {} cases", CASES.len());
    let root = common::tmp("corpus", "cases");
    let mut failures = Vec::new();
    for c in CASES {
        let dir = root.join(c.name);
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.to_str().unwrap();
        for (name, text) in c.files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text.replace("{dir}", d)).unwrap();
        }
        let args: Vec<String> = c.args.iter().map(|a| a.replace("{dir}", d)).collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = duet(&refs);
        let err = stderr(&o);
        let code = o.status.code();
        let missing: Vec<&&str> = c.words.iter().filter(|w| !err.contains(**w)).collect();
        if o.status.success() || code == Some(101) || err.contains("panicked") || !missing.is_empty() {
            failures.push(format!("{}: exit {code:?}, missing {missing:?} in: {}", c.name, err.trim()));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
    eprintln!("{} bad-input cases: each a non-zero exit (never 101) with the expected words", CASES.len());
}
