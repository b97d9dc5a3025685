//! Monotone piecewise-linear interpolation over table points.
//!
//! Between two points the value is linear in the coordinate; outside the table it is clamped to the end values.
//! Linear interpolation never overshoots its points, so a monotone table gives a monotone curve.

/// Value at `x` of the piecewise-linear curve through `(xs[i], ys[i])`; `xs` strictly increasing, non-empty.
pub fn linear(xs: &[f64], ys: &[f64], x: f64) -> f64 {
    debug_assert!(!xs.is_empty() && xs.len() == ys.len());
    if x <= xs[0] {
        return ys[0];
    }
    let last = xs.len() - 1;
    if x >= xs[last] {
        return ys[last];
    }
    let i = xs.partition_point(|&v| v <= x) - 1;
    let t = (x - xs[i]) / (xs[i + 1] - xs[i]);
    ys[i] + (ys[i + 1] - ys[i]) * t
}

/// Whether `xs` is strictly increasing.
pub fn strictly_increasing(xs: &[f64]) -> bool {
    xs.windows(2).all(|p| p[0] < p[1])
}

/// Position of `x` among strictly increasing `xs`: `(i, t)` with the value `ys[i] + (ys[i+1] - ys[i]) t`,
/// clamped at the ends (`t` in [0, 1]).
#[inline]
pub(crate) fn locate(xs: &[f64], x: f64) -> (usize, f64) {
    let last = xs.len() - 1;
    if last == 0 || x <= xs[0] {
        return (0, 0.0);
    }
    if x >= xs[last] {
        return (last - 1, 1.0);
    }
    let i = xs.partition_point(|&v| v <= x) - 1;
    (i, (x - xs[i]) / (xs[i + 1] - xs[i]))
}

#[inline]
pub(crate) fn at(ys: &[f64], (i, t): (usize, f64)) -> f64 {
    if ys.len() == 1 { ys[0] } else { ys[i] + (ys[i + 1] - ys[i]) * t }
}

/// Per-row interpolation without allocating (the cost model calls it millions of times).
#[inline]
pub(crate) fn row_value(rows: &[u32], num_sms: u32, table: &[f64], sms: u32) -> f64 {
    let s = f64::from(sms.clamp(1, num_sms));
    let first = f64::from(rows[0]);
    if s < first {
        return table[0] * s / first;
    }
    let last = rows.len() - 1;
    if last == 0 || s >= f64::from(rows[last]) {
        return table[last];
    }
    let i = rows.partition_point(|&v| f64::from(v) <= s) - 1;
    let t = (s - f64::from(rows[i])) / f64::from(rows[i + 1] - rows[i]);
    table[i] + (table[i + 1] - table[i]) * t
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hand_values() {
        let (xs, ys) = ([1.0, 2.0, 4.0], [10.0, 20.0, 20.0]);
        assert_eq!(linear(&xs, &ys, 0.0), 10.0);
        assert_eq!(linear(&xs, &ys, 1.5), 15.0);
        assert_eq!(linear(&xs, &ys, 3.0), 20.0);
        assert_eq!(linear(&xs, &ys, 9.0), 20.0);
    }

    proptest! {
        #[test]
        fn monotone_tables_give_monotone_curves(mut ys in prop::collection::vec(0.0f64..100.0, 2..12), a in 0.0f64..12.0, b in 0.0f64..12.0) {
            ys.sort_by(f64::total_cmp);
            let xs: Vec<f64> = (0..ys.len()).map(|i| i as f64).collect();
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(linear(&xs, &ys, lo) <= linear(&xs, &ys, hi));
            let v = linear(&xs, &ys, lo);
            prop_assert!(v >= ys[0] && v <= ys[ys.len() - 1]);
        }
    }
}
