//! `adaptive`'s settings: [`AdaptiveConfig`] (every constant of the rules, with its default), the
//! [`Mechanisms`] switches of the ablation, and its entry in the policy registry.

use super::Adaptive;
use crate::error::ConfigError;
use crate::policy::{Entry, Policy, PolicyContext, Settings};

/// Settings of [`Adaptive`].
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveConfig {
    /// Prefill tokens per prefill batch on the prefill partition. Default 4096.
    pub token_budget: u32,
    /// Largest token budget of an aggregated mixed batch. Default 8192.
    pub max_chunk: u32,
    /// Smallest token budget of an aggregated mixed batch. Default 1024.
    pub min_chunk: u32,
    /// Most requests holding KV at once. Default 256.
    pub max_num_seqs: usize,
    /// TBT target `tau`, ns. Default 100 ms.
    pub tbt_target_ns: u64,
    /// Contention assumed before any decode step was measured: `r = 1 + prior_guard`. Default 0.3.
    pub prior_guard: f64,
    /// Weight of the newest measurement in `r`. Default 0.2.
    pub alpha: f64,
    /// Relative margin below the target: `T <= tau / (1 + slack)`. Default 0.3.
    pub slack: f64,
    /// Occupancy `rho` of sequence slots and KV aimed at. Default 0.5.
    pub occupancy: f64,
    /// Window of the admission-rate estimate, ns. Default 60 s.
    pub window_ns: u64,
    /// Layers per prefill layer group (the resize granularity). Default 1.
    pub layers_per_segment: u32,
    /// Relative margin of the join-aware target: a step must end within `tau / (1 + gap_margin)` of the oldest
    /// pending token of a decoding request. Default 0.1.
    pub gap_margin: f64,
    /// Mechanism switches for the ablation (docs/RESULTS.md); all on by default.
    pub mechanisms: Mechanisms,
}

/// Which of `adaptive`'s mechanisms run (module docs, rules 1-6); switching one off leaves the others as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mechanisms {
    /// Rule 1: learn `r` from executed steps (off: `r` stays `1 + prior_guard`).
    pub learn_contention: bool,
    /// Rule 2: the Little's-law occupancy bound (off: `T = tau / (1 + slack)`).
    pub occupancy: bool,
    /// Rule 4: the join-aware target (off: `T' = T`).
    pub join_aware: bool,
    /// Rule 5: aggregated mixed batches when light (off: always split).
    pub aggregate: bool,
    /// Rule 6: highest response ratio next (off: queue order).
    pub hrrn: bool,
}

impl Default for Mechanisms {
    fn default() -> Self {
        Self { learn_contention: true, occupancy: true, join_aware: true, aggregate: true, hrrn: true }
    }
}

impl Mechanisms {
    /// Names accepted by [`Mechanisms::without`], in rule order.
    pub const NAMES: [&'static str; 5] = ["learn-contention", "occupancy", "join-aware", "aggregate", "hrrn"];

    /// These mechanisms with the named one switched off; an unknown name is an error listing the known ones.
    pub fn without(mut self, name: &str) -> Result<Self, ConfigError> {
        match name {
            "learn-contention" => self.learn_contention = false,
            "occupancy" => self.occupancy = false,
            "join-aware" => self.join_aware = false,
            "aggregate" => self.aggregate = false,
            "hrrn" => self.hrrn = false,
            _ => {
                return Err(ConfigError::Invalid(format!(
                    "adaptive: unknown mechanism {name:?}; known: {}",
                    Self::NAMES.join(", ")
                )));
            }
        }
        Ok(self)
    }
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self {
            token_budget: 4096,
            max_chunk: 8192,
            min_chunk: 1024,
            max_num_seqs: 256,
            tbt_target_ns: 100_000_000,
            prior_guard: 0.3,
            alpha: 0.2,
            slack: 0.3,
            occupancy: 0.5,
            window_ns: 60_000_000_000,
            layers_per_segment: 1,
            gap_margin: 0.1,
            mechanisms: Mechanisms::default(),
        }
    }
}

/// The policy's name (command line, reports, registry).
pub const NAME: &str = "adaptive";

/// `adaptive` in the policy registry.
pub const ENTRY: Entry = Entry {
    name: NAME,
    options: &["--token-budget", "--max-num-seqs", "--tbt-target-ms", "--decode-guard", "--adaptive-without"],
    settings: |o| {
        let d = AdaptiveConfig::default();
        Ok(std::sync::Arc::new(AdaptiveConfig {
            token_budget: o.budget(d.token_budget),
            max_num_seqs: o.seqs(d.max_num_seqs),
            tbt_target_ns: o.tbt_ns(d.tbt_target_ns),
            prior_guard: o.guard.unwrap_or(d.prior_guard),
            mechanisms: o.without.iter().try_fold(d.mechanisms, |m, name| m.without(name))?,
            ..d
        }))
    },
};

impl Settings for AdaptiveConfig {
    fn name(&self) -> &'static str {
        NAME
    }
    fn token_budget(&self) -> u32 {
        self.token_budget
    }
    fn build(&self, ctx: &PolicyContext) -> Result<Box<dyn Policy>, ConfigError> {
        Ok(Box::new(Adaptive::new(self.clone(), ctx.clone())?))
    }
}
