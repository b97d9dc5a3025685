//! Stopping a run as soon as a percentile limit is certain to fail (capacity searches, issue 23).
//!
//! With `N` values sorted ascending, numpy's percentile `p` interpolates between `x[lo]` and `x[lo + 1]` at rank
//! `p / 100 x (N - 1)`, `lo` its floor ([`crate::stats::percentile`]), so it is at least `x[lo]`. Once `N - lo`
//! values exceed a limit, `x[lo]` does, and so does the percentile: the run can only fail `percentile <= limit`.
//! The engine counts values over each limit as they are produced (a request's TTFT at its first token, every
//! inter-token gap, a request's largest gap when it first crosses the limit) and stops with
//! [`SimError::LimitExceeded`] when a count reaches `N - lo`. `N` is known from the start: every request
//! completes (TTFT), each emits `output - 1` gaps (ITL), requests with more than one output token have a largest
//! gap (TBT). Values are compared in ms exactly as the summary computes them (`ns as f64 / 1e6`).

use duet_traces::RequestSpec;

use crate::error::SimError;

/// Percentile limits a run may stop on early: each `(p, limit_ms)` stands for `p-th percentile <= limit_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StopLimits {
    /// Limit on TTFT.
    pub ttft: Option<(f64, f64)>,
    /// Limit on the pooled inter-token gaps (ITL).
    pub itl: Option<(f64, f64)>,
    /// Limit on each request's largest gap (TBT).
    pub tbt: Option<(f64, f64)>,
}

impl StopLimits {
    /// The limit a `summary.json` field name and value stand for, if the field is a percentile (`median`, `p90`,
    /// `p99`) of `ttft_ms`, `itl_ms` or `tbt_ms`; adds it and returns true, else returns false.
    pub fn add_field(&mut self, field: &str, limit_ms: f64) -> bool {
        let Some((p, metric)) = field
            .strip_prefix("median_")
            .map(|m| (50.0, m))
            .or_else(|| field.strip_prefix("p90_").map(|m| (90.0, m)))
            .or_else(|| field.strip_prefix("p99_").map(|m| (99.0, m)))
        else {
            return false;
        };
        let slot = match metric {
            "ttft_ms" => &mut self.ttft,
            "itl_ms" => &mut self.itl,
            "tbt_ms" => &mut self.tbt,
            _ => return false,
        };
        // One limit per metric is watched (the first named); a second one on the same metric is still checked
        // when the run ends, it only cannot stop the run early.
        if slot.is_none() {
            *slot = Some((p, limit_ms));
        }
        true
    }

    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.ttft.is_some() || self.itl.is_some() || self.tbt.is_some()
    }
}

/// One limit's count of values over it and the count that decides the failure.
#[derive(Debug, Clone, Copy)]
struct Counter {
    limit_ms: f64,
    over: u64,
    decides: u64,
    name: &'static str,
    p: f64,
}

impl Counter {
    /// For `n` values and percentile `p`: `n - floor(p / 100 x (n - 1))` values over the limit decide.
    fn new(name: &'static str, (p, limit_ms): (f64, f64), n: u64) -> Option<Self> {
        if n == 0 {
            return None;
        }
        let lo = (p / 100.0 * (n - 1) as f64).floor() as u64;
        Some(Self { limit_ms, over: 0, decides: n - lo, name, p })
    }

    #[inline]
    fn is_over(&self, ns: u64) -> bool {
        ns as f64 / 1e6 > self.limit_ms
    }
}

/// The counters of a run ([`StopLimits`]).
#[derive(Debug, Clone)]
pub(super) struct Watch {
    ttft: Option<Counter>,
    itl: Option<Counter>,
    tbt: Option<Counter>,
    tripped: Option<Counter>,
}

impl Watch {
    /// Counters for `specs` (the whole workload).
    pub(super) fn new(limits: &StopLimits, specs: &[RequestSpec]) -> Self {
        let n = specs.len() as u64;
        let gaps: u64 = specs.iter().map(|s| u64::from(s.output_tokens) - 1).sum();
        let multi = specs.iter().filter(|s| s.output_tokens > 1).count() as u64;
        Self {
            ttft: limits.ttft.and_then(|l| Counter::new("TTFT", l, n)),
            itl: limits.itl.and_then(|l| Counter::new("ITL", l, gaps)),
            tbt: limits.tbt.and_then(|l| Counter::new("TBT", l, multi)),
            tripped: None,
        }
    }

    fn count(c: &mut Option<Counter>, tripped: &mut Option<Counter>, n: u64) {
        if let Some(c) = c {
            c.over += n;
            if c.over >= c.decides && tripped.is_none() {
                *tripped = Some(*c);
            }
        }
    }

    /// A request's first token, `ttft_ns` after its arrival.
    #[inline]
    pub(super) fn first_token(&mut self, ttft_ns: u64) {
        if self.ttft.is_some_and(|c| c.is_over(ttft_ns)) {
            Self::count(&mut self.ttft, &mut self.tripped, 1);
        }
    }

    /// `n` gaps of `gap_ns`.
    #[inline]
    pub(super) fn gaps(&mut self, gap_ns: u64, n: u64) {
        if self.itl.is_some_and(|c| c.is_over(gap_ns)) {
            Self::count(&mut self.itl, &mut self.tripped, n);
        }
    }

    /// A request's largest gap went from `before_ns` to `after_ns`.
    #[inline]
    pub(super) fn largest_gap(&mut self, before_ns: u64, after_ns: u64) {
        if let Some(c) = self.tbt
            && !c.is_over(before_ns)
            && c.is_over(after_ns)
        {
            Self::count(&mut self.tbt, &mut self.tripped, 1);
        }
    }

    /// The error to stop with, once a limit is certain to fail.
    pub(super) fn verdict(&self) -> Result<(), SimError> {
        match self.tripped {
            None => Ok(()),
            Some(c) => Err(SimError::LimitExceeded {
                what: format!(
                    "{} of {} {} values exceed {} ms, so its {}th percentile does",
                    c.over,
                    c.name,
                    if c.name == "ITL" { "gap" } else { "request" },
                    c.limit_ms,
                    c.p
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::percentile;

    #[test]
    fn the_deciding_count_is_where_the_percentile_must_exceed_the_limit() {
        // For every n and p: with `decides` values over the limit the percentile exceeds it however the others lie
        // (here: at the limit); with one fewer it may not (others far below, the rest just over).
        for n in 1..200u64 {
            for p in [50.0, 90.0, 99.0] {
                let c = Counter::new("TTFT", (p, 10.0), n).unwrap();
                let sample = |over: u64, under: f64| -> f64 {
                    let v: Vec<f64> = (0..n).map(|i| if i < n - over { under } else { 10.0 + 1e-9 }).collect();
                    percentile(&v, p)
                };
                assert!(sample(c.decides, 10.0) > 10.0, "n {n} p {p}");
                assert!(sample(c.decides - 1, 0.0) <= 10.0, "n {n} p {p}");
            }
        }
    }

    #[test]
    fn fields_map_to_limits() {
        let mut l = StopLimits::default();
        assert!(l.add_field("p99_ttft_ms", 5000.0));
        assert!(l.add_field("p99_itl_ms", 100.0));
        assert!(l.add_field("median_tbt_ms", 80.0));
        assert!(!l.add_field("mean_ttft_ms", 1.0));
        assert!(!l.add_field("p99_e2el_ms", 1.0));
        assert_eq!(l.ttft, Some((99.0, 5000.0)));
        assert_eq!(l.itl, Some((99.0, 100.0)));
        assert_eq!(l.tbt, Some((50.0, 80.0)));
    }
}
