//! Serving metrics with the definitions of `vllm bench serve`, plus duet's TBT and SLO attainment.
//!
//! Per request `r` with arrival `a_r`, token times `t_r,1 .. t_r,o` (`o` = output tokens; with a frontend,
//! `crate::engine::ClientConfig`, the times the client receives them):
//! - **TTFT** = `t_r,1 - a_r`.
//! - **E2EL** (end-to-end latency) = `t_r,o - a_r`.
//! - **TPOT** = `(E2EL - TTFT) / (o - 1)`, only for requests with `o > 1` (as vLLM).
//! - **ITL** = every gap `t_r,i+1 - t_r,i`, pooled over all requests (as vLLM).
//! - **TBT** = the same gaps seen per request: `max_tbt_r = max_i (t_r,i+1 - t_r,i)`, the worst stall a request
//!   saw; the `*_tbt_ms` statistics are over requests with `o > 1`. (vLLM has no TBT; duet's TBT SLO applies
//!   to this per-request maximum.)
//! - **Queueing delay** = first time in a batch minus `a_r`.
//! - **duration** = time of the last token of any request, from the first arrival (time 0).
//! - **request_throughput** = completed / duration; **output_throughput** = output tokens / duration;
//!   **total_token_throughput** = (input + output tokens) / duration.
//! - A request is **good** when every SLO given holds: `TTFT <= slo_ttft`, `max_tbt <= slo_tbt`,
//!   `TPOT <= slo_tpot` (TBT and TPOT hold vacuously when `o = 1`). **request_goodput** = good / duration;
//!   **slo_attainment** = good / completed. Both are `null` when no SLO is given.
//!
//! Statistics are mean, median, population std, p90 and p99 with numpy's linear interpolation ([`stats`]).

pub use crate::stats;

use serde::Serialize;

use crate::engine::{RequestRecord, SimOutput};
use crate::error::ConfigError;
use stats::Dist;

/// Latency limits a request must meet to count as good. `None` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Slo {
    /// TTFT limit, ms.
    pub ttft_ms: Option<f64>,
    /// Per-request maximum TBT limit, ms.
    pub tbt_ms: Option<f64>,
    /// TPOT limit, ms.
    pub tpot_ms: Option<f64>,
}

impl Slo {
    /// Checks that every limit given is a positive finite number.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, v) in [("TTFT", self.ttft_ms), ("TBT", self.tbt_ms), ("TPOT", self.tpot_ms)] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return Err(ConfigError::Invalid(format!("{name} SLO must be a positive number of ms, got {v}")));
            }
        }
        Ok(())
    }

    fn any(&self) -> bool {
        self.ttft_ms.is_some() || self.tbt_ms.is_some() || self.tpot_ms.is_some()
    }

    /// Whether `r` meets every limit.
    pub fn met_by(&self, r: &RequestRecord) -> bool {
        let ok = |limit: Option<f64>, v: Option<f64>| match (limit, v) {
            (Some(l), Some(v)) => v <= l,
            _ => true,
        };
        ok(self.ttft_ms, Some(ttft_ms(r))) && ok(self.tbt_ms, max_tbt_ms(r)) && ok(self.tpot_ms, tpot_ms(r))
    }
}

/// TTFT of a request, ms.
pub fn ttft_ms(r: &RequestRecord) -> f64 {
    (r.first_token - r.arrival).as_ms()
}

/// End-to-end latency of a request, ms.
pub fn e2el_ms(r: &RequestRecord) -> f64 {
    (r.finish - r.arrival).as_ms()
}

/// TPOT of a request, ms; `None` with one output token.
pub fn tpot_ms(r: &RequestRecord) -> Option<f64> {
    (r.output_tokens > 1).then(|| (e2el_ms(r) - ttft_ms(r)) / f64::from(r.output_tokens - 1))
}

/// Largest inter-token gap of a request, ms; `None` with one output token.
pub fn max_tbt_ms(r: &RequestRecord) -> Option<f64> {
    (r.output_tokens > 1).then(|| r.max_tbt.as_ms())
}

/// Queueing delay of a request, ms.
pub fn queue_ms(r: &RequestRecord) -> f64 {
    (r.first_scheduled - r.arrival).as_ms()
}

/// Aggregate metrics of a run (the numeric part of `summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Seconds from the first arrival to the last token.
    pub duration: f64,
    /// Requests completed.
    pub completed: usize,
    /// Prompt tokens of completed requests.
    pub total_input_tokens: u64,
    /// Output tokens of completed requests.
    pub total_output_tokens: u64,
    /// Completed requests per second.
    pub request_throughput: f64,
    /// Good requests per second (`null` without SLO).
    pub request_goodput: Option<f64>,
    /// Output tokens per second.
    pub output_throughput: f64,
    /// Input plus output tokens per second.
    pub total_token_throughput: f64,
    /// Share of completed requests meeting every SLO (`null` without SLO).
    pub slo_attainment: Option<f64>,
    /// TTFT, ms.
    pub ttft_ms: Dist,
    /// TPOT, ms.
    pub tpot_ms: Dist,
    /// ITL, ms.
    pub itl_ms: Dist,
    /// E2EL, ms.
    pub e2el_ms: Dist,
    /// Per-request maximum TBT, ms.
    pub tbt_ms: Dist,
    /// Queueing delay, ms.
    pub queue_ms: Dist,
}

/// Computes [`Metrics`] from a run's output.
pub fn compute(out: &SimOutput, slo: &Slo) -> Metrics {
    let done: Vec<&RequestRecord> = out.requests.iter().filter(|r| r.tokens_emitted == r.output_tokens).collect();
    let duration = done.iter().map(|r| r.finish).max().unwrap_or_default().as_secs();
    let per_s = |x: f64| if duration > 0.0 { x / duration } else { 0.0 };
    let total_input_tokens: u64 = done.iter().map(|r| u64::from(r.input_tokens)).sum();
    let total_output_tokens: u64 = done.iter().map(|r| u64::from(r.output_tokens)).sum();
    let good = done.iter().filter(|r| slo.met_by(r)).count();
    let col =
        |f: &dyn Fn(&RequestRecord) -> Option<f64>| Dist::of(&mut done.iter().filter_map(|r| f(r)).collect::<Vec<_>>());
    let ttft = col(&|r| Some(ttft_ms(r)));
    let tpot = col(&tpot_ms);
    let e2el = col(&|r| Some(e2el_ms(r)));
    let tbt = col(&max_tbt_ms);
    let queue = col(&|r| Some(queue_ms(r)));
    let itl = Dist::of_gaps(&out.itl_ns);
    Metrics {
        duration,
        completed: done.len(),
        total_input_tokens,
        total_output_tokens,
        request_throughput: per_s(done.len() as f64),
        request_goodput: slo.any().then(|| per_s(good as f64)),
        output_throughput: per_s(total_output_tokens as f64),
        total_token_throughput: per_s((total_input_tokens + total_output_tokens) as f64),
        slo_attainment: (slo.any() && !done.is_empty()).then(|| good as f64 / done.len() as f64),
        ttft_ms: ttft,
        tpot_ms: tpot,
        itl_ms: itl,
        e2el_ms: e2el,
        tbt_ms: tbt,
        queue_ms: queue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineStats;
    use crate::time::Nanos;

    const MS: u64 = 1_000_000;

    fn rec(id: u32, arrival: u64, sched: u64, tokens: &[u64], input: u32) -> RequestRecord {
        let gaps = tokens.windows(2).map(|w| w[1] - w[0]);
        RequestRecord {
            id,
            arrival: Nanos(arrival * MS),
            input_tokens: input,
            output_tokens: tokens.len() as u32,
            tokens_emitted: tokens.len() as u32,
            first_scheduled: Nanos(sched * MS),
            first_token: Nanos(tokens[0] * MS),
            finish: Nanos(tokens[tokens.len() - 1] * MS),
            max_tbt: Nanos(gaps.max().unwrap_or(0) * MS),
            preemptions: 0,
        }
    }

    #[test]
    fn tpot_averages_what_max_tbt_exposes() {
        // r0: arrives 0, tokens at 10, 12, 30 -> TTFT 10, E2EL 30, TPOT (30-10)/2 = 10, gaps 2 and 18, max TBT 18.
        // r1: arrives 5, one token at 25 -> TTFT 20, E2EL 20, no TPOT/TBT.
        // r2: arrives 20, tokens at 40, 45 -> TTFT 20, E2EL 25, TPOT 5, max TBT 5.
        let requests = vec![rec(0, 0, 1, &[10, 12, 30], 100), rec(1, 5, 6, &[25], 50), rec(2, 20, 30, &[40, 45], 10)];
        let itl_ns = [2 * MS, 5 * MS, 18 * MS].into_iter().collect();
        let out = SimOutput { requests, itl_ns, iterations: vec![], decisions: vec![], stats: EngineStats::default() };
        let slo = Slo { tbt_ms: Some(10.0), tpot_ms: Some(12.0), ..Slo::default() };
        let m = compute(&out, &slo);
        assert_eq!(m.duration, 0.045);
        assert_eq!((m.total_input_tokens, m.total_output_tokens), (160, 6));
        assert_eq!(m.ttft_ms.mean, 50.0 / 3.0);
        assert_eq!(m.ttft_ms.median, 20.0);
        assert_eq!((m.tpot_ms.mean, m.tpot_ms.median), (7.5, 7.5));
        // Max TBT over r0 and r2 = [18, 5]: mean 11.5, p99 = 5 + 13 x 0.99 = 17.87.
        assert_eq!(m.tbt_ms.mean, 11.5);
        assert!((m.tbt_ms.p99 - 17.87).abs() < 1e-9);
        assert_eq!((m.itl_ms.mean, m.itl_ms.median), (25.0 / 3.0, 5.0));
        assert_eq!(m.e2el_ms.mean, 25.0);
        assert_eq!((m.queue_ms.mean, m.queue_ms.median), (4.0, 1.0));
        // r0 fails the TBT limit (18 > 10) although its TPOT (10) meets 12; r1 passes vacuously; r2 passes.
        assert_eq!(m.slo_attainment, Some(2.0 / 3.0));
        assert!((m.request_goodput.unwrap() - 2.0 / 0.045).abs() < 1e-9);
        assert!((m.request_throughput - 3.0 / 0.045).abs() < 1e-9);
        // Without any SLO, goodput and attainment are absent rather than 100%.
        let none = compute(&out, &Slo::default());
        assert_eq!((none.request_goodput, none.slo_attainment), (None, None));
    }
}
