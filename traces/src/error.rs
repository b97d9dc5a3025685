//! Errors raised while reading or generating traces. Each names the file and, where there is one, the line.

use std::path::PathBuf;

/// Anything that can go wrong turning a trace into a [`crate::Workload`].
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be opened or read.
    #[error("cannot read trace {path}: {cause}{hint}")]
    Io {
        /// File that failed.
        path: PathBuf,
        /// Where to get it, for a file that does not exist (else empty).
        hint: &'static str,
        /// Underlying OS error.
        cause: std::io::Error,
    },
    /// A row does not parse; `line` is 1-based and counts the header.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// File holding the row.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the row.
        message: String,
    },
    /// Rows disagree with each other (for example prefix hashes on some rows only).
    #[error("{path}: {message}")]
    Inconsistent {
        /// File holding the rows.
        path: PathBuf,
        /// What disagrees.
        message: String,
    },
    /// The header (or file extension) matches no supported format.
    #[error("{path}: unrecognised trace format (first line: {first_line:?}); supported: {supported}")]
    UnknownFormat {
        /// File that was tried.
        path: PathBuf,
        /// Its first line, as read.
        first_line: String,
        /// Human list of supported formats.
        supported: &'static str,
    },
    /// The trace holds no request.
    #[error("{path}: trace holds no request")]
    Empty {
        /// File that was tried.
        path: PathBuf,
    },
    /// A generator or transform parameter is out of range.
    #[error("invalid workload parameter: {0}")]
    InvalidParameter(String),
}

impl TraceError {
    /// A read error on `path`; a missing file's message says where the public traces come from.
    pub fn io(path: &std::path::Path, cause: std::io::Error) -> TraceError {
        let hint = if cause.kind() == std::io::ErrorKind::NotFound {
            " (the public traces: `scripts/fetch-data.sh` downloads them into data/)"
        } else {
            ""
        };
        TraceError::Io { path: path.to_owned(), hint, cause }
    }
}
