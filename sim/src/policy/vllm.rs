//! `vllm`: vLLM V1's unified scheduler (v0.11, `vllm/v1/core/sched/scheduler.py`), chunked prefill always on.
//!
//! Each iteration, with a token budget `B` (`max_num_batched_tokens`) and a sequence limit `N`
//! (`max_num_seqs`):
//! 1. the running requests are visited in admission order, decodes and partial prefills alike; each asks for
//!    `min(remaining, budget left)` tokens (a decode: 1). Its blocks are allocated for that many tokens; while
//!    they are short, the *newest* running request is preempted (recompute: its KV is freed and it goes back to
//!    the front of the queue), which may be the request itself, and then the pass stops. A chunk is never
//!    shrunk to fit the free KV;
//! 2. only if nothing was preempted, queued requests are admitted first-come first-served with a first chunk
//!    of `min(prompt not cached, budget left)` tokens, while the budget lasts, fewer than `N` requests run and
//!    the chunk's blocks are free; admission stops at the first that does not fit.
//!
//! Differences from [`super::chunked`] (Sarathi-Serve's rule): decodes are not served before older partial
//! prefills, and chunks are not shrunk to the free KV (V1 preempts instead, so a request whose next chunk does
//! not fit beside an older one waits instead of trickling in). Not modelled: speculative decoding, structured
//! output, encoder inputs, the priority policy, async scheduling.

use super::draft::Draft;
use super::{Lane, Plan, Policy, View};

/// Settings of [`VllmV1`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VllmV1Config {
    /// `max_num_batched_tokens` (decode tokens count 1 each). Default 2048 (vLLM's default for GPUs that are
    /// not H100-class; the engine presets set each GPU's).
    pub token_budget: u32,
    /// `max_num_seqs`: most requests running at once. Default 256.
    pub max_num_seqs: usize,
}

impl Default for VllmV1Config {
    fn default() -> Self {
        Self { token_budget: 2048, max_num_seqs: 256 }
    }
}

/// The policy's name (command line, reports, registry).
pub const NAME: &str = "vllm";

/// `vllm` in the policy registry.
pub const ENTRY: super::Entry = super::Entry {
    name: NAME,
    options: &["--token-budget", "--max-num-seqs"],
    settings: |o| {
        let d = VllmV1Config::default();
        Ok(std::sync::Arc::new(VllmV1Config {
            token_budget: o.budget(d.token_budget),
            max_num_seqs: o.seqs(d.max_num_seqs),
        }))
    },
};

impl super::Settings for VllmV1Config {
    fn name(&self) -> &'static str {
        NAME
    }
    fn token_budget(&self) -> u32 {
        self.token_budget
    }
    fn build(&self, _: &super::PolicyContext) -> Result<Box<dyn super::Policy>, crate::error::ConfigError> {
        Ok(Box::new(VllmV1 { cfg: self.clone() }))
    }
}

/// vLLM V1's scheduler (module docs).
#[derive(Debug, Clone)]
pub struct VllmV1 {
    cfg: VllmV1Config,
}

impl VllmV1 {
    /// The scheduler with these settings.
    pub fn new(cfg: VllmV1Config) -> Self {
        Self { cfg }
    }
}

impl Policy for VllmV1 {
    fn name(&self) -> &'static str {
        NAME
    }

    fn plan(&mut self, view: &View<'_>) -> Plan {
        if !view.busy.is_empty() {
            return Plan::default();
        }
        let mut d = Draft::new(view, self.cfg.token_budget);
        d.schedule_running_in_order();
        d.admit_waiting(self.cfg.max_num_seqs);
        d.into_plan(Lane::Whole, view.total_sms, 1)
    }

    /// With nothing waiting and every running request decoding, the plan is one whole-GPU batch decoding all of
    /// them in admission order while their blocks are free; the policy keeps no state and reads no time.
    fn repeat_decode(&mut self, step: &super::QuietStep<'_>) -> Option<super::Repeat> {
        Some(super::Repeat { lane: Lane::Whole, sms: step.total_sms, decision: None })
    }
}
