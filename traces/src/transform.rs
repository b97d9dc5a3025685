//! Workload transforms: change the arrival rate, keep the first N requests.
//!
//! Rate changes scale arrival times and keep lengths and order: multiplying the rate by `f` divides every
//! arrival time by `f` (rounded to the nearest nanosecond).

use crate::error::TraceError;
use crate::spec::Workload;

/// Multiplies the arrival rate by `factor` (> 0): every arrival time is divided by `factor`.
pub fn scale_rate(mut w: Workload, factor: f64) -> Result<Workload, TraceError> {
    if !(factor.is_finite() && factor > 0.0) {
        return Err(TraceError::InvalidParameter(format!("rate scale must be > 0, got {factor}")));
    }
    for r in &mut w.requests {
        r.arrival_ns = (r.arrival_ns as f64 / factor).round() as u64;
    }
    w.source = format!("{} x rate {factor}", w.source);
    Ok(w)
}

/// Rescales arrival times so the mean rate ([`Workload::mean_rate`]) becomes `rate_per_s`.
pub fn rescale_to_rate(w: Workload, rate_per_s: f64) -> Result<Workload, TraceError> {
    if !(rate_per_s.is_finite() && rate_per_s > 0.0) {
        return Err(TraceError::InvalidParameter(format!("rate must be > 0 req/s, got {rate_per_s}")));
    }
    let current = w.mean_rate().ok_or_else(|| {
        TraceError::InvalidParameter(
            "cannot rescale the rate of a workload with fewer than 2 distinct arrival times".into(),
        )
    })?;
    scale_rate(w, rate_per_s / current)
}

/// Keeps the first `n` requests (all of them if there are fewer).
pub fn first_n(mut w: Workload, n: usize) -> Result<Workload, TraceError> {
    if n == 0 {
        return Err(TraceError::InvalidParameter("number of requests to keep must be >= 1".into()));
    }
    w.requests.truncate(n);
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RequestSpec;

    fn w(times: &[u64]) -> Workload {
        let reqs =
            times.iter().map(|&t| RequestSpec { id: 0, arrival_ns: t, input_tokens: 5, output_tokens: 5 }).collect();
        Workload::from_unsorted("t".into(), reqs)
    }

    #[test]
    fn scaling_divides_times() {
        let out = scale_rate(w(&[0, 3_000, 9_000]), 3.0).unwrap();
        let t: Vec<_> = out.requests.iter().map(|r| r.arrival_ns).collect();
        assert_eq!(t, vec![0, 1_000, 3_000]);
        assert!(scale_rate(w(&[0, 1]), 0.0).is_err());
        assert!(scale_rate(w(&[0, 1]), -2.0).is_err());
    }

    #[test]
    fn rescale_hits_target_rate() {
        // 3 requests over 4 s: mean rate 0.5 req/s; to 2 req/s the span becomes 1 s.
        let out = rescale_to_rate(w(&[0, 1_000_000_000, 4_000_000_000]), 2.0).unwrap();
        assert_eq!(out.span_ns(), 1_000_000_000);
        assert_eq!(out.mean_rate(), Some(2.0));
        assert!(rescale_to_rate(w(&[7]), 2.0).is_err());
    }

    #[test]
    fn first_n_truncates() {
        assert_eq!(first_n(w(&[0, 1, 2]), 2).unwrap().len(), 2);
        assert_eq!(first_n(w(&[0, 1, 2]), 10).unwrap().len(), 3);
        assert!(first_n(w(&[0]), 0).is_err());
    }
}
