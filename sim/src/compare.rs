//! Comparing predictions with measurements, in one place: the error of one prediction ([`pct_error`]) and the
//! summary of many ([`ErrorStats`], percentiles by [`crate::stats::percentile`], numpy's linear interpolation,
//! the same rule as every latency percentile duet reports). Used by `duet validate` (steps,
//! `crate::validate`), `duet calibrate check` (operators against a profile, `duet_calibration::check`) and
//! `duet roofline-check` (`crate::cost::check`).
//!
//! Definitions: `error = 100 x (predicted - measured) / measured` (%; positive when the prediction is too long);
//! `median_abs_pct`, `p90_abs_pct` are percentiles of `|error|`, `max_abs_pct` its largest value and
//! `mean_signed_pct` the mean of the signed errors (bias). An empty set gives zeros.

use serde::Serialize;

use crate::stats::percentile;

/// `100 x (predicted - measured) / measured`: the signed % error of one prediction.
pub fn pct_error(measured: f64, predicted: f64) -> f64 {
    100.0 * (predicted - measured) / measured
}

/// Absolute and signed percentage errors of a set of predictions.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ErrorStats {
    /// Predictions.
    pub count: usize,
    /// Median `|error|` (%).
    pub median_abs_pct: f64,
    /// 90th percentile `|error|` (%).
    pub p90_abs_pct: f64,
    /// Largest `|error|` (%).
    pub max_abs_pct: f64,
    /// Mean signed error (%): positive when predictions are too long.
    pub mean_signed_pct: f64,
}

impl ErrorStats {
    /// The summary of signed % errors ([`pct_error`] of each prediction).
    pub fn of(signed_pct: &[f64]) -> ErrorStats {
        let mut abs: Vec<f64> = signed_pct.iter().map(|e| e.abs()).collect();
        abs.sort_by(f64::total_cmp);
        ErrorStats {
            count: signed_pct.len(),
            median_abs_pct: percentile(&abs, 50.0),
            p90_abs_pct: percentile(&abs, 90.0),
            max_abs_pct: abs.last().copied().unwrap_or(0.0),
            mean_signed_pct: if signed_pct.is_empty() {
                0.0
            } else {
                signed_pct.iter().sum::<f64>() / signed_pct.len() as f64
            },
        }
    }

    /// The summary of `(measured, predicted)` pairs.
    pub fn of_pairs(pairs: &[(f64, f64)]) -> ErrorStats {
        ErrorStats::of(&pairs.iter().map(|&(m, p)| pct_error(m, p)).collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_stats_by_hand() {
        // Errors +10%, -20%, +30%, -40%, +50%: |e| sorted 10, 20, 30, 40, 50.
        let pairs = [(100.0, 110.0), (100.0, 80.0), (100.0, 130.0), (100.0, 60.0), (100.0, 150.0)];
        let s = ErrorStats::of_pairs(&pairs);
        assert_eq!(s.count, 5);
        assert!((s.median_abs_pct - 30.0).abs() < 1e-9);
        // Rank 0.9 x 4 = 3.6: 40 + 0.6 x (50 - 40) = 46 (numpy's linear interpolation).
        assert!((s.p90_abs_pct - 46.0).abs() < 1e-9, "{s:?}");
        assert!((s.max_abs_pct - 50.0).abs() < 1e-9);
        assert!((s.mean_signed_pct - 6.0).abs() < 1e-9);
        assert_eq!(ErrorStats::of(&[]), ErrorStats::default());
        assert_eq!(pct_error(200.0, 150.0), -25.0);
    }
}
