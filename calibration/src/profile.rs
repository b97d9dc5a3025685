//! The GPU profile: a versioned JSON description of what a GPU achieves on each SM count, which the cost model
//! reads through `ProfileCurves` (`curves.rs`, which also holds `Profile::curves`).
//!
//! Fields (schema version 1):
//! - `schema_version`: 1. A profile with a larger version is refused.
//! - `gpu`: `name`, `num_sms`, `memory_bytes`, `peak_flops` (dense BF16, whole GPU), `hbm_bandwidth` (peak,
//!   bytes/s), and `driver`/`cuda` where measured.
//! - `provenance`: `kind` (`datasheet`, `published`, `measured`, `fitted`), `date`, `source` (free text: files,
//!   commands, papers).
//! - `sm_counts`: the SM counts the per-SM tables below are given at, strictly increasing, the last one equal to
//!   `gpu.num_sms`. Values between rows are interpolated linearly in the SM count; below the first row the first
//!   row's throughputs are scaled by `sms / sm_counts[0]`.
//! - `gemm`: `m_grid` (token counts, strictly increasing) and `efficiency[row][j]`: the fraction of
//!   `peak_flops x sms / num_sms` a GEMM with `m_grid[j]` rows reaches before wave quantisation (interpolated on a
//!   log2 scale in the token count: small-M, medium and large shapes each get their own value; between SM rows
//!   the product efficiency x SMs is interpolated); `tile_m`,
//!   `tile_n`: the output tile: compute work is padded to whole `tile_m`-row tiles, and GEMMs with at least as
//!   many tiles as SMs pay wave quantisation; `pad_n` (optional) pads output features the same way (`w = T / (ceil(T / S) S)` for `T` tiles; fewer tiles than SMs are
//!   assumed split along K);
//!   `bandwidth[row]`: bytes/s a weight-streaming GEMM reaches; `floor_ns`: fixed time added to every GEMM
//!   (launch and the smallest kernel's duration).
//!   `blend` (optional, `b >= 1`): GEMM time = `(Tc^b + Tm^b)^(1/b) + floor` with
//!   `Tc = F / (peak x eff x sms / num_sms x w)` and `Tm = B / bandwidth`; without it, `max(Tc, Tm) + floor`.
//! - `attention`: `prefill_flops[row]` (FLOP/s of prefill attention), `decode_bandwidth[row]` (bytes/s of
//!   decode attention reading the KV cache).
//! - `elementwise`: per operator (`rmsnorm`, `silu_mul`, `rotary`, `embedding`, `add`): `bandwidth[row]` and
//!   `floor_ns`; time = `B / bandwidth + floor`.
//! - `overheads`: `iteration_overhead_ns` (host time of an eagerly launched iteration), `graph_launch_ns` (a
//!   decode step replayed from a CUDA graph).
//! - `allreduce`: ring all-reduce `latency_ns` per step and `bus_bandwidth` (bytes/s) for tensor parallelism.
//! - `contention`: `hbm_bandwidth` (bytes/s the whole GPU delivers to co-running partitions) and `interference`
//!   (extra stretch of memory-bound work while partitions overlap); see `duet_sim::engine::Contention`.

use std::collections::BTreeMap;
use std::path::Path;

use duet_sim::GpuSpec;
use duet_sim::cost::Elementwise;
use serde::{Deserialize, Serialize};

use crate::error::CalibrationError;
use crate::interp::{row_value, strictly_increasing};

/// The schema version this duet writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Which GPU a profile describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuIdentity {
    /// Short name.
    pub name: String,
    /// SMs.
    pub num_sms: u32,
    /// Device memory, bytes.
    pub memory_bytes: u64,
    /// Dense BF16 peak, FLOP/s.
    pub peak_flops: f64,
    /// HBM peak, bytes/s.
    pub hbm_bandwidth: f64,
    /// Driver version where measured.
    pub driver: Option<String>,
    /// CUDA version where measured.
    pub cuda: Option<String>,
}

/// Where a profile's numbers come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `datasheet`, `published`, `measured` or `fitted`.
    pub kind: String,
    /// When.
    pub date: String,
    /// Files, commands, papers.
    pub source: String,
}

/// GEMM throughput tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GemmTable {
    /// Token counts of the efficiency columns.
    pub m_grid: Vec<f64>,
    /// Efficiency per SM row and token count.
    pub efficiency: Vec<Vec<f64>>,
    /// Output tile rows.
    pub tile_m: u64,
    /// Output tile columns.
    pub tile_n: u64,
    /// Weight-streaming bandwidth per SM row, bytes/s.
    pub bandwidth: Vec<f64>,
    /// Fixed time per GEMM, ns.
    pub floor_ns: f64,
    /// GEMMs with fewer output tiles than SMs are split along K and fill the SMs (no wave quantisation).
    #[serde(default)]
    pub split_k: bool,
    /// Rows are processed in whole groups of this many tokens (compute padding), when given.
    #[serde(default)]
    pub pad_m: Option<u64>,
    /// Output columns are processed in whole groups of this many features (compute padding), when given.
    #[serde(default)]
    pub pad_n: Option<u64>,
    /// Blend of compute and memory time, `(Tc^b + Tm^b)^(1/b)`: `b = 1` adds them, large `b` approaches
    /// `max(Tc, Tm)` (the plain roofline, also used when absent). Near the ridge point a GEMM is neither purely
    /// compute- nor memory-bound and takes longer than the max.
    #[serde(default)]
    pub blend: Option<f64>,
}

/// Attention throughput tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionTable {
    /// Prefill attention FLOP/s per SM row.
    pub prefill_flops: Vec<f64>,
    /// Decode attention bytes/s per SM row.
    pub decode_bandwidth: Vec<f64>,
}

/// One elementwise operator's bandwidth table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElementwiseEntry {
    /// Bytes/s per SM row.
    pub bandwidth: Vec<f64>,
    /// Fixed time per kernel, ns.
    pub floor_ns: f64,
}

/// Host-side overheads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overheads {
    /// Host time of an eagerly launched iteration, ns.
    pub iteration_overhead_ns: u64,
    /// Launch of a graph-replayed decode step, ns.
    pub graph_launch_ns: u64,
    /// Extra attention time of a decode in a mixed prefill+decode call, as a fraction of its time alone
    /// ([`crate::mixed`]); 0 (and not written) until measured.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mixed_attention_penalty: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Ring all-reduce model: `t = 2 (N - 1) x latency + 2 (N - 1) / N x bytes / bus_bandwidth` for `N` GPUs, with
/// parameters per GPU count where measured (`by_workers`; links differ, e.g. NVLink pairs vs across pairs) and a
/// default otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllReduce {
    /// Latency per ring step, ns.
    pub latency_ns: f64,
    /// Bus bandwidth, bytes/s.
    pub bus_bandwidth: f64,
    /// Fitted parameters per GPU count.
    #[serde(default)]
    pub by_workers: Vec<AllReduceFit>,
}

/// All-reduce parameters for one GPU count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllReduceFit {
    /// GPUs in the ring.
    pub workers: u32,
    /// Latency per ring step, ns.
    pub latency_ns: f64,
    /// Bus bandwidth, bytes/s.
    pub bus_bandwidth: f64,
}

/// Contention coefficients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentionCoefficients {
    /// Bytes/s the whole GPU delivers to co-running partitions.
    pub hbm_bandwidth: f64,
    /// Extra stretch of memory-bound work while partitions overlap.
    pub interference: f64,
}

/// A GPU profile (module docs describe every field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Schema version.
    pub schema_version: u32,
    /// GPU identity.
    pub gpu: GpuIdentity,
    /// Provenance.
    pub provenance: Provenance,
    /// SM counts of the table rows.
    pub sm_counts: Vec<u32>,
    /// GEMMs.
    pub gemm: GemmTable,
    /// Attention.
    pub attention: AttentionTable,
    /// Elementwise operators by name.
    pub elementwise: BTreeMap<String, ElementwiseEntry>,
    /// Host overheads.
    pub overheads: Overheads,
    /// All-reduce.
    pub allreduce: AllReduce,
    /// Contention.
    pub contention: ContentionCoefficients,
}

const BUNDLED: &[(&str, &str)] = &[
    ("h100-sxm", include_str!("../profiles/h100-sxm.json")),
    ("h200", include_str!("../profiles/h200.json")),
    ("a100-80gb", include_str!("../profiles/a100-80gb.json")),
];

/// Names of the elementwise operators a profile covers.
pub const ELEMENTWISE_OPS: [&str; 5] = ["rmsnorm", "silu_mul", "rotary", "embedding", "add"];

/// The profile name of an elementwise operator class.
pub fn elementwise_name(op: Elementwise) -> &'static str {
    match op {
        Elementwise::RmsNorm => "rmsnorm",
        Elementwise::SiluMul => "silu_mul",
        Elementwise::Rotary => "rotary",
        Elementwise::Embedding => "embedding",
        Elementwise::Add => "add",
    }
}

/// The SM counts bundled and fitted profiles tabulate: 2, then every 8 SMs, then the whole GPU.
pub fn default_sm_rows(num_sms: u32) -> Vec<u32> {
    let mut v = vec![2];
    v.extend((8..num_sms).step_by(8));
    v.push(num_sms);
    v.dedup();
    v
}

impl AllReduce {
    /// Seconds to all-reduce `bytes` across `workers` GPUs.
    pub fn time_s(&self, bytes: f64, workers: u32) -> f64 {
        let (lat, bw) = self
            .by_workers
            .iter()
            .find(|f| f.workers == workers)
            .map_or((self.latency_ns, self.bus_bandwidth), |f| (f.latency_ns, f.bus_bandwidth));
        let n = f64::from(workers.max(2));
        2.0 * (n - 1.0) * lat * 1e-9 + 2.0 * (n - 1.0) / n * bytes / bw
    }
}

impl Profile {
    /// A profile holding exactly the foundation's analytic curves for `gpu` (datasheet peaks, its efficiency
    /// defaults, compute linear in SMs, bandwidth saturating at `bandwidth_saturation_sms`, no floors): the
    /// "unfitted datasheet profile".
    pub fn from_gpu_spec(gpu: &GpuSpec) -> Self {
        let rows = default_sm_rows(gpu.num_sms);
        let bw = |s: u32| {
            gpu.hbm_bandwidth
                * gpu.bandwidth_efficiency
                * (f64::from(s) / f64::from(gpu.bandwidth_saturation_sms.max(1))).min(1.0)
        };
        let bws: Vec<f64> = rows.iter().map(|&s| bw(s)).collect();
        let m_grid: Vec<f64> = (0..14).map(|i| f64::from(1u32 << i)).collect();
        let elementwise = ELEMENTWISE_OPS
            .iter()
            .map(|n| (n.to_string(), ElementwiseEntry { bandwidth: bws.clone(), floor_ns: 0.0 }))
            .collect();
        Profile {
            schema_version: SCHEMA_VERSION,
            gpu: GpuIdentity {
                name: gpu.name.clone(),
                num_sms: gpu.num_sms,
                memory_bytes: gpu.memory_bytes,
                peak_flops: gpu.peak_flops,
                hbm_bandwidth: gpu.hbm_bandwidth,
                driver: None,
                cuda: None,
            },
            provenance: Provenance {
                kind: "datasheet".into(),
                date: String::new(),
                source: "duet_sim::GpuSpec defaults (sim/src/gpu.rs)".into(),
            },
            gemm: GemmTable {
                efficiency: vec![vec![gpu.gemm_efficiency; m_grid.len()]; rows.len()],
                m_grid,
                tile_m: 128,
                tile_n: 128,
                bandwidth: bws.clone(),
                floor_ns: 0.0,
                split_k: false,
                pad_m: None,
                pad_n: None,
                blend: None,
            },
            attention: AttentionTable {
                prefill_flops: rows
                    .iter()
                    .map(|&s| gpu.peak_flops * gpu.attention_efficiency * f64::from(s) / f64::from(gpu.num_sms))
                    .collect(),
                decode_bandwidth: bws.clone(),
            },
            elementwise,
            overheads: Overheads {
                iteration_overhead_ns: 1_000_000,
                graph_launch_ns: 30_000,
                mixed_attention_penalty: 0.0,
            },
            allreduce: AllReduce { latency_ns: 10_000.0, bus_bandwidth: 0.8 * 450e9, by_workers: Vec::new() },
            contention: ContentionCoefficients {
                hbm_bandwidth: gpu.hbm_bandwidth * gpu.bandwidth_efficiency,
                interference: 0.1,
            },
            sm_counts: rows,
        }
    }

    /// Resolves `--profile`: a bundled name or a path to a profile JSON.
    pub fn resolve(arg: &str) -> Result<Profile, CalibrationError> {
        if let Some((n, text)) = BUNDLED.iter().find(|(n, _)| n.eq_ignore_ascii_case(arg)) {
            return Self::from_json(Path::new(n), text);
        }
        let p = Path::new(arg);
        if arg.ends_with(".json") || p.exists() {
            return Self::load(p);
        }
        Err(CalibrationError::UnknownProfile(arg.into()))
    }

    /// The bundled profile for a GPU name, if there is one.
    pub fn bundled(gpu_name: &str) -> Option<Profile> {
        BUNDLED
            .iter()
            .find(|(n, _)| *n == gpu_name)
            .map(|(n, text)| Self::from_json(Path::new(n), text).expect("bundled profiles are tested"))
    }

    /// Reads and validates a profile file.
    pub fn load(path: &Path) -> Result<Profile, CalibrationError> {
        let text = std::fs::read_to_string(path).map_err(|cause| CalibrationError::Io { path: path.into(), cause })?;
        Self::from_json(path, &text)
    }

    /// Parses and validates profile JSON; `path` names it in errors.
    pub fn from_json(path: &Path, text: &str) -> Result<Profile, CalibrationError> {
        #[derive(Deserialize)]
        struct Version {
            schema_version: u32,
        }
        let v: Version = serde_json::from_str(text)
            .map_err(|e| CalibrationError::invalid(path, 0, format!("not a duet profile: {e}")))?;
        if v.schema_version > SCHEMA_VERSION {
            return Err(CalibrationError::NewerSchema {
                path: path.into(),
                found: v.schema_version,
                supported: SCHEMA_VERSION,
            });
        }
        let p: Profile =
            serde_json::from_str(text).map_err(|e| CalibrationError::invalid(path, 0, format!("bad profile: {e}")))?;
        p.validate().map_err(|m| CalibrationError::invalid(path, 0, m))?;
        Ok(p)
    }

    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("profiles serialise");
        s.push('\n');
        s
    }

    /// Checks every structural rule of the schema.
    pub fn validate(&self) -> Result<(), String> {
        let mixed = self.overheads.mixed_attention_penalty;
        if !(mixed.is_finite() && mixed > -1.0) {
            return Err(format!("overheads.mixed_attention_penalty must be a fraction > -1, got {mixed}"));
        }
        let rows = self.sm_counts.len();
        let xs: Vec<f64> = self.sm_counts.iter().map(|&s| f64::from(s)).collect();
        if rows == 0
            || !strictly_increasing(&xs)
            || self.sm_counts[0] == 0
            || self.sm_counts[rows - 1] != self.gpu.num_sms
        {
            return Err(format!("sm_counts must be strictly increasing from >= 1 to num_sms ({})", self.gpu.num_sms));
        }
        let per_row = |name: &str, v: &[f64]| {
            if v.len() != rows {
                return Err(format!("{name}: {} values for {rows} SM rows", v.len()));
            }
            if !v.iter().all(|x| x.is_finite() && *x > 0.0) {
                return Err(format!("{name}: values must be > 0"));
            }
            Ok(())
        };
        per_row("gemm.bandwidth", &self.gemm.bandwidth)?;
        per_row("attention.prefill_flops", &self.attention.prefill_flops)?;
        per_row("attention.decode_bandwidth", &self.attention.decode_bandwidth)?;
        for op in ELEMENTWISE_OPS {
            let e = self.elementwise.get(op).ok_or_else(|| format!("elementwise.{op} is missing"))?;
            per_row(&format!("elementwise.{op}.bandwidth"), &e.bandwidth)?;
            if !(e.floor_ns.is_finite() && e.floor_ns >= 0.0) {
                return Err(format!("elementwise.{op}.floor_ns must be >= 0"));
            }
        }
        if let Some(extra) = self.elementwise.keys().find(|k| !ELEMENTWISE_OPS.contains(&k.as_str())) {
            return Err(format!("unknown elementwise operator {extra:?}; known: {}", ELEMENTWISE_OPS.join(", ")));
        }
        if self.gemm.m_grid.is_empty() || !strictly_increasing(&self.gemm.m_grid) || self.gemm.m_grid[0] <= 0.0 {
            return Err("gemm.m_grid must be strictly increasing and positive".into());
        }
        if self.gemm.efficiency.len() != rows {
            return Err(format!("gemm.efficiency: {} rows for {rows} SM rows", self.gemm.efficiency.len()));
        }
        for r in &self.gemm.efficiency {
            if r.len() != self.gemm.m_grid.len() || !r.iter().all(|x| x.is_finite() && *x > 0.0 && *x <= 1.5) {
                return Err("gemm.efficiency rows must have one value in (0, 1.5] per m_grid point".into());
            }
        }
        if self.gemm.tile_m == 0
            || self.gemm.tile_n == 0
            || !(self.gemm.floor_ns.is_finite() && self.gemm.floor_ns >= 0.0)
        {
            return Err("gemm tiles must be >= 1 and floor_ns >= 0".into());
        }
        if self.gemm.blend.is_some_and(|b| !(b.is_finite() && b >= 1.0)) {
            return Err("gemm.blend must be >= 1".into());
        }
        if !(self.gpu.peak_flops > 0.0
            && self.gpu.hbm_bandwidth > 0.0
            && self.contention.hbm_bandwidth > 0.0
            && self.contention.interference >= 0.0)
        {
            return Err("peaks and contention bandwidth must be > 0, interference >= 0".into());
        }
        Ok(())
    }

    /// Interpolates a per-row table at `sms` (below the first row: scaled proportionally).
    pub fn row_value(&self, table: &[f64], sms: u32) -> f64 {
        row_value(&self.sm_counts, self.gpu.num_sms, table, sms)
    }

    /// GEMM efficiency at `sms` and `m` tokens.
    pub fn gemm_efficiency(&self, sms: u32, m: u64) -> f64 {
        self.curves().gemm_efficiency(sms, m)
    }

    /// A copy whose bandwidth tables saturate at `sat` SMs: every per-row bandwidth becomes
    /// `whole-GPU value x min(1, sms / sat)` (a sensitivity study until per-SM measurements exist).
    pub fn with_bandwidth_saturation(&self, sat: u32) -> Profile {
        let mut p = self.clone();
        let rows = p.sm_counts.clone();
        let rescale = |t: &mut Vec<f64>| {
            let full = *t.last().expect("validated: one value per row");
            for (v, &s) in t.iter_mut().zip(&rows) {
                *v = full * (f64::from(s) / f64::from(sat.max(1))).min(1.0);
            }
        };
        rescale(&mut p.gemm.bandwidth);
        rescale(&mut p.attention.decode_bandwidth);
        for e in p.elementwise.values_mut() {
            rescale(&mut e.bandwidth);
        }
        p.provenance.source = format!("{}; bandwidth rescaled to saturate at {sat} SMs", p.provenance.source);
        p
    }
}
