//! The client and frontend in front of the engine: when the engine sees each request.
//!
//! Effects of a serving stack's front end, all off by default:
//! - **frontend**: the API server is one serial worker (one event loop) that serves jobs in the order they join
//!   its queue. A job joining at `t` ends at `f = max(t, f_prev) + cost`, `f_prev` being the end of the job
//!   before it. A request sent at `s_i` joins with its input job (parsing, chat template, tokenisation),
//!   `frontend_ns`; when that ends its hand-off to the engine joins the queue again (an event loop resumes a
//!   coroutine behind every job already waiting), at no cost, and the request reaches the scheduler when the
//!   hand-off is served. So requests sent together reach the engine together, after all their input jobs.
//!   Every token the engine makes at a step end joins with an output job (detokenise, stream), `output_ns`,
//!   and reaches the client when it ends; every client-side time (TTFT, ITL, TPOT, E2EL, duration) uses these
//!   delivery times, TTFT counting from `s_i`. Policies still see engine-side token times.
//! - **closed loop** (`vllm bench serve --max-concurrency C`): at most `C` requests are outstanding; request
//!   `i > C` is sent when its arrival time has come *and* an earlier request has finished:
//!   `s_i = max(a_i, finish of the (i - C)-th request to finish)`. Its arrival, for every metric, is `s_i`
//!   (the benchmark starts its clock when the request is sent).

use std::collections::VecDeque;

use duet_traces::RequestSpec;

use super::{Engine, Event, RequestRecord};
use crate::request::ReqId;
use crate::time::Nanos;

/// Client and frontend settings (module docs). The default (no frontend cost, open loop) sends every request
/// at its arrival time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientConfig {
    /// Serial frontend time per request (its input job), ns.
    pub frontend_ns: u64,
    /// Serial frontend time per output token (its output job), ns.
    pub output_ns: u64,
    /// Most requests outstanding at once (closed loop); `None`: open loop.
    pub max_concurrency: Option<u32>,
}

impl ClientConfig {
    /// Whether requests reach the engine exactly at their arrival times.
    pub fn is_transparent(&self) -> bool {
        !self.has_frontend() && self.max_concurrency.is_none()
    }

    /// Whether requests and tokens pass through the frontend worker (it has a cost).
    pub fn has_frontend(&self) -> bool {
        self.frontend_ns > 0 || self.output_ns > 0
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

    /// Whether requests are held back (a finish sends the next).
    pub fn holds(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The next held request, if any (called when a request finishes).
    pub fn next_held(&mut self) -> Option<(RequestSpec, Option<Vec<u64>>)> {
        self.pending.pop_front()
    }

    /// Sends `spec` no earlier than `now`: the spec with its arrival set to the send time.
    pub fn send(&self, mut spec: RequestSpec, now: Nanos) -> RequestSpec {
        spec.arrival_ns = spec.arrival_ns.max(now.0);
        spec
    }

    /// A job of `cost` ns joins the frontend's queue at `at` (no earlier than the last one joined): when it ends.
    fn job(&mut self, at: Nanos, cost: u64) -> Nanos {
        self.frontend_free = at.max(self.frontend_free) + Nanos(cost);
        self.frontend_free
    }

    /// A request's input job joins at `sent`: when it ends and the hand-off joins.
    pub fn input(&mut self, sent: Nanos) -> Nanos {
        self.job(sent, self.cfg.frontend_ns)
    }

    /// A request's hand-off joins at `at`: when the scheduler sees the request.
    pub fn hand_off(&mut self, at: Nanos) -> Nanos {
        self.job(at, 0)
    }

    /// A token made by the engine at `made`: when the client receives it (its output job ends).
    pub fn deliver(&mut self, made: Nanos) -> Nanos {
        self.job(made, self.cfg.output_ns)
    }
}

/// One request's token times as the client sees them (with a frontend output cost).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Delivered {
    first: Option<Nanos>,
    last: Nanos,
    max_gap: Nanos,
}

impl Delivered {
    /// A token reached the client at `at`: the gap since the previous one, if any.
    pub fn token(&mut self, at: Nanos) -> Option<Nanos> {
        let gap = self.first.map(|_| at - self.last);
        if let Some(g) = gap {
            self.max_gap = self.max_gap.max(g);
        } else {
            self.first = Some(at);
        }
        self.last = at;
        gap
    }

    /// Puts the client-side times into a request's record.
    pub fn apply(&self, rec: &mut RequestRecord) {
        if let Some(first) = self.first {
            rec.first_token = first;
            rec.finish = self.last;
            rec.max_tbt = self.max_gap;
        }
    }
}

impl Engine {
    /// Sends a request through the client and frontend ([`ClientConfig`]): it arrives (for its metrics) when
    /// sent and reaches the scheduler after the frontend.
    pub(super) fn send(&mut self, spec: RequestSpec, hashes: Option<&[u64]>, now: Nanos) {
        let spec = self.client.send(spec, now);
        let at = Nanos(spec.arrival_ns);
        let id = self.push_request(spec, hashes);
        let ev = if self.client.cfg.has_frontend() { Event::Sent(id) } else { Event::Arrival(id) };
        self.push_event(at, ev);
    }

    /// Closed loop: a request finished and the client saw its last token at `seen`, so the next held one is
    /// sent then.
    pub(super) fn release_held(&mut self, seen: Nanos) {
        if let Some((spec, hashes)) = self.client.next_held() {
            self.send(spec, hashes.as_deref(), seen);
        }
    }

    /// A request's input job joins the frontend's queue now; its hand-off follows when the job ends.
    pub(super) fn input_job(&mut self, id: ReqId) {
        let done = self.client.input(self.now);
        self.push_event(done, Event::HandOff(id));
    }

    /// A request's hand-off joins the frontend's queue now: it reaches the scheduler when served. Returns
    /// whether it was queued for the scheduler now (the policy should be consulted).
    pub(super) fn hand_off(&mut self, id: ReqId) -> bool {
        let at = self.client.hand_off(self.now);
        if at > self.now {
            self.push_event(at, Event::Arrival(id));
            return false;
        }
        self.enqueue(id, false);
        true
    }

    /// Engine-side token of request `id` made now: (the gap the client sees, when the client sees it).
    pub(super) fn client_token(&mut self, id: ReqId, engine_gap: Option<Nanos>) -> (Option<Nanos>, Nanos) {
        if !self.client.cfg.has_frontend() {
            return (engine_gap, self.now);
        }
        let at = self.client.deliver(self.now);
        (self.delivered[id.index()].token(at), at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: u32, arrival_ns: u64) -> RequestSpec {
        RequestSpec { id, arrival_ns, input_tokens: 8, output_tokens: 2 }
    }

    #[test]
    fn the_frontend_serves_its_jobs_in_queue_order() {
        let mut c = Client::new(ClientConfig { frontend_ns: 10, output_ns: 2, max_concurrency: None });
        // Three requests sent at 0 (events in time order): input jobs end at 10, 20, 30, and each hand-off
        // queues behind all of them.
        let inputs: Vec<Nanos> = (0..3).map(|_| c.input(Nanos(0))).collect();
        assert_eq!(inputs, [Nanos(10), Nanos(20), Nanos(30)]);
        assert_eq!(c.hand_off(Nanos(10)), Nanos(30));
        assert_eq!(c.hand_off(Nanos(20)), Nanos(30));
        // A token made at 25 waits for the worker, and the last hand-off (joining at 30) waits for it.
        assert_eq!(c.deliver(Nanos(25)), Nanos(32));
        assert_eq!(c.hand_off(Nanos(30)), Nanos(32));
        // Tokens queue behind each other; a late one waits for nothing.
        assert_eq!(c.deliver(Nanos(40)), Nanos(42));
        assert_eq!(c.deliver(Nanos(40)), Nanos(44));
        assert_eq!(c.deliver(Nanos(100)), Nanos(102));
        // A request sent while a token is being delivered waits for it.
        assert_eq!(c.input(Nanos(101)), Nanos(112));
        assert_eq!(c.hand_off(Nanos(112)), Nanos(112));
    }

    #[test]
    fn a_held_request_is_sent_when_released_and_counts_from_then() {
        let mut c = Client::new(ClientConfig { max_concurrency: Some(1), ..ClientConfig::default() });
        assert!(c.sends_at_start(0) && !c.sends_at_start(1));
        c.hold(spec(1, 5), Some(&[7, 8]));
        let (s, h) = c.next_held().unwrap();
        assert_eq!(h.as_deref(), Some(&[7u64, 8][..]));
        assert_eq!(c.send(s, Nanos(50)).arrival_ns, 50);
        assert!(c.next_held().is_none());
    }
}
