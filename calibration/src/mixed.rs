//! The mixed-batch attention penalty from measurements (`CostConfig::mixed_attention_penalty` in the simulator):
//! attention kernels may run decoding requests less efficiently when the same call also carries prefill chunks.
//!
//! A sample times, on one partition, the decode requests' attention alone (`t_d`), the prefill chunks' alone
//! (`t_p`), and both in one call (`t_m`). The decodes' extra time in the mixed call, as a fraction of their time
//! alone, is `(t_m - t_p - t_d) / t_d` (the prefill part taken as unchanged: the cost model's term slows only the
//! decodes); the fitted penalty is the median over samples, so a few noisy calls do not move it. It may be
//! negative (one call cheaper than two): the simulator then speeds mixed decodes up, as measured.
//!
//! `duet-gpu calibrate` writes the samples as `mixed.csv` ([`MIXED_HEADER`]; times in ms), which
//! `duet calibrate fit` recognises by its header ([`is_mixed`], [`read_mixed`]). Each row also times the two
//! calls back to back in one step (`two_calls_ms`, what duet's own replay executor does with a mixed batch), so
//! the file gives two sample sets: one call (an engine with one varlen attention kernel, the paper's case; what
//! `fit` uses) and two calls (the penalty that applies when validating duet's replays).

use std::path::Path;

use crate::error::CalibrationError;
use crate::table::{self, Least};

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

/// Header of `mixed.csv`: the case (SMs, prefill chunk and its cached tokens, decode batch and context) and the
/// three attention times in ms.
pub const MIXED_HEADER: &str = "sms,chunk,before,batch,context,decode_ms,prefill_ms,mixed_ms,two_calls_ms";

/// The samples of a `mixed.csv`: the same parts against one call and against two calls in one step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MixedFile {
    /// `mixed_ns` is the one-call time.
    pub one_call: Vec<MixedAttentionSample>,
    /// `mixed_ns` is the two-calls time.
    pub two_calls: Vec<MixedAttentionSample>,
}

/// Whether `path` is a `mixed.csv` (its first line is [`MIXED_HEADER`]).
pub fn is_mixed(path: &Path) -> bool {
    table::has_header(path, MIXED_HEADER)
}

/// Reads a `mixed.csv` into samples (ms to ns); a field that is not a positive finite number (`before`: not
/// negative; `sms`: a whole number) is an error naming the file, line, field and value.
pub fn read_mixed(path: &Path) -> Result<MixedFile, CalibrationError> {
    let rows = table::read_rows::<9>(path, MIXED_HEADER, |name| match name {
        "sms" => Least::WholePositive,
        // Cached tokens ahead of the chunk.
        "before" => Least::NonNegative,
        _ => Least::Positive,
    })?;
    let mut out = MixedFile::default();
    for v in rows {
        let one = MixedAttentionSample {
            sms: v[0] as u32,
            decode_ns: v[5] * 1e6,
            prefill_ns: v[6] * 1e6,
            mixed_ns: v[7] * 1e6,
        };
        out.two_calls.push(MixedAttentionSample { mixed_ns: v[8] * 1e6, ..one });
        out.one_call.push(one);
    }
    Ok(out)
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
    fn mixed_csv_reads_in_ns_and_names_bad_fields() {
        let dir = std::env::temp_dir().join(format!("duet-mixed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("mixed.csv");
        std::fs::write(&p, format!("{MIXED_HEADER}\n132,512,0,16,1024,0.05,0.2,0.3,0.26\n\n")).unwrap();
        assert!(is_mixed(&p));
        let f = read_mixed(&p).unwrap();
        let one = MixedAttentionSample { sms: 132, decode_ns: 50_000.0, prefill_ns: 200_000.0, mixed_ns: 300_000.0 };
        assert_eq!(f.one_call, [one]);
        assert_eq!(f.two_calls, [MixedAttentionSample { mixed_ns: 260_000.0, ..one }]);
        // (0.3 - 0.2 - 0.05) / 0.05 = 1: the decodes took twice as long inside the one call; two calls 0.2.
        assert!((fit_mixed_attention_penalty(&p, &f.one_call).unwrap() - 1.0).abs() < 1e-9);
        assert!((fit_mixed_attention_penalty(&p, &f.two_calls).unwrap() - 0.2).abs() < 1e-9);
        std::fs::write(&p, format!("{MIXED_HEADER}\n132,512,1,16,1024,0.05,-1,0.3,0.3\n")).unwrap();
        let e = read_mixed(&p).unwrap_err().to_string();
        assert!(e.contains("mixed.csv:2") && e.contains("prefill_ms must be > 0, got \"-1\""), "{e}");
        std::fs::write(&p, format!("{MIXED_HEADER}\n132,512\n")).unwrap();
        assert!(read_mixed(&p).unwrap_err().to_string().contains("expected 9 fields, got 2"));
        std::fs::write(&p, "sms,other\n").unwrap();
        assert!(!is_mixed(&p));
        assert!(read_mixed(&p).unwrap_err().to_string().contains("expected the header"));
        std::fs::remove_dir_all(&dir).unwrap();
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
