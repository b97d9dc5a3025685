//! The client and frontend in front of the engine: when the engine sees each request.
//!
//! Two effects of a serving stack's front end, both off by default:
//! - **frontend**: the API server handles requests one at a time (parsing, chat template, tokenisation,
//!   hand-off to the engine), `frontend_ns` each; request `i`, sent at `s_i`, reaches the scheduler at
//!   `e_i = max(s_i, e_{i-1}) + frontend_ns`. Its TTFT still counts from `s_i`.
//! - **closed loop** (`vllm bench serve --max-concurrency C`): at most `C` requests are outstanding; request
//!   `i > C` is sent when its arrival time has come *and* an earlier request has finished:
//!   `s_i = max(a_i, finish of the (i - C)-th request to finish)`. Its arrival, for every metric, is `s_i`
//!   (the benchmark starts its clock when the request is sent).

use std::collections::VecDeque;

use duet_traces::RequestSpec;

use crate::time::Nanos;

/// Client and frontend settings (module docs). The default (no frontend cost, open loop) sends every request
/// at its arrival time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientConfig {
    /// Serial frontend time per request, ns.
    pub frontend_ns: u64,
    /// Most requests outstanding at once (closed loop); `None`: open loop.
    pub max_concurrency: Option<u32>,
}

impl ClientConfig {
    /// Whether requests reach the engine exactly at their arrival times.
    pub fn is_transparent(&self) -> bool {
        self.frontend_ns == 0 && self.max_concurrency.is_none()
    }
}

/// Requests not yet sent (closed loop) and when the frontend is next free.
#[derive(Debug, Default)]
pub(super) struct Client {
    pub cfg: ClientConfig,
    frontend_free: Nanos,
    pending: VecDeque<(RequestSpec, Option<Vec<u64>>)>,
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Self {
        Self { cfg, ..Self::default() }
    }

    /// Whether request number `i` (0-based, in arrival order) is sent at the start (open loop: all are).
    pub fn sends_at_start(&self, i: usize) -> bool {
        self.cfg.max_concurrency.is_none_or(|c| i < c as usize)
    }

    /// Holds a request until an earlier one finishes.
    pub fn hold(&mut self, spec: RequestSpec, hashes: Option<&[u64]>) {
        self.pending.push_back((spec, hashes.map(<[u64]>::to_vec)));
    }

    /// The next held request, if any (called when a request finishes).
    pub fn next_held(&mut self) -> Option<(RequestSpec, Option<Vec<u64>>)> {
        self.pending.pop_front()
    }

    /// Sends `spec` no earlier than `now`: returns the spec with its arrival set to the send time and the time
    /// it reaches the scheduler.
    pub fn send(&mut self, mut spec: RequestSpec, now: Nanos) -> (RequestSpec, Nanos) {
        let sent = Nanos(spec.arrival_ns).max(now);
        let at = sent.max(self.frontend_free) + Nanos(self.cfg.frontend_ns);
        self.frontend_free = at;
        spec.arrival_ns = sent.0;
        (spec, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: u32, arrival_ns: u64) -> RequestSpec {
        RequestSpec { id, arrival_ns, input_tokens: 8, output_tokens: 2 }
    }

    #[test]
    fn the_frontend_serves_one_request_at_a_time() {
        let mut c = Client::new(ClientConfig { frontend_ns: 10, max_concurrency: None });
        // Three requests at once: they reach the scheduler 10, 20 and 30 ns later; a late one waits for none.
        let at: Vec<u64> = [0, 0, 0, 100].iter().map(|&a| c.send(spec(0, a), Nanos(0)).1.0).collect();
        assert_eq!(at, [10, 20, 30, 110]);
    }

    #[test]
    fn a_held_request_is_sent_when_released_and_counts_from_then() {
        let mut c = Client::new(ClientConfig { frontend_ns: 0, max_concurrency: Some(1) });
        assert!(c.sends_at_start(0) && !c.sends_at_start(1));
        c.hold(spec(1, 5), Some(&[7, 8]));
        let (s, h) = c.next_held().unwrap();
        assert_eq!(h.as_deref(), Some(&[7u64, 8][..]));
        let (sent, at) = c.send(s, Nanos(50));
        assert_eq!((sent.arrival_ns, at), (50, Nanos(50)));
        assert!(c.next_held().is_none());
    }
}
