//! Simulated time: integer nanoseconds, never floating point, so runs are exact and reproducible.

use std::fmt;
use std::ops::{Add, Sub};

/// A point in time or a duration, in integer nanoseconds since the start of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Nanos(pub u64);

impl Nanos {
    /// Zero.
    pub const ZERO: Nanos = Nanos(0);

    /// Rounds a non-negative number of seconds to the nearest nanosecond (halves away from zero), exactly as
    /// `(s * 1e9).round() as u64`. Below 2^53 ns (104 days) without a call to `round`, which the baseline x86-64
    /// target cannot inline and which every iteration's cost goes through: the fraction `x - trunc(x)` is exact
    /// there.
    #[inline]
    pub fn from_secs_f64(s: f64) -> Nanos {
        debug_assert!(s >= 0.0 && s.is_finite(), "bad duration {s}");
        let x = s * 1e9;
        if (0.0..9_007_199_254_740_992.0).contains(&x) {
            let t = x as u64;
            return Nanos(t + u64::from(x - t as f64 >= 0.5));
        }
        Nanos(x.round() as u64)
    }

    /// A non-negative number of nanoseconds rounded up, exactly as `x.ceil() as u64`; below 2^53 without a
    /// call to `ceil` (see [`Nanos::from_secs_f64`]).
    #[inline]
    pub fn ceil(x: f64) -> Nanos {
        if (0.0..9_007_199_254_740_992.0).contains(&x) {
            let t = x as u64;
            return Nanos(t + u64::from((t as f64) < x));
        }
        Nanos(x.ceil() as u64)
    }

    /// This time in milliseconds, for reports.
    pub fn as_ms(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// This time in seconds, for reports.
    pub fn as_secs(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

impl Add for Nanos {
    type Output = Nanos;
    fn add(self, rhs: Nanos) -> Nanos {
        Nanos(self.0 + rhs.0)
    }
}

impl Sub for Nanos {
    type Output = Nanos;
    /// Panics on underflow in debug builds: a negative duration is always a bug.
    fn sub(self, rhs: Nanos) -> Nanos {
        Nanos(self.0 - rhs.0)
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} ms", self.as_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value `(s * 1e9).round() as u64` gives (the rule `from_secs_f64` implements without `round`).
    fn by_round(s: f64) -> u64 {
        (s * 1e9).round() as u64
    }

    #[test]
    fn rounding_matches_round_at_halves_and_edges() {
        let near_half: [f64; 6] = [0.5, 1.5, 2.5, 0.49999999999999994, 1.4999999999999998, 4_503_599_627_370_495.5];
        for x in near_half.into_iter().chain([0.0, 1.0, 9_007_199_254_740_991.0, 9_007_199_254_740_992.0, 1e19]) {
            for x in [x, f64::from_bits(x.to_bits() + 1), f64::from_bits(x.to_bits().saturating_sub(1))] {
                let s = x / 1e9;
                assert_eq!(Nanos::from_secs_f64(s).0, by_round(s), "{x:e} ns");
            }
        }
    }

    #[test]
    fn rounding_up_matches_ceil_at_integers_and_edges() {
        let edges: [f64; 7] = [0.0, 0.5, 1.0, 2.0, 4_503_599_627_370_495.5, 9_007_199_254_740_991.0, 1e19];
        for x in edges {
            for x in [x, f64::from_bits(x.to_bits() + 1), f64::from_bits(x.to_bits().saturating_sub(1))] {
                assert_eq!(Nanos::ceil(x).0, x.ceil() as u64, "{x:e}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn rounding_up_matches_ceil(bits in 0u64..0x4400_0000_0000_0000, x in 0.0f64..1e12) {
            for x in [f64::from_bits(bits), x] {
                proptest::prop_assert_eq!(Nanos::ceil(x).0, x.ceil() as u64);
            }
        }

        #[test]
        fn rounding_matches_round(bits in 0u64..0x4400_0000_0000_0000, secs in 0.0f64..1e6) {
            // Any non-negative double up to 2^65 ns, and seconds on the scale of a run.
            for s in [f64::from_bits(bits), secs] {
                proptest::prop_assert_eq!(Nanos::from_secs_f64(s).0, by_round(s));
            }
        }
    }
}
