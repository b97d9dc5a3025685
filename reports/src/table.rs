//! Results tables: one row per sweep point, built from JSON objects (the point's parameters and its
//! `summary.json`), held as a polars [`DataFrame`], written to and read from CSV and Parquet.
//!
//! Column types come from the values: all integers -> `Int64`, any other number -> `Float64`, booleans ->
//! `Boolean`, anything else (strings, arrays, objects, mixed) -> `String` (arrays and objects as compact JSON).
//! `null` and missing keys are nulls. Columns keep the order in which keys first appear.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde_json::{Map, Value};

use crate::error::ReportError;

/// A results table.
#[derive(Debug, Clone)]
pub struct Table {
    df: DataFrame,
    /// Where the table came from or was last written (for error messages).
    origin: PathBuf,
}

/// Column kind inferred from JSON values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Int,
    Float,
    Bool,
    Text,
}

fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_i64() => Kind::Int,
        Value::Number(_) => Kind::Float,
        _ => Kind::Text,
    }
}

fn merge(a: Kind, b: Kind) -> Kind {
    match (a, b) {
        (Kind::Null, k) | (k, Kind::Null) => k,
        (x, y) if x == y => x,
        (Kind::Int, Kind::Float) | (Kind::Float, Kind::Int) => Kind::Float,
        _ => Kind::Text,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn polars_err(path: &Path, e: PolarsError) -> ReportError {
    ReportError::Table { path: path.to_path_buf(), message: e.to_string() }
}

impl Table {
    /// Builds a table from rows of JSON objects.
    pub fn from_rows(rows: &[Map<String, Value>]) -> Result<Self, ReportError> {
        let memory = PathBuf::from("<memory>");
        let mut names: Vec<&String> = Vec::new();
        for r in rows {
            for k in r.keys() {
                if !names.contains(&k) {
                    names.push(k);
                }
            }
        }
        let mut columns = Vec::with_capacity(names.len());
        for name in names {
            let values: Vec<&Value> = rows.iter().map(|r| r.get(name).unwrap_or(&Value::Null)).collect();
            let kind = values.iter().fold(Kind::Null, |k, v| merge(k, kind_of(v)));
            let n = PlSmallStr::from_str(name);
            let col = match kind {
                Kind::Int => Column::new(n, values.iter().map(|v| v.as_i64()).collect::<Vec<_>>()),
                Kind::Float => Column::new(n, values.iter().map(|v| v.as_f64()).collect::<Vec<_>>()),
                Kind::Bool => Column::new(n, values.iter().map(|v| v.as_bool()).collect::<Vec<_>>()),
                Kind::Text | Kind::Null => Column::new(n, values.iter().map(|v| text(v)).collect::<Vec<_>>()),
            };
            columns.push(col);
        }
        let df = DataFrame::new(rows.len(), columns).map_err(|e| polars_err(&memory, e))?;
        Ok(Self { df, origin: memory })
    }

    /// The polars frame.
    pub fn frame(&self) -> &DataFrame {
        &self.df
    }

    /// Number of rows.
    pub fn height(&self) -> usize {
        self.df.height()
    }

    /// Column names in order.
    pub fn column_names(&self) -> Vec<String> {
        self.df.get_column_names().into_iter().map(|s| s.to_string()).collect()
    }

    /// Writes the table as CSV (header, comma-separated, nulls as empty fields).
    pub fn write_csv(&self, path: &Path) -> Result<(), ReportError> {
        let mut f = File::create(path).map_err(|source| ReportError::Io { path: path.to_path_buf(), source })?;
        let mut df = self.df.clone();
        CsvWriter::new(&mut f).include_header(true).finish(&mut df).map_err(|e| polars_err(path, e))
    }

    /// Writes the table as Parquet (zstd-compressed).
    pub fn write_parquet(&self, path: &Path) -> Result<(), ReportError> {
        let f = File::create(path).map_err(|source| ReportError::Io { path: path.to_path_buf(), source })?;
        let mut df = self.df.clone();
        ParquetWriter::new(f).finish(&mut df).map(|_| ()).map_err(|e| polars_err(path, e))
    }

    /// Reads a table from `.parquet` or `.csv`; an empty table is an error.
    pub fn read(path: &Path) -> Result<Self, ReportError> {
        let is_parquet = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
        let df = if is_parquet {
            let f = File::open(path).map_err(|source| ReportError::Io { path: path.to_path_buf(), source })?;
            ParquetReader::new(f).finish().map_err(|e| polars_err(path, e))?
        } else {
            if let Err(source) = std::fs::metadata(path) {
                return Err(ReportError::Io { path: path.to_path_buf(), source });
            }
            CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(None)
                .try_into_reader_with_file_path(Some(path.to_path_buf()))
                .and_then(|r| r.finish())
                .map_err(|e| polars_err(path, e))?
        };
        if df.height() == 0 {
            return Err(ReportError::Empty(path.to_path_buf()));
        }
        Ok(Self { df, origin: path.to_path_buf() })
    }

    fn column(&self, name: &str) -> Result<&Column, ReportError> {
        self.df.column(name).map_err(|_| ReportError::Column {
            path: self.origin.clone(),
            message: format!("no column `{name}` (columns: {})", self.column_names().join(", ")),
        })
    }

    /// Whether the table has column `name`.
    pub fn has(&self, name: &str) -> bool {
        self.df.column(name).is_ok()
    }

    /// A numeric column as `f64` (integers converted; nulls as `None`).
    pub fn f64s(&self, name: &str) -> Result<Vec<Option<f64>>, ReportError> {
        let c = self.column(name)?;
        let bad = |e: PolarsError| ReportError::Column {
            path: self.origin.clone(),
            message: format!("column `{name}` is not numeric ({}): {e}", c.dtype()),
        };
        // A column of nulls only (a metric no row has, e.g. goodput without SLOs) is stored as text: no values.
        if c.null_count() == c.len() {
            return Ok(vec![None; c.len()]);
        }
        if !(c.dtype().is_primitive_numeric() || c.dtype().is_null()) {
            return Err(bad(PolarsError::SchemaMismatch(format!("{}", c.dtype()).into())));
        }
        let c = c.cast(&DataType::Float64).map_err(bad)?;
        Ok(c.f64().map_err(bad)?.iter().collect())
    }

    /// A column as text (numbers formatted by polars' string cast; nulls as `None`).
    pub fn strings(&self, name: &str) -> Result<Vec<Option<String>>, ReportError> {
        let c = self.column(name)?;
        let c = c.cast(&DataType::String).map_err(|e| ReportError::Column {
            path: self.origin.clone(),
            message: format!("column `{name}` cannot be read as text: {e}"),
        })?;
        let s = c.str().map_err(|e| polars_err(&self.origin, e))?;
        Ok(s.iter().map(|v| v.map(str::to_string)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows() -> Vec<Map<String, Value>> {
        let r = |v: Value| v.as_object().cloned().expect("object");
        vec![
            r(json!({"label": "chunked", "rate": 2, "p99_ttft_ms": 123.5, "goodput": null, "notes": ["a", "b"]})),
            r(json!({"label": "duet", "rate": 2.5, "p99_ttft_ms": 99, "goodput": 1.25, "extra": true})),
        ]
    }

    #[test]
    fn types_follow_the_values_and_missing_keys_are_null() {
        let t = Table::from_rows(&rows()).unwrap();
        assert_eq!(t.column_names(), ["label", "rate", "p99_ttft_ms", "goodput", "notes", "extra"]);
        assert_eq!(t.f64s("rate").unwrap(), [Some(2.0), Some(2.5)]);
        assert_eq!(t.f64s("goodput").unwrap(), [None, Some(1.25)]);
        assert_eq!(t.strings("notes").unwrap(), [Some(r#"["a","b"]"#.to_string()), None]);
        assert_eq!(t.frame().column("extra").unwrap().dtype(), &DataType::Boolean);
        assert!(t.f64s("label").is_err());
        let e = t.f64s("nope").unwrap_err().to_string();
        assert!(e.contains("no column `nope`"), "{e}");
    }

    #[test]
    fn csv_and_parquet_round_trip_the_values() {
        let dir = std::env::temp_dir().join(format!("duet-reports-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = Table::from_rows(&rows()).unwrap();
        for name in ["t.csv", "t.parquet"] {
            let p = dir.join(name);
            if name.ends_with("csv") {
                t.write_csv(&p).unwrap();
            } else {
                t.write_parquet(&p).unwrap();
            }
            let back = Table::read(&p).unwrap();
            assert_eq!(back.column_names(), t.column_names(), "{name}");
            assert_eq!(back.f64s("p99_ttft_ms").unwrap(), [Some(123.5), Some(99.0)], "{name}");
            assert_eq!(back.f64s("goodput").unwrap(), [None, Some(1.25)], "{name}");
            assert_eq!(back.strings("label").unwrap(), [Some("chunked".into()), Some("duet".into())], "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_empty_or_missing_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("duet-reports-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("results.csv");
        std::fs::write(&p, "label,rate\n").unwrap();
        let e = Table::read(&p).unwrap_err().to_string();
        assert!(e.contains("results.csv") && e.contains("no row"), "{e}");
        let e = Table::read(&dir.join("missing.parquet")).unwrap_err().to_string();
        assert!(e.contains("missing.parquet"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
