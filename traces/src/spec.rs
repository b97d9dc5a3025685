//! The request spec every trace source produces.

/// One request as the workload describes it: when it arrives and how long its prompt and answer are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSpec {
    /// Position in the workload (0-based, in arrival order after sorting).
    pub id: u32,
    /// Arrival time in nanoseconds after the workload's first arrival.
    pub arrival_ns: u64,
    /// Prompt length in tokens (>= 1).
    pub input_tokens: u32,
    /// Tokens the request generates, the first one included (>= 1).
    pub output_tokens: u32,
}

/// A list of requests sorted by arrival time (ties keep source order), with ids `0..len` in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Where the requests came from, for reports (`azure:<file>`, `poisson(rate=..)`, ...).
    pub source: String,
    /// The requests, sorted by `arrival_ns`.
    pub requests: Vec<RequestSpec>,
}

impl Workload {
    /// Builds a workload from unsorted requests: sorts them stably by arrival, shifts times so the first
    /// arrival is at 0, and renumbers ids in the new order.
    pub fn from_unsorted(source: String, mut requests: Vec<RequestSpec>) -> Self {
        requests.sort_by_key(|r| r.arrival_ns);
        let t0 = requests.first().map_or(0, |r| r.arrival_ns);
        for (i, r) in requests.iter_mut().enumerate() {
            r.arrival_ns -= t0;
            r.id = i as u32;
        }
        Self { source, requests }
    }

    /// Number of requests.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// True when there is no request.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Time from the first to the last arrival, in nanoseconds.
    pub fn span_ns(&self) -> u64 {
        self.requests.last().map_or(0, |r| r.arrival_ns)
    }

    /// Mean arrival rate in requests per second, defined as `(n - 1) / span` (the inverse of the mean
    /// inter-arrival gap). `None` for fewer than two requests or a zero span.
    pub fn mean_rate(&self) -> Option<f64> {
        let span = self.span_ns();
        (self.len() >= 2 && span > 0).then(|| (self.len() - 1) as f64 / (span as f64 * 1e-9))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(arrival_ns: u64, input: u32) -> RequestSpec {
        RequestSpec { id: 99, arrival_ns, input_tokens: input, output_tokens: 1 }
    }

    #[test]
    fn from_unsorted_sorts_stably_shifts_and_renumbers() {
        let w = Workload::from_unsorted("t".into(), vec![spec(30, 1), spec(10, 2), spec(30, 3), spec(20, 4)]);
        let got: Vec<_> = w.requests.iter().map(|r| (r.id, r.arrival_ns, r.input_tokens)).collect();
        assert_eq!(got, vec![(0, 0, 2), (1, 10, 4), (2, 20, 1), (3, 20, 3)]);
    }

    #[test]
    fn mean_rate_is_inverse_mean_gap() {
        let w = Workload::from_unsorted("t".into(), vec![spec(0, 1), spec(500_000_000, 1), spec(1_000_000_000, 1)]);
        assert_eq!(w.mean_rate(), Some(2.0));
        let one = Workload::from_unsorted("t".into(), vec![spec(5, 1)]);
        assert_eq!(one.mean_rate(), None);
    }
}
