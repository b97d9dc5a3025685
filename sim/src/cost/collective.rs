//! Ring all-reduce, the collective of tensor parallelism (two per transformer layer: after the attention output
//! projection and after the MLP down projection).
//!
//! On `N` GPUs a ring all-reduce of `B` bytes runs `2 (N - 1)` steps (a reduce-scatter, then an all-gather), each
//! moving `B / N` bytes per GPU:
//!
//! `t(B, N) = 2 (N - 1) / N x B / BW_bus + 2 (N - 1) x alpha`
//!
//! with `BW_bus` the per-GPU bus bandwidth and `alpha` the latency of one step (launch, synchronisation, link
//! latency). `t = 0` for `N = 1`. [`RingAllReduce::fit`] fits both parameters to measured times by least squares
//! on the relative error (times span three decades); [`load_vidur_all_reduce`] reads Vidur's collective
//! profiles (`size` in bytes, times in ms). On Vidur's H100 measurements the fit's median error is 3.1% on 2
//! GPUs (186 GB/s, 6.1 us per step) and 4.9% on 4 GPUs (46 GB/s, 4.0 us: that profile's 4 GPUs do not reach
//! NVLink bus bandwidth), see `sim/tests/all_reduce.rs`. On Vidur's A100 pairs, fitted on half the sizes, the
//! median error on the other half is 2.1% (189 GB/s, 13.8 us per step; the H100 ring there: 4.4%, p90 41.5%
//! against 16.9%). Tensor parallelism (issue 6) builds on this model with the pair ring of its GPU
//! ([`RingAllReduce::for_gpu`]) for every degree: both files' 4-GPU rings (46 and 24 GB/s) come from machines
//! whose NVLink joins pairs only, which an SXM board with NVSwitch is not.

use std::path::Path;

use super::check::VidurCsv;
use crate::error::ConfigError;

/// Parameters of the ring model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RingAllReduce {
    /// Per-GPU bus bandwidth, bytes/s.
    pub bus_bandwidth: f64,
    /// Latency of one ring step, seconds.
    pub step_latency_s: f64,
}

/// One measured all-reduce.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AllReduceSample {
    /// GPUs taking part.
    pub workers: u32,
    /// Bytes reduced (per GPU).
    pub bytes: f64,
    /// Measured time, seconds.
    pub seconds: f64,
}

impl RingAllReduce {
    /// H100 SXM pairs over NVLink: fitted to Vidur's `all_reduce.pairwise_nvlink.csv` (2 GPUs, 994 sizes from
    /// 2 KiB to 64 MiB; median error 3.1%): 186 GB/s bus bandwidth, 6.1 us per step.
    pub const H100_NVLINK: RingAllReduce = RingAllReduce { bus_bandwidth: 186.5e9, step_latency_s: 6.09e-6 };

    /// A100 SXM pairs over NVLink (third generation): fitted to every other size of Vidur's A100
    /// `all_reduce.pairwise_nvlink.csv` (2 GPUs), its error reported on the other half (`sim/tests/all_reduce.rs`).
    pub const A100_NVLINK: RingAllReduce = RingAllReduce { bus_bandwidth: 188.71e9, step_latency_s: 13.797e-6 };

    /// The ring of `gpu`'s NVLink generation: [`Self::A100_NVLINK`] on an A100, [`Self::H100_NVLINK`] on an H100
    /// or H200 (the same NVLink 4 links; no H200 measurement exists here), and on any other GPU.
    pub fn for_gpu(gpu: &crate::GpuSpec) -> RingAllReduce {
        if gpu.name.starts_with("a100") { Self::A100_NVLINK } else { Self::H100_NVLINK }
    }

    /// Seconds to all-reduce `bytes` over `workers` GPUs.
    pub fn time_s(&self, bytes: f64, workers: u32) -> f64 {
        if workers <= 1 {
            return 0.0;
        }
        let n = f64::from(workers);
        let steps = 2.0 * (n - 1.0);
        steps / n * bytes / self.bus_bandwidth + steps * self.step_latency_s
    }

    /// Fits the model to `samples` of one worker count, minimising `sum ((t_model - t) / t)^2`. Needs at least
    /// two distinct sizes; a fit with a non-positive bandwidth or latency is an error.
    pub fn fit(samples: &[AllReduceSample]) -> Result<Self, ConfigError> {
        let workers = samples.first().map_or(0, |s| s.workers);
        if workers < 2 || samples.iter().any(|s| s.workers != workers) {
            return Err(ConfigError::Invalid("all-reduce fit: samples of one worker count >= 2 needed".into()));
        }
        // t = a + b B, weighted by 1 / t^2.
        let (mut sw, mut sx, mut sxx, mut sy, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for s in samples.iter().filter(|s| s.seconds > 0.0 && s.bytes > 0.0) {
            let w = 1.0 / (s.seconds * s.seconds);
            sw += w;
            sx += w * s.bytes;
            sxx += w * s.bytes * s.bytes;
            sy += w * s.seconds;
            sxy += w * s.bytes * s.seconds;
        }
        let det = sw * sxx - sx * sx;
        if det.abs() <= f64::EPSILON * sw * sxx {
            return Err(ConfigError::Invalid("all-reduce fit: need at least two distinct sizes".into()));
        }
        let b = (sw * sxy - sx * sy) / det;
        let a = (sy - b * sx) / sw;
        let n = f64::from(workers);
        let steps = 2.0 * (n - 1.0);
        let fit = RingAllReduce { bus_bandwidth: steps / n / b, step_latency_s: a / steps };
        if !(fit.bus_bandwidth > 0.0 && fit.step_latency_s > 0.0) {
            return Err(ConfigError::Invalid(format!("all-reduce fit is not physical: {fit:?}")));
        }
        Ok(fit)
    }
}

/// Reads a Vidur collective profile (`time_stats.all_reduce.median` in ms, `num_workers`, `size` in bytes);
/// rows of other collectives are skipped, and only rank 0's row of each measurement is kept.
pub fn load_vidur_all_reduce(path: &Path) -> Result<Vec<AllReduceSample>, ConfigError> {
    let csv = VidurCsv::read(path, "a Vidur collective profile")?;
    let col = |name: &str| csv.column(name);
    let (c_time, c_workers, c_size, c_rank, c_kind) =
        (col("time_stats.all_reduce.median")?, col("num_workers")?, col("size")?, col("rank")?, col("collective")?);
    let mut out = Vec::new();
    for (i, line) in csv.rows().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let num = |c: usize, what: &str| {
            f.get(c)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .ok_or_else(|| ConfigError::Invalid(format!("{}:{}: bad {what}", path.display(), i + 2)))
        };
        if f.get(c_kind).map(|v| v.trim()) != Some("all_reduce") || num(c_rank, "rank")? != 0.0 {
            continue;
        }
        out.push(AllReduceSample {
            workers: num(c_workers, "num_workers")? as u32,
            bytes: num(c_size, "size")?,
            seconds: num(c_time, "time_stats.all_reduce.median")? * 1e-3,
        });
    }
    if out.is_empty() {
        return Err(ConfigError::Invalid(format!("{}: no all_reduce row", path.display())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_time_by_hand() {
        let m = RingAllReduce { bus_bandwidth: 100e9, step_latency_s: 5e-6 };
        // 4 GPUs, 8 MB: 6 steps of 2 MB -> 6 x 2e6 / 100e9 = 120 us, plus 6 x 5 us.
        assert!((m.time_s(8e6, 4) - 150e-6).abs() < 1e-12);
        assert_eq!(m.time_s(8e6, 1), 0.0);
        // 2 GPUs: 2 steps of B / 2.
        assert!((m.time_s(1e6, 2) - (1e6 / 100e9 + 10e-6)).abs() < 1e-15);
    }

    #[test]
    fn fit_recovers_the_parameters_of_exact_data() {
        let truth = RingAllReduce { bus_bandwidth: 180e9, step_latency_s: 7e-6 };
        let samples: Vec<AllReduceSample> = (1..=30)
            .map(|k| {
                let bytes = 2048.0 * 1.6f64.powi(k);
                AllReduceSample { workers: 4, bytes, seconds: truth.time_s(bytes, 4) }
            })
            .collect();
        let fit = RingAllReduce::fit(&samples).unwrap();
        assert!((fit.bus_bandwidth / truth.bus_bandwidth - 1.0).abs() < 1e-9, "{fit:?}");
        assert!((fit.step_latency_s / truth.step_latency_s - 1.0).abs() < 1e-9, "{fit:?}");
        let one = &samples[..1];
        assert!(RingAllReduce::fit(one).is_err());
        assert!(RingAllReduce::fit(&[]).is_err());
    }
}
