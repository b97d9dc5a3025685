//! Errors of the reports crate.

use std::path::PathBuf;

/// What can go wrong writing or reading tables and figures.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// polars failed to build, write or read a table.
    #[error("{path}: {message}")]
    Table {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// polars' message.
        message: String,
    },
    /// A table lacks a column or a column has the wrong type.
    #[error("{path}: {message}")]
    Column {
        /// The file the table came from.
        path: PathBuf,
        /// What is missing or wrong.
        message: String,
    },
    /// The table holds no row.
    #[error("{0}: the results table holds no row")]
    Empty(PathBuf),
    /// Drawing a figure failed.
    #[error("drawing {path}: {message}")]
    Draw {
        /// The figure file.
        path: PathBuf,
        /// plotters' message.
        message: String,
    },
    /// Nothing to draw.
    #[error("figure {0}: no data to draw")]
    NoData(String),
}
