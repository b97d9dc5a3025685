//! Mooncake traces (FAST'25 release): JSON lines
//! `{"timestamp": ms, "input_length": n, "output_length": n, "hash_ids": [...]}`.
//!
//! `timestamp` is milliseconds from the trace start (the published conversation trace quantises it to about
//! 3 s); `hash_ids` are the content hashes of the prompt's 512-token blocks, kept for prefix caching; the loader
//! checks `len(hash_ids) == ceil(input_length / 512)`. Rows are sorted stably by time.

use std::io::BufRead;
use std::path::Path;

use serde::Deserialize;

use crate::error::TraceError;
use crate::spec::{RequestSpec, Workload};
use crate::text::{Lines, millis_to_ns, tokens};

/// Tokens per hashed block in Mooncake traces.
pub const BLOCK_TOKENS: u32 = 512;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    timestamp: serde_json::Number,
    input_length: serde_json::Number,
    output_length: serde_json::Number,
    #[serde(default)]
    hash_ids: Option<Vec<u64>>,
}

/// Whether a JSON object line looks like a Mooncake row.
pub fn looks_like(first_line: &str) -> bool {
    first_line.contains("\"input_length\"") && first_line.contains("\"timestamp\"")
}

/// Reads a Mooncake JSONL trace. Rows without `hash_ids` are accepted only if no row has them.
pub fn read(path: &Path, reader: impl BufRead) -> Result<Workload, TraceError> {
    let mut lines = Lines::new(path, reader);
    let bad = |line: usize, message: String| TraceError::Malformed { path: path.to_owned(), line, message };
    let mut requests = Vec::new();
    let mut hashes: Vec<Vec<u64>> = Vec::new();
    let mut with_hashes = 0usize;
    while let Some((n, line)) = lines.next_line()? {
        let row: Row = serde_json::from_str(line).map_err(|e| bad(n, format!("not a Mooncake row: {e}")))?;
        let parsed = (|| {
            let arrival_ns = millis_to_ns("timestamp", &row.timestamp.to_string())?;
            let input_tokens = tokens("input_length", &row.input_length.to_string())?;
            let output_tokens = tokens("output_length", &row.output_length.to_string())?;
            if let Some(h) = &row.hash_ids {
                crate::spec::check_hash_ids(h, input_tokens, BLOCK_TOKENS)?;
            }
            Ok(RequestSpec { id: 0, arrival_ns, input_tokens, output_tokens })
        })();
        requests.push(parsed.map_err(|m| bad(n, m))?);
        if row.hash_ids.is_some() {
            with_hashes += 1;
        }
        hashes.push(row.hash_ids.unwrap_or_default());
    }
    if requests.is_empty() {
        return Err(TraceError::Empty { path: path.to_owned() });
    }
    if with_hashes != 0 && with_hashes != requests.len() {
        return Err(TraceError::Inconsistent {
            path: path.to_owned(),
            message: format!(
                "hash_ids present in {with_hashes} of {} rows: all or none must have them",
                requests.len()
            ),
        });
    }
    let prefix = (with_hashes > 0).then_some((BLOCK_TOKENS, hashes));
    Ok(Workload::from_unsorted_with_prefix(format!("mooncake:{}", path.display()), requests, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_sorts_and_keeps_hashes() {
        let text = r#"{"timestamp": 3000, "input_length": 600, "output_length": 5, "hash_ids": [7, 8]}
{"timestamp": 0, "input_length": 512, "output_length": 9, "hash_ids": [7]}
"#;
        let w = read(Path::new("m.jsonl"), text.as_bytes()).unwrap();
        assert_eq!(w.requests[1].arrival_ns, 3_000_000_000);
        assert_eq!((w.requests[0].input_tokens, w.requests[0].output_tokens), (512, 9));
        let p = w.prefix.unwrap();
        assert_eq!((p.block_tokens, p.get(0), p.get(1)), (512, &[7u64][..], &[7u64, 8][..]));
    }

    #[test]
    fn errors_name_line_and_field() {
        let cases = [
            (
                r#"{"timestamp": 0, "input_length": 10, "output_length": 0, "hash_ids": [1]}"#,
                "output_length: expected an integer >= 1, found '0'",
            ),
            (
                r#"{"timestamp": -5, "input_length": 10, "output_length": 1, "hash_ids": [1]}"#,
                "timestamp: expected a non-negative number",
            ),
            (r#"{"timestamp": 0, "input_length": 1025, "output_length": 1, "hash_ids": [1, 2]}"#, "expected 3"),
            (r#"{"timestamp": 0, "input_length": 10}"#, "missing field `output_length`"),
            ("not json", "not a Mooncake row"),
        ];
        for (row, needle) in cases {
            let text =
                format!("{{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [0]}}\n{row}\n");
            let e = read(Path::new("m.jsonl"), text.as_bytes()).unwrap_err().to_string();
            assert!(e.starts_with("m.jsonl:2:") && e.contains(needle), "{e}");
        }
    }
}
