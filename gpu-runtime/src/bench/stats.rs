//! Statistics of repeated timings: median (the value records use), mean, min, max and standard deviation.

use duet_calibration::record::TimeStats;

/// Summary of `samples` (ms). `None` when there are none or any is not a positive finite number.
pub fn summarize(samples: &[f64]) -> Option<TimeStats> {
    if samples.is_empty() || samples.iter().any(|v| !v.is_finite() || *v <= 0.0) {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 { s[n / 2] } else { 0.5 * (s[n / 2 - 1] + s[n / 2]) };
    let mean = s.iter().sum::<f64>() / n as f64;
    let var = s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    Some(TimeStats { median, mean: Some(mean), min: Some(s[0]), max: Some(s[n - 1]), std: Some(var.sqrt()) })
}

/// Launches per timed round so that a round lasts about `target_ms` given one launch took `probe_ms`
/// (between 1 and `max`).
pub fn launches_per_round(probe_ms: f64, target_ms: f64, max: u32) -> u32 {
    if !(probe_ms.is_finite() && probe_ms > 0.0) {
        return max;
    }
    ((target_ms / probe_ms).ceil() as u32).clamp(1, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread_by_hand() {
        let s = summarize(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.mean), (2.0, Some(1.0), Some(3.0), Some(2.0)));
        assert!((s.std.unwrap() - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(summarize(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[1.0, 0.0]).is_none(), "a zero time is a broken measurement");
        assert!(summarize(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn rounds_take_about_the_target() {
        assert_eq!(launches_per_round(0.004, 1.0, 200), 200);
        assert_eq!(launches_per_round(0.1, 1.0, 200), 10);
        assert_eq!(launches_per_round(5.0, 1.0, 200), 1);
        assert_eq!(launches_per_round(0.0, 1.0, 7), 7);
    }
}
