//! Engine presets: what a serving engine does by default on each GPU, as data with its sources.
//!
//! A preset (`sim/engines/<name>.json`, or any file of the same form) sets, per GPU: the scheduler's token
//! budget and sequence limit, the memory the engine keeps for itself besides weights and KV, and its kernels'
//! efficiency against the GPU's profile ([`crate::cost::KernelEfficiency`]); and for the engine as a whole: the
//! scheduling policy, KV block size, memory utilisation, per-iteration host time (a constant plus a term per
//! sequence) and the serial frontend's time per request and per output token ([`crate::engine::ClientConfig`]). The calibrated
//! numbers and how they were fitted are in `docs/VALIDATION.md`; every preset lists its sources.
//!
//! KV capacity under a preset follows the engine's accounting ([`crate::kv`]):
//! `KV = memory x gpu_memory_utilization - weights - non_kv_reserve`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::cost::KernelEfficiency;
use crate::error::ConfigError;

/// Bundled presets: (name, JSON text).
const BUNDLED: &[(&str, &str)] = &[("vllm-0.11", include_str!("../engines/vllm-0.11.json"))];

/// An engine preset (module docs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnginePreset {
    /// Name, e.g. `vllm-0.11`.
    pub name: String,
    /// What the preset describes, in one line.
    pub description: String,
    /// Where each number comes from.
    pub sources: Vec<String>,
    /// The engine's scheduler (a registered policy name).
    pub policy: String,
    /// KV block size, tokens.
    pub block_size: u32,
    /// Fraction of GPU memory the engine may use.
    pub gpu_memory_utilization: f64,
    /// Host time of every iteration, microseconds.
    pub step_overhead_us: f64,
    /// Host time per sequence in an iteration, microseconds.
    pub per_seq_overhead_us: f64,
    /// Serial frontend time per request (API server, input side), microseconds.
    pub frontend_us_per_request: f64,
    /// Serial frontend time per output token (API server, detokenise and stream), microseconds; 0 if absent.
    #[serde(default)]
    pub frontend_us_per_output_token: f64,
    /// Defaults per GPU, keyed by duet's GPU name.
    pub gpus: BTreeMap<String, GpuDefaults>,
}

/// What an engine does on one GPU.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuDefaults {
    /// Token budget per iteration (`max_num_batched_tokens`).
    pub token_budget: u32,
    /// Most running requests (`max_num_seqs`).
    pub max_num_seqs: u32,
    /// Memory kept besides weights and KV (peak activations of the profiling run, non-torch allocations), GiB.
    pub non_kv_reserve_gib: f64,
    /// Kernel efficiency against the GPU's profile.
    pub efficiency: Efficiency,
    /// Where the numbers of this GPU come from.
    pub note: String,
}

/// [`KernelEfficiency`] as written in a preset file.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Efficiency {
    /// Compute-bound GEMMs.
    pub gemm: f64,
    /// Memory-bound work (weight reads of decode-sized GEMMs, elementwise).
    pub memory: f64,
    /// Compute-bound (prefill) attention.
    pub prefill_attention: f64,
    /// Decode attention over paged KV.
    pub decode_attention: f64,
}

impl From<Efficiency> for KernelEfficiency {
    fn from(e: Efficiency) -> Self {
        KernelEfficiency {
            gemm: e.gemm,
            memory: e.memory,
            prefill_attention: e.prefill_attention,
            decode_attention: e.decode_attention,
        }
    }
}

impl EnginePreset {
    /// Names of the bundled presets.
    pub fn bundled_names() -> Vec<&'static str> {
        BUNDLED.iter().map(|(n, _)| *n).collect()
    }

    /// A bundled preset by name, or a preset JSON file by path.
    pub fn resolve(arg: &str) -> Result<EnginePreset, ConfigError> {
        if let Some((n, text)) = BUNDLED.iter().find(|(n, _)| n.eq_ignore_ascii_case(arg)) {
            return Self::from_json(n, text);
        }
        if arg.ends_with(".json") || std::path::Path::new(arg).exists() {
            let text = std::fs::read_to_string(arg)
                .map_err(|e| ConfigError::Invalid(format!("cannot read engine preset {arg}: {e}")))?;
            return Self::from_json(arg, &text);
        }
        Err(ConfigError::Invalid(format!(
            "unknown engine {arg:?}; bundled engines: {}; or pass a path to a preset JSON",
            Self::bundled_names().join(", ")
        )))
    }

    /// Parses and checks a preset.
    pub fn from_json(source: &str, text: &str) -> Result<EnginePreset, ConfigError> {
        let p: EnginePreset =
            serde_json::from_str(text).map_err(|e| ConfigError::Invalid(format!("engine preset {source}: {e}")))?;
        p.validate().map_err(|e| ConfigError::Invalid(format!("engine preset {source}: {e}")))?;
        Ok(p)
    }

    fn validate(&self) -> Result<(), String> {
        let nonneg = |v: f64, name: &str| {
            if v.is_finite() && v >= 0.0 { Ok(()) } else { Err(format!("{name} must be >= 0, got {v}")) }
        };
        nonneg(self.step_overhead_us, "step_overhead_us")?;
        nonneg(self.per_seq_overhead_us, "per_seq_overhead_us")?;
        nonneg(self.frontend_us_per_request, "frontend_us_per_request")?;
        nonneg(self.frontend_us_per_output_token, "frontend_us_per_output_token")?;
        if self.block_size == 0 {
            return Err("block_size must be >= 1".into());
        }
        if !(self.gpu_memory_utilization > 0.0 && self.gpu_memory_utilization <= 1.0) {
            return Err(format!("gpu_memory_utilization must be in (0, 1], got {}", self.gpu_memory_utilization));
        }
        for (gpu, g) in &self.gpus {
            if g.token_budget == 0 || g.max_num_seqs == 0 {
                return Err(format!("gpus.{gpu}: token_budget and max_num_seqs must be >= 1"));
            }
            nonneg(g.non_kv_reserve_gib, &format!("gpus.{gpu}.non_kv_reserve_gib"))?;
            KernelEfficiency::from(g.efficiency).validate().map_err(|e| format!("gpus.{gpu}: {e}"))?;
        }
        Ok(())
    }

    /// The defaults for GPU `gpu`, or an error naming the GPUs the preset covers.
    pub fn for_gpu(&self, gpu: &str) -> Result<&GpuDefaults, ConfigError> {
        self.gpus.get(gpu).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "engine {} has no defaults for GPU {gpu}; it covers: {}",
                self.name,
                self.gpus.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Microseconds to whole nanoseconds.
    pub fn us_to_ns(us: f64) -> u64 {
        (us * 1e3).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_presets_parse_and_cover_the_bundled_gpus() {
        for name in EnginePreset::bundled_names() {
            let p = EnginePreset::resolve(name).unwrap();
            assert_eq!(p.name, name);
            assert!(!p.sources.is_empty());
            for gpu in ["h100-sxm", "a100-80gb", "h200"] {
                p.for_gpu(gpu).unwrap();
            }
        }
        // vLLM's device rule: >= 70 GiB and not an A100 -> 8192 tokens and 1,024 sequences for the API server.
        let v = EnginePreset::resolve("vllm-0.11").unwrap();
        assert_eq!(
            (v.for_gpu("h100-sxm").unwrap().token_budget, v.for_gpu("h100-sxm").unwrap().max_num_seqs),
            (8192, 1024)
        );
        assert_eq!(
            (v.for_gpu("a100-80gb").unwrap().token_budget, v.for_gpu("a100-80gb").unwrap().max_num_seqs),
            (2048, 256)
        );
    }

    #[test]
    fn bad_presets_are_named() {
        let e = EnginePreset::resolve("vllm-9").unwrap_err().to_string();
        assert!(e.contains("unknown engine \"vllm-9\"") && e.contains("vllm-0.11"), "{e}");
        let text = include_str!("../engines/vllm-0.11.json").replace("\"block_size\": 16", "\"block_size\": 0");
        let e = EnginePreset::from_json("x.json", &text).unwrap_err().to_string();
        assert!(e.contains("x.json: block_size must be >= 1"), "{e}");
        let e = EnginePreset::resolve("vllm-0.11").unwrap().for_gpu("b200").unwrap_err().to_string();
        assert!(e.contains("no defaults for GPU b200"), "{e}");
    }
}
