//! Scheduling policies: pure functions from a read-only [`View`] of the engine to a [`Plan`].
//!
//! A policy never mutates engine state. It returns plain data: which requests to preempt, which batches to
//! start (requests, tokens each, SM count, look-ahead depth), and optionally a [`Decision`] record for the log.
//! The engine validates every plan before applying it, so a buggy policy fails loudly instead of corrupting a
//! run. The same policy code drives the simulated executor and (later) the GPU executor.

mod adaptive;
mod chunked;
mod draft;
mod duet;
mod prefill_first;
mod registry;
mod split;
mod view;
mod vllm;

use std::sync::Arc;

pub use adaptive::{Adaptive, AdaptiveConfig, Mechanisms};
pub use chunked::{Chunked, ChunkedConfig};
pub use duet::{Duet, DuetConfig};
pub use prefill_first::{PrefillFirst, PrefillFirstConfig};
pub use registry::{Entry, PolicyConfig, PolicyOptions, REGISTRY, Settings};
pub use split::{MuxWise, MuxWiseConfig, StaticSplit, StaticSplitConfig};
pub use view::{IterationRecord, Lane, ReqView, Requests, RunningBatch, View};
pub use vllm::{VllmV1, VllmV1Config};

use crate::cost::{CostModel, SeqWork};
use crate::partition::Granularity;
use crate::request::{ReqId, Request};
use crate::time::Nanos;

/// One request's share of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchItem {
    /// Prefill `tokens` more tokens of the request's prompt (or recompute); admits it if it is queued.
    Prefill {
        /// The request.
        req: ReqId,
        /// Tokens in this chunk (>= 1).
        tokens: u32,
    },
    /// Decode steps (one per step of the batch's look-ahead window): process the last sampled token, sample the
    /// next.
    Decode {
        /// The request.
        req: ReqId,
    },
}

impl BatchItem {
    /// The cost-model work of this item of request `r` at step `step` of a look-ahead window (0 for a single step,
    /// or for the engine's current step): a prefill chunk over the cached tokens, emitting a token when it
    /// completes the prefill; a decode over the cached tokens plus `step`, emitting a token unless the request
    /// already finished (it keeps its look-ahead slot, at its last context length, until the window ends: the
    /// captured graph still computes it). The one definition the engine and the policies' view share.
    #[inline]
    pub fn work(&self, r: &Request, step: u32) -> SeqWork {
        match *self {
            BatchItem::Prefill { tokens, .. } => SeqWork {
                new_tokens: tokens,
                cached_tokens: r.kv_tokens,
                emits_token: r.kv_tokens + tokens == r.prefill_target,
            },
            BatchItem::Decode { .. } => SeqWork {
                new_tokens: 1,
                cached_tokens: r.kv_tokens + step,
                emits_token: r.phase != crate::request::Phase::Finished,
            },
        }
    }

    /// The request this item schedules.
    pub fn req(&self) -> ReqId {
        match *self {
            BatchItem::Prefill { req, .. } | BatchItem::Decode { req } => req,
        }
    }

    /// New tokens this item processes in one step.
    pub fn tokens(&self) -> u32 {
        match *self {
            BatchItem::Prefill { tokens, .. } => tokens,
            BatchItem::Decode { .. } => 1,
        }
    }
}

/// A batch to start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Its lane.
    pub lane: Lane,
    /// SMs it runs on (the whole GPU for `Lane::Whole`).
    pub sms: u32,
    /// What it runs.
    pub items: Vec<BatchItem>,
    /// Steps to run back to back (look-ahead decode; 1 otherwise). Only decode-only batches may use more than 1;
    /// KV for all steps is reserved up front; the first step is launched eagerly, the rest replay a CUDA graph.
    pub lookahead: u32,
    /// Layer groups a single-step batch is executed in (1: all layers at once). At each group boundary the
    /// batch can be resized ([`Resize`]); each group takes `1 / segments` of the step's predicted time on its SMs.
    pub segments: u32,
}

impl Batch {
    /// A batch of one step run in one piece.
    pub fn new(lane: Lane, sms: u32, items: Vec<BatchItem>) -> Self {
        Self { lane, sms, items, lookahead: 1, segments: 1 }
    }
}

/// Changes the SMs of the running segmented batch on `lane` at its next layer-group boundary (shrinking always
/// takes effect; growing takes effect if the SMs are free then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resize {
    /// Lane of the running batch.
    pub lane: Lane,
    /// Its new SM count.
    pub sms: u32,
}

/// How a scheduling decision ran the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One batch on all SMs.
    Aggregated,
    /// Prefill and decode on disjoint partitions.
    Split,
    /// A split was wanted but no decode partition meets the TBT target: ran aggregated instead.
    Fallback,
}

impl Mode {
    /// Name in logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Aggregated => "aggregated",
            Mode::Split => "split",
            Mode::Fallback => "fallback",
        }
    }
}

/// What a policy decided and predicted, for the decision log (`decisions.csv`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Mode.
    pub mode: Mode,
    /// Prefill SMs (0 if no prefill batch).
    pub prefill_sms: u32,
    /// Decode SMs (0 if no decode batch).
    pub decode_sms: u32,
    /// Look-ahead depth of the decode batch.
    pub lookahead: u32,
    /// Predicted time of the aggregated mixed batch on all SMs, ns (0 if not evaluated).
    pub predicted_mixed_ns: u64,
    /// Predicted time of the prefill batch, ns.
    pub predicted_prefill_ns: u64,
    /// Predicted time of one decode step, ns.
    pub predicted_decode_step_ns: u64,
}

/// A policy's decision for this scheduling point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Requests to preempt (recompute) before the batches start; applied in order.
    pub preempt: Vec<ReqId>,
    /// Batches to start now.
    pub batches: Vec<Batch>,
    /// Resizes of running segmented batches.
    pub resize: Vec<Resize>,
    /// What was decided, for the log.
    pub decision: Option<Decision>,
}

impl Plan {
    /// True when the plan does nothing.
    pub fn is_empty(&self) -> bool {
        self.preempt.is_empty() && self.batches.is_empty() && self.resize.is_empty()
    }
}

/// A scheduling policy.
pub trait Policy {
    /// Short name used in reports and on the CLI.
    fn name(&self) -> &'static str;
    /// Decides what to run now. Called whenever SMs are free and something changed.
    fn plan(&mut self, view: &View<'_>) -> Plan;

    /// Leaping over quiet decode steps ([`crate::engine::EngineConfig`] `leap`): the batch this policy's plan
    /// would be, or `None` to be asked through [`Policy::plan`]. The engine asks only when nothing runs, nothing
    /// waits, every running request is decoding and has just emitted a token (at `step.now`), the batch that
    /// ended was one single-step batch decoding every running request in admission order (no preemption; some of
    /// them may have finished at its end and left), and the blocks for every request's next token are free;
    /// `step.work` is the next step (each running request's decode over its cached tokens, in admission order).
    /// The engine asks exactly at a moment it would call [`Policy::plan`], and calls `plan` there when the answer
    /// is `None`. A policy answers `Some` only if its plan for such a view is always one batch decoding the same
    /// requests in the same order, on the lane and SMs and with the decision record it returns; state a plan call
    /// would update at that moment must come out as that call would leave it (either here, or by the next plan
    /// call alone). Default `None`: every step goes through [`Policy::plan`].
    fn repeat_decode(&mut self, step: &QuietStep<'_>) -> Option<Repeat> {
        let _ = step;
        None
    }
}

/// What a policy is told about a quiet decode step ([`Policy::repeat_decode`]): what its view would show.
#[derive(Debug, Clone, Copy)]
pub struct QuietStep<'a> {
    /// When the step would start: the end of the step before, when every running request emitted a token.
    pub now: Nanos,
    /// SMs of the GPU.
    pub total_sms: u32,
    /// KV capacity in tokens ([`crate::kv::KvCapacity::total_tokens`]).
    pub kv_total_tokens: u64,
    /// Each running request's decode, in admission order; `cached_tokens` is the KV it holds at `now`.
    pub work: &'a [SeqWork],
    /// The requests that finished at `now` and left the running list (in admission order), each with the tokens
    /// it generated.
    pub left: &'a [(ReqId, u32)],
}

/// The batch a policy's plan would be for the next step of a quiet decode batch ([`Policy::repeat_decode`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Repeat {
    /// Its lane.
    pub lane: Lane,
    /// Its SMs.
    pub sms: u32,
    /// The decision record the plan would carry.
    pub decision: Option<Decision>,
}

/// What a policy may use besides the view: the roofline predictor and the partitioning rules.
#[derive(Debug, Clone)]
pub struct PolicyContext {
    /// The cost model, for predictions.
    pub cost: Arc<CostModel>,
    /// SMs of the GPU.
    pub total_sms: u32,
    /// Partition granularity.
    pub granularity: Granularity,
}
