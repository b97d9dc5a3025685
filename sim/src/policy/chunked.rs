//! `chunked`: chunked prefill with decode priority (Sarathi-Serve; vLLM v1's default scheduler).
//!
//! Each iteration, with a token budget `B` (vLLM `max_num_batched_tokens`, default 2048):
//! 1. every running decode gets one token (oldest first), preempting newer requests if its KV cannot grow;
//! 2. running requests with an unfinished prefill get chunks, oldest first: `min(remaining, budget left)`,
//!    shrunk to the KV that is free (if not even one token fits, newer requests are preempted);
//! 3. if nothing was preempted, queued requests are admitted first-come first-served while the budget, the
//!    KV blocks for their first chunk, and `max_num_seqs` allow; admission stops at the first that does not fit.
//!
//! Difference from vLLM v1, stated: v1 walks its running list in admission order without separating decodes
//! from partial prefills, so a long partial prefill admitted earlier can take the budget ahead of a later
//! decode; Sarathi-Serve (and this policy) always serve decodes first.

use super::draft::Draft;
use super::{Lane, Plan, Policy, View};

/// Settings of [`Chunked`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedConfig {
    /// Tokens per iteration (decode tokens count 1 each). Default 2048.
    pub token_budget: u32,
    /// Most requests holding KV at once (vLLM `max_num_seqs`, default 256).
    pub max_num_seqs: usize,
}

impl Default for ChunkedConfig {
    fn default() -> Self {
        Self { token_budget: 2048, max_num_seqs: 256 }
    }
}

/// The policy's name (command line, reports, registry).
pub const NAME: &str = "chunked";

/// `chunked` in the policy registry.
pub const ENTRY: super::Entry = super::Entry {
    name: NAME,
    options: &["--token-budget", "--max-num-seqs"],
    settings: |o| {
        let d = ChunkedConfig::default();
        Ok(std::sync::Arc::new(ChunkedConfig {
            token_budget: o.budget(d.token_budget),
            max_num_seqs: o.seqs(d.max_num_seqs),
        }))
    },
};

impl super::Settings for ChunkedConfig {
    fn name(&self) -> &'static str {
        NAME
    }
    fn token_budget(&self) -> u32 {
        self.token_budget
    }
    fn build(&self, _: &super::PolicyContext) -> Result<Box<dyn super::Policy>, crate::error::ConfigError> {
        Ok(Box::new(Chunked::new(self.clone())))
    }
}

/// The chunked-prefill policy.
#[derive(Debug, Clone)]
pub struct Chunked {
    cfg: ChunkedConfig,
}

impl Chunked {
    /// A chunked-prefill policy with these settings.
    pub fn new(cfg: ChunkedConfig) -> Self {
        Self { cfg }
    }
}

impl Policy for Chunked {
    fn name(&self) -> &'static str {
        NAME
    }

    fn plan(&mut self, view: &View<'_>) -> Plan {
        // Aggregated policies run one batch at a time on the whole GPU.
        if !view.busy.is_empty() {
            return Plan::default();
        }
        let mut d = Draft::new(view, self.cfg.token_budget);
        d.decode_running(1);
        d.continue_prefills();
        d.admit_waiting(self.cfg.max_num_seqs);
        d.into_plan(Lane::Whole, view.total_sms, 1)
    }

    /// With nothing waiting and every running request decoding, the plan is one whole-GPU batch decoding all of
    /// them in admission order while their blocks are free; the policy keeps no state and reads no time.
    fn repeat_decode(&mut self, step: &super::QuietStep<'_>) -> Option<super::Repeat> {
        Some(super::Repeat { lane: Lane::Whole, sms: step.total_sms, decision: None })
    }
}
