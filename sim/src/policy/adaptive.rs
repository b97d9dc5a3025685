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
//! 3. **The partition.** `S_d` is the smallest legal partition with `r x t_d(S_d) <= T` (the largest legal one
//!    below the whole GPU when none is), so every SM that decode does not need goes to prefill.
//!
//! Admission is `chunked`'s (queue order, token budget per prefill batch, default 2048; `max_num_seqs` default
//! 256). The policy never reads a request's output length: it sees lengths generated so far, KV and
//! partition state, and the executed times of past steps.

use super::draft::Draft;
use super::split::split_plan;
use super::{Decision, Lane, Mode, Plan, Policy, PolicyContext, Resize, View};
use crate::cost::{Launch, SeqWork};
use crate::error::ConfigError;
use crate::request::{Phase, ReqId};
use crate::time::Nanos;
use std::collections::{BTreeSet, VecDeque};

/// Settings of [`Adaptive`].
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveConfig {
    /// Prefill tokens per prefill batch. Default 2048.
    pub token_budget: u32,
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
            token_budget: 2048,
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
        if cfg.layers_per_segment == 0 || cfg.token_budget == 0 || cfg.tbt_target_ns == 0 || cfg.window_ns == 0 {
            return Err(ConfigError::Invalid(
                "adaptive needs a token budget, TBT target, rate window and layers per segment >= 1".into(),
            ));
        }
        let decode_sizes = ctx.granularity.splits(ctx.total_sms).into_iter().map(|(d, _)| d).collect();
        let segments = (ctx.cost.model().num_layers as u32).div_ceil(cfg.layers_per_segment).max(1);
        let ratio = 1.0 + cfg.prior_guard;
        let target_ns = cfg.tbt_target_ns as f64 / (1.0 + cfg.slack);
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

    /// Notes admissions and finishes since the last plan.
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

    /// Smallest legal decode partition expected to meet the step target, else the largest legal one; with its
    /// predicted (roofline) step time.
    fn decode_partition(&self, work: &[SeqWork]) -> (u32, u64) {
        let predict = |s: u32| self.ctx.cost.iteration_launched(s, work, Launch::Eager).total.0;
        for &s in &self.decode_sizes {
            let t = predict(s);
            if t as f64 * self.ratio <= self.target_ns {
                return (s, t);
            }
        }
        let s = *self.decode_sizes.last().expect("validated: the granularity splits this GPU");
        (s, predict(s))
    }
}

impl Policy for Adaptive {
    fn name(&self) -> &'static str {
        NAME
    }

    fn plan(&mut self, view: &View<'_>) -> Plan {
        self.learn(view);
        self.observe(view);
        let total = view.total_sms;
        let prefill_running = view.on_lane(Lane::Prefill).copied();
        let mut decode = None;
        let mut resize = Vec::new();
        let mut decision = None;
        if view.on_lane(Lane::Decode).is_none() {
            let mut probe = Draft::new(view, u32::MAX);
            probe.decode_running(1);
            let work: Vec<SeqWork> = probe.items().map(|it| view.seq_work(it, 0)).collect();
            if !work.is_empty() {
                self.steer(view);
                let (s, t) = self.decode_partition(&work);
                let free = view.free_sms();
                match prefill_running {
                    _ if s <= free => {
                        decode = Some((s, 1));
                        decision = Some((s, t));
                        if let Some(p) = prefill_running
                            && free > s
                            && p.segments_left > 0
                            && p.pending_sms.is_none()
                        {
                            resize.push(Resize { lane: Lane::Prefill, sms: p.sms + free - s });
                        }
                    }
                    Some(p) if p.segments_left > 0 && p.pending_sms != Some(total - s) => {
                        resize.push(Resize { lane: Lane::Prefill, sms: total - s });
                    }
                    _ => {}
                }
            }
        }
        let prefill = match (prefill_running, view.on_lane(Lane::Decode).map(|b| b.sms).or(decode.map(|(s, _)| s))) {
            (Some(_), _) => None,
            (None, Some(d)) => Some((total - d, self.segments)),
            (None, None) => Some((total, self.segments)),
        };
        let mut plan = split_plan(view, self.cfg.token_budget, self.cfg.max_num_seqs, decode, prefill);
        plan.resize = resize;
        if let Some((s, t)) = decision
            && plan.batches.iter().any(|b| b.lane == Lane::Decode)
        {
            self.pending = Some((view.now, t));
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
        plan
    }
}
