//! What a run records: every executed step ([`IterationRecord`]), every request's times ([`RequestRecord`]), every
//! policy decision with what happened ([`DecisionRecord`]), engine-wide counters ([`EngineStats`]) and all of it
//! together ([`SimOutput`], assembled by `Engine::into_output`); `crate::metrics` and `crate::report` turn them
//! into numbers and files.

use super::Engine;
pub use crate::policy::IterationRecord;
use crate::policy::{Decision, Mode};
use crate::prefix::PrefixStats;
use crate::request::Phase;
use crate::stats::Gaps;
use crate::time::Nanos;

/// Per-request results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRecord {
    /// Request id.
    pub id: u32,
    /// Arrival time.
    pub arrival: Nanos,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Output tokens requested.
    pub output_tokens: u32,
    /// Output tokens produced (equals `output_tokens` for a finished request).
    pub tokens_emitted: u32,
    /// First time the request was in a batch.
    pub first_scheduled: Nanos,
    /// Time of the first output token.
    pub first_token: Nanos,
    /// Time of the last output token.
    pub finish: Nanos,
    /// Largest gap between consecutive output tokens (0 with one output token).
    pub max_tbt: Nanos,
    /// Times it was preempted.
    pub preemptions: u32,
}

/// A policy decision with what actually happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionRecord {
    /// When it was made.
    pub at: Nanos,
    /// What the policy decided and predicted.
    pub decision: Decision,
    /// Simulated duration of the whole-GPU batch it started, ns.
    pub whole_ns: Option<u64>,
    /// Simulated duration of the prefill batch it started, ns.
    pub prefill_ns: Option<u64>,
    /// Simulated duration of the decode window it started (all steps), ns.
    pub decode_window_ns: Option<u64>,
}

/// How many decision records a run made, of which how many split the GPU and how many had both prefill and
/// decode work to place (the reports' "Partitioning" line and `split_decisions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecisionCounts {
    /// Decision records.
    pub total: u64,
    /// Those in split mode.
    pub split: u64,
    /// Those with both prefill and decode SMs (a real choice: decode-only steps have nothing to split).
    pub with_both: u64,
}

impl DecisionCounts {
    /// Counts one more record.
    pub fn add(&mut self, d: &Decision) {
        self.total += 1;
        self.split += u64::from(d.mode == Mode::Split);
        self.with_both += u64::from(d.prefill_sms > 0 && d.decode_sms > 0);
    }

    /// Adds another run's counts.
    pub fn merge(&mut self, o: &DecisionCounts) {
        self.total += o.total;
        self.split += o.split;
        self.with_both += o.with_both;
    }
}

/// Engine-wide counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStats {
    /// Total preemptions.
    pub preemptions: u64,
    /// KV tokens discarded by preemptions (recompute mode): computed again when the request is readmitted.
    pub recomputed_tokens: u64,
    /// Iterations executed (all of them, whether or not their records were kept).
    pub iterations: u64,
    /// Most KV blocks in use at once.
    pub peak_kv_blocks: u32,
    /// KV blocks in the cache.
    pub total_kv_blocks: u32,
    /// Time of the last event.
    pub end: Nanos,
    /// Most SMs in use at once.
    pub peak_sms: u32,
    /// Prefix-cache counters (all zero without a cache).
    pub prefix: PrefixStats,
    /// Whether a prefix cache was active.
    pub prefix_cache: bool,
    /// Decision records made (all of them, whether or not kept).
    pub decisions: DecisionCounts,
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct SimOutput {
    /// One record per request, in id order.
    pub requests: Vec<RequestRecord>,
    /// Every inter-token gap of every request, in ns, sorted ascending (pooled: the ITL population), as
    /// `(gap, count)` runs.
    pub itl_ns: Gaps,
    /// Every executed step, in start order.
    pub iterations: Vec<IterationRecord>,
    /// Policy decisions that carried a [`Decision`].
    pub decisions: Vec<DecisionRecord>,
    /// Counters.
    pub stats: EngineStats,
}

impl Engine {
    /// Everything the run recorded (client-side token times where a frontend delivered them).
    pub(crate) fn into_output(mut self) -> SimOutput {
        self.itl_ns.sort();
        let mut requests: Vec<RequestRecord> = self
            .requests
            .iter()
            .map(|r| RequestRecord {
                id: r.spec.id,
                arrival: r.arrival(),
                input_tokens: r.spec.input_tokens,
                output_tokens: r.spec.output_tokens,
                tokens_emitted: r.generated,
                first_scheduled: r.first_scheduled.unwrap_or_default(),
                first_token: r.first_token.unwrap_or_default(),
                finish: r.last_token.unwrap_or_default(),
                max_tbt: r.max_tbt,
                preemptions: r.preemptions,
            })
            .collect();
        for (rec, d) in requests.iter_mut().zip(&self.delivered) {
            d.apply(rec);
        }
        debug_assert!(self.requests.iter().all(|r| r.phase == Phase::Finished));
        let executed = (self.iter_base + self.iterations.len()) as u64;
        let mut decisions = self.dec_trimmed;
        for d in &self.decisions {
            decisions.add(&d.decision);
        }
        SimOutput {
            requests,
            itl_ns: self.itl_ns,
            iterations: self.iterations,
            decisions: self.decisions,
            stats: EngineStats {
                preemptions: self.preemptions,
                recomputed_tokens: self.recomputed_tokens,
                iterations: executed,
                peak_kv_blocks: self.kv.peak(),
                total_kv_blocks: self.kv.total(),
                end: self.now,
                peak_sms: self.peak_sms,
                prefix: self.kv.prefix_stats(),
                prefix_cache: self.kv.cache().is_some(),
                decisions,
            },
        }
    }
}
