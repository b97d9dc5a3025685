//! Errors of profile loading, measurement parsing and fitting.

use std::path::PathBuf;

/// Anything that can go wrong with profiles and measurements.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// A file could not be read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        cause: std::io::Error,
    },
    /// A profile or record is malformed; `line` is 0 when not line-based.
    #[error("{path}{}: {message}", if *.line > 0 { format!(":{}", .line) } else { String::new() })]
    Invalid {
        /// The file (or profile name).
        path: PathBuf,
        /// 1-based line, or 0.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A profile written by a newer duet.
    #[error("{path}: profile schema version {found} is newer than this duet understands ({supported})")]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// The newest version understood.
        supported: u32,
    },
    /// Unknown bundled profile.
    #[error("unknown profile {0:?}; bundled profiles: h100-sxm, h200, a100-80gb; or pass a path to a profile JSON")]
    UnknownProfile(String),
    /// Nothing to fit or check.
    #[error("{0}")]
    NoData(String),
}

impl CalibrationError {
    pub(crate) fn invalid(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        Self::Invalid { path: path.into(), line, message: message.into() }
    }
}
