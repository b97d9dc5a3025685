//! Descriptive statistics with numpy's conventions (what `vllm bench serve` uses).

use serde::Serialize;

/// `np.percentile(x, p)` with linear interpolation on an ascending-sorted slice; 0 for an empty slice
/// (vLLM reports 0 where it has no samples).
///
/// For `n` values, rank `k = p / 100 x (n - 1)`; result `x[floor k] + (x[ceil k] - x[floor k]) x (k - floor k)`.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// Mean, median, population standard deviation (`np.std`), p90 and p99 of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Dist {
    /// Arithmetic mean.
    pub mean: f64,
    /// 50th percentile.
    pub median: f64,
    /// Population standard deviation `sqrt(mean((x - mean)^2))`.
    pub std: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Dist {
    /// Statistics of `values` (sorted in place); all zero for an empty sample.
    pub fn of(values: &mut [f64]) -> Dist {
        if values.is_empty() {
            return Dist::default();
        }
        values.sort_by(f64::total_cmp);
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        Dist {
            mean,
            median: percentile(values, 50.0),
            std: var.sqrt(),
            p90: percentile(values, 90.0),
            p99: percentile(values, 99.0),
        }
    }
}

impl Dist {
    /// Statistics in **ms** of durations given in ns, already sorted ascending (no copy: the ITL population of a
    /// long trace has millions of entries). Same definitions as [`Dist::of`].
    pub fn of_sorted_ns(sorted: &[u64]) -> Dist {
        debug_assert!(sorted.is_sorted());
        if sorted.is_empty() {
            return Dist::default();
        }
        let n = sorted.len() as f64;
        let ms = |v: u64| v as f64 / 1e6;
        let mean = sorted.iter().map(|&v| ms(v)).sum::<f64>() / n;
        let var = sorted.iter().map(|&v| (ms(v) - mean) * (ms(v) - mean)).sum::<f64>() / n;
        let pct = |p: f64| {
            let rank = p / 100.0 * (sorted.len() - 1) as f64;
            let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
            ms(sorted[lo]) + (ms(sorted[hi]) - ms(sorted[lo])) * (rank - lo as f64)
        };
        Dist { mean, median: pct(50.0), std: var.sqrt(), p90: pct(90.0), p99: pct(99.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy() {
        // np.percentile([1, 2, 3, 4], [50, 90, 99]) = [2.5, 3.7, 3.97]; np.std = sqrt(1.25).
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        let d = Dist::of(&mut v);
        assert_eq!(d.mean, 2.5);
        assert_eq!(d.median, 2.5);
        assert!((d.p90 - 3.7).abs() < 1e-12 && (d.p99 - 3.97).abs() < 1e-12);
        assert!((d.std - 1.25f64.sqrt()).abs() < 1e-12);
        assert_eq!(Dist::of(&mut []), Dist::default());
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        let ns = Dist::of_sorted_ns(&[1_000_000, 2_000_000, 3_000_000, 4_000_000]);
        assert_eq!((ns.mean, ns.median), (2.5, 2.5));
        assert!((ns.p90 - 3.7).abs() < 1e-12 && (ns.std - 1.25f64.sqrt()).abs() < 1e-12);
    }
}
