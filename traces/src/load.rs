//! Opens a trace file and picks its format from the extension and the header line.

use std::path::Path;

use crate::azure;
use crate::error::TraceError;
use crate::spec::Workload;

/// Formats [`load_path`] recognises, for error messages.
pub const SUPPORTED: &str = "Azure LLM inference CSV (header `TIMESTAMP,ContextTokens,GeneratedTokens`)";

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

/// Reads a trace file, detecting its format from the extension and first line.
pub fn load_path(path: &Path) -> Result<Workload, TraceError> {
    let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io { path: path.to_owned(), source })?;
    let first_line = text.lines().next().unwrap_or("").trim().to_string();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if ext == "csv" && first_line.eq_ignore_ascii_case(azure::HEADER) {
        return azure::parse(path, &text);
    }
    Err(TraceError::UnknownFormat { path: path.to_owned(), first_line, supported: SUPPORTED })
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

    #[test]
    fn missing_and_unknown_files_are_clear_errors() {
        let e = load_path(Path::new("/nonexistent/trace.csv")).unwrap_err().to_string();
        assert!(e.contains("cannot read trace /nonexistent/trace.csv"), "{e}");
        let dir = std::env::temp_dir().join(format!("duet-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("weird.csv");
        std::fs::write(&p, "a,b,c\n1,2,3\n").unwrap();
        let e = load_path(&p).unwrap_err().to_string();
        assert!(e.contains("unrecognised trace format") && e.contains("TIMESTAMP"), "{e}");
    }
}
