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

/// A multiset of durations in ns kept as `(value, count)` runs: the sequences of one step all see the same
/// inter-token gap, so a step adds one run instead of one value per token (a 4-million-token trace holds a few
/// hundred thousand runs, not 4 million values). [`Gaps::sort`] orders the runs by value and merges equal ones;
/// [`Dist::of_gaps`] then gives exactly what [`Dist::of_sorted_ns`] gives on the expanded values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gaps {
    runs: Vec<(u64, u64)>,
    count: u64,
}

impl Gaps {
    /// An empty multiset.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value (merged into the last run when equal to it).
    #[inline]
    pub fn push(&mut self, v: u64) {
        self.push_n(v, 1);
    }

    /// Adds `n` copies of `v`.
    #[inline]
    pub fn push_n(&mut self, v: u64, n: u64) {
        if n == 0 {
            return;
        }
        match self.runs.last_mut() {
            Some(last) if last.0 == v => last.1 += n,
            _ => self.runs.push((v, n)),
        }
        self.count += n;
    }

    /// Adds every value of `other`.
    pub fn append(&mut self, other: &Gaps) {
        for &(v, n) in &other.runs {
            self.push_n(v, n);
        }
    }

    /// Number of values (with multiplicity).
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether there is no value.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Orders the runs by value and merges runs of equal values (ascending, distinct values).
    pub fn sort(&mut self) {
        self.runs.sort_unstable_by_key(|r| r.0);
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.runs.len());
        for &(v, n) in &self.runs {
            match merged.last_mut() {
                Some(last) if last.0 == v => last.1 += n,
                _ => merged.push((v, n)),
            }
        }
        self.runs = merged;
    }

    /// The union of sorted multisets (each after [`Gaps::sort`]), sorted and merged like [`Gaps::sort`]'s result:
    /// two at a time, each merge linear in the runs.
    pub fn merge_sorted(parts: Vec<Gaps>) -> Gaps {
        let mut acc = Gaps::new();
        for p in parts {
            debug_assert!(p.runs.windows(2).all(|w| w[0].0 < w[1].0), "gaps not sorted");
            if acc.is_empty() {
                acc = p;
                continue;
            }
            let mut runs = Vec::with_capacity(acc.runs.len() + p.runs.len());
            let (mut a, mut b) = (acc.runs.iter().peekable(), p.runs.iter().peekable());
            loop {
                let next = match (a.peek(), b.peek()) {
                    (Some(x), Some(y)) if x.0 < y.0 => *a.next().expect("peeked"),
                    (Some(x), Some(y)) if x.0 > y.0 => *b.next().expect("peeked"),
                    (Some(_), Some(_)) => {
                        let (x, y) = (a.next().expect("peeked"), b.next().expect("peeked"));
                        (x.0, x.1 + y.1)
                    }
                    (Some(_), None) => *a.next().expect("peeked"),
                    (None, Some(_)) => *b.next().expect("peeked"),
                    (None, None) => break,
                };
                runs.push(next);
            }
            acc = Gaps { runs, count: acc.count + p.count };
        }
        acc
    }

    /// The `(value, count)` runs, in the order kept (ascending and distinct after [`Gaps::sort`]).
    pub fn runs(&self) -> &[(u64, u64)] {
        &self.runs
    }

    /// Every value, each as many times as it was added, in run order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs.iter().flat_map(|&(v, n)| std::iter::repeat_n(v, n as usize))
    }

    /// Every value expanded into a vector (tests and small outputs).
    pub fn to_vec(&self) -> Vec<u64> {
        self.iter().collect()
    }

    /// The value at 0-based rank `k` of the run order (`k < len`).
    fn at(&self, k: u64) -> u64 {
        let mut seen = 0;
        for &(v, n) in &self.runs {
            seen += n;
            if k < seen {
                return v;
            }
        }
        unreachable!("rank {k} of {} values", self.count)
    }
}

impl FromIterator<u64> for Gaps {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        let mut g = Gaps::new();
        for v in iter {
            g.push(v);
        }
        g
    }
}

impl Dist {
    /// Statistics in **ms** of the durations of `gaps` (ns), which must be sorted ([`Gaps::sort`]): the same
    /// values, bit for bit, as [`Dist::of_sorted_ns`] on the expanded ascending values (sums are taken value by
    /// value in ascending order; percentile ranks are located in the runs).
    pub fn of_gaps(gaps: &Gaps) -> Dist {
        debug_assert!(gaps.runs.windows(2).all(|w| w[0].0 < w[1].0), "gaps not sorted");
        if gaps.is_empty() {
            return Dist::default();
        }
        let n = gaps.count as f64;
        let ms = |v: u64| v as f64 / 1e6;
        let mut sum = 0.0;
        for &(v, c) in &gaps.runs {
            sum = add_repeated(sum, ms(v), c);
        }
        let mean = sum / n;
        let mut var = 0.0;
        for &(v, c) in &gaps.runs {
            var = add_repeated(var, (ms(v) - mean) * (ms(v) - mean), c);
        }
        let var = var / n;
        let pct = |p: f64| {
            let rank = p / 100.0 * (gaps.count - 1) as f64;
            let (lo, hi) = (rank.floor() as u64, rank.ceil() as u64);
            let (a, b) = (ms(gaps.at(lo)), ms(gaps.at(hi)));
            a + (b - a) * (rank - lo as f64)
        };
        Dist { mean, median: pct(50.0), std: var.sqrt(), p90: pct(90.0), p99: pct(99.0) }
    }
}

/// `s` after `c` times `s += x`, each sum rounded to nearest (ties to even), for finite `s >= 0` and `x >= 0`: the
/// same bits as the loop, in a few operations per binade of `s` instead of one per addition.
///
/// Why it is exact: every double in the binade `[2^e, 2^(e+1))` of `s` is a multiple of its ulp `u`. When `x / u`
/// is not exactly halfway between two integers, `fl(s + x) = s + u round(x / u) = s + r` for every such `s` whose
/// exact sum stays below `2^(e+1)`, so `k` further additions give exactly `s + k r` while `s + k r <= 2^(e+1) - u`
/// (then `s + x < s + r + u/2 < 2^(e+1)` at every step). Anything else (a tie, a subnormal `s` or `u`, a sum that
/// leaves the binade, fewer than four additions left) is added one at a time, as the loop would.
pub fn add_repeated(mut s: f64, x: f64, mut c: u64) -> f64 {
    debug_assert!(s >= 0.0 && x >= 0.0 && s.is_finite() && x.is_finite(), "add_repeated({s}, {x}, {c})");
    while c > 0 {
        let e = s.to_bits() >> 52;
        // Biased exponents: u = 2^(e - 52) normal and 2^(e + 1) finite, or the plain path.
        if c < 4 || e <= 53 || e >= 2046 {
            s += x;
            c -= 1;
            continue;
        }
        let u = f64::from_bits((e - 52) << 52);
        let hi = f64::from_bits((e + 1) << 52);
        let q = x / u;
        let t = s + x;
        if !q.is_finite() || q.fract() == 0.5 || t >= hi {
            s = t;
            c -= 1;
            continue;
        }
        let r = t - s;
        if r == 0.0 {
            return s;
        }
        // Multiples of u, below 2^53 of them: exact in u64.
        let (room, m) = (((hi - s) / u) as u64, (r / u) as u64);
        let k = c.min((room - 1) / m);
        if k == 0 {
            s = t;
            c -= 1;
            continue;
        }
        s += (k * m) as f64 * u;
        c -= k;
    }
    s
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
        assert_eq!(Dist::of_gaps(&Gaps::new()), Dist::default());
    }

    fn add_loop(mut s: f64, x: f64, c: u64) -> f64 {
        for _ in 0..c {
            s += x;
        }
        s
    }

    #[test]
    fn repeated_additions_by_hand() {
        // Ties (x = u/2 at s = 2^53: u = 2) and sums crossing binades take the careful path, with the loop's bits.
        for (s, x, c) in [
            (9007199254740992.0, 1.0, 10),
            (9007199254740992.0, 3.0, 1000),
            (0.0, 0.1, 100_000),
            (1e8, 0.0, 5),
            (1.0, 1e-17, 1000),
            (0.0, 5e-324, 10),
            (1e300, 1e300, 100),
            (123.456, 0.001, 3),
            (0.0, 23.456789, 4_000_000),
        ] {
            assert_eq!(add_repeated(s, x, c).to_bits(), add_loop(s, x, c).to_bits(), "{s} + {c} x {x}");
        }
    }

    proptest::proptest! {
        /// `add_repeated` is the loop, bit for bit, over gap-like values (ms) and counts of all sizes.
        #[test]
        fn repeated_additions_are_the_loop(s in 0.0f64..1e9, ns in 0u64..10_000_000_000, c in 0u64..20_000, tiny in proptest::bool::ANY) {
            let x = if tiny { ns as f64 * 1e-20 } else { ns as f64 / 1e6 };
            proptest::prop_assert_eq!(add_repeated(s, x, c).to_bits(), add_loop(s, x, c).to_bits());
            proptest::prop_assert_eq!(add_repeated(0.0, x, c).to_bits(), add_loop(0.0, x, c).to_bits());
        }

        /// Merging sorted parts gives what appending them and sorting gives.
        #[test]
        fn merging_sorted_parts_is_appending_and_sorting(parts in proptest::collection::vec(proptest::collection::vec((0u64..30, 1u64..4), 0..40), 0..6)) {
            let parts: Vec<Gaps> = parts
                .iter()
                .map(|p| {
                    let mut g = Gaps::new();
                    for &(v, n) in p {
                        g.push_n(v * 1_000_003, n);
                    }
                    g.sort();
                    g
                })
                .collect();
            let mut want = Gaps::new();
            for p in &parts {
                want.append(p);
            }
            want.sort();
            proptest::prop_assert_eq!(Gaps::merge_sorted(parts), want);
        }

        /// Runs give bit-identical statistics to the expanded, sorted values, whatever the order and grouping.
        #[test]
        fn gaps_match_the_expanded_values(values in proptest::collection::vec((0u64..40, 1u64..5), 1..60)) {
            let mut g = Gaps::new();
            let mut flat = Vec::new();
            for &(v, n) in &values {
                // Few distinct values (ties and merges), some big enough to round in ms.
                let v = v * 1_234_567 + 89;
                g.push_n(v, n);
                flat.extend(std::iter::repeat_n(v, n as usize));
            }
            flat.sort_unstable();
            g.sort();
            proptest::prop_assert_eq!(g.len(), flat.len() as u64);
            proptest::prop_assert_eq!(g.to_vec(), flat.clone());
            let (a, b) = (Dist::of_gaps(&g), Dist::of_sorted_ns(&flat));
            proptest::prop_assert_eq!(a.mean.to_bits(), b.mean.to_bits());
            proptest::prop_assert_eq!(a.std.to_bits(), b.std.to_bits());
            for (x, y) in [(a.median, b.median), (a.p90, b.p90), (a.p99, b.p99)] {
                proptest::prop_assert_eq!(x.to_bits(), y.to_bits());
            }
        }
    }
}
