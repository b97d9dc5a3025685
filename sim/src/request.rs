//! A request's state as the engine tracks it: lifecycle phase, KV held, tokens produced, timestamps.
//!
//! Token accounting. `kv_tokens` counts tokens whose K/V are in the cache. A (re)admitted request must prefill
//! `prefill_target = input + generated` tokens; the iteration that completes that prefill samples a token.
//! Each decode step then processes the last sampled token (`kv_tokens += 1`) and samples the next one. So a
//! request with `o` output tokens holds at most `input + o - 1` tokens of KV. Preemption (vLLM's recompute
//! mode) frees all blocks and sets `kv_tokens = 0`; the request re-prefills its prompt and the tokens it had
//! generated, and its stream resumes with the next token.
//!
//! Every phase change is a method here ([`Request::admit`], [`Request::emit_token`], [`Request::preempt`],
//! [`Request::await_transfer`]); the engine calls them and keeps the KV and queue bookkeeping.

use duet_traces::RequestSpec;

use crate::time::Nanos;

/// Index of a request in the workload (its `RequestSpec::id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReqId(pub u32);

impl ReqId {
    /// As a vector index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Arrived, never admitted.
    Queued,
    /// Admitted; its prompt (or recompute) prefill is not complete.
    Prefilling,
    /// Prefill done; generating one token per decode step.
    Decoding,
    /// Evicted from the KV cache; back in the queue to be recomputed.
    Preempted,
    /// All output tokens produced; KV released.
    Finished,
    /// Disaggregated decode instance: KV blocks reserved, the prompt's KV still on its way from the prefill
    /// instance; not schedulable until it arrives.
    Transferring,
}

/// What [`Request::emit_token`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emitted {
    /// The gap since the previous token (`None` for the first token).
    pub gap: Option<Nanos>,
    /// Whether that was the last output token.
    pub finished: bool,
}

/// Engine-side state of one request.
#[derive(Debug, Clone)]
pub struct Request {
    /// What the workload asked for.
    pub spec: RequestSpec,
    /// Lifecycle phase.
    pub phase: Phase,
    /// Output tokens produced so far.
    pub generated: u32,
    /// Tokens whose K/V are in the cache.
    pub kv_tokens: u32,
    /// Tokens to prefill before the next token is sampled (`input + generated` at admission).
    pub prefill_target: u32,
    /// KV blocks held, shared prefix-cache blocks included.
    pub blocks: u32,
    /// Of `blocks`, those that belong to prefix-cache entries (shared with other requests, freed by eviction
    /// rather than by this request).
    pub shared_blocks: u32,
    /// Part of a batch that is executing now.
    pub in_flight: bool,
    /// Times this request was preempted.
    pub preemptions: u32,
    /// When it was first put in a batch.
    pub first_scheduled: Option<Nanos>,
    /// When its first token was produced.
    pub first_token: Option<Nanos>,
    /// When its latest token was produced.
    pub last_token: Option<Nanos>,
    /// Largest gap between two consecutive tokens.
    pub max_tbt: Nanos,
}

impl Request {
    /// A request that has not arrived yet.
    pub fn new(spec: RequestSpec) -> Self {
        Self {
            spec,
            phase: Phase::Queued,
            generated: 0,
            kv_tokens: 0,
            prefill_target: spec.input_tokens,
            blocks: 0,
            shared_blocks: 0,
            in_flight: false,
            preemptions: 0,
            first_scheduled: None,
            first_token: None,
            last_token: None,
            max_tbt: Nanos::ZERO,
        }
    }

    /// Id of this request.
    pub fn id(&self) -> ReqId {
        ReqId(self.spec.id)
    }

    /// Arrival time.
    pub fn arrival(&self) -> Nanos {
        Nanos(self.spec.arrival_ns)
    }

    /// Prefill tokens still to compute before the next token is sampled (0 when decoding).
    pub fn remaining_prefill(&self) -> u32 {
        match self.phase {
            Phase::Decoding | Phase::Finished | Phase::Transferring => 0,
            _ => self.prefill_target - self.kv_tokens,
        }
    }

    /// Tokens this request would process in its next step if given an unlimited budget.
    pub fn next_step_tokens(&self) -> u32 {
        match self.phase {
            Phase::Decoding => 1,
            _ => self.remaining_prefill(),
        }
    }

    /// KV blocks only this request holds (a preemption frees them; shared prefix blocks stay cached).
    pub fn private_blocks(&self) -> u32 {
        self.blocks - self.shared_blocks
    }

    /// Admitted from the queue: its prefill (or recompute) starts.
    #[inline]
    pub fn admit(&mut self) {
        debug_assert!(matches!(self.phase, Phase::Queued | Phase::Preempted), "{:?}", self.phase);
        self.phase = Phase::Prefilling;
    }

    /// Whether the next token it emits ([`Request::emit_token`]) is its last: it finishes then.
    #[inline]
    pub fn next_token_is_last(&self) -> bool {
        self.generated + 1 >= self.spec.output_tokens
    }

    /// A token is produced at `now`: the first one sets `first_token`, later ones are a gap since the previous
    /// (the largest kept in `max_tbt`). The request decodes from now on, or is finished when this was its last
    /// output token.
    #[inline]
    pub fn emit_token(&mut self, now: Nanos) -> Emitted {
        let gap = match self.last_token {
            Some(last) => {
                let gap = now - last;
                self.max_tbt = self.max_tbt.max(gap);
                Some(gap)
            }
            None => {
                self.first_token = Some(now);
                None
            }
        };
        self.last_token = Some(now);
        self.generated += 1;
        self.phase = if self.generated == self.spec.output_tokens { Phase::Finished } else { Phase::Decoding };
        Emitted { gap, finished: self.phase == Phase::Finished }
    }

    /// Recompute preemption (vLLM's recompute mode): its KV is gone (the caller released it); it will re-prefill
    /// its prompt and the tokens it generated.
    #[inline]
    pub fn preempt(&mut self) {
        self.kv_tokens = 0;
        self.prefill_target = self.spec.input_tokens + self.generated;
        self.phase = Phase::Preempted;
        self.preemptions += 1;
    }

    /// Disaggregated decode side: `blocks` reserved for its prompt's `kv_tokens` tokens, which are on their way.
    pub fn await_transfer(&mut self, blocks: u32, kv_tokens: u32) {
        self.blocks = blocks;
        self.kv_tokens = kv_tokens;
        self.phase = Phase::Transferring;
    }

    /// Most KV tokens this request can ever hold: `input + output - 1`.
    pub fn peak_kv_tokens(&self) -> u32 {
        self.spec.input_tokens + self.spec.output_tokens - 1
    }
}
