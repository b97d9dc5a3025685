//! The small fixed-header CSV files `duet-gpu calibrate` writes beside its records (`mixed.csv`, `graph.csv`): a
//! header line, then rows of numbers, each field checked against the least value it may take. One reader, so
//! every such file reports a bad row the same way (file, line, field, value).

use std::path::Path;

use crate::error::CalibrationError;

/// The least value a field may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Least {
    /// A finite number > 0.
    Positive,
    /// A finite number >= 0.
    NonNegative,
    /// A whole number > 0.
    WholePositive,
}

impl Least {
    fn admits(self, x: f64) -> bool {
        x.is_finite()
            && match self {
                Least::Positive => x > 0.0,
                Least::NonNegative => x >= 0.0,
                Least::WholePositive => x > 0.0 && x.fract() == 0.0,
            }
    }

    fn says(self) -> &'static str {
        match self {
            Least::Positive => "> 0",
            Least::NonNegative => ">= 0",
            Least::WholePositive => "a whole number > 0",
        }
    }
}

/// Whether `path`'s first line is `header`.
pub(crate) fn has_header(path: &Path, header: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.lines().next().is_some_and(|l| l.trim() == header))
}

/// The rows of `path` under `header` (blank lines skipped), each field checked by `least(name)`; `N` is the number
/// of fields the header names.
pub(crate) fn read_rows<const N: usize>(
    path: &Path,
    header: &str,
    least: impl Fn(&str) -> Least,
) -> Result<Vec<[f64; N]>, CalibrationError> {
    let names: Vec<&str> = header.split(',').collect();
    debug_assert_eq!(names.len(), N, "{header}");
    let text = std::fs::read_to_string(path).map_err(|cause| CalibrationError::Io { path: path.into(), cause })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            if line.trim() != header {
                return Err(CalibrationError::invalid(path, 1, format!("expected the header {header}")));
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != N {
            return Err(CalibrationError::invalid(path, i + 1, format!("expected {N} fields, got {}", fields.len())));
        }
        let mut v = [0.0; N];
        for (k, (f, name)) in fields.iter().zip(&names).enumerate() {
            let l = least(name);
            v[k] = match f.parse::<f64>() {
                Ok(x) if l.admits(x) => x,
                _ => {
                    return Err(CalibrationError::invalid(
                        path,
                        i + 1,
                        format!("{name} must be {}, got {f:?}", l.says()),
                    ));
                }
            };
        }
        out.push(v);
    }
    Ok(out)
}
