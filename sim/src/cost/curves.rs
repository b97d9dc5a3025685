//! SM-scaling curves: achievable compute and bandwidth on a partition of `S` SMs.
//!
//! The cost model sees the hardware only through [`DeviceCurves`], so a fitted profile (the calibration issue)
//! can replace the default analytic curves without touching anything else.

use std::fmt::Debug;

use super::ops::Work;
use crate::gpu::GpuSpec;

/// Elementwise operator classes (memory bound; a fitted profile may give each its own bandwidth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Elementwise {
    /// RMSNorm (fused with the residual add).
    RmsNorm,
    /// SiLU-and-multiply of the gated MLP.
    SiluMul,
    /// Rotary embedding.
    Rotary,
    /// Embedding lookup.
    Embedding,
    /// Plain residual add.
    Add,
}

/// Achievable throughputs on `sms` SMs. Throughputs must be positive for `sms >= 1` and, apart from wave
/// quantisation (which is not monotone in the SM count by nature), non-decreasing in `sms`. The `*_time` methods turn an operator's [`Work`] into seconds; their defaults are the plain
/// roofline over the three throughputs, and a fitted profile overrides them.
pub trait DeviceCurves: Debug + Send + Sync {
    /// Achievable FLOP/s of a GEMM whose output is `m x n` (tokens x output features), on `sms` SMs.
    fn gemm_flops(&self, sms: u32, m: u64, n: u64) -> f64;
    /// Achievable FLOP/s of attention kernels on `sms` SMs.
    fn attention_flops(&self, sms: u32) -> f64;
    /// Achievable HBM bandwidth, bytes/s, on `sms` SMs.
    fn bandwidth(&self, sms: u32) -> f64;

    /// Seconds of a GEMM with an `m x n` output doing `w` on `sms` SMs: `max(F / Pi, B / BW)` by default.
    fn gemm_time(&self, sms: u32, m: u64, n: u64, w: Work) -> f64 {
        (w.flops / self.gemm_flops(sms, m, n)).max(w.bytes / self.bandwidth(sms))
    }
    /// Seconds of an elementwise operator: `B / BW` by default.
    fn elementwise_time(&self, sms: u32, _op: Elementwise, w: Work) -> f64 {
        w.bytes / self.bandwidth(sms)
    }
    /// Seconds of one request's attention (`decode`: one new token): `max(F / Pi_attn, B / BW)` by default.
    fn attention_time(&self, sms: u32, w: Work, _decode: bool) -> f64 {
        (w.flops / self.attention_flops(sms)).max(w.bytes / self.bandwidth(sms))
    }
    /// `Some(rates)` when [`DeviceCurves::attention_time`] on `sms` SMs is exactly [`AttentionRates::time`] with
    /// these rates: the cost model then evaluates each request's attention without a call through the trait.
    /// Default `None` (curves that override `attention_time` with another formula keep it).
    fn attention_rates(&self, sms: u32) -> Option<AttentionRates> {
        let _ = sms;
        None
    }
}

/// The three rates of an attention roofline on one partition ([`DeviceCurves::attention_rates`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionRates {
    /// Achievable attention FLOP/s.
    pub flops: f64,
    /// Bandwidth of a request with more than one new token (prefill chunks), bytes/s.
    pub prefill_bandwidth: f64,
    /// Bandwidth of a request with one new token (decode), bytes/s.
    pub decode_bandwidth: f64,
}

impl AttentionRates {
    /// `max(F / flops, B / bandwidth)`, the bandwidth by phase.
    #[inline]
    pub fn time(&self, w: Work, decode: bool) -> f64 {
        let bw = if decode { self.decode_bandwidth } else { self.prefill_bandwidth };
        (w.flops / self.flops).max(w.bytes / bw)
    }
}

/// Default analytic curves from a [`GpuSpec`].
///
/// - GEMM: `Pi(S, m, n) = peak x gemm_eff x S / S_total x w`, with wave-quantisation efficiency
///   `w = T / (ceil(T / S) x S)` for `T = ceil(m / tile_m) x ceil(n / tile_n)` output tiles (one tile per SM
///   per wave; a last partial wave leaves SMs idle).
/// - Attention: `Pi_attn(S) = peak x attention_eff x S / S_total`.
/// - Bandwidth: `BW(S) = hbm x bandwidth_eff x min(1, S / S_sat)`: linear until `S_sat` SMs, flat after.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultCurves {
    /// The GPU the curves describe.
    pub gpu: GpuSpec,
    /// GEMM output tile rows (tokens).
    pub tile_m: u64,
    /// GEMM output tile columns (features).
    pub tile_n: u64,
}

impl DefaultCurves {
    /// Curves for `gpu` with 128 x 128 output tiles (a common CUTLASS/cuBLAS BF16 tile on Hopper and Ampere).
    pub fn new(gpu: GpuSpec) -> Self {
        Self { gpu, tile_m: 128, tile_n: 128 }
    }

    /// Wave-quantisation efficiency of an `m x n` GEMM on `sms` SMs, in (0, 1].
    pub fn wave_efficiency(&self, sms: u32, m: u64, n: u64) -> f64 {
        let tiles = m.div_ceil(self.tile_m).max(1) * n.div_ceil(self.tile_n).max(1);
        let s = u64::from(sms.max(1));
        tiles as f64 / (tiles.div_ceil(s) * s) as f64
    }

    fn sm_fraction(&self, sms: u32) -> f64 {
        f64::from(sms.clamp(1, self.gpu.num_sms)) / f64::from(self.gpu.num_sms)
    }
}

impl DeviceCurves for DefaultCurves {
    fn gemm_flops(&self, sms: u32, m: u64, n: u64) -> f64 {
        let sms = sms.clamp(1, self.gpu.num_sms);
        self.gpu.peak_flops * self.gpu.gemm_efficiency * self.sm_fraction(sms) * self.wave_efficiency(sms, m, n)
    }

    fn attention_flops(&self, sms: u32) -> f64 {
        self.gpu.peak_flops * self.gpu.attention_efficiency * self.sm_fraction(sms)
    }

    fn bandwidth(&self, sms: u32) -> f64 {
        let sat = f64::from(self.gpu.bandwidth_saturation_sms.max(1));
        self.gpu.hbm_bandwidth * self.gpu.bandwidth_efficiency * (f64::from(sms.max(1)) / sat).min(1.0)
    }

    /// The default `attention_time`'s rates: one bandwidth for both phases.
    fn attention_rates(&self, sms: u32) -> Option<AttentionRates> {
        let bandwidth = self.bandwidth(sms);
        Some(AttentionRates {
            flops: self.attention_flops(sms),
            prefill_bandwidth: bandwidth,
            decode_bandwidth: bandwidth,
        })
    }
}

/// Ablation curves: every operator on `S` SMs takes exactly `S_total / S` times its whole-GPU time under
/// `inner` (throughputs proportional to the SM count: no bandwidth saturation, no wave-quantisation change, no
/// sub-linear scaling). Used to ask how much a result depends on the measured SM-scaling shape.
#[derive(Debug, Clone)]
pub struct LinearSmScaling {
    inner: std::sync::Arc<dyn DeviceCurves>,
    total_sms: u32,
}

impl LinearSmScaling {
    /// Linear scaling of `inner`'s whole-GPU (`total_sms`) behaviour.
    pub fn new(inner: std::sync::Arc<dyn DeviceCurves>, total_sms: u32) -> Self {
        Self { inner, total_sms: total_sms.max(1) }
    }

    /// `S / S_total`.
    fn frac(&self, sms: u32) -> f64 {
        f64::from(sms.clamp(1, self.total_sms)) / f64::from(self.total_sms)
    }
}

impl DeviceCurves for LinearSmScaling {
    fn gemm_flops(&self, sms: u32, m: u64, n: u64) -> f64 {
        self.inner.gemm_flops(self.total_sms, m, n) * self.frac(sms)
    }
    fn attention_flops(&self, sms: u32) -> f64 {
        self.inner.attention_flops(self.total_sms) * self.frac(sms)
    }
    fn bandwidth(&self, sms: u32) -> f64 {
        self.inner.bandwidth(self.total_sms) * self.frac(sms)
    }
    fn gemm_time(&self, sms: u32, m: u64, n: u64, w: Work) -> f64 {
        self.inner.gemm_time(self.total_sms, m, n, w) / self.frac(sms)
    }
    fn elementwise_time(&self, sms: u32, op: Elementwise, w: Work) -> f64 {
        self.inner.elementwise_time(self.total_sms, op, w) / self.frac(sms)
    }
    fn attention_time(&self, sms: u32, w: Work, decode: bool) -> f64 {
        self.inner.attention_time(self.total_sms, w, decode) / self.frac(sms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_scaling_divides_whole_gpu_time_by_the_sm_fraction() {
        let inner: std::sync::Arc<dyn DeviceCurves> = std::sync::Arc::new(h100());
        let lin = LinearSmScaling::new(std::sync::Arc::clone(&inner), 132);
        let w = Work { flops: 2e12, bytes: 4e9 };
        let full = inner.gemm_time(132, 4096, 4096, w);
        assert_eq!(lin.gemm_time(132, 4096, 4096, w), full);
        assert!((lin.gemm_time(33, 4096, 4096, w) - 4.0 * full).abs() < 1e-12 * full.max(1.0));
        // The saturating bandwidth of the inner curves becomes proportional.
        assert!(inner.bandwidth(66) == inner.bandwidth(132));
        assert!((lin.bandwidth(66) * 2.0 - lin.bandwidth(132)).abs() < 1.0);
    }

    fn h100() -> DefaultCurves {
        DefaultCurves::new(GpuSpec::by_name("h100-sxm").unwrap())
    }

    #[test]
    fn wave_quantisation_by_hand() {
        let c = h100();
        // 4096 x 12288 output: 32 x 96 = 3072 tiles; on 132 SMs 24 waves -> 3072 / 3168.
        assert_eq!(c.wave_efficiency(132, 4096, 12288), 3072.0 / 3168.0);
        // 133 tiles on 132 SMs: 2 waves, the second nearly empty.
        assert_eq!(c.wave_efficiency(132, 128, 133 * 128), 133.0 / 264.0);
        assert_eq!(c.wave_efficiency(8, 128, 128 * 16), 1.0);
    }

    #[test]
    fn bandwidth_saturates_and_compute_scales() {
        let c = h100();
        let full = 3.35e12 * 0.84;
        assert_eq!(c.bandwidth(132), full);
        assert_eq!(c.bandwidth(64), full);
        assert_eq!(c.bandwidth(32), full / 2.0);
        assert!((c.attention_flops(66) * 2.0 - c.attention_flops(132)).abs() < 1.0);
        // With perfect waves, half the SMs give half the GEMM throughput.
        let (a, b) = (c.gemm_flops(66, 66 * 128, 128), c.gemm_flops(132, 132 * 128, 128));
        assert!((a * 2.0 - b).abs() < 1.0);
    }
}
