//! Persistent-split policies: prefill and decode always run on disjoint SM partitions.
//!
//! - `static-split` (semi-PD-like): fixed partitions given on the command line. Whenever the decode partition
//!   is idle, every running decode takes a step there (look-ahead depth configurable, default 1); whenever the
//!   prefill partition is idle, unfinished prefills and then admissions (up to the token budget) run there.
//! - `muxwise` (MuxWise, arXiv 2504.14489): at each decode step boundary the decode partition is the smallest
//!   legal one whose predicted step time, inflated by a contention guard (default 30%, the worst decode
//!   slowdown MuxWise observed), meets the TBT target (the largest legal one below the whole GPU when none
//!   does). Prefill runs at layer granularity: a prefill batch is executed in layer groups (default one layer
//!   each) and gets every SM the decode partition does not hold; when the next decode step needs more SMs than
//!   are free, the running prefill is shrunk at its next layer boundary and the decode step starts then; when the
//!   decode partition shrinks, the prefill grows into the freed SMs at its next boundary.
use super::draft::Draft;
use super::{Batch, Decision, Lane, Mode, Plan, Policy, PolicyContext, Resize, View};
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

/// The policy's name (command line, reports, registry).
pub const STATIC_SPLIT_NAME: &str = "static-split";

/// `static-split` in the policy registry.
pub const STATIC_SPLIT_ENTRY: super::Entry = super::Entry {
    name: STATIC_SPLIT_NAME,
    options: &["--token-budget", "--max-lookahead", "--split"],
    settings: |o| {
        let (prefill_sms, decode_sms) = o.split.ok_or_else(|| {
            ConfigError::Invalid("static-split needs --split PREFILL_SMS:DECODE_SMS (e.g. 100:32)".into())
        })?;
        let d = StaticSplitConfig::default();
        Ok(std::sync::Arc::new(StaticSplitConfig {
            token_budget: o.budget(d.token_budget),
            prefill_sms,
            decode_sms,
            lookahead: o.max_lookahead.unwrap_or(d.lookahead),
            ..d
        }))
    },
};

impl super::Settings for StaticSplitConfig {
    fn name(&self) -> &'static str {
        STATIC_SPLIT_NAME
    }
    fn token_budget(&self) -> u32 {
        self.token_budget
    }
    fn build(&self, ctx: &super::PolicyContext) -> Result<Box<dyn super::Policy>, crate::error::ConfigError> {
        Ok(Box::new(StaticSplit::new(self.clone(), ctx)?))
    }
}

/// A draft of every running decode with KV for `decode`'s look-ahead (none when `decode` is `None`): where
/// [`split_plan`] starts.
fn decode_draft<'v, 'a>(view: &'v View<'a>, decode: Option<(u32, u32)>) -> Draft<'v, 'a> {
    let mut d = Draft::new(view, u32::MAX);
    if let Some((_, k)) = decode {
        d.decode_running(k);
    }
    d
}

/// Builds the decode batch (`decode`: SMs and look-ahead) and the prefill batch (`prefill`: SMs and layer
/// groups) of one plan from one draft `d` ([`decode_draft`] of `decode`), so KV accounting covers both; queued
/// requests are admitted in the order of `order` when given (else queue order).
pub(super) fn split_plan(
    mut d: Draft<'_, '_>,
    budget: u32,
    max_num_seqs: usize,
    decode: Option<(u32, u32)>,
    prefill: Option<(u32, u32)>,
    order: Option<&[crate::request::ReqId]>,
) -> Plan {
    if prefill.is_some() {
        d.budget = budget;
        d.continue_prefills();
        match order {
            Some(ids) => d.admit_in_order(ids.iter().copied(), max_num_seqs),
            None => d.admit_waiting(max_num_seqs),
        }
    }
    let (preempt, items) = d.into_parts();
    let prefills = items.iter().filter(|it| matches!(it, super::BatchItem::Prefill { .. })).count();
    let (pre, dec) = if prefills == 0 {
        (Vec::new(), items)
    } else {
        let (mut pre, mut dec) = (Vec::with_capacity(prefills), Vec::with_capacity(items.len() - prefills));
        for it in items {
            if matches!(it, super::BatchItem::Prefill { .. }) { pre.push(it) } else { dec.push(it) }
        }
        (pre, dec)
    };
    let mut batches = Vec::new();
    if let (Some((sms, k)), false) = (decode, dec.is_empty()) {
        batches.push(Batch { lookahead: k, ..Batch::new(Lane::Decode, sms, dec) });
    }
    if let (Some((sms, segments)), false) = (prefill, pre.is_empty()) {
        batches.push(Batch { segments, ..Batch::new(Lane::Prefill, sms, pre) });
    }
    Plan { preempt, batches, ..Plan::default() }
}

/// Picks a decode partition that fits the free SMs (given the decode work and the free SMs) to start on at once
/// instead of waiting for a running prefill to shrink, or `None` to wait ([`layered_plan`]).
pub(super) type Interim<'a> = dyn Fn(&[SeqWork], u32) -> Option<(u32, u64)> + 'a;

/// One plan of a persistent split with layer-granular prefill (MuxWise's execution, shared with `adaptive`). When
/// the decode lane is idle and requests are decoding, `size` picks the decode partition from the decode work (SMs and
/// predicted step); a running prefill that holds fewer SMs than are free grows into them at its next layer boundary,
/// and one that holds SMs the decode step needs is shrunk there (the decode step starts once they are free, or at
/// once on the free SMs if `interim(work, free)` returns a size that fits them; MuxWise's returns `None`). An idle
/// prefill lane gets every SM the decode side does not hold, in `segments` layer groups, admitting queued requests in
/// the order `order` gives (`None`: queue order). Returns the plan, with a split [`Decision`] when a decode batch
/// starts, and that batch's (SMs, predicted step).
pub(super) fn layered_plan(
    view: &View<'_>,
    budget: u32,
    max_num_seqs: usize,
    segments: u32,
    size: &dyn Fn(&[SeqWork]) -> (u32, u64),
    interim: &Interim<'_>,
    order: &dyn Fn() -> Option<Vec<crate::request::ReqId>>,
) -> (Plan, Option<(u32, u64)>) {
    let total = view.total_sms;
    let prefill_running = view.on_lane(Lane::Prefill).copied();
    let mut decode = None;
    let mut resize = Vec::new();
    let mut decision = None;
    // The draft of every running decode: the plan's own when a decode batch starts (`split_plan` begins so).
    let mut probe = None;
    if view.on_lane(Lane::Decode).is_none() {
        let probe = probe.insert(Draft::new(view, u32::MAX));
        probe.decode_running(1);
        let work: Vec<SeqWork> = probe.items().map(|it| view.seq_work(it, 0)).collect();
        if !work.is_empty() {
            let (s, t) = size(&work);
            let free = view.free_sms();
            match prefill_running {
                _ if s <= free => {
                    decode = Some((s, 1));
                    decision = Some((s, t));
                    // A prefill that holds fewer SMs than it could grows into the rest at its next boundary.
                    if let Some(p) = prefill_running
                        && free > s
                        && p.segments_left > 0
                        && p.pending_sms.is_none()
                    {
                        resize.push(Resize { lane: Lane::Prefill, sms: p.sms + free - s });
                    }
                }
                // Not enough free SMs: shrink the running prefill at its next layer boundary; decode then starts,
                // or starts now on the free SMs if `interim` picks a size that fits them.
                Some(p) if p.segments_left > 0 => {
                    if p.pending_sms != Some(total - s) {
                        resize.push(Resize { lane: Lane::Prefill, sms: total - s });
                    }
                    if let Some((n, t)) = interim(&work, free).filter(|&(n, _)| n <= free) {
                        decode = Some((n, 1));
                        decision = Some((n, t));
                    }
                }
                _ => {}
            }
        }
    }
    let prefill = match (prefill_running, view.on_lane(Lane::Decode).map(|b| b.sms).or(decode.map(|(s, _)| s))) {
        (Some(_), _) => None,
        (None, Some(d)) => Some((total - d, segments)),
        (None, None) => Some((total, segments)),
    };
    // The admission order matters only when a prefill batch is planned.
    let order = prefill.and_then(|_| order());
    let draft = match (decode, probe) {
        (Some(_), Some(d)) => d,
        _ => decode_draft(view, decode),
    };
    let mut plan = split_plan(draft, budget, max_num_seqs, decode, prefill, order.as_deref());
    plan.resize = resize;
    let started = decision.filter(|_| plan.batches.iter().any(|b| b.lane == Lane::Decode));
    if let Some((s, t)) = started {
        let prefill_sms = plan.batches.iter().find(|b| b.lane == Lane::Prefill).map_or(0, |b| b.sms);
        plan.decision = Some(Decision {
            mode: Mode::Split,
            prefill_sms,
            decode_sms: s,
            lookahead: 1,
            predicted_mixed_ns: 0,
            predicted_prefill_ns: 0,
            predicted_decode_step_ns: t,
        });
    }
    (plan, started)
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
        STATIC_SPLIT_NAME
    }

    /// With nothing waiting and every running request decoding, the prefill partition has nothing to run and the
    /// plan is one decode batch of every request on the decode partition; with one step per batch it is the same
    /// batch every step (look-ahead windows are not single steps, so they always go through `plan`).
    fn repeat_decode(&mut self, _: &super::QuietStep<'_>) -> Option<super::Repeat> {
        (self.cfg.lookahead == 1).then_some(super::Repeat {
            lane: Lane::Decode,
            sms: self.cfg.decode_sms,
            decision: None,
        })
    }

    fn plan(&mut self, view: &View<'_>) -> Plan {
        let decode = view.on_lane(Lane::Decode).is_none().then_some((self.cfg.decode_sms, self.cfg.lookahead));
        let prefill = view.on_lane(Lane::Prefill).is_none().then_some((self.cfg.prefill_sms, 1));
        split_plan(decode_draft(view, decode), self.cfg.token_budget, self.cfg.max_num_seqs, decode, prefill, None)
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
    /// Layers per prefill layer group (the resize granularity). Default 1.
    pub layers_per_segment: u32,
}

impl Default for MuxWiseConfig {
    fn default() -> Self {
        Self { token_budget: 2048, max_num_seqs: 256, tbt_target_ns: 100_000_000, guard: 0.3, layers_per_segment: 1 }
    }
}

/// The policy's name (command line, reports, registry).
pub const MUXWISE_NAME: &str = "muxwise";

/// `muxwise` in the policy registry.
pub const MUXWISE_ENTRY: super::Entry = super::Entry {
    name: MUXWISE_NAME,
    options: &["--token-budget", "--tbt-target-ms", "--decode-guard"],
    settings: |o| {
        let d = MuxWiseConfig::default();
        Ok(std::sync::Arc::new(MuxWiseConfig {
            token_budget: o.budget(d.token_budget),
            tbt_target_ns: o.tbt_ns(d.tbt_target_ns),
            guard: o.guard.unwrap_or(d.guard),
            ..d
        }))
    },
};

impl super::Settings for MuxWiseConfig {
    fn name(&self) -> &'static str {
        MUXWISE_NAME
    }
    fn token_budget(&self) -> u32 {
        self.token_budget
    }
    fn build(&self, ctx: &super::PolicyContext) -> Result<Box<dyn super::Policy>, crate::error::ConfigError> {
        Ok(Box::new(MuxWise::new(self.clone(), ctx.clone())?))
    }
}

/// Persistent split sized per decode step, with layer-granular prefill.
#[derive(Debug)]
pub struct MuxWise {
    cfg: MuxWiseConfig,
    ctx: PolicyContext,
    /// Legal decode partition sizes (with a legal remainder), ascending.
    decode_sizes: Vec<u32>,
    segments: u32,
    /// The pricer's buffers, kept between decode steps.
    scratch: std::cell::RefCell<crate::cost::PricerScratch>,
}

impl MuxWise {
    /// A MuxWise policy; fails if the granularity cannot split this GPU.
    pub fn new(cfg: MuxWiseConfig, ctx: PolicyContext) -> Result<Self, ConfigError> {
        ctx.granularity.validate(ctx.total_sms)?;
        if !(cfg.guard.is_finite() && cfg.guard >= 0.0) {
            return Err(ConfigError::Invalid(format!("contention guard must be >= 0, got {}", cfg.guard)));
        }
        if cfg.layers_per_segment == 0 {
            return Err(ConfigError::Invalid("layers per prefill segment must be >= 1".into()));
        }
        let g: Granularity = ctx.granularity;
        let decode_sizes = g.splits(ctx.total_sms).into_iter().map(|(d, _)| d).collect();
        let segments = (ctx.cost.model().num_layers as u32).div_ceil(cfg.layers_per_segment).max(1);
        Ok(Self { cfg, ctx, decode_sizes, segments, scratch: Default::default() })
    }

    /// Smallest legal decode partition whose guarded step time meets the target, else the largest legal one;
    /// with its predicted step time.
    fn decode_partition(&self, work: &[SeqWork]) -> (u32, u64) {
        let pricer = self.ctx.cost.pricer_in(work, Launch::Eager, self.scratch.take());
        let meets = |t: u64| t as f64 * (1.0 + self.cfg.guard) <= self.cfg.tbt_target_ns as f64;
        // Priced only when the O(1) bounds (Pricer::misses) leave it open, and for the size chosen.
        let found = self.decode_sizes.iter().find_map(|&s| match pricer.misses(s, |t| !meets(t)) {
            (false, t) => Some((s, t)),
            (true, _) => None,
        });
        let (s, t) =
            found.unwrap_or((*self.decode_sizes.last().expect("validated: the granularity splits this GPU"), None));
        let t = t.unwrap_or_else(|| pricer.predict_ns(s));
        self.scratch.replace(pricer.into_scratch());
        (s, t)
    }
}

impl Policy for MuxWise {
    fn name(&self) -> &'static str {
        MUXWISE_NAME
    }

    /// With nothing waiting and every running request decoding, `layered_plan` starts one decode batch of every
    /// request on the partition `decode_partition` picks for its work (the prefill lane has nothing to run),
    /// logged as a split; the policy keeps no state and reads no time.
    fn repeat_decode(&mut self, step: &super::QuietStep<'_>) -> Option<super::Repeat> {
        let (s, t) = self.decode_partition(step.work);
        let decision = Decision {
            mode: Mode::Split,
            prefill_sms: 0,
            decode_sms: s,
            lookahead: 1,
            predicted_mixed_ns: 0,
            predicted_prefill_ns: 0,
            predicted_decode_step_ns: t,
        };
        Some(super::Repeat { lane: Lane::Decode, sms: s, decision: Some(decision) })
    }

    fn plan(&mut self, view: &View<'_>) -> Plan {
        let order = || None;
        layered_plan(
            view,
            self.cfg.token_budget,
            self.cfg.max_num_seqs,
            self.segments,
            &|w| self.decode_partition(w),
            &|_, _| None,
            &order,
        )
        .0
    }
}
