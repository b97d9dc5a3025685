//! Persistent-split policies: prefill and decode always run on disjoint SM partitions.
//!
//! - `static-split` (semi-PD-like): fixed partitions given on the command line. Whenever the decode partition
//!   is idle, every running decode takes a step there (look-ahead depth configurable, default 1); whenever the
//!   prefill partition is idle, unfinished prefills and then admissions (up to the token budget) run there.
//! - `muxwise` (MuxWise, arXiv 2504.14489): at each decode step boundary the decode partition is the smallest
//!   legal one whose predicted step time, inflated by a contention guard (default 30%, the worst decode
//!   slowdown MuxWise observed), meets the TBT target, among the SMs the running prefill leaves free (the
//!   largest such partition when none meets it); a new prefill batch gets all SMs the decode partition does not
//!   hold. Stated simplification: MuxWise schedules prefill at layer granularity, so a running prefill can be
//!   shrunk or paused at a layer boundary; here a prefill batch keeps its SMs until it ends, and the decode
//!   partition is resized only when it can grow into free SMs.

use super::draft::Draft;
use super::{Batch, Decision, Lane, Mode, Plan, Policy, PolicyContext, View};
use crate::cost::{Launch, SeqWork};
use crate::error::ConfigError;
use crate::partition::Granularity;

/// Settings of [`StaticSplit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticSplitConfig {
    /// Prefill tokens per prefill batch. Default 2048.
    pub token_budget: u32,
    /// Most requests holding KV at once. Default 256.
    pub max_num_seqs: usize,
    /// SMs of the prefill partition.
    pub prefill_sms: u32,
    /// SMs of the decode partition.
    pub decode_sms: u32,
    /// Decode steps per decode batch. Default 1.
    pub lookahead: u32,
}

impl Default for StaticSplitConfig {
    fn default() -> Self {
        Self { token_budget: 2048, max_num_seqs: 256, prefill_sms: 100, decode_sms: 32, lookahead: 1 }
    }
}

/// Builds the decode batch (if `decode_sms > 0`) and the prefill batch (if `prefill_sms > 0`) of one plan from
/// one draft, so KV accounting covers both.
fn split_plan(
    view: &View<'_>,
    budget: u32,
    max_num_seqs: usize,
    decode: Option<(u32, u32)>,
    prefill_sms: Option<u32>,
) -> Plan {
    let mut d = Draft::new(view, u32::MAX);
    if let Some((_, k)) = decode {
        d.decode_running(k);
    }
    if prefill_sms.is_some() {
        d.budget = budget;
        d.continue_prefills();
        d.admit_waiting(max_num_seqs);
    }
    let (preempt, items) = d.into_parts();
    let (pre, dec): (Vec<_>, Vec<_>) = items.into_iter().partition(|it| matches!(it, super::BatchItem::Prefill { .. }));
    let mut batches = Vec::new();
    if let (Some((sms, k)), false) = (decode, dec.is_empty()) {
        batches.push(Batch { lane: Lane::Decode, sms, items: dec, lookahead: k });
    }
    if let (Some(sms), false) = (prefill_sms, pre.is_empty()) {
        batches.push(Batch { lane: Lane::Prefill, sms, items: pre, lookahead: 1 });
    }
    Plan { preempt, batches, decision: None }
}

/// Fixed prefill/decode partitions.
#[derive(Debug, Clone)]
pub struct StaticSplit {
    cfg: StaticSplitConfig,
}

impl StaticSplit {
    /// Checks that the split is legal on this GPU at this granularity.
    pub fn new(cfg: StaticSplitConfig, ctx: &PolicyContext) -> Result<Self, ConfigError> {
        let (p, d, total, g) = (cfg.prefill_sms, cfg.decode_sms, ctx.total_sms, ctx.granularity);
        if p == 0 || d == 0 || p + d > total {
            return Err(ConfigError::Invalid(format!(
                "impossible static split {p}:{d}: both sides need SMs and together at most the GPU's {total}"
            )));
        }
        for (side, sms) in [("prefill", p), ("decode", d)] {
            if !g.allows(sms, total) {
                return Err(ConfigError::Invalid(format!(
                    "static split: {sms} {side} SMs is not a legal {g} partition of {total} SMs"
                )));
            }
        }
        if cfg.lookahead == 0 {
            return Err(ConfigError::Invalid("static split look-ahead must be >= 1".into()));
        }
        Ok(Self { cfg })
    }
}

impl Policy for StaticSplit {
    fn name(&self) -> &'static str {
        "static-split"
    }

    fn plan(&mut self, view: &View<'_>) -> Plan {
        let decode = view.on_lane(Lane::Decode).is_none().then_some((self.cfg.decode_sms, self.cfg.lookahead));
        let prefill = view.on_lane(Lane::Prefill).is_none().then_some(self.cfg.prefill_sms);
        split_plan(view, self.cfg.token_budget, self.cfg.max_num_seqs, decode, prefill)
    }
}

/// Settings of [`MuxWise`].
#[derive(Debug, Clone, PartialEq)]
pub struct MuxWiseConfig {
    /// Prefill tokens per prefill batch. Default 2048.
    pub token_budget: u32,
    /// Most requests holding KV at once. Default 256.
    pub max_num_seqs: usize,
    /// TBT target, ns. Default 100 ms.
    pub tbt_target_ns: u64,
    /// Contention guard: predicted decode steps are multiplied by `1 + guard`. Default 0.3.
    pub guard: f64,
}

impl Default for MuxWiseConfig {
    fn default() -> Self {
        Self { token_budget: 2048, max_num_seqs: 256, tbt_target_ns: 100_000_000, guard: 0.3 }
    }
}

/// Persistent split sized per decode step.
#[derive(Debug)]
pub struct MuxWise {
    cfg: MuxWiseConfig,
    ctx: PolicyContext,
}

impl MuxWise {
    /// A MuxWise policy; fails if the granularity cannot split this GPU.
    pub fn new(cfg: MuxWiseConfig, ctx: PolicyContext) -> Result<Self, ConfigError> {
        ctx.granularity.validate(ctx.total_sms)?;
        if !(cfg.guard.is_finite() && cfg.guard >= 0.0) {
            return Err(ConfigError::Invalid(format!("contention guard must be >= 0, got {}", cfg.guard)));
        }
        Ok(Self { cfg, ctx })
    }

    /// Smallest legal decode partition within `avail` SMs whose guarded step time meets the target, else the
    /// largest legal one within `avail`; with its predicted step time.
    fn decode_partition(&self, work: &[SeqWork], avail: u32) -> Option<(u32, u64)> {
        let total = self.ctx.total_sms;
        let g: Granularity = self.ctx.granularity;
        let legal: Vec<u32> =
            (1..=avail).filter(|&s| g.allows(s, total) && (s == total || g.allows(total - s, total))).collect();
        let predict = |s: u32| self.ctx.cost.iteration_launched(s, work, Launch::Eager).total.0;
        for &s in &legal {
            let t = predict(s);
            if t as f64 * (1.0 + self.cfg.guard) <= self.cfg.tbt_target_ns as f64 {
                return Some((s, t));
            }
        }
        legal.last().map(|&s| (s, predict(s)))
    }
}

impl Policy for MuxWise {
    fn name(&self) -> &'static str {
        "muxwise"
    }

    fn plan(&mut self, view: &View<'_>) -> Plan {
        let total = view.total_sms;
        let running_prefill = view.on_lane(Lane::Prefill).map(|b| b.sms);
        let mut decode = None;
        let mut decision_step = 0;
        if view.on_lane(Lane::Decode).is_none() {
            let mut probe = Draft::new(view, u32::MAX);
            probe.decode_running(1);
            let work: Vec<SeqWork> = probe.items().map(|it| view.seq_work(it, 0)).collect();
            if !work.is_empty() {
                // With no prefill running, keep a legal remainder for the next prefill batch.
                let avail = total - running_prefill.unwrap_or(0);
                let avail = if running_prefill.is_none() { avail - 1 } else { avail };
                if let Some((s, t)) = self.decode_partition(&work, avail) {
                    decode = Some((s, 1));
                    decision_step = t;
                }
            }
        }
        let decode_sms_now = view.on_lane(Lane::Decode).map(|b| b.sms).or(decode.map(|(s, _)| s));
        let prefill = match (running_prefill, decode_sms_now) {
            (Some(_), _) => None,
            (None, Some(d)) => Some(total - d),
            (None, None) => Some(total),
        };
        // A prefill on every SM must not start while a decode could need SMs: only when nothing decodes.
        let mut plan = split_plan(view, self.cfg.token_budget, self.cfg.max_num_seqs, decode, prefill);
        if let Some((s, _)) = decode
            && plan.batches.iter().any(|b| b.lane == Lane::Decode)
        {
            let prefill_sms = plan.batches.iter().find(|b| b.lane == Lane::Prefill).map_or(0, |b| b.sms);
            plan.decision = Some(Decision {
                mode: Mode::Split,
                prefill_sms,
                decode_sms: s,
                lookahead: 1,
                predicted_mixed_ns: 0,
                predicted_prefill_ns: 0,
                predicted_decode_step_ns: decision_step,
            });
        }
        plan
    }
}
