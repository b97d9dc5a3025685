//! Kernel efficiency of a serving engine: how far its kernels fall short of the curves of a profile.
//!
//! A profile's curves describe what tuned kernels reach on a GPU (calibration microbenchmarks, datasheet
//! fractions). An engine's own kernels, run inside its forward pass, reach less: paged KV gathers, varlen
//! attention tiles over mixed batches, unfused epilogues. [`EngineCurves`] wraps any [`DeviceCurves`] and
//! divides each operator's time by the engine's efficiency for that operator class:
//!
//! ```text
//! t'_gemm  = t_gemm / e_gemm      if F / Pi >= B / BW (compute bound), else t_gemm / e_memory
//! t'_elem  = t_elem / e_memory
//! t'_attn  = t_attn / e_decode_attention                       (one new token: decode over paged KV)
//! t'_attn  = t_attn / e_prefill_attention  if F / Pi_attn >= B / BW, else t_attn / e_memory
//! ```
//!
//! Every `e` is in (0, 1]; 1 everywhere leaves the inner curves unchanged. The throughputs the trait reports
//! (`gemm_flops`, `attention_flops`, `bandwidth`) are the inner ones scaled by the same factors, so the
//! contention model's memory-bound share sees the engine's bandwidth.

use std::sync::Arc;

use super::curves::{DeviceCurves, Elementwise};
use super::ops::Work;

/// An engine's kernel efficiency per operator class, each in (0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelEfficiency {
    /// Compute-bound GEMMs (prefill-sized linear layers).
    pub gemm: f64,
    /// Memory-bound work: decode-sized GEMMs (weight reads), elementwise operators.
    pub memory: f64,
    /// Compute-bound attention (prefill chunks over their context).
    pub prefill_attention: f64,
    /// Decode attention over paged KV (one query token per sequence).
    pub decode_attention: f64,
}

impl Default for KernelEfficiency {
    fn default() -> Self {
        Self { gemm: 1.0, memory: 1.0, prefill_attention: 1.0, decode_attention: 1.0 }
    }
}

impl KernelEfficiency {
    /// Checks every factor is in (0, 1]; names the first that is not.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("gemm", self.gemm),
            ("memory", self.memory),
            ("prefill_attention", self.prefill_attention),
            ("decode_attention", self.decode_attention),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(format!("kernel efficiency {name} must be in (0, 1], got {v}"));
            }
        }
        Ok(())
    }
}

/// `inner` curves slowed by an engine's [`KernelEfficiency`] (module docs).
#[derive(Debug, Clone)]
pub struct EngineCurves {
    inner: Arc<dyn DeviceCurves>,
    eff: KernelEfficiency,
}

impl EngineCurves {
    /// Wraps `inner` with the efficiencies `eff`.
    pub fn new(inner: Arc<dyn DeviceCurves>, eff: KernelEfficiency) -> Self {
        Self { inner, eff }
    }
}

impl DeviceCurves for EngineCurves {
    fn gemm_flops(&self, sms: u32, m: u64, n: u64) -> f64 {
        self.inner.gemm_flops(sms, m, n) * self.eff.gemm
    }
    fn attention_flops(&self, sms: u32) -> f64 {
        self.inner.attention_flops(sms) * self.eff.prefill_attention
    }
    fn bandwidth(&self, sms: u32) -> f64 {
        self.inner.bandwidth(sms) * self.eff.memory
    }
    fn gemm_time(&self, sms: u32, m: u64, n: u64, w: Work) -> f64 {
        let compute = w.flops / self.inner.gemm_flops(sms, m, n) >= w.bytes / self.inner.bandwidth(sms);
        self.inner.gemm_time(sms, m, n, w) / if compute { self.eff.gemm } else { self.eff.memory }
    }
    fn elementwise_time(&self, sms: u32, op: Elementwise, w: Work) -> f64 {
        self.inner.elementwise_time(sms, op, w) / self.eff.memory
    }
    fn attention_time(&self, sms: u32, w: Work, decode: bool) -> f64 {
        let e = if decode {
            self.eff.decode_attention
        } else if w.flops / self.inner.attention_flops(sms) >= w.bytes / self.inner.bandwidth(sms) {
            self.eff.prefill_attention
        } else {
            self.eff.memory
        };
        self.inner.attention_time(sms, w, decode) / e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::DefaultCurves;
    use crate::gpu::GpuSpec;

    fn wrap(eff: KernelEfficiency) -> (Arc<dyn DeviceCurves>, EngineCurves) {
        let inner: Arc<dyn DeviceCurves> = Arc::new(DefaultCurves::new(GpuSpec::by_name("h100-sxm").unwrap()));
        (Arc::clone(&inner), EngineCurves::new(inner, eff))
    }

    #[test]
    fn each_class_is_divided_by_its_own_factor() {
        let eff = KernelEfficiency { gemm: 0.5, memory: 0.8, prefill_attention: 0.4, decode_attention: 0.25 };
        let (inner, e) = wrap(eff);
        // A 8192 x 8192 x 8192 GEMM is compute bound; a 1-row GEMM reads its weights (memory bound).
        let big = Work { flops: 2.0 * 8192f64.powi(3), bytes: 3.0 * 2.0 * 8192f64.powi(2) };
        assert!((e.gemm_time(132, 8192, 8192, big) * 0.5 - inner.gemm_time(132, 8192, 8192, big)).abs() < 1e-15);
        let thin = Work { flops: 2.0 * 8192f64.powi(2), bytes: 2.0 * 8192f64.powi(2) };
        assert!((e.gemm_time(132, 1, 8192, thin) * 0.8 - inner.gemm_time(132, 1, 8192, thin)).abs() < 1e-15);
        let w = Work { flops: 1e12, bytes: 1e6 };
        assert!((e.attention_time(132, w, false) * 0.4 - inner.attention_time(132, w, false)).abs() < 1e-15);
        let d = Work { flops: 1e6, bytes: 1e9 };
        assert!((e.attention_time(132, d, true) * 0.25 - inner.attention_time(132, d, true)).abs() < 1e-15);
        assert!((e.bandwidth(132) - inner.bandwidth(132) * 0.8).abs() < 1.0);
    }

    #[test]
    fn ones_change_nothing_and_bad_factors_are_named() {
        let (inner, e) = wrap(KernelEfficiency::default());
        let w = Work { flops: 3e11, bytes: 2e8 };
        assert_eq!(e.gemm_time(132, 512, 4096, w), inner.gemm_time(132, 512, 4096, w));
        assert_eq!(e.attention_time(132, w, true), inner.attention_time(132, w, true));
        let bad = KernelEfficiency { memory: 1.5, ..KernelEfficiency::default() };
        assert_eq!(bad.validate().unwrap_err(), "kernel efficiency memory must be in (0, 1], got 1.5");
        let zero = KernelEfficiency { gemm: 0.0, ..KernelEfficiency::default() };
        assert!(zero.validate().unwrap_err().contains("gemm"));
    }
}
