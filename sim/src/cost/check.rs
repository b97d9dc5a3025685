//! Checks the roofline's linear operators against measured kernel times (Vidur's `*.mlp.csv` profiles).
//!
//! A Vidur profile row holds one token count and tensor-parallel degree with the model's dimensions
//! (`n_head`, `n_kv_head`, `n_embd`, `n_expanded_embd`, `use_gated_mlp`) and median times in **ms** per
//! operator. The four linear operators map to the roofline as:
//! `attn_pre_proj` = QKV `h -> (h_q + 2 h_kv) d_h`, `attn_post_proj` = O `h -> h`, `mlp_up_proj` = gate+up
//! `h -> 2 I` (`h -> I` when not gated), `mlp_down_proj` = `I -> h`, with sharded widths divided by the TP
//! degree and `d_h = h / h_q`; elements are 2 bytes (fp16).

use std::path::Path;

use crate::cost::{CostConfig, CostModel};
use crate::error::ConfigError;
use crate::gpu::GpuSpec;
use crate::model::ModelSpec;

/// A Vidur profiling CSV read whole: header columns by name, then the data lines.
pub(crate) struct VidurCsv<'p> {
    path: &'p Path,
    /// What the file should be, for messages (`a Vidur mlp profile`).
    kind: &'static str,
    text: String,
    header: Vec<String>,
}

impl<'p> VidurCsv<'p> {
    /// Reads `path`; a missing file is an error naming it.
    pub(crate) fn read(path: &'p Path, kind: &'static str) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Invalid(format!("cannot read {}: {e}", path.display())))?;
        let header = text.lines().next().unwrap_or("").split(',').map(|h| h.trim().to_string()).collect();
        Ok(Self { path, kind, text, header })
    }

    /// Index of column `name`, or an error naming the file, the column and what the file should have been.
    pub(crate) fn column(&self, name: &str) -> Result<usize, ConfigError> {
        self.header.iter().position(|h| h == name).ok_or_else(|| {
            ConfigError::Invalid(format!("{}: missing column {name:?} (not {}?)", self.path.display(), self.kind))
        })
    }

    /// The data lines after the header, with their 0-based position (line number = position + 2).
    pub(crate) fn rows(&self) -> std::iter::Enumerate<std::iter::Skip<std::str::Lines<'_>>> {
        self.text.lines().skip(1).enumerate()
    }
}

/// Linear operators compared, as Vidur names them.
pub const LINEAR_OPS: [&str; 4] = ["attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj"];

/// One operator at one token count.
#[derive(Debug, Clone, PartialEq)]
pub struct OpComparison {
    /// Vidur operator name.
    pub op: &'static str,
    /// Tokens in the iteration.
    pub num_tokens: u64,
    /// Measured median, ms.
    pub measured_ms: f64,
    /// Roofline prediction, ms.
    pub predicted_ms: f64,
}

impl OpComparison {
    /// `|predicted - measured| / measured x 100` ([`crate::compare::pct_error`], absolute).
    pub fn abs_pct_error(&self) -> f64 {
        crate::compare::pct_error(self.measured_ms, self.predicted_ms).abs()
    }
}

pub use crate::compare::ErrorStats;

/// Error statistics ([`ErrorStats`]) of `rows` (all of them, or one operator's with `op`).
pub fn error_stats(rows: &[OpComparison], op: Option<&str>) -> ErrorStats {
    let errs: Vec<f64> = rows
        .iter()
        .filter(|r| op.is_none_or(|o| r.op == o))
        .map(|r| crate::compare::pct_error(r.measured_ms, r.predicted_ms))
        .collect();
    ErrorStats::of(&errs)
}

/// Reads a Vidur `*.mlp.csv` and compares every TP = `tp` row's linear operators with the roofline on all SMs
/// of `gpu`. Rows come back sorted by (operator, token count).
pub fn compare_vidur_linear(path: &Path, gpu: &GpuSpec, tp: u64) -> Result<Vec<OpComparison>, ConfigError> {
    let csv = VidurCsv::read(path, "a Vidur mlp profile")?;
    let col = |name: &str| csv.column(name);
    let lines = csv.rows();
    let c_tokens = col("num_tokens")?;
    let c_tp = col("num_tensor_parallel_workers")?;
    let dims = [col("n_head")?, col("n_kv_head")?, col("n_embd")?, col("n_expanded_embd")?];
    let c_gated = col("use_gated_mlp")?;
    let op_cols: Vec<usize> =
        LINEAR_OPS.iter().map(|op| col(&format!("time_stats.{op}.median"))).collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (i, line) in lines {
        let f: Vec<&str> = line.split(',').collect();
        let bad = |what: &str| ConfigError::Invalid(format!("{}:{}: bad {what}", path.display(), i + 2));
        let num = |c: usize, what: &str| f.get(c).and_then(|v| v.parse::<f64>().ok()).ok_or_else(|| bad(what));
        if num(c_tp, "num_tensor_parallel_workers")? as u64 != tp {
            continue;
        }
        let n = num(c_tokens, "num_tokens")? as u64;
        let [hq, hkv, h, inter] = [0, 1, 2, 3].map(|k| num(dims[k], "model dimension").map(|v| v as u64));
        let (hq, hkv, h, inter) = (hq?, hkv?, h?, inter?);
        let gated = f.get(c_gated).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let d_h = h / hq;
        let spec = ModelSpec {
            name: "vidur".into(),
            hidden_size: h,
            num_layers: 1,
            num_q_heads: hq,
            num_kv_heads: hkv,
            head_dim: d_h,
            intermediate_size: inter,
            vocab_size: 1,
            tie_word_embeddings: true,
            dtype_bytes: 2,
            max_context: None,
        };
        let cm = CostModel::new(spec, gpu.clone(), CostConfig::default());
        let up = if gated { 2 * inter } else { inter } / tp;
        let shapes = [(h, (hq + 2 * hkv) * d_h / tp), (hq * d_h / tp, h), (h, up), (inter / tp, h)];
        for (k, &(d_in, d_out)) in shapes.iter().enumerate() {
            let measured_ms = num(op_cols[k], LINEAR_OPS[k])?;
            let predicted_ms = cm.linear_time(gpu.num_sms, n, d_in, d_out) * 1e3;
            out.push(OpComparison { op: LINEAR_OPS[k], num_tokens: n, measured_ms, predicted_ms });
        }
    }
    if out.is_empty() {
        return Err(ConfigError::Invalid(format!("{}: no row with TP = {tp}", path.display())));
    }
    out.sort_by(|a, b| (a.op, a.num_tokens).cmp(&(b.op, b.num_tokens)));
    Ok(out)
}
