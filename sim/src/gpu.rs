//! GPU descriptions: datasheet peaks, memory, SM count, and the achievable-efficiency defaults that turn peaks
//! into the throughputs the cost model uses.
//!
//! Sources. Peaks are NVIDIA datasheet numbers (dense, no sparsity): H100 SXM5 989.4 TFLOP/s BF16, 3.35 TB/s
//! HBM3, 50 MB L2, 132 SMs; H200 SXM 989.4 TFLOP/s, 4.8 TB/s HBM3e, 50 MB L2, 132 SMs; A100 SXM 80 GB
//! 312 TFLOP/s, 2.039 TB/s HBM2e, 40 MB L2, 108 SMs. Memory is the total `nvidia-smi` reports
//! (81,559 MiB, 143,771 MiB, 81,920 MiB).
//!
//! Efficiencies were read off the Vidur kernel profiles in `../shared/kernel-profiles/` (TP = 1, median times):
//! - H100 compute 0.75: Llama-2-7B `mlp_up_proj` (4096 x 4096 x 22016 GEMM) at 4,096 tokens runs at
//!   748 TFLOP/s = 0.756 of peak.
//! - H100 bandwidth 0.84: the same operator at 1 token moves 180 MB in 0.064 ms = 2.82 TB/s = 0.84 of peak.
//! - A100 compute 0.75 and bandwidth 0.81: Llama-3-8B `mlp_up_proj` at 32,768 tokens (233 TFLOP/s) and at
//!   1 token (1.66 TB/s).
//! - H200 reuses the H100's values (same SMs and clocks), a stated assumption until it is measured.
//! - Attention efficiency 0.5 of peak (about 495 TFLOP/s on an H100) is an assumption in the range FlashAttention-3
//!   reports for BF16 forward passes (Shah et al. 2024), lower for short causal sequences; the calibration issue
//!   measures it.
//! - Bandwidth saturating at about half the SMs is an assumption following the DuetServe observation that decode
//!   reaches most of the HBM bandwidth with a fraction of the SMs; calibration replaces it with measured curves.

use crate::error::ConfigError;

/// One GPU model. The SM count is an input like any other: a partition of the GPU is described by the
/// number of SMs it gets, and all throughputs are scaled from `num_sms`.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuSpec {
    /// Short name (`h100-sxm`, ...).
    pub name: String,
    /// Streaming multiprocessors on the whole GPU.
    pub num_sms: u32,
    /// Dense BF16 tensor-core peak, FLOP/s, whole GPU.
    pub peak_flops: f64,
    /// HBM peak bandwidth, bytes/s.
    pub hbm_bandwidth: f64,
    /// Device memory, bytes.
    pub memory_bytes: u64,
    /// L2 cache, bytes (recorded for the contention model; unused by the default roofline).
    pub l2_bytes: u64,
    /// Fraction of `peak_flops` large GEMMs reach.
    pub gemm_efficiency: f64,
    /// Fraction of `peak_flops` attention kernels reach.
    pub attention_efficiency: f64,
    /// Fraction of `hbm_bandwidth` streaming kernels reach.
    pub bandwidth_efficiency: f64,
    /// SM count at which achievable HBM bandwidth saturates (see [`crate::cost::DefaultCurves`]).
    pub bandwidth_saturation_sms: u32,
}

const MIB: u64 = 1 << 20;

impl GpuSpec {
    /// Names of the bundled GPUs.
    pub const NAMES: [&'static str; 3] = ["h100-sxm", "h200", "a100-80gb"];

    /// Looks a GPU up by name (case-insensitive); unknown names list the known ones.
    pub fn by_name(name: &str) -> Result<GpuSpec, ConfigError> {
        let g = match name.to_ascii_lowercase().as_str() {
            "h100-sxm" | "h100" => GpuSpec {
                name: "h100-sxm".into(),
                num_sms: 132,
                peak_flops: 989.4e12,
                hbm_bandwidth: 3.35e12,
                memory_bytes: 81_559 * MIB,
                l2_bytes: 50 * 1_000_000,
                gemm_efficiency: 0.75,
                attention_efficiency: 0.5,
                bandwidth_efficiency: 0.84,
                bandwidth_saturation_sms: 64,
            },
            "h200" => GpuSpec {
                name: "h200".into(),
                hbm_bandwidth: 4.8e12,
                memory_bytes: 143_771 * MIB,
                ..GpuSpec::by_name("h100-sxm")?
            },
            "a100-80gb" | "a100" => GpuSpec {
                name: "a100-80gb".into(),
                num_sms: 108,
                peak_flops: 312e12,
                hbm_bandwidth: 2.039e12,
                memory_bytes: 81_920 * MIB,
                l2_bytes: 40 * 1_000_000,
                gemm_efficiency: 0.75,
                attention_efficiency: 0.5,
                bandwidth_efficiency: 0.81,
                bandwidth_saturation_sms: 54,
            },
            _ => {
                return Err(ConfigError::Gpu(format!("unknown GPU {name:?}; known GPUs: {}", Self::NAMES.join(", "))));
            }
        };
        Ok(g)
    }

    /// All bundled GPUs.
    pub fn all() -> Vec<GpuSpec> {
        Self::NAMES.iter().map(|n| Self::by_name(n).expect("bundled names resolve")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_and_unknown_lists_known() {
        assert_eq!(GpuSpec::all().len(), 3);
        let h200 = GpuSpec::by_name("H200").unwrap();
        assert_eq!((h200.num_sms, h200.hbm_bandwidth), (132, 4.8e12));
        let e = GpuSpec::by_name("rtx4090").unwrap_err().to_string();
        assert!(e.contains("h100-sxm, h200, a100-80gb"), "{e}");
    }
}
