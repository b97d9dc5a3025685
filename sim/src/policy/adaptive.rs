//! `adaptive`: a persistent prefill/decode split whose decode partition follows what the GPU measured and how
//! full the engine is (issue 19; a new policy beside the faithful DuetServe and MuxWise).
//!
//! It executes like `muxwise`: prefill runs in layer groups on every SM the decode partition does not hold, and
//! is shrunk or grown at its next layer boundary when the decode partition changes. What differs is how the
//! decode partition `S_d` is chosen at each decode step boundary, from three things a real scheduler has:
//!
//! 1. **Measured contention.** `r` is an exponentially weighted mean (weight `alpha`, default 0.2) of
//!    `executed / predicted` over the policy's own decode steps, read from [`View::history`] once they end
//!    (simulated times, or measured on a device); before any step ended, `r = 1 + prior_guard` (default 0.3,
//!    MuxWise's worst observed decode slowdown). A decode step on `S` SMs is expected to take `r x t_d(S)`,
//!    `t_d` being the roofline prediction of the step.
//! 2. **Occupancy (Little's law).** Requests decoding at once = the rate they enter decode x their output
//!    length x the step time, and an engine that reaches its sequence limit or runs out of KV stops admitting,
//!    which shows up as TTFT: a decode partition sized only to meet the TBT target makes steps slow, requests
//!    stay long, and admission stalls. So the step target is
//!    `T = min(tau / (1 + slack), rho x min(max_num_seqs, KV tokens / c) / (lambda x o))`, with `lambda` the
//!    admission rate over the last `window` (default 60 s), `o` the mean output length of the requests that
//!    finished so far (output lengths of finished requests are known to any scheduler), `c` the mean KV tokens
//!    held by a running request, and `rho` (default 0.5) the occupancy aimed at, leaving half the sequence
//!    slots and KV for bursts. Until a request has finished, only the TBT bound applies. `slack` (default
//!    0.3) keeps the P99 gap, not just the mean step, under the target: `r` is a mean, and single gaps also
//!    include waits for a prefill to shrink at its next layer boundary (with 0.05, Qwen3-14B on Azure conv
//!    missed P99 ITL <= 100 ms at 2 req/s: 106.8 ms).
//! 3. **The partition.** `S_d` is the smallest legal partition with `r x t_d(S_d) <= T`; when none is (the
//!    occupancy bound is out of reach, e.g. long contexts fill the KV whatever the step time), the smallest
//!    with `r x t_d(S_d) <= tau / (1 + slack)`; else the largest legal one below the whole GPU. Every SM that
//!    decode does not need goes to prefill.
//!
//! 4. **Aggregated when light.** With every SM free, if `chunked`'s mixed batch (decodes first, then prefill
//!    chunks up to the token budget) is predicted to take at most `T` on the whole GPU, it runs there: a light
//!    decode load does not need its own SMs, and a split would take them from prefill. When the prefill
//!    partition frees up while a decode step runs and the load is light (every decoding request plus one full
//!    chunk would meet `T` on the whole GPU), prefill waits for that step to end so the next plan sees every
//!    SM free.
//!
//! 5. **Admission order on the prefill partition: highest response ratio next.** Among the first
//!    [`ORDER_WINDOW`] queued requests, the one with the largest `(waited + s) / s` is admitted first, `s` being
//!    its prefill time estimated as remaining prompt tokens / the whole GPU's prefill rate (a 4096-token
//!    prompt's predicted time). Short prompts pass long ones that have not waited long, and every request's
//!    ratio grows while it waits, so none starves; with equal prompts it is the queue order.
//!
//! Token budgets: an aggregated mixed batch takes the largest budget in `max_chunk, max_chunk / 2, ...,
//! min_chunk` (default 8192 down to 1024) whose batch meets `T` (chunks sized by the TBT slack: big when decode
//! has headroom, small when a step would miss); a batch on the prefill partition, which no decode waits for,
//! takes `token_budget` (default 4096). Admission is `chunked`'s (queue order; `max_num_seqs` default 256).
//!
//! The policy never reads a request's output length: it sees lengths generated so far, KV and partition state,
//! and the executed times of past steps.

use super::draft::Draft;
use super::split::layered_plan;
use super::{BatchItem, Decision, Lane, Mode, Plan, Policy, PolicyContext, View};
use crate::cost::{Launch, SeqWork};
use crate::error::ConfigError;
use crate::request::{Phase, ReqId};
use crate::time::Nanos;
use std::collections::{BTreeSet, VecDeque};

/// Queued requests (from the head of the queue) that the admission order considers.
pub const ORDER_WINDOW: usize = 256;

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
        }
    }
}

/// The policy's name (command line, reports, registry).
pub const NAME: &str = "adaptive";

/// `adaptive` in the policy registry.
pub const ENTRY: super::Entry = super::Entry {
    name: NAME,
    settings: |o| {
        let d = AdaptiveConfig::default();
        Ok(std::sync::Arc::new(AdaptiveConfig {
            token_budget: o.budget(d.token_budget),
            max_num_seqs: o.seqs(d.max_num_seqs),
            tbt_target_ns: o.tbt_ns(d.tbt_target_ns),
            prior_guard: o.guard.unwrap_or(d.prior_guard),
            ..d
        }))
    },
};

impl super::Settings for AdaptiveConfig {
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

/// The `adaptive` policy (module docs).
#[derive(Debug)]
pub struct Adaptive {
    cfg: AdaptiveConfig,
    ctx: PolicyContext,
    /// Legal decode partition sizes (with a legal remainder), ascending.
    decode_sizes: Vec<u32>,
    segments: u32,
    /// Measured executed / predicted decode step time.
    ratio: f64,
    /// Decode step target `T`, ns.
    target_ns: f64,
    /// The last decode batch started: its start time and predicted first-step time, until it is measured.
    pending: Option<(Nanos, u64)>,
    /// Requests running at the last plan (to see admissions and finishes).
    running: BTreeSet<ReqId>,
    /// Admission times within the rate window.
    admissions: VecDeque<Nanos>,
    /// Prefill tokens per second on the whole GPU (a 4096-token prompt), for service-time estimates.
    prefill_rate: f64,
    /// Requests seen to finish, and their output tokens.
    finished: u64,
    finished_tokens: u64,
}

impl Adaptive {
    /// An `adaptive` policy; fails if the granularity cannot split this GPU or a setting is out of range.
    pub fn new(cfg: AdaptiveConfig, ctx: PolicyContext) -> Result<Self, ConfigError> {
        ctx.granularity.validate(ctx.total_sms)?;
        let in_range = |v: f64, lo: f64, hi: f64| v.is_finite() && v >= lo && v <= hi;
        if !in_range(cfg.prior_guard, 0.0, 10.0) || !in_range(cfg.slack, 0.0, 10.0) {
            return Err(ConfigError::Invalid(format!(
                "adaptive: guard and slack must be in [0, 10], got {} and {}",
                cfg.prior_guard, cfg.slack
            )));
        }
        if !in_range(cfg.alpha, f64::MIN_POSITIVE, 1.0) || !in_range(cfg.occupancy, f64::MIN_POSITIVE, 1.0) {
            return Err(ConfigError::Invalid(format!(
                "adaptive: alpha and occupancy must be in (0, 1], got {} and {}",
                cfg.alpha, cfg.occupancy
            )));
        }
        if cfg.layers_per_segment == 0
            || cfg.token_budget == 0
            || cfg.tbt_target_ns == 0
            || cfg.window_ns == 0
            || cfg.min_chunk == 0
            || cfg.min_chunk > cfg.max_chunk
        {
            return Err(ConfigError::Invalid(
                "adaptive needs a token budget, TBT target, rate window and layers per segment >= 1".into(),
            ));
        }
        let decode_sizes = ctx.granularity.splits(ctx.total_sms).into_iter().map(|(d, _)| d).collect();
        let segments = (ctx.cost.model().num_layers as u32).div_ceil(cfg.layers_per_segment).max(1);
        let ratio = 1.0 + cfg.prior_guard;
        let target_ns = cfg.tbt_target_ns as f64 / (1.0 + cfg.slack);
        let probe = [SeqWork { new_tokens: 4096, cached_tokens: 0, emits_token: true }];
        let t = ctx.cost.iteration_launched(ctx.total_sms, &probe, Launch::Eager).total.0.max(1);
        let prefill_rate = 4096.0 / (t as f64 / 1e9);
        Ok(Self {
            cfg,
            ctx,
            decode_sizes,
            segments,
            ratio,
            target_ns,
            pending: None,
            running: BTreeSet::new(),
            admissions: VecDeque::new(),
            finished: 0,
            finished_tokens: 0,
            prefill_rate,
        })
    }

    /// The measured contention ratio `r`.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The decode step target `T`, ns.
    pub fn target_ns(&self) -> f64 {
        self.target_ns
    }

    /// Folds the executed time of the last decode batch's first step into `r`, once it has ended.
    fn learn(&mut self, view: &View<'_>) {
        let Some((start, predicted)) = self.pending else { return };
        let done = view
            .history
            .iter()
            .rev()
            .take_while(|it| it.start >= start)
            .find(|it| it.lane == Lane::Decode && it.start == start && it.end > it.start);
        if let Some(step) = done {
            let observed = (step.end - step.start).0 as f64 / predicted.max(1) as f64;
            self.ratio += self.cfg.alpha * (observed - self.ratio);
            self.pending = None;
        }
    }

    /// Notes admissions and finishes since the last call (made where the step target is set: every decode step
    /// boundary and whenever every SM is free).
    fn observe(&mut self, view: &View<'_>) {
        let now: BTreeSet<ReqId> = view.running.iter().copied().collect();
        for &id in &now {
            if !self.running.contains(&id) {
                self.admissions.push_back(view.now);
            }
        }
        for &id in &self.running {
            if !now.contains(&id) && view.req(id).phase() == Phase::Finished {
                self.finished += 1;
                self.finished_tokens += u64::from(view.req(id).generated());
            }
        }
        self.running = now;
        let window = Nanos(self.cfg.window_ns);
        while self.admissions.front().is_some_and(|&t| t + window < view.now) {
            self.admissions.pop_front();
        }
    }

    /// The decode step target `T` (module docs, rule 2).
    fn steer(&mut self, view: &View<'_>) {
        let tau = self.cfg.tbt_target_ns as f64 / (1.0 + self.cfg.slack);
        self.target_ns = tau;
        let (Some(&first), true) = (self.admissions.front(), self.finished > 0) else { return };
        let span = (view.now - first).0.max(1) as f64 / 1e9;
        let lambda = self.admissions.len() as f64 / span.min(self.cfg.window_ns as f64 / 1e9);
        let mean_out = self.finished_tokens as f64 / self.finished as f64;
        let held: u64 = view.running.iter().map(|&id| u64::from(view.req(id).kv_tokens())).sum();
        let slots = if held > 0 && !view.running.is_empty() {
            let c = held as f64 / view.running.len() as f64;
            (self.cfg.max_num_seqs as f64).min(view.kv.total_tokens() as f64 / c)
        } else {
            self.cfg.max_num_seqs as f64
        };
        let little = self.cfg.occupancy * slots / (lambda * mean_out) * 1e9;
        if little.is_finite() {
            self.target_ns = tau.min(little);
        }
    }

    /// Smallest legal decode partition expected to meet the step target `T`; if none does (the occupancy bound
    /// is out of reach), the smallest expected to meet the TBT bound alone; else the largest legal one. With its
    /// predicted (roofline) step time.
    fn decode_partition(&self, work: &[SeqWork]) -> (u32, u64) {
        let predict = |s: u32| self.ctx.cost.iteration_launched(s, work, Launch::Eager).total.0;
        let tau = self.cfg.tbt_target_ns as f64 / (1.0 + self.cfg.slack);
        // Sizes ascend and step times fall with them, so the first size meeting `T` ends the scan; the first
        // meeting the TBT bound alone (T <= that bound) comes no later.
        let mut tau_hit = None;
        let mut last = (0, 0);
        for &s in &self.decode_sizes {
            let t = predict(s);
            let expected = t as f64 * self.ratio;
            if expected <= self.target_ns {
                return (s, t);
            }
            if tau_hit.is_none() && expected <= tau {
                tau_hit = Some((s, t));
            }
            last = (s, t);
        }
        tau_hit.unwrap_or(last)
    }
}

impl Adaptive {
    /// With every SM free: `chunked`'s mixed batch on the whole GPU if it is predicted to meet the step target
    /// (rule 4), else `None`.
    fn aggregated(&self, view: &View<'_>) -> Option<Plan> {
        let total = view.total_sms;
        let mut budget = self.cfg.max_chunk;
        let (d, t) = loop {
            let mut d = Draft::new(view, budget);
            d.decode_running(1);
            d.continue_prefills();
            d.admit_waiting(self.cfg.max_num_seqs);
            let work: Vec<SeqWork> = d.items().map(|it| view.seq_work(it, 0)).collect();
            if work.is_empty() {
                return None;
            }
            let t = self.ctx.cost.iteration_launched(total, &work, Launch::Eager).total.0;
            if t as f64 <= self.target_ns {
                break (d, t);
            }
            if budget / 2 < self.cfg.min_chunk {
                return None;
            }
            budget /= 2;
        };
        let decode_items = d.items().filter(|it| matches!(it, BatchItem::Decode { .. })).count();
        let mut plan = d.into_plan(Lane::Whole, total, 1);
        plan.decision = Some(Decision {
            mode: Mode::Aggregated,
            prefill_sms: total,
            decode_sms: if decode_items > 0 { total } else { 0 },
            lookahead: 1,
            predicted_mixed_ns: t,
            predicted_prefill_ns: 0,
            predicted_decode_step_ns: 0,
        });
        Some(plan)
    }

    /// The first [`ORDER_WINDOW`] queued requests, highest response ratio first (rule 5).
    fn admission_order(&self, view: &View<'_>) -> Vec<ReqId> {
        let key = |id: ReqId| {
            let r = view.req(id);
            let service = f64::from(r.remaining_prefill().max(1)) / self.prefill_rate;
            let waited = (view.now - r.arrival()).0 as f64 / 1e9;
            (waited + service) / service
        };
        let mut ids: Vec<(f64, ReqId)> = view.waiting.iter().take(ORDER_WINDOW).map(|&id| (key(id), id)).collect();
        ids.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Whether every decoding request plus one full prefill chunk would fit in one step on the whole GPU within
    /// the step target: the load is light enough to run aggregated.
    fn light(&self, view: &View<'_>) -> bool {
        let mut work: Vec<SeqWork> = view
            .running
            .iter()
            .map(|&id| view.req(id))
            .filter(|r| r.phase() == Phase::Decoding)
            .map(|r| SeqWork { new_tokens: 1, cached_tokens: r.kv_tokens(), emits_token: true })
            .collect();
        let mut budget = self.cfg.min_chunk;
        for &id in view.running.iter().chain(view.waiting.iter()) {
            let r = view.req(id);
            let take = r.remaining_prefill().min(budget);
            if take > 0 && r.phase() != Phase::Decoding {
                work.push(SeqWork { new_tokens: take, cached_tokens: r.kv_tokens(), emits_token: false });
                budget -= take;
            }
            if budget == 0 {
                break;
            }
        }
        let t = self.ctx.cost.iteration_launched(view.total_sms, &work, Launch::Eager).total.0;
        t as f64 <= self.target_ns
    }
}

impl Policy for Adaptive {
    fn name(&self) -> &'static str {
        NAME
    }

    fn plan(&mut self, view: &View<'_>) -> Plan {
        self.learn(view);
        if view.busy.is_empty() {
            self.observe(view);
            self.steer(view);
            if let Some(plan) = self.aggregated(view) {
                return plan;
            }
        } else if view.on_lane(Lane::Prefill).is_none() && view.on_lane(Lane::Decode).is_some() && self.light(view) {
            // Light load: let the decode step end, then run aggregated.
            return Plan::default();
        }
        if view.on_lane(Lane::Decode).is_none() {
            self.observe(view);
            self.steer(view);
        }
        let order = || Some(self.admission_order(view));
        let (plan, started) = layered_plan(
            view,
            self.cfg.token_budget,
            self.cfg.max_num_seqs,
            self.segments,
            &|w| self.decode_partition(w),
            &order,
        );
        if let Some((_, t)) = started {
            self.pending = Some((view.now, t));
        }
        plan
    }
}
