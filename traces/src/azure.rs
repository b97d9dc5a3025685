//! Azure LLM inference trace CSV (2023 release): `TIMESTAMP,ContextTokens,GeneratedTokens`.
//!
//! TIMESTAMP is a wall-clock string with up to 9 fractional digits and no time zone
//! (`2023-11-16 18:17:03.9799600`); it is read as UTC, converted to integer nanoseconds, and the workload is
//! shifted so the first request arrives at 0. Rows are sorted stably by time (the published files are
//! already sorted; a file that is not gets sorted, ties keeping file order). Every row must have both
//! token counts >= 1; any other row is an error naming its line.

use std::path::Path;

use crate::error::TraceError;
use crate::spec::{RequestSpec, Workload};

/// The header line of the Azure format.
pub const HEADER: &str = "TIMESTAMP,ContextTokens,GeneratedTokens";

/// Parses the whole text of an Azure CSV. `path` is used in error messages only.
pub fn parse(path: &Path, text: &str) -> Result<Workload, TraceError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim().eq_ignore_ascii_case(HEADER) => {}
        other => {
            return Err(TraceError::Malformed {
                path: path.to_owned(),
                line: 1,
                message: format!("expected header {HEADER:?}, found {:?}", other.map_or("", |(_, l)| l)),
            });
        }
    }
    let mut requests = Vec::new();
    for (idx, raw) in lines {
        let line_no = idx + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| TraceError::Malformed { path: path.to_owned(), line: line_no, message };
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 3 {
            return Err(bad(format!("expected 3 comma-separated fields, found {}", fields.len())));
        }
        let arrival_ns = parse_timestamp(fields[0].trim()).map_err(|m| bad(format!("TIMESTAMP: {m}")))?;
        let input_tokens = parse_tokens(fields[1]).map_err(|m| bad(format!("ContextTokens: {m}")))?;
        let output_tokens = parse_tokens(fields[2]).map_err(|m| bad(format!("GeneratedTokens: {m}")))?;
        requests.push(RequestSpec { id: 0, arrival_ns, input_tokens, output_tokens });
    }
    if requests.is_empty() {
        return Err(TraceError::Empty { path: path.to_owned() });
    }
    Ok(Workload::from_unsorted(format!("azure:{}", path.display()), requests))
}

/// Parses a token count that must be an integer in `1..=u32::MAX`.
pub(crate) fn parse_tokens(field: &str) -> Result<u32, String> {
    let v: i64 = field.trim().parse().map_err(|_| format!("{:?} is not an integer", field.trim()))?;
    if v <= 0 {
        return Err(format!("token count must be >= 1, found {v}"));
    }
    u32::try_from(v).map_err(|_| format!("token count {v} is too large"))
}

/// Parses `YYYY-MM-DD HH:MM:SS[.fffffffff]` (UTC) into nanoseconds since the Unix epoch.
pub fn parse_timestamp(s: &str) -> Result<u64, String> {
    let err = || format!("{s:?} is not `YYYY-MM-DD HH:MM:SS[.fraction]`");
    let (date, time) = s.split_once([' ', 'T']).ok_or_else(err)?;
    let mut d = date.split('-');
    let (y, mo, da) = (d.next(), d.next(), d.next());
    let num = |x: Option<&str>| x.and_then(|v| v.parse::<i64>().ok()).ok_or_else(err);
    let (y, mo, da) = (num(y)?, num(mo)?, num(da)?);
    if d.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return Err(err());
    }
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':');
    let (h, mi, se) = (num(t.next())?, num(t.next())?, num(t.next())?);
    if t.next().is_some() || h > 23 || mi > 59 || se > 60 {
        return Err(err());
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let frac_ns: i64 =
        if frac.is_empty() { 0 } else { frac.parse::<i64>().map_err(|_| err())? * 10i64.pow(9 - frac.len() as u32) };
    let days = days_from_civil(y, mo, da);
    let secs = days * 86_400 + h * 3_600 + mi * 60 + se;
    u64::try_from(secs * 1_000_000_000 + frac_ns).map_err(|_| format!("{s:?} is before 1970"))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_exact_nanoseconds() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00").unwrap(), 0);
        assert_eq!(parse_timestamp("1970-01-02 00:00:01.5").unwrap(), 86_401_500_000_000);
        // 2023-11-16 is day 19,677 after the epoch.
        let t = parse_timestamp("2023-11-16 18:17:03.9799600").unwrap();
        assert_eq!(t, (19_677 * 86_400 + 18 * 3600 + 17 * 60 + 3) * 1_000_000_000 + 979_960_000);
        assert!(parse_timestamp("2023-13-16 18:17:03").is_err());
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("2023-11-16 18:17:03.12345678901").is_err());
    }

    #[test]
    fn parses_and_shifts_to_zero() {
        let text = "TIMESTAMP,ContextTokens,GeneratedTokens\n\
                    2023-11-16 18:15:46.6805900,374,44\n\
                    2023-11-16 18:15:50.9951690,396,109\n";
        let w = parse(Path::new("x.csv"), text).unwrap();
        assert_eq!(w.requests[0].arrival_ns, 0);
        assert_eq!(w.requests[1].arrival_ns, 4_314_579_000);
        assert_eq!((w.requests[1].input_tokens, w.requests[1].output_tokens), (396, 109));
    }

    #[test]
    fn bad_rows_name_their_line() {
        let cases = [
            (
                "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1,2\n2023-11-16 18:15:47,0,2\n",
                3,
                "must be >= 1",
            ),
            ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1,-4\n", 2, "must be >= 1"),
            ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1\n", 2, "3 comma-separated"),
            ("TIMESTAMP,ContextTokens,GeneratedTokens\nnot-a-time,1,2\n", 2, "TIMESTAMP"),
            ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,x,2\n", 2, "not an integer"),
        ];
        for (text, line, needle) in cases {
            let e = parse(Path::new("t.csv"), text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("t.csv:{line}:")), "{e}");
            assert!(e.contains(needle), "{e}");
        }
        let e = parse(Path::new("t.csv"), "TIMESTAMP,ContextTokens,GeneratedTokens\n").unwrap_err();
        assert!(matches!(e, TraceError::Empty { .. }));
    }
}
