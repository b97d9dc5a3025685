//! The mixed-batch attention penalty from measurements (`CostConfig::mixed_attention_penalty` in the simulator):
//! attention kernels may run decoding requests less efficiently when the same call also carries prefill chunks.
//!
//! A sample times, on one partition, the decode requests' attention alone (`t_d`), the prefill chunks' alone
//! (`t_p`), and both in one call (`t_m`). The decodes' extra time in the mixed call, as a fraction of their time
//! alone, is `(t_m - t_p - t_d) / t_d` (the prefill part taken as unchanged: the cost model's term slows only the
//! decodes); the fitted penalty is the median over samples, so a few noisy calls do not move it. It may be
//! negative (one call cheaper than two): the simulator then speeds mixed decodes up, as measured.

use std::path::Path;

use crate::error::CalibrationError;

/// One mixed-batch measurement (module docs): attention times on the same SMs, ns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixedAttentionSample {
    /// SMs it ran on.
    pub sms: u32,
    /// The decode requests alone.
    pub decode_ns: f64,
    /// The prefill chunks alone.
    pub prefill_ns: f64,
    /// Both in one call.
    pub mixed_ns: f64,
}

impl MixedAttentionSample {
    /// `(t_m - t_p - t_d) / t_d`: the decodes' extra time in the mixed call.
    pub fn excess(&self) -> f64 {
        (self.mixed_ns - self.prefill_ns - self.decode_ns) / self.decode_ns
    }
}

/// The median excess of `samples` (module docs), from `source` (named in errors): an error when there is no
/// sample, when a time is not positive and finite, or when the median is at or below -1 (decodes taking no time).
pub fn fit_mixed_attention_penalty(source: &Path, samples: &[MixedAttentionSample]) -> Result<f64, CalibrationError> {
    let invalid =
        |line: usize, message: String| CalibrationError::Invalid { path: source.to_path_buf(), line, message };
    if samples.is_empty() {
        return Err(invalid(0, "no mixed-batch attention samples to fit the mixed penalty from".into()));
    }
    let mut excess = Vec::with_capacity(samples.len());
    for (i, s) in samples.iter().enumerate() {
        for (name, v) in [("decode_ns", s.decode_ns), ("prefill_ns", s.prefill_ns), ("mixed_ns", s.mixed_ns)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid(
                    i + 1,
                    format!("mixed-batch sample on {} SMs: {name} must be > 0, got {v}", s.sms),
                ));
            }
        }
        excess.push(s.excess());
    }
    excess.sort_by(f64::total_cmp);
    let k = excess.len();
    let median = if k % 2 == 1 { excess[k / 2] } else { (excess[k / 2 - 1] + excess[k / 2]) / 2.0 };
    if median <= -1.0 {
        return Err(invalid(
            0,
            format!("mixed-batch penalty {median} <= -1: decodes would take no time in a mixed call"),
        ));
    }
    Ok(median)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(p: f64, decode_ns: f64, noise: f64) -> MixedAttentionSample {
        let prefill_ns = 3.0 * decode_ns;
        MixedAttentionSample { sms: 66, decode_ns, prefill_ns, mixed_ns: prefill_ns + decode_ns * (1.0 + p) + noise }
    }

    #[test]
    fn the_median_recovers_a_known_penalty_through_outliers() {
        let mut samples: Vec<_> = (1..=9).map(|i| sample(0.3, 1000.0 * f64::from(i), 0.0)).collect();
        // Two wild calls (a preemption, a cold cache) do not move the median.
        samples.push(sample(0.3, 500.0, 50_000.0));
        samples.push(sample(0.3, 700.0, -600.0));
        let p = fit_mixed_attention_penalty(Path::new("s.jsonl"), &samples).unwrap();
        assert!((p - 0.3).abs() < 1e-12, "{p}");
        let faster = [sample(-0.2, 1000.0, 0.0), sample(-0.2, 2000.0, 0.0)];
        assert!((fit_mixed_attention_penalty(Path::new("s"), &faster).unwrap() + 0.2).abs() < 1e-12);
    }

    #[test]
    fn bad_samples_are_refused_with_their_position() {
        let e = fit_mixed_attention_penalty(Path::new("m.jsonl"), &[]).unwrap_err().to_string();
        assert!(e.contains("m.jsonl") && e.contains("no mixed-batch"), "{e}");
        let mut s = [sample(0.1, 1000.0, 0.0), sample(0.1, 1000.0, 0.0)];
        s[1].decode_ns = 0.0;
        let e = fit_mixed_attention_penalty(Path::new("m.jsonl"), &s).unwrap_err().to_string();
        assert!(e.contains("m.jsonl:2") && e.contains("decode_ns must be > 0, got 0"), "{e}");
        s[1].decode_ns = f64::NAN;
        assert!(fit_mixed_attention_penalty(Path::new("m"), &s).is_err());
        let none = [MixedAttentionSample { sms: 8, decode_ns: 10.0, prefill_ns: 50.0, mixed_ns: 40.0 }];
        let e = fit_mixed_attention_penalty(Path::new("m"), &none).unwrap_err().to_string();
        assert!(e.contains("<= -1"), "{e}");
    }
}
