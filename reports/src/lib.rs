//! duet's result tables and figures: the only crate that depends on polars and plotters, so that the simulator
//! and the GPU runtime stay small.
//!
//! - [`table`]: rows of JSON objects (one per sweep point) as a polars `DataFrame`, written to and read from
//!   CSV and Parquet.
//! - [`figure`]: line charts, CDFs, scatter plots with an error band and SM-partition timelines, drawn once and
//!   written as PNG and SVG. Text uses an embedded DejaVu Sans through plotters' `ab_glyph` path, so figures
//!   render on machines without system fonts.
//! - [`style`]: the colour-blind-safe palette and the font.
//! - [`markdown`]: Markdown tables.

pub mod error;
pub mod figure;
pub mod glyphs;
pub mod markdown;
pub mod style;
pub mod table;

pub use error::ReportError;
