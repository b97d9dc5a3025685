//! duet's canonical trace format, in CSV and JSON lines, which round-trips a [`Workload`] exactly.
//!
//! CSV: header `arrival_ns,input_tokens,output_tokens,prefix_block_tokens,hash_ids`; one row per request with
//! integer nanoseconds; `prefix_block_tokens` and `hash_ids` (space-separated) are empty when the workload has
//! no prefix hashes. Example rows: `0,374,44,,` and `1500000000,6758,500,512,0 1 2 3 4`.
//!
//! JSONL: `{"arrival_ns":0,"input_tokens":374,"output_tokens":44}`, plus `"prefix_block_tokens":512,
//! "hash_ids":[0,1,2]` when there are hashes.

use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::TraceError;
use crate::spec::{RequestSpec, Workload};
use crate::text::{Lines, fields, tokens};

/// Header of the canonical CSV.
pub const CSV_HEADER: &str = "arrival_ns,input_tokens,output_tokens,prefix_block_tokens,hash_ids";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow {
    arrival_ns: u64,
    input_tokens: u32,
    output_tokens: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix_block_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hash_ids: Option<Vec<u64>>,
}

/// Whether a JSON line is a canonical row.
pub fn looks_like_jsonl(first_line: &str) -> bool {
    first_line.contains("\"arrival_ns\"")
}

/// Writes `w` as canonical CSV.
pub fn write_csv(w: &Workload, mut out: impl Write) -> std::io::Result<()> {
    writeln!(out, "{CSV_HEADER}")?;
    for (i, r) in w.requests.iter().enumerate() {
        write!(out, "{},{},{},", r.arrival_ns, r.input_tokens, r.output_tokens)?;
        if let Some(p) = &w.prefix {
            write!(out, "{},", p.block_tokens)?;
            for (k, h) in p.get(i).iter().enumerate() {
                write!(out, "{}{h}", if k == 0 { "" } else { " " })?;
            }
            writeln!(out)?;
        } else {
            writeln!(out, ",")?;
        }
    }
    Ok(())
}

/// Writes `w` as canonical JSON lines.
pub fn write_jsonl(w: &Workload, mut out: impl Write) -> std::io::Result<()> {
    for (i, r) in w.requests.iter().enumerate() {
        let row = JsonRow {
            arrival_ns: r.arrival_ns,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            prefix_block_tokens: w.prefix.as_ref().map(|p| p.block_tokens),
            hash_ids: w.prefix.as_ref().map(|p| p.get(i).to_vec()),
        };
        serde_json::to_writer(&mut out, &row)?;
        writeln!(out)?;
    }
    Ok(())
}

/// Collects rows and checks that prefix information is all-or-none with one block size.
#[derive(Default)]
struct Builder {
    requests: Vec<RequestSpec>,
    hashes: Vec<Vec<u64>>,
    block: Option<u32>,
    with_prefix: usize,
}

impl Builder {
    fn push(&mut self, r: RequestSpec, prefix: Option<(u32, Vec<u64>)>) -> Result<(), String> {
        if r.arrival_ns > crate::spec::MAX_ARRIVAL_NS {
            return Err(format!(
                "arrival_ns: {} is beyond the latest arrival duet accepts, {} ns (100 years)",
                r.arrival_ns,
                crate::spec::MAX_ARRIVAL_NS
            ));
        }
        if let Some((b, h)) = prefix {
            if b == 0 {
                return Err("prefix_block_tokens: expected an integer >= 1, found '0'".into());
            }
            crate::spec::check_hash_ids(&h, r.input_tokens, b)?;
            if *self.block.get_or_insert(b) != b {
                return Err(format!(
                    "prefix_block_tokens: {b} differs from {} on earlier rows",
                    self.block.unwrap_or(b)
                ));
            }
            self.with_prefix += 1;
            self.hashes.push(h);
        } else {
            self.hashes.push(Vec::new());
        }
        self.requests.push(r);
        Ok(())
    }

    fn finish(self, path: &Path) -> Result<Workload, TraceError> {
        if self.requests.is_empty() {
            return Err(TraceError::Empty { path: path.to_owned() });
        }
        if self.with_prefix != 0 && self.with_prefix != self.requests.len() {
            return Err(TraceError::Inconsistent {
                path: path.to_owned(),
                message: format!(
                    "prefix hashes on {} of {} rows: all or none must have them",
                    self.with_prefix,
                    self.requests.len()
                ),
            });
        }
        let prefix = self.block.map(|b| (b, self.hashes));
        Ok(Workload::from_unsorted_with_prefix(format!("duet:{}", path.display()), self.requests, prefix))
    }
}

/// Reads canonical CSV.
pub fn read_csv(path: &Path, reader: impl BufRead) -> Result<Workload, TraceError> {
    let mut lines = Lines::new(path, reader);
    let bad = |line: usize, message: String| TraceError::Malformed { path: path.to_owned(), line, message };
    match lines.next_line()? {
        Some((_, h)) if h.trim() == CSV_HEADER => {}
        Some((n, h)) => return Err(bad(n, format!("expected header {CSV_HEADER:?}, found {h:?}"))),
        None => return Err(TraceError::Empty { path: path.to_owned() }),
    }
    let mut b = Builder::default();
    while let Some((n, line)) = lines.next_line()? {
        let row = (|| {
            let f = fields(line, 5)?;
            let arrival_ns: u64 =
                f[0].parse().map_err(|_| format!("arrival_ns: expected a non-negative integer, found '{}'", f[0]))?;
            let r = RequestSpec {
                id: 0,
                arrival_ns,
                input_tokens: tokens("input_tokens", f[1])?,
                output_tokens: tokens("output_tokens", f[2])?,
            };
            let prefix = if f[3].is_empty() && f[4].is_empty() {
                None
            } else {
                let block: u32 = f[3]
                    .parse()
                    .map_err(|_| format!("prefix_block_tokens: expected an integer >= 1, found '{}'", f[3]))?;
                let ids = f[4]
                    .split_whitespace()
                    .map(|h| {
                        h.parse::<u64>().map_err(|_| format!("hash_ids: expected non-negative integers, found '{h}'"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some((block, ids))
            };
            b.push(r, prefix)
        })();
        row.map_err(|m| bad(n, m))?;
    }
    b.finish(path)
}

/// Reads canonical JSON lines.
pub fn read_jsonl(path: &Path, reader: impl BufRead) -> Result<Workload, TraceError> {
    let mut lines = Lines::new(path, reader);
    let bad = |line: usize, message: String| TraceError::Malformed { path: path.to_owned(), line, message };
    let mut b = Builder::default();
    while let Some((n, line)) = lines.next_line()? {
        let row: JsonRow = serde_json::from_str(line).map_err(|e| bad(n, format!("not a duet trace row: {e}")))?;
        let r = (|| {
            let r = RequestSpec {
                id: 0,
                arrival_ns: row.arrival_ns,
                input_tokens: tokens("input_tokens", &row.input_tokens.to_string())?,
                output_tokens: tokens("output_tokens", &row.output_tokens.to_string())?,
            };
            let prefix = match (row.prefix_block_tokens, row.hash_ids) {
                (Some(b), Some(h)) => Some((b, h)),
                (None, None) => None,
                _ => return Err("prefix_block_tokens and hash_ids go together".to_string()),
            };
            b.push(r, prefix)
        })();
        r.map_err(|m| bad(n, m))?;
    }
    b.finish(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(prefix: bool) -> Workload {
        let reqs = vec![
            RequestSpec { id: 0, arrival_ns: 0, input_tokens: 600, output_tokens: 3 },
            RequestSpec { id: 0, arrival_ns: 1_500_000_007, input_tokens: 10, output_tokens: 1 },
        ];
        let p = prefix.then(|| (512, vec![vec![4, 9], vec![4]]));
        Workload::from_unsorted_with_prefix("x".into(), reqs, p)
    }

    #[test]
    fn csv_and_jsonl_round_trip_exactly() {
        for prefix in [false, true] {
            let w = sample(prefix);
            let mut csv = Vec::new();
            write_csv(&w, &mut csv).unwrap();
            let back = read_csv(Path::new("c.csv"), csv.as_slice()).unwrap();
            assert_eq!((&back.requests, &back.prefix), (&w.requests, &w.prefix));
            let mut jl = Vec::new();
            write_jsonl(&w, &mut jl).unwrap();
            let back = read_jsonl(Path::new("c.jsonl"), jl.as_slice()).unwrap();
            assert_eq!((&back.requests, &back.prefix), (&w.requests, &w.prefix));
        }
        let mut csv = Vec::new();
        write_csv(&sample(true), &mut csv).unwrap();
        assert_eq!(String::from_utf8(csv).unwrap(), format!("{CSV_HEADER}\n0,600,3,512,4 9\n1500000007,10,1,512,4\n"));
    }

    #[test]
    fn mixed_prefix_rows_are_rejected() {
        let text = format!("{CSV_HEADER}\n0,600,3,512,4 9\n5,10,1,,\n");
        let e = read_csv(Path::new("c.csv"), text.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("all or none"), "{e}");
        let e = read_csv(Path::new("c.csv"), format!("{CSV_HEADER}\n-1,6,3,,\n").as_bytes()).unwrap_err().to_string();
        assert_eq!(e, "c.csv:2: arrival_ns: expected a non-negative integer, found '-1'");
    }

    #[test]
    fn arrivals_beyond_the_limit_are_rejected_with_file_and_line() {
        let text = format!("{CSV_HEADER}\n0,6,3,,\n18446744073709551615,6,3,,\n");
        let e = read_csv(Path::new("c.csv"), text.as_bytes()).unwrap_err().to_string();
        assert!(e.starts_with("c.csv:3: arrival_ns: 18446744073709551615 is beyond") && e.contains("100 years"), "{e}");
        let text = "{\"arrival_ns\":18446744073709551615,\"input_tokens\":6,\"output_tokens\":3}\n";
        let e = read_jsonl(Path::new("c.jsonl"), text.as_bytes()).unwrap_err().to_string();
        assert!(e.starts_with("c.jsonl:1: arrival_ns: 18446744073709551615 is beyond"), "{e}");
    }
}
