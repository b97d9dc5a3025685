//! Vidur / Splitwise processed traces and length-only CSVs.
//!
//! - Timed: CSV with columns `arrived_at` (seconds from the start), `num_prefill_tokens`, `num_decode_tokens`
//!   (other columns ignored), as in Vidur's `data/processed_traces/`.
//! - Length-only: CSV with `num_prefill_tokens,num_decode_tokens` and no arrival column (such as the ShareGPT
//!   statistics shipped with Sarathi-Serve); it becomes a [`LengthTable`] that needs an arrival process.

use std::io::BufRead;
use std::path::Path;

use crate::error::TraceError;
use crate::spec::{LengthTable, RequestSpec, Workload};
use crate::text::{Header, Lines, fields, seconds_to_ns, tokens};

/// What a Vidur-style header describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has `arrived_at`.
    Timed,
    /// Lengths only.
    Lengths,
}

/// Classifies a header line, if it is a Vidur-style one.
pub fn kind_of(header: &str) -> Option<Kind> {
    let h = Header::parse(header);
    if h.find("num_prefill_tokens").is_none() || h.find("num_decode_tokens").is_none() {
        return None;
    }
    Some(if h.find("arrived_at").is_some() { Kind::Timed } else { Kind::Lengths })
}

struct Rows {
    times: Vec<Option<u64>>,
    pairs: Vec<(u32, u32)>,
}

fn read_rows(path: &Path, reader: impl BufRead, want: Kind) -> Result<Rows, TraceError> {
    let mut lines = Lines::new(path, reader);
    let bad = |line: usize, message: String| TraceError::Malformed { path: path.to_owned(), line, message };
    let header = match lines.next_line()? {
        Some((n, h)) => match (kind_of(h), want) {
            (Some(Kind::Timed), _) | (Some(Kind::Lengths), Kind::Lengths) => Header::parse(h),
            _ => {
                let cols = match want {
                    Kind::Timed => "arrived_at,num_prefill_tokens,num_decode_tokens",
                    Kind::Lengths => "num_prefill_tokens,num_decode_tokens",
                };
                return Err(bad(n, format!("expected a header with {cols}, found {h:?}")));
            }
        },
        None => return Err(TraceError::Empty { path: path.to_owned() }),
    };
    let (ci, co, ct) = (
        header.find("num_prefill_tokens").expect("checked"),
        header.find("num_decode_tokens").expect("checked"),
        header.find("arrived_at"),
    );
    let mut rows = Rows { times: Vec::new(), pairs: Vec::new() };
    while let Some((n, line)) = lines.next_line()? {
        let parsed = (|| {
            let f = fields(line, header.len())?;
            let t = ct.map(|c| seconds_to_ns("arrived_at", f[c])).transpose()?;
            Ok::<_, String>((t, tokens("num_prefill_tokens", f[ci])?, tokens("num_decode_tokens", f[co])?))
        })();
        let (t, i, o) = parsed.map_err(|m| bad(n, m))?;
        rows.times.push(t);
        rows.pairs.push((i, o));
    }
    if rows.pairs.is_empty() {
        return Err(TraceError::Empty { path: path.to_owned() });
    }
    Ok(rows)
}

/// Reads a timed Vidur/Splitwise CSV (sorted stably by `arrived_at`).
pub fn read_timed(path: &Path, reader: impl BufRead) -> Result<Workload, TraceError> {
    let rows = read_rows(path, reader, Kind::Timed)?;
    let requests = rows
        .times
        .iter()
        .zip(&rows.pairs)
        .map(|(t, &(i, o))| RequestSpec {
            id: 0,
            arrival_ns: t.expect("timed header"),
            input_tokens: i,
            output_tokens: o,
        })
        .collect();
    Ok(Workload::from_unsorted(format!("vidur:{}", path.display()), requests))
}

/// Reads a length-only CSV (any `arrived_at` column is ignored).
pub fn read_lengths(path: &Path, reader: impl BufRead) -> Result<LengthTable, TraceError> {
    let rows = read_rows(path, reader, Kind::Lengths)?;
    Ok(LengthTable { source: format!("lengths:{}", path.display()), pairs: rows.pairs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_and_length_only() {
        let timed = "arrived_at,num_prefill_tokens,num_decode_tokens\n1.5,100,10\n0.25,200,20\n";
        assert_eq!(kind_of(timed.lines().next().unwrap()), Some(Kind::Timed));
        let w = read_timed(Path::new("v.csv"), timed.as_bytes()).unwrap();
        assert_eq!((w.requests[0].input_tokens, w.requests[1].arrival_ns), (200, 1_250_000_000));
        let lengths =
            "num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n74,918,992,0.08\n290,905,1195,0.32\n";
        assert_eq!(kind_of(lengths.lines().next().unwrap()), Some(Kind::Lengths));
        let t = read_lengths(Path::new("s.csv"), lengths.as_bytes()).unwrap();
        assert_eq!(t.pairs, vec![(74, 918), (290, 905)]);
    }

    #[test]
    fn bad_rows_name_line_and_field() {
        let text = "num_prefill_tokens,num_decode_tokens\n74,918\n290,0\n";
        let e = read_lengths(Path::new("s.csv"), text.as_bytes()).unwrap_err().to_string();
        assert_eq!(e, "s.csv:3: num_decode_tokens: expected an integer >= 1, found '0'");
    }
}
