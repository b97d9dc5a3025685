//! Edge cases every loader must handle the same way: empty file, header only, CRLF, UTF-8 BOM, no final
//! newline, duplicate timestamps, out-of-order rows, 0 output tokens (rejected), and error messages that name the
//! file, line and field.

use std::path::PathBuf;

use duet_traces::{LoadOptions, TraceData, TraceError, Workload, load_path};

fn file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("duet-edge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn load(name: &str, text: &str) -> Result<Workload, TraceError> {
    match load_path(&file(name, text), &LoadOptions::default())? {
        TraceData::Timed(w) => Ok(w),
        TraceData::Lengths(_) => panic!("{name}: expected a timed trace"),
    }
}

const AZ: &str = "TIMESTAMP,ContextTokens,GeneratedTokens";
const MC: &str = r#"{"timestamp": 0, "input_length": 10, "output_length": 3, "hash_ids": [1]}"#;

/// One well-formed two-row file per timed format, written with `\n`, rows out of order with respect to time.
fn samples() -> Vec<(&'static str, String)> {
    vec![
        ("a.csv", format!("{AZ}\n2023-11-16 18:15:47.5,20,4\n2023-11-16 18:15:46.0,10,3\n")),
        ("m.jsonl", format!("{}\n{MC}\n", MC.replace("\"timestamp\": 0", "\"timestamp\": 1500").replace("10", "20").replace("3,", "4,"))),
        ("b.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n1.5,ChatGPT,20,4,24,API log\n0,ChatGPT,10,3,13,API log\n".into()),
        ("v.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n1.5,20,4\n0,10,3\n".into()),
        ("c.csv", "arrival_ns,input_tokens,output_tokens,prefix_block_tokens,hash_ids\n1500000000,20,4,,\n0,10,3,,\n".into()),
        ("c.jsonl", "{\"arrival_ns\":1500000000,\"input_tokens\":20,\"output_tokens\":4}\n{\"arrival_ns\":0,\"input_tokens\":10,\"output_tokens\":3}\n".into()),
    ]
}

#[test]
fn out_of_order_rows_are_sorted_and_formatting_variants_agree() {
    for (name, text) in samples() {
        let want = load(name, &text).unwrap();
        assert_eq!(want.lengths(), vec![(10, 3), (20, 4)], "{name}: sorted by time");
        assert_eq!(want.requests[1].arrival_ns, 1_500_000_000, "{name}");
        let crlf = text.replace('\n', "\r\n");
        let bom = format!("\u{feff}{text}");
        let no_final_newline = text.trim_end().to_string();
        let blank_lines = text.replace('\n', "\n\n");
        for (variant, t) in
            [("crlf", crlf), ("bom", bom), ("no final newline", no_final_newline), ("blank lines", blank_lines)]
        {
            let got = load(name, &t).unwrap_or_else(|e| panic!("{name} {variant}: {e}"));
            assert_eq!(got.requests, want.requests, "{name} {variant}");
        }
    }
}

#[test]
fn duplicate_timestamps_keep_file_order() {
    let w = load(
        "dup.csv",
        &format!("{AZ}\n2023-11-16 18:15:46.0,30,1\n2023-11-16 18:15:46.0,10,1\n2023-11-16 18:15:46.0,20,1\n"),
    )
    .unwrap();
    assert_eq!(w.lengths(), vec![(30, 1), (10, 1), (20, 1)]);
    assert!(w.requests.iter().all(|r| r.arrival_ns == 0));
}

#[test]
fn empty_and_header_only_files_are_errors() {
    for (name, text) in [
        ("e.csv", ""),
        ("e.jsonl", "\n\n"),
        ("h.csv", AZ),
        ("h2.csv", "arrival_ns,input_tokens,output_tokens,prefix_block_tokens,hash_ids\r\n"),
    ] {
        let e = load_path(&file(name, text), &LoadOptions::default()).unwrap_err();
        assert!(matches!(e, TraceError::Empty { .. }), "{name}: {e}");
    }
}

#[test]
fn zero_output_tokens_are_rejected_with_line_and_field() {
    let cases = [
        (
            "z.csv",
            format!("{AZ}\n2023-11-16 18:15:46.0,10,3\n2023-11-16 18:15:47.0,10,0\n"),
            3,
            "GeneratedTokens: expected an integer >= 1, found '0'",
        ),
        (
            "z.jsonl",
            format!("{MC}\n{}\n", MC.replace("\"output_length\": 3", "\"output_length\": 0")),
            2,
            "output_length: expected an integer >= 1, found '0'",
        ),
        (
            "zv.csv",
            "arrived_at,num_prefill_tokens,num_decode_tokens\n0,10,3\n1,10,0\n".into(),
            3,
            "num_decode_tokens: expected an integer >= 1, found '0'",
        ),
        (
            "zc.csv",
            "arrival_ns,input_tokens,output_tokens,prefix_block_tokens,hash_ids\n0,10,0,,\n".into(),
            2,
            "output_tokens: expected an integer >= 1, found '0'",
        ),
    ];
    for (name, text, line, needle) in cases {
        let e = load(name, &text).unwrap_err().to_string();
        assert!(e.contains(&format!("{name}:{line}: {needle}")), "{e}");
    }
}

#[test]
fn invalid_utf8_is_an_error_not_a_panic() {
    let dir = std::env::temp_dir().join(format!("duet-edge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bin.csv");
    std::fs::write(&p, b"TIMESTAMP,ContextTokens,GeneratedTokens\n\xff\xfe,1,2\n").unwrap();
    let e = load_path(&p, &LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("bin.csv:2: not valid UTF-8"), "{e}");
}
