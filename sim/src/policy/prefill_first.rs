//! `prefill-first`: prefill-prioritised scheduling (SGLang's default scheduler; vLLM v0 without chunking).
//!
//! Each iteration runs *either* a prefill-only batch *or* a decode-only batch:
//! 1. if any prefill work can start, build a prefill-only batch up to the token budget (default 8192, SGLang's
//!    `chunked_prefill_size` on H100-class GPUs): first the unfinished prefills of running requests (oldest
//!    first, shrunk to the free KV), then queued requests first-come first-served while the budget, the KV blocks
//!    for their chunk and `max_num_seqs` allow (a prompt longer than the budget is chunked); decodes pause;
//! 2. otherwise run one decode step for every running decode, preempting newer requests when KV cannot grow.
//!
//! Not modelled: SGLang's admission reserve for future decode growth (`new_token_ratio`); this policy relies
//! on recompute preemption instead, as vLLM v0 does.

use super::draft::Draft;
use super::{Lane, Plan, Policy, View};

/// Settings of [`PrefillFirst`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefillFirstConfig {
    /// Prefill tokens per prefill batch. Default 8192.
    pub token_budget: u32,
    /// Most requests holding KV at once (default 256).
    pub max_num_seqs: usize,
}

impl Default for PrefillFirstConfig {
    fn default() -> Self {
        Self { token_budget: 8192, max_num_seqs: 256 }
    }
}

/// The policy's name (command line, reports, registry).
pub const NAME: &str = "prefill-first";

/// `prefill-first` in the policy registry.
pub const ENTRY: super::Entry = super::Entry {
    name: NAME,
    options: &["--token-budget"],
    settings: |o| {
        let d = PrefillFirstConfig::default();
        Ok(std::sync::Arc::new(PrefillFirstConfig { token_budget: o.budget(d.token_budget), ..d }))
    },
};

impl super::Settings for PrefillFirstConfig {
    fn name(&self) -> &'static str {
        NAME
    }
    fn token_budget(&self) -> u32 {
        self.token_budget
    }
    fn build(&self, _: &super::PolicyContext) -> Result<Box<dyn super::Policy>, crate::error::ConfigError> {
        Ok(Box::new(PrefillFirst::new(self.clone())))
    }
}

/// The prefill-first policy.
#[derive(Debug, Clone)]
pub struct PrefillFirst {
    cfg: PrefillFirstConfig,
}

impl PrefillFirst {
    /// A prefill-first policy with these settings.
    pub fn new(cfg: PrefillFirstConfig) -> Self {
        Self { cfg }
    }
}

impl Policy for PrefillFirst {
    fn name(&self) -> &'static str {
        NAME
    }

    fn plan(&mut self, view: &View<'_>) -> Plan {
        // Aggregated policies run one batch at a time on the whole GPU.
        if !view.busy.is_empty() {
            return Plan::default();
        }
        let mut d = Draft::new(view, self.cfg.token_budget);
        d.continue_prefills();
        d.admit_waiting(self.cfg.max_num_seqs);
        if d.has_items() || d.preempted_any() {
            return d.into_plan(Lane::Whole, view.total_sms, 1);
        }
        // Decode batches are not limited by the prefill token budget (max_num_seqs bounds them).
        d.budget = u32::MAX;
        d.decode_running(1);
        d.into_plan(Lane::Whole, view.total_sms, 1)
    }

    /// With nothing waiting and every running request decoding, the plan is one whole-GPU batch decoding all of
    /// them in admission order while their blocks are free; the policy keeps no state and reads no time.
    fn repeat_decode(&mut self, step: &super::QuietStep<'_>) -> Option<super::Repeat> {
        Some(super::Repeat { lane: Lane::Whole, sms: step.total_sms, decision: None })
    }
}
