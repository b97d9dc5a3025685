//! Azure LLM inference traces, 2023 and 2024 releases: CSV `TIMESTAMP,ContextTokens,GeneratedTokens`.
//!
//! TIMESTAMP is a wall-clock string with up to 9 fractional digits (`2023-11-16 18:17:03.9799600`); the 2024
//! release appends a UTC offset (`2024-05-10 00:00:00.009930+00:00`), which is applied. Times without an offset
//! are read as UTC. Rows are sorted stably by time after loading (the published files are already sorted; a file
//! that is not gets sorted, ties keeping file order), then shifted so the first request arrives at 0. Both token
//! counts must be integers >= 1: a row with 0 generated tokens is rejected with its line, not patched.

use std::io::BufRead;
use std::path::Path;

use crate::error::TraceError;
use crate::spec::{RequestSpec, Workload};
use crate::text::{Lines, fields, tokens};

/// The header line of the Azure format.
pub const HEADER: &str = "TIMESTAMP,ContextTokens,GeneratedTokens";

/// Reads an Azure CSV from `reader`. `path` is used in error messages only.
pub fn read(path: &Path, reader: impl BufRead) -> Result<Workload, TraceError> {
    let mut lines = Lines::new(path, reader);
    let bad = |line: usize, message: String| TraceError::Malformed { path: path.to_owned(), line, message };
    match lines.next_line()? {
        Some((_, h)) if h.trim().eq_ignore_ascii_case(HEADER) => {}
        Some((n, h)) => return Err(bad(n, format!("expected header {HEADER:?}, found {h:?}"))),
        None => return Err(TraceError::Empty { path: path.to_owned() }),
    }
    let mut requests = Vec::new();
    while let Some((n, line)) = lines.next_line()? {
        let row = (|| {
            let f = fields(line, 3)?;
            let arrival_ns = parse_timestamp(f[0]).map_err(|m| format!("TIMESTAMP: {m}"))?;
            Ok::<_, String>(RequestSpec {
                id: 0,
                arrival_ns,
                input_tokens: tokens("ContextTokens", f[1])?,
                output_tokens: tokens("GeneratedTokens", f[2])?,
            })
        })();
        requests.push(row.map_err(|m| bad(n, m))?);
    }
    if requests.is_empty() {
        return Err(TraceError::Empty { path: path.to_owned() });
    }
    Ok(Workload::from_unsorted(format!("azure:{}", path.display()), requests))
}

/// Parses the whole text of an Azure CSV (the bundled excerpt, tests).
pub fn parse(path: &Path, text: &str) -> Result<Workload, TraceError> {
    read(path, text.as_bytes())
}

/// Parses `YYYY-MM-DD HH:MM:SS[.fffffffff][Z|+HH:MM|-HH:MM]` into nanoseconds since the Unix epoch (UTC).
pub fn parse_timestamp(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let err = || format!("'{s}' is not `YYYY-MM-DD HH:MM:SS[.fraction][+HH:MM]`");
    let (date, time) = s.split_once([' ', 'T']).ok_or_else(err)?;
    let (time, offset_s) = split_offset(time).ok_or_else(err)?;
    let mut d = date.split('-');
    let num = |x: Option<&str>| {
        x.filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(err)
    };
    let (y, mo, da) = (num(d.next())?, num(d.next())?, num(d.next())?);
    if d.next().is_some() || !(1..=12).contains(&mo) || y > 9999 {
        return Err(err());
    }
    let month_days = days_in_month(y, mo);
    if !(1..=month_days).contains(&da) {
        return Err(format!("'{s}': {y:04}-{mo:02} has {month_days} days, not {da}"));
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
    // Exact in i128 (years up to 9999 are ~2.5e20 ns): no wrap, whatever the date.
    let secs = i128::from(days_from_civil(y, mo, da) * 86_400 + h * 3_600 + mi * 60 + se - offset_s);
    let ns = secs * 1_000_000_000 + i128::from(frac_ns);
    if ns < 0 {
        return Err(format!("'{s}' is before 1970"));
    }
    u64::try_from(ns)
        .map_err(|_| format!("'{s}' is after 2554-07-21 23:34:33 UTC, the latest time a 64-bit nanosecond clock holds"))
}

/// Days in month `m` of year `y` (proleptic Gregorian).
fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Splits a trailing `Z` or `±HH:MM` offset off a time; returns the offset in seconds east of UTC.
fn split_offset(time: &str) -> Option<(&str, i64)> {
    if let Some(t) = time.strip_suffix('Z') {
        return Some((t, 0));
    }
    match time.rfind(['+', '-']) {
        Some(i) => {
            let (t, off) = time.split_at(i);
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let (hh, mm) = off[1..].split_once(':')?;
            let (hh, mm): (i64, i64) = (hh.parse().ok()?, mm.parse().ok()?);
            (hh <= 23 && mm <= 59).then_some((t, sign * (hh * 3600 + mm * 60)))
        }
        None => Some((time, 0)),
    }
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
    fn impossible_dates_and_times_beyond_the_clock_are_errors_not_wraps() {
        let e = parse_timestamp("2023-02-31 00:00:00").unwrap_err();
        assert!(e.contains("2023-02 has 28 days, not 31"), "{e}");
        assert!(parse_timestamp("2024-02-29 00:00:00").is_ok());
        assert!(parse_timestamp("1900-02-29 00:00:00").unwrap_err().contains("28 days"));
        assert!(parse_timestamp("2000-02-29 00:00:00").is_ok());
        assert!(parse_timestamp("2023-04-31 00:00:00").unwrap_err().contains("30 days"));
        // Past the signed range (2262) but within u64 nanoseconds: exact, later than 2023.
        let t2600 = parse_timestamp("2500-01-01 00:00:00").unwrap();
        assert!(t2600 > parse_timestamp("2262-04-11 23:47:16").unwrap());
        for late in ["2600-01-01 00:00:00", "7023-01-01 00:00:00", "9999-12-31 23:59:59"] {
            assert!(parse_timestamp(late).unwrap_err().contains("after 2554-07-21"), "{late}");
        }
        assert!(parse_timestamp("1969-12-31 23:59:59").unwrap_err().contains("before 1970"));
        assert!(parse_timestamp("10000-01-01 00:00:00").is_err());
    }

    #[test]
    fn azure_2024_offsets_are_applied() {
        let utc = parse_timestamp("2024-05-10 00:00:00.009930").unwrap();
        assert_eq!(parse_timestamp("2024-05-10 00:00:00.009930+00:00").unwrap(), utc);
        assert_eq!(parse_timestamp("2024-05-10T00:00:00.009930Z").unwrap(), utc);
        assert_eq!(parse_timestamp("2024-05-10 02:00:00.009930+02:00").unwrap(), utc);
        assert!(parse_timestamp("2024-05-10 00:00:00+25:00").is_err());
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
    fn bad_rows_name_their_line_and_field() {
        let h = "TIMESTAMP,ContextTokens,GeneratedTokens\n";
        let cases = [
            (
                format!("{h}2023-11-16 18:15:46,1,2\n2023-11-16 18:15:47,0,2\n"),
                3,
                "ContextTokens: expected an integer >= 1, found '0'",
            ),
            (format!("{h}2023-11-16 18:15:46,1,-3\n"), 2, "GeneratedTokens: expected an integer >= 1, found '-3'"),
            (format!("{h}2023-11-16 18:15:46,1\n"), 2, "expected 3 comma-separated fields, found 2"),
            (format!("{h}not-a-time,1,2\n"), 2, "TIMESTAMP: 'not-a-time'"),
            (format!("{h}2023-11-16 18:15:46,x,2\n"), 2, "ContextTokens: expected an integer >= 1, found 'x'"),
            ("TIME,A,B\n".to_string(), 1, "expected header"),
        ];
        for (text, line, needle) in cases {
            let e = parse(Path::new("t.csv"), &text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("t.csv:{line}:")), "{e}");
            assert!(e.contains(needle), "{e}");
        }
    }
}
