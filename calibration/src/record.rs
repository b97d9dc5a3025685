//! Measurement records: one measured operator at one shape, SM count and co-runner situation.
//!
//! JSON lines, one record per line:
//!
//! ```json
//! {"op": "linear", "name": "mlp_up_proj", "tokens": 4096, "d_in": 4096, "d_out": 22016, "dtype_bytes": 2,
//!  "sms": 132, "corunner": null, "time_ms": {"median": 0.987, "mean": 0.986, "min": 0.979, "max": 0.993, "std": 0.005}}
//! ```
//!
//! - `op`: `linear`, `rmsnorm`, `silu_mul`, `rotary`, `embedding`, `add` or `allreduce` (anything else is an
//!   error). An `allreduce` record has `tokens: 1`, `d_out`: message bytes, and `workers`: GPUs in the ring.
//!   `attention_prefill` / `attention_decode` records describe `batch` identical sequences with `tokens` new
//!   tokens (1 for decode) over `d_in` cached tokens, `q_heads`, `kv_heads` and head size `d_out`.
//! - `tokens`: rows processed; `d_in`, `d_out`: a linear layer's input and output features; for elementwise
//!   operators `d_out` is the per-token width (`hidden`, `intermediate / tp`, `(h_q + h_kv) d_h / tp`) and
//!   `d_in` is ignored.
//! - `dtype_bytes`: bytes per element; `sms`: SMs the kernel ran on; `corunner`: a description of what ran on
//!   the other SMs at the same time (`null` when nothing did).
//! - `time_ms`: statistics of the measured time in milliseconds; `median` is required and used.
//!
//! Vidur's profiling CSVs (`*.mlp.csv`, times in ms, sharded widths divided by the TP degree) are converted to
//! the same records by [`read_vidur`].

use std::path::Path;

use duet_sim::cost::ops::{self, Work};
use serde::{Deserialize, Serialize};

use crate::error::CalibrationError;

/// Operator classes that can be measured and fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpClass {
    /// A GEMM (linear layer).
    Linear,
    /// RMSNorm.
    Rmsnorm,
    /// SiLU-and-multiply.
    SiluMul,
    /// Rotary embedding.
    Rotary,
    /// Embedding lookup.
    Embedding,
    /// Residual add.
    Add,
    /// Ring all-reduce of `bytes` across `workers` GPUs.
    AllReduce,
    /// Prefill attention: `batch` sequences of `tokens` new tokens over `d_in` cached ones.
    AttentionPrefill,
    /// Decode attention: `batch` sequences of one new token over `d_in` cached ones.
    AttentionDecode,
}

impl OpClass {
    /// Name used in reports and profiles.
    pub fn as_str(&self) -> &'static str {
        match self {
            OpClass::Linear => "linear",
            OpClass::Rmsnorm => "rmsnorm",
            OpClass::SiluMul => "silu_mul",
            OpClass::Rotary => "rotary",
            OpClass::Embedding => "embedding",
            OpClass::Add => "add",
            OpClass::AllReduce => "allreduce",
            OpClass::AttentionPrefill => "attention_prefill",
            OpClass::AttentionDecode => "attention_decode",
        }
    }
}

/// Time statistics in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeStats {
    /// Median (required).
    pub median: f64,
    /// Mean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Minimum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Standard deviation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
}

impl TimeStats {
    /// Statistics that carry only a median (ms).
    pub fn median_only(median: f64) -> Self {
        TimeStats { median, mean: None, min: None, max: None, std: None }
    }
}

/// One measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Operator class.
    pub op: OpClass,
    /// Free label (the profiler's operator name).
    pub name: String,
    /// Tokens (rows).
    pub tokens: u64,
    /// Input features (linear only).
    #[serde(default)]
    pub d_in: u64,
    /// Output features (linear) or per-token width (elementwise).
    pub d_out: u64,
    /// Bytes per element.
    pub dtype_bytes: u64,
    /// SMs it ran on.
    pub sms: u32,
    /// What ran beside it, if anything.
    #[serde(default)]
    pub corunner: Option<String>,
    /// All-reduce: GPUs taking part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    /// Attention: query heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q_heads: Option<u64>,
    /// Attention: key/value heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_heads: Option<u64>,
    /// Attention: identical sequences in the kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
    /// Measured time.
    pub time_ms: TimeStats,
}

impl Record {
    /// A bf16 linear layer (`tokens x d_in` times `d_in x d_out`) on `sms` SMs with nothing beside it, taking
    /// `median_ms`.
    pub fn linear(name: String, tokens: u64, d_in: u64, d_out: u64, sms: u32, median_ms: f64) -> Self {
        Record {
            op: OpClass::Linear,
            name,
            tokens,
            d_in,
            d_out,
            dtype_bytes: 2,
            sms,
            corunner: None,
            workers: None,
            q_heads: None,
            kv_heads: None,
            batch: None,
            time_ms: TimeStats::median_only(median_ms),
        }
    }

    /// FLOPs and bytes of this operator, with the cost model's formulas.
    pub fn work(&self) -> Work {
        let (n, w, s) = (self.tokens, self.d_out, self.dtype_bytes);
        match self.op {
            OpClass::Linear => ops::linear(n, self.d_in, w, s),
            OpClass::Rmsnorm => ops::rmsnorm(n, w, s),
            OpClass::SiluMul => ops::silu_mul(n, w, s),
            OpClass::Rotary => Work { flops: 3.0 * (n * w) as f64, bytes: 2.0 * (n * w * s) as f64 },
            OpClass::Embedding => ops::embedding(n, w, s),
            OpClass::Add => Work { flops: (n * w) as f64, bytes: 3.0 * (n * w * s) as f64 },
            // The message size; see `profile::AllReduce` for the time model.
            OpClass::AllReduce => Work { flops: 0.0, bytes: (n * w) as f64 },
            // One sequence's attention (d_out = head size); the kernel runs `batch` of them.
            OpClass::AttentionPrefill | OpClass::AttentionDecode => {
                ops::attention(n, self.d_in, self.q_heads.unwrap_or(1), self.kv_heads.unwrap_or(1), w, s)
            }
        }
    }

    fn check(&self) -> Result<(), String> {
        let t = &self.time_ms;
        if !(t.median.is_finite() && t.median > 0.0) {
            return Err(format!("time_ms.median must be a positive number of ms, found {}", t.median));
        }
        if [t.mean, t.min, t.max, t.std].iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
            return Err("time statistics must be non-negative numbers".into());
        }
        if self.tokens == 0
            || self.d_out == 0
            || self.dtype_bytes == 0
            || self.sms == 0
            || (self.op == OpClass::Linear && self.d_in == 0)
        {
            return Err("tokens, d_in (linear), d_out, dtype_bytes and sms must be >= 1".into());
        }
        if (self.op == OpClass::AllReduce) != self.workers.is_some_and(|w| w >= 2) {
            return Err("workers (>= 2) is required for allreduce records and only for them".into());
        }
        let attention = matches!(self.op, OpClass::AttentionPrefill | OpClass::AttentionDecode);
        let heads_ok = self.q_heads.is_some_and(|q| q >= 1)
            && self.kv_heads.is_some_and(|k| k >= 1)
            && self.batch.is_some_and(|b| b >= 1);
        if attention != heads_ok {
            return Err(
                "q_heads, kv_heads and batch (>= 1) are required for attention records and only for them".into()
            );
        }
        if self.op == OpClass::AttentionDecode && self.tokens != 1 {
            return Err("attention_decode records process one new token per sequence (tokens = 1)".into());
        }
        Ok(())
    }
}

/// Reads records from a JSONL file.
pub fn read_jsonl(path: &Path) -> Result<Vec<Record>, CalibrationError> {
    let text = std::fs::read_to_string(path).map_err(|cause| CalibrationError::Io { path: path.into(), cause })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: Record = serde_json::from_str(line)
            .map_err(|e| CalibrationError::invalid(path, i + 1, format!("not a measurement record: {e}")))?;
        r.check().map_err(|m| CalibrationError::invalid(path, i + 1, m))?;
        out.push(r);
    }
    if out.is_empty() {
        return Err(CalibrationError::invalid(path, 0, "no measurement record"));
    }
    Ok(out)
}

/// Writes records as JSONL.
pub fn to_jsonl(records: &[Record]) -> String {
    records.iter().map(|r| serde_json::to_string(r).expect("records serialise") + "\n").collect()
}

/// Non-blank data lines of a CSV text (header excluded), split on commas, with their 1-based line numbers.
fn data_lines(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| (i + 1, l.split(',').collect()))
}

/// Numeric field `c` of a CSV row, or an error naming the file, line and column.
fn field(path: &Path, ln: usize, f: &[&str], c: usize, what: &str) -> Result<f64, CalibrationError> {
    f.get(c)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| CalibrationError::invalid(path, ln, format!("{what}: not a number")))
}

/// Vidur operator names and what they are.
const VIDUR_OPS: [&str; 10] = [
    "attn_pre_proj",
    "attn_post_proj",
    "mlp_up_proj",
    "mlp_down_proj",
    "input_layernorm",
    "post_attention_layernorm",
    "mlp_act",
    "attn_rope",
    "add",
    "emb",
];

/// Converts a Vidur `*.mlp.csv` (full GPU of `num_sms` SMs, fp16) into records: every row with every operator
/// whose median column is present. Missing dimension columns, unparsable numbers and negative times are errors
/// naming the line.
pub fn read_vidur(path: &Path, num_sms: u32) -> Result<Vec<Record>, CalibrationError> {
    let text = std::fs::read_to_string(path).map_err(|cause| CalibrationError::Io { path: path.into(), cause })?;
    let header: Vec<&str> = text.lines().next().unwrap_or("").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let need = |name: &str| {
        col(name).ok_or_else(|| {
            CalibrationError::invalid(path, 1, format!("missing column {name:?} (not a Vidur mlp profile?)"))
        })
    };
    let dims = [
        "num_tokens",
        "num_tensor_parallel_workers",
        "n_head",
        "n_kv_head",
        "n_embd",
        "n_expanded_embd",
        "use_gated_mlp",
    ];
    let dcol: Vec<usize> = dims.iter().map(|d| need(d)).collect::<Result<_, _>>()?;
    let op_cols: Vec<(&str, usize)> =
        VIDUR_OPS.iter().filter_map(|op| col(&format!("time_stats.{op}.median")).map(|c| (*op, c))).collect();
    if op_cols.is_empty() {
        return Err(CalibrationError::invalid(path, 1, "no time_stats.<op>.median column"));
    }
    let stat = |op: &str, s: &str| col(&format!("time_stats.{op}.{s}"));
    let mut out = Vec::new();
    for (ln, f) in data_lines(&text) {
        let num = |c: usize, what: &str| field(path, ln, &f, c, what);
        let v: Vec<f64> = dcol[..6].iter().zip(dims).map(|(&c, d)| num(c, d)).collect::<Result<_, _>>()?;
        let gated = f.get(dcol[6]).is_some_and(|s| s.trim().eq_ignore_ascii_case("true"));
        let (n, tp, hq, hkv, h, inter) = (v[0] as u64, v[1] as u64, v[2] as u64, v[3] as u64, v[4] as u64, v[5] as u64);
        if n == 0 || tp == 0 || hq == 0 || h == 0 {
            return Err(CalibrationError::invalid(path, ln, "num_tokens, TP degree, n_head and n_embd must be >= 1"));
        }
        let dh = h / hq;
        for &(op, c) in &op_cols {
            let median = num(c, &format!("time_stats.{op}.median"))?;
            if median <= 0.0 {
                return Err(CalibrationError::invalid(
                    path,
                    ln,
                    format!("time_stats.{op}.median must be > 0 ms, found {median}"),
                ));
            }
            let opt = |s: &str| stat(op, s).and_then(|c| f.get(c)).and_then(|v| v.trim().parse::<f64>().ok());
            let time_ms = TimeStats { median, mean: opt("mean"), min: opt("min"), max: opt("max"), std: opt("std") };
            let up = if gated { 2 * inter } else { inter };
            let (class, d_in, d_out) = match op {
                "attn_pre_proj" => (OpClass::Linear, h, (hq + 2 * hkv) * dh / tp),
                "attn_post_proj" => (OpClass::Linear, hq * dh / tp, h),
                "mlp_up_proj" => (OpClass::Linear, h, up / tp),
                "mlp_down_proj" => (OpClass::Linear, inter / tp, h),
                "input_layernorm" | "post_attention_layernorm" => (OpClass::Rmsnorm, 0, h),
                "mlp_act" => (OpClass::SiluMul, 0, inter / tp),
                "attn_rope" => (OpClass::Rotary, 0, ((hq + hkv) * dh / tp).max(1)),
                "add" => (OpClass::Add, 0, h),
                _ => (OpClass::Embedding, 0, h),
            };
            let r = Record {
                op: class,
                name: format!("{op}@tp{tp}"),
                tokens: n,
                d_in,
                d_out,
                dtype_bytes: 2,
                sms: num_sms,
                corunner: None,
                workers: None,
                q_heads: None,
                kv_heads: None,
                batch: None,
                time_ms,
            };
            r.check().map_err(|m| CalibrationError::invalid(path, ln, m))?;
            out.push(r);
        }
    }
    Ok(out)
}

/// Converts Vidur's all-reduce profile (`all_reduce.*.csv`: `time_stats.all_reduce.median` in ms,
/// `num_workers`, `size` in bytes) into `allreduce` records.
pub fn read_vidur_allreduce(path: &Path, num_sms: u32) -> Result<Vec<Record>, CalibrationError> {
    let text = std::fs::read_to_string(path).map_err(|cause| CalibrationError::Io { path: path.into(), cause })?;
    let header: Vec<&str> = text.lines().next().unwrap_or("").split(',').collect();
    let need = |name: &str| {
        header.iter().position(|h| *h == name).ok_or_else(|| {
            CalibrationError::invalid(path, 1, format!("missing column {name:?} (not a Vidur all-reduce profile?)"))
        })
    };
    let (ct, cw, cs) = (need("time_stats.all_reduce.median")?, need("num_workers")?, need("size")?);
    let mut out = Vec::new();
    for (ln, f) in data_lines(&text) {
        let num = |c: usize, what: &str| field(path, ln, &f, c, what);
        let (t, w, s) = (num(ct, "time_stats.all_reduce.median")?, num(cw, "num_workers")?, num(cs, "size")?);
        let r = Record {
            op: OpClass::AllReduce,
            name: format!("all_reduce@{w}"),
            tokens: 1,
            d_in: 0,
            d_out: s as u64,
            dtype_bytes: 1,
            sms: num_sms,
            corunner: None,
            workers: Some(w as u32),
            q_heads: None,
            kv_heads: None,
            batch: None,
            time_ms: TimeStats::median_only(t),
        };
        r.check().map_err(|m| CalibrationError::invalid(path, ln, m))?;
        out.push(r);
    }
    Ok(out)
}

/// Header of the green-context SM-scaling measurement (`scripts/device/green_sm_scaling.py`).
pub const SM_SCALING_HEADER: &str = "requested_sms,actual_sms,context,gemm_tflops,gemv_gbps,copy_gbps";

/// Converts a green-context SM-scaling measurement into linear records: per SM count, the bf16
/// 4096 x 4096 x 4096 GEMM (from `gemm_tflops`) and the 32-token 4096 -> 14336 weight-streaming GEMM (from
/// `gemv_gbps`, weight bytes read), on `actual_sms` SMs.
pub fn read_sm_scaling(path: &Path) -> Result<Vec<Record>, CalibrationError> {
    let text = std::fs::read_to_string(path).map_err(|cause| CalibrationError::Io { path: path.into(), cause })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let num = |c: usize, what: &str| {
            f.get(c)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| *v > 0.0)
                .ok_or_else(|| CalibrationError::invalid(path, i + 1, format!("{what}: expected a positive number")))
        };
        let sms = num(1, "actual_sms")? as u32;
        let (tflops, gbps) = (num(3, "gemm_tflops")?, num(4, "gemv_gbps")?);
        let rec = |name: &str, tokens: u64, d_in: u64, d_out: u64, ms: f64| {
            Record::linear(format!("{name}@{sms}sms"), tokens, d_in, d_out, sms, ms)
        };
        out.push(rec("gemm4096", 4096, 4096, 4096, 2.0 * 4096f64.powi(3) / (tflops * 1e12) * 1e3));
        out.push(rec("gemv32x14336", 32, 4096, 14336, (14336.0 * 4096.0 * 2.0) / (gbps * 1e9) * 1e3));
    }
    if out.is_empty() {
        return Err(CalibrationError::invalid(path, 0, "no measurement row"));
    }
    Ok(out)
}

/// Header of the co-running measurement (`scripts/device/green_sm_scaling.py`, `corun.csv`).
pub const CORUN_HEADER: &str =
    "decode_sms,prefill_sms,gemv_solo_ms,gemv_corun_ms,gemm_solo_ms,gemm_corun_ms,gemv_slowdown,gemm_slowdown";

/// One co-running measurement: a weight-streaming GEMM on the decode partition and a large GEMM on the prefill
/// partition at the same time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Corun {
    /// Decode partition SMs.
    pub decode_sms: u32,
    /// Prefill partition SMs.
    pub prefill_sms: u32,
    /// Relative slowdown of the decode-side kernel.
    pub decode_slowdown: f64,
    /// Relative slowdown of the prefill-side kernel.
    pub prefill_slowdown: f64,
}

/// Reads a co-running measurement CSV.
pub fn read_corun(path: &Path) -> Result<Vec<Corun>, CalibrationError> {
    let text = std::fs::read_to_string(path).map_err(|cause| CalibrationError::Io { path: path.into(), cause })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<f64> = line
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| CalibrationError::invalid(path, i + 1, "expected numbers"))?;
        if f.len() != 8 || f[..6].iter().any(|v| *v <= 0.0) {
            return Err(CalibrationError::invalid(path, i + 1, "expected 8 fields with positive SM counts and times"));
        }
        out.push(Corun {
            decode_sms: f[0] as u32,
            prefill_sms: f[1] as u32,
            decode_slowdown: f[6],
            prefill_slowdown: f[7],
        });
    }
    Ok(out)
}

/// Whether a file is a co-running measurement.
pub fn is_corun(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.lines().next().is_some_and(|l| l.trim() == CORUN_HEADER))
}

/// Reads measurement files: Vidur CSVs (by the `.csv` extension; all-reduce or `mlp` profiles by their header),
/// green-context SM-scaling CSVs, or JSONL records.
pub fn read_any(path: &Path, num_sms: u32) -> Result<Vec<Record>, CalibrationError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => {
            let head =
                std::fs::read_to_string(path).map_err(|cause| CalibrationError::Io { path: path.into(), cause })?;
            let first = head.lines().next().unwrap_or("");
            if first.trim() == SM_SCALING_HEADER {
                read_sm_scaling(path)
            } else if first.contains("time_stats.all_reduce.") {
                read_vidur_allreduce(path, num_sms)
            } else {
                read_vidur(path, num_sms)
            }
        }
        _ => read_jsonl(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_round_trips_and_bad_records_are_refused() {
        let r = Record {
            op: OpClass::Linear,
            name: "x".into(),
            tokens: 8,
            d_in: 64,
            d_out: 32,
            dtype_bytes: 2,
            sms: 66,
            corunner: Some("decode on 66 SMs".into()),
            workers: None,
            q_heads: None,
            kv_heads: None,
            batch: None,
            time_ms: TimeStats { median: 0.01, mean: None, min: Some(0.009), max: None, std: None },
        };
        let dir = std::env::temp_dir().join(format!("duet-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("r.jsonl");
        std::fs::write(&p, to_jsonl(std::slice::from_ref(&r))).unwrap();
        assert_eq!(read_jsonl(&p).unwrap(), vec![r]);
        for (text, needle) in [
            (
                r#"{"op":"conv2d","name":"x","tokens":1,"d_out":1,"dtype_bytes":2,"sms":1,"time_ms":{"median":1}}"#,
                "unknown variant `conv2d`",
            ),
            (
                r#"{"op":"add","name":"x","tokens":1,"d_out":1,"dtype_bytes":2,"sms":1,"time_ms":{"median":-1}}"#,
                "must be a positive number",
            ),
            (r#"{"op":"add","name":"x","tokens":1,"d_out":1,"dtype_bytes":2,"sms":1}"#, "missing field `time_ms`"),
        ] {
            std::fs::write(&p, format!("{}\n{text}\n", to_jsonl(&[]).trim())).unwrap();
            let e = read_jsonl(&p).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("r.jsonl:"), "{e}");
        }
    }
}
