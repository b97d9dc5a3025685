//! Opens a trace file and picks its format from the extension and the first line, reading it as a stream.
//!
//! | extension | first line | format |
//! |---|---|---|
//! | `.csv` | `TIMESTAMP,ContextTokens,GeneratedTokens` | Azure 2023/2024 ([`crate::azure`]) |
//! | `.csv` | `Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type` | BurstGPT ([`crate::burstgpt`]) |
//! | `.csv` | has `arrived_at`, `num_prefill_tokens`, `num_decode_tokens` | Vidur/Splitwise ([`crate::vidur`]) |
//! | `.csv` | has `num_prefill_tokens`, `num_decode_tokens`, no `arrived_at` | lengths only ([`crate::vidur`]) |
//! | `.csv` | `arrival_ns,input_tokens,output_tokens,prefix_block_tokens,hash_ids` | duet canonical ([`crate::canonical`]) |
//! | `.jsonl` / `.json` | object with `timestamp`, `input_length` | Mooncake ([`crate::mooncake`]) |
//! | `.jsonl` / `.json` | object with `arrival_ns` | duet canonical JSONL |

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::burstgpt::{self, BurstFilter};
use crate::error::TraceError;
use crate::spec::{LengthTable, Workload};
use crate::{azure, canonical, mooncake, vidur};

/// Formats [`load_path`] recognises, for error messages.
pub const SUPPORTED: &str = "Azure CSV (TIMESTAMP,ContextTokens,GeneratedTokens), BurstGPT CSV, Vidur/Splitwise CSV \
     (arrived_at,num_prefill_tokens,num_decode_tokens), length-only CSV (num_prefill_tokens,num_decode_tokens), \
     Mooncake JSONL, duet canonical CSV/JSONL";

/// Name under which the bundled default trace is reported.
pub const BUNDLED_DEFAULT_NAME: &str = "bundled:azure_conv_excerpt.csv";

const BUNDLED_AZURE_CONV: &str = include_str!("../data/azure_conv_excerpt.csv");

/// The bundled default workload: the first 1,000 requests of the Azure 2023 conversation trace
/// (see `traces/data/README.md` for attribution).
pub fn bundled_default() -> Workload {
    let mut w = azure::parse(Path::new(BUNDLED_DEFAULT_NAME), BUNDLED_AZURE_CONV)
        .expect("the bundled excerpt is checked by a unit test");
    w.source = BUNDLED_DEFAULT_NAME.into();
    w
}

/// What a trace file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceData {
    /// Requests with arrival times.
    Timed(Workload),
    /// Request lengths without arrival times.
    Lengths(LengthTable),
}

/// Options that only some formats use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// BurstGPT model and log-type filter.
    pub burstgpt: BurstFilter,
}

fn open(path: &Path) -> Result<BufReader<File>, TraceError> {
    let f = File::open(path).map_err(|cause| TraceError::io(path, cause))?;
    Ok(BufReader::with_capacity(1 << 16, f))
}

/// Reads a trace file, detecting its format from the extension and first line (see the module table).
pub fn load_path(path: &Path, opts: &LoadOptions) -> Result<TraceData, TraceError> {
    let mut reader = open(path)?;
    let first_line = {
        let buf = reader.fill_buf().map_err(|cause| TraceError::io(path, cause))?;
        let head = String::from_utf8_lossy(&buf[..buf.len().min(4096)]).into_owned();
        let head = head.strip_prefix('\u{feff}').unwrap_or(&head).to_string();
        head.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string()
    };
    if first_line.is_empty() {
        return Err(TraceError::Empty { path: path.to_owned() });
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let timed = match ext.as_str() {
        "csv" if first_line.eq_ignore_ascii_case(azure::HEADER) => azure::read(path, reader)?,
        "csv" if burstgpt::looks_like(&first_line) => burstgpt::read(path, reader, &opts.burstgpt)?,
        "csv" if first_line == canonical::CSV_HEADER => canonical::read_csv(path, reader)?,
        "csv" => match vidur::kind_of(&first_line) {
            Some(vidur::Kind::Timed) => vidur::read_timed(path, reader)?,
            Some(vidur::Kind::Lengths) => return Ok(TraceData::Lengths(vidur::read_lengths(path, reader)?)),
            None => return Err(unknown(path, first_line)),
        },
        "jsonl" | "json" if mooncake::looks_like(&first_line) => mooncake::read(path, reader)?,
        "jsonl" | "json" if canonical::looks_like_jsonl(&first_line) => canonical::read_jsonl(path, reader)?,
        _ => return Err(unknown(path, first_line)),
    };
    check_span(path, &timed)?;
    Ok(TraceData::Timed(timed))
}

/// Every format's arrivals are shifted so the first is at 0; a trace whose last arrival then lies beyond
/// [`crate::MAX_ARRIVAL_NS`] (100 years) is refused, naming the request, instead of overflowing the engine's clock.
fn check_span(path: &Path, w: &Workload) -> Result<(), TraceError> {
    match w.requests.iter().find(|r| r.arrival_ns > crate::MAX_ARRIVAL_NS) {
        Some(r) => Err(TraceError::Inconsistent {
            path: path.to_owned(),
            message: format!(
                "request {} arrives {:.4e} s after the first, beyond the latest arrival duet simulates ({} s, 100 \
                 years)",
                r.id,
                r.arrival_ns as f64 / 1e9,
                crate::MAX_ARRIVAL_NS / 1_000_000_000
            ),
        }),
        None => Ok(()),
    }
}

fn unknown(path: &Path, first_line: String) -> TraceError {
    let first_line: String = first_line.chars().take(200).collect();
    TraceError::UnknownFormat { path: path.to_owned(), first_line, supported: SUPPORTED }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_excerpt_parses_to_1000_requests() {
        let w = bundled_default();
        assert_eq!(w.len(), 1000);
        assert_eq!(w.requests[0].arrival_ns, 0);
        assert_eq!((w.requests[0].input_tokens, w.requests[0].output_tokens), (374, 44));
    }

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("duet-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn every_format_is_detected() {
        let o = LoadOptions::default();
        let cases = [
            ("a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n"),
            (
                "b.csv",
                "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n5,ChatGPT,472,18,490,Conversation log\n",
            ),
            ("v.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n0.5,100,10\n"),
            ("c.csv", "arrival_ns,input_tokens,output_tokens,prefix_block_tokens,hash_ids\n0,5,5,,\n"),
            ("m.jsonl", "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 5, \"hash_ids\": [1]}\n"),
            ("c.jsonl", "{\"arrival_ns\":0,\"input_tokens\":5,\"output_tokens\":5}\n"),
        ];
        for (name, text) in cases {
            assert!(matches!(load_path(&write(name, text), &o), Ok(TraceData::Timed(w)) if w.len() == 1), "{name}");
        }
        let l = load_path(&write("s.csv", "num_prefill_tokens,num_decode_tokens\n5,6\n"), &o).unwrap();
        assert!(matches!(l, TraceData::Lengths(t) if t.pairs == vec![(5, 6)]));
    }

    #[test]
    fn missing_empty_and_unknown_files_are_clear_errors() {
        let o = LoadOptions::default();
        let e = load_path(Path::new("/nonexistent/trace.csv"), &o).unwrap_err().to_string();
        assert!(e.contains("cannot read trace /nonexistent/trace.csv"), "{e}");
        let e = load_path(&write("weird.csv", "a,b,c\n1,2,3\n"), &o).unwrap_err().to_string();
        assert!(e.contains("unrecognised trace format") && e.contains("TIMESTAMP"), "{e}");
        let e = load_path(&write("empty.csv", ""), &o).unwrap_err().to_string();
        assert!(e.contains("holds no request"), "{e}");
        let e =
            load_path(&write("header.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\r\n"), &o).unwrap_err().to_string();
        assert!(e.contains("holds no request"), "{e}");
    }
}
