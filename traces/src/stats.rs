//! Descriptive statistics of a trace (`duet trace stats`).
//!
//! - `span_s` = last arrival - first arrival; `mean_rate` = `rows / span_s` (as in the shared traces' README);
//! - `interarrival_cv` = population std / mean of the gaps between consecutive arrivals;
//! - `peak_per_minute` = most arrivals in one minute-long bin `[60 k, 60 (k + 1))` s from the first arrival;
//! - token statistics: mean, median, p90, p99 (numpy linear interpolation), max;
//! - `prefix_block_reuse` = share of hashed blocks whose hash occurred in an earlier block of the trace
//!   (`1 - distinct / total`), when the trace has prefix hashes.

use std::collections::HashSet;

use serde::Serialize;

use crate::spec::Workload;

/// Summary of one length dimension.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TokenStats {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: u32,
}

impl TokenStats {
    /// Statistics of `values`; all zero when empty.
    pub fn of(values: &mut [u32]) -> Self {
        if values.is_empty() {
            return Self { mean: 0.0, median: 0.0, p90: 0.0, p99: 0.0, max: 0 };
        }
        values.sort_unstable();
        let pct = |p: f64| {
            let rank = p / 100.0 * (values.len() - 1) as f64;
            let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
            f64::from(values[lo]) + (f64::from(values[hi]) - f64::from(values[lo])) * (rank - lo as f64)
        };
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64;
        Self { mean, median: pct(50.0), p90: pct(90.0), p99: pct(99.0), max: values[values.len() - 1] }
    }
}

/// Statistics of a trace; time fields are `None` for length-only traces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceStats {
    /// Number of requests.
    pub rows: usize,
    /// First to last arrival, seconds.
    pub span_s: Option<f64>,
    /// Requests per second over the span.
    pub mean_rate: Option<f64>,
    /// Coefficient of variation of inter-arrival gaps.
    pub interarrival_cv: Option<f64>,
    /// Most arrivals in one minute bin.
    pub peak_per_minute: Option<usize>,
    /// Prompt lengths.
    pub input_tokens: TokenStats,
    /// Output lengths.
    pub output_tokens: TokenStats,
    /// Share of repeated prefix blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_block_reuse: Option<f64>,
}

/// Statistics of lengths only.
pub fn of_lengths(pairs: &[(u32, u32)]) -> TraceStats {
    let mut i: Vec<u32> = pairs.iter().map(|p| p.0).collect();
    let mut o: Vec<u32> = pairs.iter().map(|p| p.1).collect();
    TraceStats {
        rows: pairs.len(),
        span_s: None,
        mean_rate: None,
        interarrival_cv: None,
        peak_per_minute: None,
        input_tokens: TokenStats::of(&mut i),
        output_tokens: TokenStats::of(&mut o),
        prefix_block_reuse: None,
    }
}

/// Statistics of a timed workload.
pub fn of_workload(w: &Workload) -> TraceStats {
    let mut s = of_lengths(&w.lengths());
    let span = w.span_ns() as f64 / 1e9;
    s.span_s = Some(span);
    s.mean_rate = (span > 0.0).then(|| w.len() as f64 / span);
    let gaps: Vec<f64> = w.requests.windows(2).map(|p| (p[1].arrival_ns - p[0].arrival_ns) as f64).collect();
    if !gaps.is_empty() {
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean) * (g - mean)).sum::<f64>() / gaps.len() as f64;
        s.interarrival_cv = (mean > 0.0).then(|| var.sqrt() / mean);
    }
    let mut per_minute = vec![0usize; (w.span_ns() / 60_000_000_000) as usize + 1];
    for r in &w.requests {
        per_minute[(r.arrival_ns / 60_000_000_000) as usize] += 1;
    }
    s.peak_per_minute = per_minute.into_iter().max();
    s.prefix_block_reuse = w.prefix.as_ref().filter(|p| !p.all().is_empty()).map(|p| {
        let distinct: HashSet<u64> = p.all().iter().copied().collect();
        1.0 - distinct.len() as f64 / p.all().len() as f64
    });
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RequestSpec;

    #[test]
    fn hand_computed() {
        // Arrivals 0, 1, 3 s -> gaps 1, 2: mean 1.5, std 0.5, CV 1/3; span 3 s; rate 3/3 = 1.
        let reqs = [(0, 10, 1), (1, 20, 2), (3, 30, 3)]
            .iter()
            .map(|&(t, i, o)| RequestSpec { id: 0, arrival_ns: t * 1_000_000_000, input_tokens: i, output_tokens: o })
            .collect();
        let w =
            Workload::from_unsorted_with_prefix("t".into(), reqs, Some((512, vec![vec![1, 2], vec![1, 3], vec![1]])));
        let s = of_workload(&w);
        assert_eq!((s.rows, s.span_s, s.mean_rate, s.peak_per_minute), (3, Some(3.0), Some(1.0), Some(3)));
        assert!((s.interarrival_cv.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.input_tokens, TokenStats { mean: 20.0, median: 20.0, p90: 28.0, p99: 29.8, max: 30 });
        // Blocks 1,2,1,3,1: 3 distinct of 5 -> reuse 0.4.
        assert!((s.prefix_block_reuse.unwrap() - 0.4).abs() < 1e-12);
    }
}
