//! Reading delimited text the same way for every format: streaming line by line, a UTF-8 byte-order mark on
//! the first line ignored, `\r\n` and `\n` both accepted, a missing final newline accepted, blank lines skipped,
//! 1-based line numbers that count the header; and the field parsers whose errors name the field and value.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use crate::error::TraceError;

/// A line-numbered reader over any buffered source.
pub(crate) struct Lines<R> {
    path: PathBuf,
    reader: R,
    buf: String,
    line_no: usize,
}

impl<R: BufRead> Lines<R> {
    pub fn new(path: &Path, reader: R) -> Self {
        Self { path: path.to_owned(), reader, buf: String::new(), line_no: 0 }
    }

    /// The next non-blank line without its line ending, with its 1-based number.
    pub fn next_line(&mut self) -> Result<Option<(usize, &str)>, TraceError> {
        let (start, end) = loop {
            self.buf.clear();
            let n = self.reader.read_line(&mut self.buf).map_err(|e| self.io_or_utf8(e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            let end = self.buf.trim_end_matches(['\n', '\r']).len();
            let start = if self.line_no == 1 && self.buf.starts_with('\u{feff}') { 3.min(end) } else { 0 };
            if !self.buf[start..end].trim().is_empty() {
                break (start, end);
            }
        };
        Ok(Some((self.line_no, &self.buf[start..end])))
    }

    fn io_or_utf8(&self, e: std::io::Error) -> TraceError {
        if e.kind() == std::io::ErrorKind::InvalidData {
            TraceError::Malformed { path: self.path.clone(), line: self.line_no + 1, message: "not valid UTF-8".into() }
        } else {
            TraceError::io(&self.path, e)
        }
    }
}

/// Column positions found in a CSV header by name.
pub(crate) struct Header {
    names: Vec<String>,
}

impl Header {
    pub fn parse(line: &str) -> Self {
        Self { names: line.split(',').map(|s| unquote(s).to_string()).collect() }
    }

    /// Position of column `name` (exact, after trimming and unquoting).
    pub fn find(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.names.len()
    }
}

/// A field without surrounding whitespace or double quotes.
pub(crate) fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(s)
}

/// Splits a CSV row that must have `expected` fields.
pub(crate) fn fields(line: &str, expected: usize) -> Result<Vec<&str>, String> {
    let f: Vec<&str> = line.split(',').map(unquote).collect();
    if f.len() != expected {
        return Err(format!("expected {expected} comma-separated fields, found {}", f.len()));
    }
    Ok(f)
}

/// A token count: an integer >= 1 (`12` or `12.0`). The message names `field` and the value as written.
pub(crate) fn tokens(field: &str, raw: &str) -> Result<u32, String> {
    let v = raw.trim();
    let err = || format!("{field}: expected an integer >= 1, found '{v}'");
    let n: i128 = match v.parse::<i128>() {
        Ok(n) => n,
        Err(_) => match v.parse::<f64>() {
            Ok(f) if f.fract() == 0.0 && f.abs() < 1e30 => f as i128,
            _ => return Err(err()),
        },
    };
    if n < 1 || n > i128::from(u32::MAX) {
        return Err(err());
    }
    Ok(n as u32)
}

/// A non-negative time in seconds written as a decimal (`12`, `12.3456789`, `1.5e-3`), converted to integer
/// nanoseconds exactly for plain decimals (digits beyond the ninth decimal are rounded half up).
pub(crate) fn seconds_to_ns(field: &str, raw: &str) -> Result<u64, String> {
    scaled_to_ns(field, raw, 9)
}

/// A non-negative time in milliseconds, converted to integer nanoseconds (exactly for plain decimals).
pub(crate) fn millis_to_ns(field: &str, raw: &str) -> Result<u64, String> {
    scaled_to_ns(field, raw, 6)
}

/// Parses a non-negative decimal and multiplies it by `10^exp`, exactly when it has no exponent part.
fn scaled_to_ns(field: &str, raw: &str, exp: u32) -> Result<u64, String> {
    let v = raw.trim();
    let err = || format!("{field}: expected a non-negative number, found '{v}'");
    let unit = if exp == 9 { "s" } else { "ms" };
    let too_big = || {
        format!(
            "{field}: '{v}' {unit} is beyond the latest time duet reads, {} {unit} (a 64-bit nanosecond clock)",
            u64::MAX / 10u64.pow(exp)
        )
    };
    if v.contains(['e', 'E']) {
        let f: f64 = v.parse().map_err(|_| err())?;
        if !(f.is_finite() && f >= 0.0) {
            return Err(err());
        }
        if f * 10f64.powi(exp as i32) >= 1.8e19 {
            return Err(too_big());
        }
        return Ok((f * 10f64.powi(exp as i32)).round() as u64);
    }
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(err());
    }
    let scale = 10u128.pow(exp);
    let whole: u128 = if int.is_empty() { 0 } else { int.parse().map_err(|_| err())? };
    let mut frac_digits: Vec<u8> = frac.bytes().map(|b| b - b'0').collect();
    let round_up = frac_digits.len() > exp as usize && frac_digits[exp as usize] >= 5;
    frac_digits.resize(exp as usize, 0);
    let frac_val = frac_digits.iter().fold(0u128, |acc, d| acc * 10 + u128::from(*d));
    let total =
        whole.checked_mul(scale).and_then(|w| w.checked_add(frac_val + u128::from(round_up))).ok_or_else(too_big)?;
    u64::try_from(total).map_err(|_| too_big())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_fields() {
        assert_eq!(tokens("X", " 12 "), Ok(12));
        assert_eq!(tokens("X", "12.0"), Ok(12));
        assert_eq!(
            tokens("GeneratedTokens", "-3"),
            Err("GeneratedTokens: expected an integer >= 1, found '-3'".into())
        );
        assert!(tokens("X", "0").is_err());
        assert!(tokens("X", "1.5").is_err());
        assert!(tokens("X", "5000000000").is_err());
        assert!(tokens("X", "NaN").is_err());
    }

    #[test]
    fn decimal_times_are_exact() {
        assert_eq!(seconds_to_ns("t", "12"), Ok(12_000_000_000));
        assert_eq!(seconds_to_ns("t", "0.000000001"), Ok(1));
        assert_eq!(seconds_to_ns("t", "1.0000000015"), Ok(1_000_000_002));
        assert_eq!(seconds_to_ns("t", ".5"), Ok(500_000_000));
        assert_eq!(seconds_to_ns("t", "1.5e-3"), Ok(1_500_000));
        assert_eq!(millis_to_ns("t", "3000"), Ok(3_000_000_000));
        assert!(seconds_to_ns("t", "-1").is_err());
        assert!(seconds_to_ns("t", ".").is_err());
        assert!(seconds_to_ns("t", "1e400").is_err());
        assert!(seconds_to_ns("t", "99999999999999999999999").is_err());
    }

    #[test]
    fn lines_handle_bom_crlf_blank_and_missing_final_newline() {
        let text = "\u{feff}a,b\r\n\r\n1,2\r\n3,4";
        let mut l = Lines::new(Path::new("x"), text.as_bytes());
        assert_eq!(l.next_line().unwrap(), Some((1, "a,b")));
        assert_eq!(l.next_line().unwrap(), Some((3, "1,2")));
        assert_eq!(l.next_line().unwrap(), Some((4, "3,4")));
        assert_eq!(l.next_line().unwrap(), None);
    }
}
