//! BurstGPT traces: CSV `Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type`.
//!
//! `Timestamp` is seconds from the trace start. Rows with 0 response tokens are failed requests in BurstGPT's
//! own definition: they are excluded and counted in the workload's notes (never silently). Optional filters keep
//! one model (`ChatGPT`, `GPT-4`) and one log type (`Conversation log`, `API log`); filtered rows are counted
//! too. Rows are sorted stably by time.

use std::io::BufRead;
use std::path::Path;

use crate::error::TraceError;
use crate::spec::{RequestSpec, Workload};
use crate::text::{Header, Lines, fields, seconds_to_ns, tokens};

/// Columns of a BurstGPT file.
pub const COLUMNS: [&str; 6] = ["Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens", "Log Type"];

/// Which BurstGPT rows to keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BurstFilter {
    /// Keep only this model (case-insensitive), e.g. `ChatGPT` or `GPT-4`.
    pub model: Option<String>,
    /// Keep only this log type (case-insensitive prefix), e.g. `Conversation` or `API`.
    pub log_type: Option<String>,
}

/// Whether a header line is BurstGPT's.
pub fn looks_like(header: &str) -> bool {
    let h = Header::parse(header);
    COLUMNS.iter().all(|c| h.find(c).is_some())
}

/// Reads a BurstGPT CSV.
pub fn read(path: &Path, reader: impl BufRead, filter: &BurstFilter) -> Result<Workload, TraceError> {
    let mut lines = Lines::new(path, reader);
    let bad = |line: usize, message: String| TraceError::Malformed { path: path.to_owned(), line, message };
    let header = match lines.next_line()? {
        Some((_, h)) if looks_like(h) => Header::parse(h),
        Some((n, h)) => return Err(bad(n, format!("expected BurstGPT header {:?}, found {h:?}", COLUMNS.join(",")))),
        None => return Err(TraceError::Empty { path: path.to_owned() }),
    };
    let col: Vec<usize> = COLUMNS.iter().map(|c| header.find(c).expect("checked by looks_like")).collect();
    let (mut requests, mut failed, mut filtered) = (Vec::new(), 0usize, 0usize);
    while let Some((n, line)) = lines.next_line()? {
        let f = fields(line, header.len()).map_err(|m| bad(n, m))?;
        let keep = filter.model.as_ref().is_none_or(|m| f[col[1]].eq_ignore_ascii_case(m))
            && filter
                .log_type
                .as_ref()
                .is_none_or(|t| f[col[5]].to_ascii_lowercase().starts_with(&t.to_ascii_lowercase()));
        if !keep {
            filtered += 1;
            continue;
        }
        if f[col[3]].trim() == "0" {
            failed += 1;
            continue;
        }
        let row = (|| {
            Ok::<_, String>(RequestSpec {
                id: 0,
                arrival_ns: seconds_to_ns("Timestamp", f[col[0]])?,
                input_tokens: tokens("Request tokens", f[col[2]])?,
                output_tokens: tokens("Response tokens", f[col[3]])?,
            })
        })();
        requests.push(row.map_err(|m| bad(n, m))?);
    }
    if requests.is_empty() {
        return Err(TraceError::Empty { path: path.to_owned() });
    }
    let mut w = Workload::from_unsorted(format!("burstgpt:{}", path.display()), requests);
    if failed > 0 {
        w.notes.push(format!("{failed} failed BurstGPT request(s) (0 response tokens) excluded"));
    }
    if filtered > 0 {
        w.notes.push(format!("{filtered} BurstGPT row(s) excluded by the model/log-type filter"));
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n\
                        5,ChatGPT,472,18,490,Conversation log\n\
                        45,ChatGPT,1087,0,1087,Conversation log\n\
                        118.5,GPT-4,417,276,693,API log\n";

    #[test]
    fn failed_rows_are_excluded_and_counted() {
        let w = read(Path::new("b.csv"), TEXT.as_bytes(), &BurstFilter::default()).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w.requests[1].arrival_ns, 113_500_000_000);
        assert_eq!(w.notes, vec!["1 failed BurstGPT request(s) (0 response tokens) excluded".to_string()]);
    }

    #[test]
    fn filters_by_model_and_log_type() {
        let f = BurstFilter { model: Some("gpt-4".into()), log_type: None };
        let w = read(Path::new("b.csv"), TEXT.as_bytes(), &f).unwrap();
        assert_eq!((w.len(), w.requests[0].input_tokens), (1, 417));
        let f = BurstFilter { model: None, log_type: Some("conversation".into()) };
        assert_eq!(read(Path::new("b.csv"), TEXT.as_bytes(), &f).unwrap().len(), 1);
    }

    #[test]
    fn bad_rows_name_line_and_field() {
        let text = format!("{}7,ChatGPT,-2,5,3,API log\n", &TEXT[..TEXT.find('\n').unwrap() + 1]);
        let e = read(Path::new("b.csv"), text.as_bytes(), &BurstFilter::default()).unwrap_err().to_string();
        assert_eq!(e, "b.csv:2: Request tokens: expected an integer >= 1, found '-2'");
    }
}
