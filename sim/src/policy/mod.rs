//! Scheduling policies: pure functions from a read-only [`View`] of the engine to a [`Plan`].
//!
//! A policy never mutates engine state. It returns plain data: which requests to preempt and which batches to
//! run (requests, tokens each, partition). The engine validates every plan before applying it, so a buggy policy
//! fails loudly instead of corrupting a run. The same policy code drives the simulated executor and (later) the
//! GPU executor.

mod chunked;
mod draft;
mod prefill_first;

use std::collections::VecDeque;

pub use chunked::{Chunked, ChunkedConfig};
pub use prefill_first::{PrefillFirst, PrefillFirstConfig};

use crate::error::ConfigError;
use crate::kv::KvCapacity;
use crate::request::{ReqId, Request};
use crate::time::Nanos;

/// Identifies an SM partition of the GPU (0 is the whole GPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionId(pub u32);

/// A partition as a policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionView {
    /// Its id.
    pub id: PartitionId,
    /// SMs it owns.
    pub sms: u32,
    /// Whether a batch is running on it.
    pub busy: bool,
}

/// Everything a policy may look at, read-only.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// Current simulated (or wall-clock) time.
    pub now: Nanos,
    /// Arrived requests not holding KV, in queue order (preempted requests go to the front).
    pub waiting: &'a VecDeque<ReqId>,
    /// Admitted requests in admission order (oldest first).
    pub running: &'a [ReqId],
    /// All requests of the workload, indexed by id.
    pub requests: &'a [Request],
    /// KV-cache geometry.
    pub kv: KvCapacity,
    /// KV blocks free now.
    pub free_blocks: u32,
    /// SM partitions.
    pub partitions: &'a [PartitionView],
}

impl View<'_> {
    /// The request with id `id`.
    pub fn req(&self, id: ReqId) -> &Request {
        &self.requests[id.index()]
    }

    /// Blocks request `id` must add to hold `new_tokens` more tokens.
    pub fn extra_blocks(&self, id: ReqId, new_tokens: u32) -> u32 {
        let r = self.req(id);
        self.kv.blocks_for(r.kv_tokens + new_tokens).saturating_sub(r.blocks)
    }

    /// The first idle partition, if any.
    pub fn idle_partition(&self) -> Option<PartitionView> {
        self.partitions.iter().copied().find(|p| !p.busy)
    }
}

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
    /// One decode step: process the last sampled token, sample the next.
    Decode {
        /// The request.
        req: ReqId,
    },
}

impl BatchItem {
    /// The request this item schedules.
    pub fn req(&self) -> ReqId {
        match *self {
            BatchItem::Prefill { req, .. } | BatchItem::Decode { req } => req,
        }
    }

    /// New tokens this item processes.
    pub fn tokens(&self) -> u32 {
        match *self {
            BatchItem::Prefill { tokens, .. } => tokens,
            BatchItem::Decode { .. } => 1,
        }
    }
}

/// A batch to run on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Where it runs.
    pub partition: PartitionId,
    /// What it runs.
    pub items: Vec<BatchItem>,
}

/// A policy's decision for this scheduling point.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Requests to preempt (recompute) before the batches start; applied in order.
    pub preempt: Vec<ReqId>,
    /// Batches to start now, at most one per idle partition.
    pub batches: Vec<Batch>,
}

impl Plan {
    /// True when the plan does nothing.
    pub fn is_empty(&self) -> bool {
        self.preempt.is_empty() && self.batches.is_empty()
    }
}

/// A scheduling policy.
pub trait Policy {
    /// Short name used in reports and on the CLI.
    fn name(&self) -> &'static str;
    /// Decides what to run now. Called whenever a partition is idle and something changed.
    fn plan(&mut self, view: &View<'_>) -> Plan;
}

/// Policies selectable by name, with their settings.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyConfig {
    /// `chunked`: vLLM v1 / Sarathi-Serve.
    Chunked(ChunkedConfig),
    /// `prefill-first`: SGLang default / vLLM v0.
    PrefillFirst(PrefillFirstConfig),
}

impl PolicyConfig {
    /// Names accepted by [`PolicyConfig::by_name`].
    pub const NAMES: [&'static str; 2] = ["chunked", "prefill-first"];

    /// The policy called `name` with default settings, its token budget replaced by `token_budget` if given.
    pub fn by_name(name: &str, token_budget: Option<u32>) -> Result<PolicyConfig, ConfigError> {
        if token_budget == Some(0) {
            return Err(ConfigError::Invalid("token budget must be >= 1".into()));
        }
        match name {
            "chunked" => {
                let d = ChunkedConfig::default();
                Ok(PolicyConfig::Chunked(ChunkedConfig { token_budget: token_budget.unwrap_or(d.token_budget), ..d }))
            }
            "prefill-first" => {
                let d = PrefillFirstConfig::default();
                Ok(PolicyConfig::PrefillFirst(PrefillFirstConfig {
                    token_budget: token_budget.unwrap_or(d.token_budget),
                    ..d
                }))
            }
            _ => Err(ConfigError::Invalid(format!(
                "unknown policy {name:?}; known policies: {}",
                Self::NAMES.join(", ")
            ))),
        }
    }

    /// The token budget of this configuration.
    pub fn token_budget(&self) -> u32 {
        match self {
            PolicyConfig::Chunked(c) => c.token_budget,
            PolicyConfig::PrefillFirst(c) => c.token_budget,
        }
    }

    /// Builds the policy.
    pub fn build(&self) -> Box<dyn Policy> {
        match self {
            PolicyConfig::Chunked(c) => Box::new(Chunked::new(c.clone())),
            PolicyConfig::PrefillFirst(c) => Box::new(PrefillFirst::new(c.clone())),
        }
    }
}
