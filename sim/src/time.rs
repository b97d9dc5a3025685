//! Simulated time: integer nanoseconds, never floating point, so runs are exact and reproducible.

use std::fmt;
use std::ops::{Add, Sub};

/// A point in time or a duration, in integer nanoseconds since the start of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Nanos(pub u64);

impl Nanos {
    /// Zero.
    pub const ZERO: Nanos = Nanos(0);

    /// Rounds a non-negative number of seconds to the nearest nanosecond.
    pub fn from_secs_f64(s: f64) -> Nanos {
        debug_assert!(s >= 0.0 && s.is_finite(), "bad duration {s}");
        Nanos((s * 1e9).round() as u64)
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
