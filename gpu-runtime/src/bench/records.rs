//! Turning measurements into the calibration crate's records and files.
//!
//! Files written by `duet-gpu calibrate` (all under the output folder):
//! - `records.jsonl`: one [`Record`] per measured operator, shape and SM count (`duet calibrate fit` reads it);
//! - `corun.csv`: co-running slowdowns in the calibration crate's [`CORUN_HEADER`] layout;
//! - `graph.csv`: eager against graph-replayed steps of empty kernels ([`super::graph`]; `duet calibrate fit` reads
//!   it for `graph_launch_ns`);
//! - `mixed.csv`: mixed prefill+decode attention against its parts ([`super::mixed`]; `duet calibrate fit` reads it
//!   for the mixed-attention penalty);
//! - `bandwidth.csv`: `sms,read_gbps,copy_gbps` (copy counts bytes read plus written);
//! - `checks.json`: kernel correctness against the float64 references;
//! - `summary.json` and `summary.md`: device, overheads and headline numbers.

use std::path::Path;

use duet_calibration::record::{CORUN_HEADER, OpClass, Record, TimeStats, to_jsonl};
use duet_sim::model::ModelSpec;
use serde::Serialize;

use super::plan::{DecodeCase, PrefillCase, Projection};
use crate::error::GpuError;

fn base(op: OpClass, name: String, tokens: u64, d_in: u64, d_out: u64, sms: u32, time_ms: TimeStats) -> Record {
    Record { op, time_ms, ..Record::linear(name, tokens, d_in, d_out, sms, time_ms.median) }
}

/// A projection at `tokens` rows on `sms` SMs.
pub fn linear(p: &Projection, tokens: u64, sms: u32, t: TimeStats) -> Record {
    base(OpClass::Linear, p.name.into(), tokens, p.d_in, p.d_out, sms, t)
}

/// An elementwise operator over `tokens` rows of `width` values.
pub fn elementwise(op: OpClass, tokens: u64, width: u64, sms: u32, t: TimeStats) -> Record {
    base(op, op.as_str().into(), tokens, 0, width, sms, t)
}

/// Decode attention of a case: one new token per sequence over `context - 1` earlier tokens.
pub fn decode(c: &DecodeCase, m: &ModelSpec, sms: u32, t: TimeStats) -> Record {
    let mut r = base(OpClass::AttentionDecode, "decode_attention".into(), 1, c.context as u64 - 1, m.head_dim, sms, t);
    (r.q_heads, r.kv_heads, r.batch) = (Some(m.num_q_heads), Some(m.num_kv_heads), Some(c.batch as u64));
    r
}

/// Prefill attention of a case by the kernel `name`: `chunk` new tokens over `before` cached ones, one sequence.
pub fn prefill(c: &PrefillCase, m: &ModelSpec, name: &str, sms: u32, t: TimeStats) -> Record {
    let name = name.into();
    let mut r = base(OpClass::AttentionPrefill, name, c.chunk as u64, c.before as u64, m.head_dim, sms, t);
    (r.q_heads, r.kv_heads, r.batch) = (Some(m.num_q_heads), Some(m.num_kv_heads), Some(1));
    r
}

/// One co-running measurement: the decode-side kernel (a weight-streaming GEMM) and the prefill-side kernel (a
/// large GEMM), each alone and with the other running on the other partition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CorunRow {
    /// Decode partition SMs.
    pub decode_sms: u32,
    /// Prefill partition SMs.
    pub prefill_sms: u32,
    /// Decode kernel alone (ms).
    pub decode_solo_ms: f64,
    /// Decode kernel with the prefill kernel running (ms).
    pub decode_corun_ms: f64,
    /// Prefill kernel alone (ms).
    pub prefill_solo_ms: f64,
    /// Prefill kernel with the decode kernel running (ms).
    pub prefill_corun_ms: f64,
}

impl CorunRow {
    /// `corun / solo - 1` for (decode, prefill).
    pub fn slowdowns(&self) -> (f64, f64) {
        (self.decode_corun_ms / self.decode_solo_ms - 1.0, self.prefill_corun_ms / self.prefill_solo_ms - 1.0)
    }
}

/// `corun.csv` text.
pub fn corun_csv(rows: &[CorunRow]) -> String {
    let mut s = format!("{CORUN_HEADER}\n");
    for r in rows {
        let (d, p) = r.slowdowns();
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            r.decode_sms,
            r.prefill_sms,
            r.decode_solo_ms,
            r.decode_corun_ms,
            r.prefill_solo_ms,
            r.prefill_corun_ms,
            d,
            p
        ));
    }
    s
}

/// Read and copy bandwidth on one SM count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BandwidthRow {
    /// SMs.
    pub sms: u32,
    /// GB/s read.
    pub read_gbps: f64,
    /// GB/s read plus written.
    pub copy_gbps: f64,
}

/// `bandwidth.csv` text.
pub fn bandwidth_csv(rows: &[BandwidthRow]) -> String {
    let mut s = String::from("sms,read_gbps,copy_gbps\n");
    for r in rows {
        s.push_str(&format!("{},{:.1},{:.1}\n", r.sms, r.read_gbps, r.copy_gbps));
    }
    s
}

/// Writes `text` to `dir/name`.
pub fn write(dir: &Path, name: &str, text: &str) -> Result<(), GpuError> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|source| GpuError::Io { path, source })
}

/// Appends each record to a JSONL file the moment it is measured (unbuffered), so that a run killed at its
/// deadline keeps every record before the kill; at most the line being written is lost, and readers skip no
/// complete line. Write errors are remembered, not fatal to the measurement: [`Appender::error`] reports the first.
pub struct Appender {
    file: std::cell::RefCell<Option<std::fs::File>>,
    path: std::path::PathBuf,
    error: std::cell::RefCell<Option<String>>,
}

impl Appender {
    /// Creates (truncates) `dir/name`.
    pub fn create(dir: &Path, name: &str) -> Result<Appender, GpuError> {
        let path = dir.join(name);
        let f = std::fs::File::create(&path).map_err(|source| GpuError::Io { path: path.clone(), source })?;
        Ok(Appender { file: std::cell::RefCell::new(Some(f)), path, error: Default::default() })
    }

    /// Appends `r` as one JSON line and returns it.
    pub fn keep(&self, r: Record) -> Record {
        use std::io::Write;
        let mut f = self.file.borrow_mut();
        if let Some(file) = f.as_mut()
            && let Err(e) = file.write_all(to_jsonl(std::slice::from_ref(&r)).as_bytes())
        {
            *self.error.borrow_mut() = Some(format!("{}: {e}", self.path.display()));
            *f = None;
        }
        r
    }

    /// The first write error, if any.
    pub fn error(&self) -> Option<String> {
        self.error.borrow().clone()
    }
}

/// Writes `records.jsonl`.
pub fn write_records(dir: &Path, records: &[Record]) -> Result<(), GpuError> {
    write(dir, "records.jsonl", &to_jsonl(records))
}

#[cfg(test)]
mod tests {
    use duet_calibration::record::{read_any, read_corun};

    use super::*;
    use crate::bench::plan::projections;

    #[test]
    fn records_appended_one_by_one_read_back_after_each() {
        let m = ModelSpec::resolve("qwen3-8b").unwrap();
        let dir = std::env::temp_dir().join(format!("duet-gpu-append-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = Appender::create(&dir, "records.jsonl").unwrap();
        let p = projections(&m)[0];
        for (i, t) in [1u64, 16, 256].into_iter().enumerate() {
            let r = a.keep(linear(&p, t, 132, TimeStats::median_only(0.1 * (i + 1) as f64)));
            assert_eq!(r.d_in, p.d_in, "keep hands the record back");
            // What a run killed now would leave: every record so far, readable.
            let back = read_any(&dir.join("records.jsonl"), 132).unwrap();
            assert_eq!(back.len(), i + 1);
            assert_eq!(back[i].time_ms.median, 0.1 * (i + 1) as f64);
        }
        assert!(a.error().is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn records_and_corun_files_read_back_with_the_calibration_readers() {
        let m = ModelSpec::resolve("qwen3-8b").unwrap();
        let t = TimeStats::median_only(0.25);
        let recs = vec![
            linear(&projections(&m)[2], 512, 64, t),
            elementwise(OpClass::Rmsnorm, 512, 4096, 132, t),
            decode(&DecodeCase { batch: 32, context: 2048 }, &m, 16, t),
            prefill(&PrefillCase { chunk: 512, before: 2048 }, &m, "prefill_attention_tc", 116, t),
        ];
        let dir = std::env::temp_dir().join(format!("duet-gpu-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_records(&dir, &recs).unwrap();
        let back = read_any(&dir.join("records.jsonl"), 132).unwrap();
        assert_eq!(back, recs);
        // The decode record's work is one token over 2,047 earlier ones, the new token's key included.
        let w = back[2].work();
        let want = duet_sim::cost::ops::attention(1, 2047, 32, 8, 128, 2);
        assert_eq!((w.flops, w.bytes), (want.flops, want.bytes));
        assert_eq!(back[3].batch, Some(1));

        let row = CorunRow {
            decode_sms: 16,
            prefill_sms: 116,
            decode_solo_ms: 0.08,
            decode_corun_ms: 0.1,
            prefill_solo_ms: 0.25,
            prefill_corun_ms: 0.275,
        };
        write(&dir, "corun.csv", &corun_csv(&[row])).unwrap();
        let c = read_corun(&dir.join("corun.csv")).unwrap();
        assert_eq!((c[0].decode_sms, c[0].prefill_sms), (16, 116));
        assert!((c[0].decode_slowdown - 0.25).abs() < 1e-12 && (c[0].prefill_slowdown - 0.1).abs() < 1e-12);
        assert_eq!(
            bandwidth_csv(&[BandwidthRow { sms: 8, read_gbps: 800.04, copy_gbps: 600.0 }]),
            "sms,read_gbps,copy_gbps\n8,800.0,600.0\n"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
