//! `adaptive`: a persistent prefill/decode split whose decode partition follows what the GPU measured and how
//! full the engine is (issue 19; a new policy beside the faithful DuetServe and MuxWise).
//!
//! It executes like `muxwise`: prefill runs in layer groups on every SM the decode partition does not hold, and
//! is shrunk or grown at its next layer boundary when the decode partition changes. What differs is how the
//! decode partition `S_d` is chosen at each decode step boundary, from what a real scheduler has (each rule
//! can be switched off for the ablation: [`Mechanisms`], `duet sim --adaptive-without NAME,...`):
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
//! 3. **The partition.** `S_d` is the smallest legal partition with `r x t_d(S_d) <= T'` (rule 4); when none is
//!    (the occupancy bound is out of reach, e.g. long contexts fill the KV whatever the step time), the smallest
//!    with `r x t_d(S_d) <= min(tau / (1 + slack), join bound)`; else the largest legal one below the whole GPU.
//!    Every SM that decode does not need goes to prefill. "Smallest" is found by bisection over the legal sizes,
//!    which assumes step times fall as partitions grow; with the measured curves they do not always (a few sizes
//!    are predicted a little slower than a smaller one), and there bisection may choose a slightly larger
//!    partition than a linear scan would (Qwen3-8B at 30 req/s on the bundled excerpt: 96 SMs where the scan
//!    took 84, both predicted at 24.1 ms). It costs `log2 n` predictions instead of up to `n`
//!    (32 legal green-context sizes on 132 SMs), which is most of the policy's time; a size whose O(1) bounds
//!    already settle whether it meets the target is not priced at all ([`crate::cost::Pricer::bounds_ns`]: same
//!    choices).
//!    When `S_d` needs SMs the running prefill holds, the prefill is shrunk at its next layer boundary, and the
//!    decode step waits for it only if the wait (to the boundary the prefill batch is expected to reach) plus
//!    the step still meets the join bound of rule 4; otherwise it starts at once on the free SMs (the smallest
//!    size that fits them and meets `T'` or the join bound, else the largest that fits). Without this, a long
//!    prefill layer (Mooncake: one layer of a long-context prompt on 8 SMs took 100 ms) held the decode step
//!    back, and re-planning at each boundary with a longer wait asked for ever more SMs (prefill shrank from 120
//!    to 4 SMs one boundary at a time).
//!
//! 4. **Join-aware step target.** A request's largest gap is usually its first: its prefill ends while a decode
//!    step runs, it waits for that step to end and then for the next step it joins. So the step planned at a
//!    boundary must also meet `tau / (1 + gap_margin) - w`, `w` being the longest wait so far of a decoding
//!    request since its last token (`now - last token`; 0 for requests that just got one): the next step's target
//!    is `T' = min(T, tau / (1 + gap_margin) - w)` (default `gap_margin` 0.1). When no partition meets `T'`, the
//!    fastest one runs. Without this rule, Qwen3-14B on Mooncake at 0.5 req/s had 266 of 12,031 requests with a
//!    gap over 100 ms, every one of them the first gap (a 47 ms wait plus a 56 ms step); with it and the
//!    interim start of rule 3, none at 0.5 req/s and 13 at 0.95 req/s (P99 of the largest gaps 92.6 ms; 106 ms
//!    with this rule alone).
//!
//! 5. **Aggregated when light.** With every SM free, if `chunked`'s mixed batch (decodes first, then prefill
//!    chunks up to the token budget) is predicted to take at most `T'` on the whole GPU, it runs there: a light
//!    decode load does not need its own SMs, and a split would take them from prefill. When the prefill
//!    partition frees up while a decode step runs and the load is light (every decoding request plus one full
//!    chunk would meet `T` on the whole GPU), prefill waits for that step to end so the next plan sees every
//!    SM free.
//!
//! 6. **Admission order, in both modes: highest response ratio next.** Among the first
//!    [`ORDER_WINDOW`] queued requests, the one with the largest `(waited + s) / s` is admitted first, `s` being
//!    its prefill time estimated as remaining prompt tokens / the whole GPU's prefill rate (a 4096-token
//!    prompt's predicted time). Short prompts pass long ones that have not waited long, and every request's
//!    ratio grows while it waits, so none starves; with equal prompts it is the queue order. Aggregated mixed
//!    batches admit in this order too: when they admitted in queue order (and only the prefill partition used
//!    this one), switching aggregation off *raised* Azure code's capacity from 1.20 to 1.76 req/s (Qwen3-8B)
//!    and 0.48 to 0.70 (Qwen3-14B), with both switched off it was 1.11 and 0.48: the gain on that bursty trace
//!    is the order, not the split.
//!
//! Token budgets: an aggregated mixed batch takes the largest budget in `max_chunk, max_chunk / 2, ...,
//! min_chunk` (default 8192 down to 1024) whose batch meets `T'` (chunks sized by the TBT slack: big when decode
//! has headroom, small when a step would miss); a batch on the prefill partition, which no decode waits for,
//! takes `token_budget` (default 4096). Admission otherwise follows `chunked` (a first chunk while the budget,
//! the KV blocks and `max_num_seqs`, default 256, allow; it stops at the first request that does not fit).
//!
//! The policy never reads a request's output length: it sees lengths generated so far, KV and partition state,
//! and the executed times of past steps.

mod config;
mod partition;
pub use config::{AdaptiveConfig, ENTRY, Mechanisms, NAME};
use partition::{Buffers, Memo};

use super::draft::Draft;
use super::split::layered_plan;
use super::{BatchItem, Decision, Lane, Mode, Plan, Policy, PolicyContext, QuietStep, Repeat, View};
use crate::cost::{Launch, SeqWork};
use crate::error::ConfigError;
use crate::request::{Phase, ReqId};
use crate::time::Nanos;
use std::collections::VecDeque;

/// Queued requests (from the head of the queue) that the admission order considers.
pub const ORDER_WINDOW: usize = 256;

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
    /// `min(tau / (1 + slack), tau / (1 + gap_margin) - w)`, ns (rule 4); the next step's target is
    /// `T' = min(T, join_ns)` ([`Adaptive::step_ns`]).
    join_ns: f64,
    /// The last decode batch started: its start time and predicted first-step time, until it is measured.
    pending: Option<(Nanos, u64)>,
    /// Requests running at the last plan (to see admissions and finishes).
    running: Vec<ReqId>,
    /// Per request (by index): whether it was running at the last plan (`observe`'s scratch marks).
    marks: Vec<u8>,
    /// Admission times within the rate window.
    admissions: VecDeque<Nanos>,
    /// Prefill tokens per second on the whole GPU (a 4096-token prompt), for service-time estimates.
    prefill_rate: f64,
    /// Requests seen to finish, and their output tokens.
    finished: u64,
    finished_tokens: u64,
    /// [`Memo`]'s buffers, kept between plans.
    buffers: Buffers,
}

impl Adaptive {
    /// An `adaptive` policy; fails if the granularity cannot split this GPU or a setting is out of range.
    pub fn new(cfg: AdaptiveConfig, ctx: PolicyContext) -> Result<Self, ConfigError> {
        ctx.granularity.validate(ctx.total_sms)?;
        let in_range = |v: f64, lo: f64, hi: f64| v.is_finite() && v >= lo && v <= hi;
        if !in_range(cfg.prior_guard, 0.0, 10.0)
            || !in_range(cfg.slack, 0.0, 10.0)
            || !in_range(cfg.gap_margin, 0.0, 10.0)
        {
            return Err(ConfigError::Invalid(format!(
                "adaptive: guard, slack and gap margin must be in [0, 10], got {}, {} and {}",
                cfg.prior_guard, cfg.slack, cfg.gap_margin
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
        let decode_sizes: Vec<u32> = ctx.granularity.splits(ctx.total_sms).into_iter().map(|(d, _)| d).collect();
        if decode_sizes.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "adaptive: {} SMs at {} granularity have no prefill/decode split",
                ctx.total_sms, ctx.granularity
            )));
        }
        let segments = (ctx.cost.model().num_layers as u32).div_ceil(cfg.layers_per_segment).max(1);
        let ratio = 1.0 + cfg.prior_guard;
        let target_ns = cfg.tbt_target_ns as f64 / (1.0 + cfg.slack);
        let probe = [SeqWork { new_tokens: 4096, cached_tokens: 0, emits_token: true }];
        let t = ctx.cost.predict_ns(ctx.total_sms, &probe, Launch::Eager).max(1);
        let prefill_rate = 4096.0 / (t as f64 / 1e9);
        Ok(Self {
            cfg,
            ctx,
            decode_sizes,
            segments,
            ratio,
            target_ns,
            join_ns: target_ns,
            pending: None,
            running: Vec::new(),
            marks: Vec::new(),
            admissions: VecDeque::new(),
            finished: 0,
            finished_tokens: 0,
            prefill_rate,
            buffers: Buffers::default(),
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
        if !self.cfg.mechanisms.learn_contention {
            self.pending = None;
            return;
        }
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
        // An unchanged running list (same requests, same order) admitted and finished nobody.
        if view.running != self.running.as_slice() {
            self.note_changes(view);
        }
        let window = Nanos(self.cfg.window_ns);
        while self.admissions.front().is_some_and(|&t| t + window < view.now) {
            self.admissions.pop_front();
        }
    }

    /// [`Adaptive::observe`]'s admissions and finishes, when the running list changed since the last call.
    fn note_changes(&mut self, view: &View<'_>) {
        // Membership marks indexed by request: bit 0 = running at the last call, bit 1 = running now.
        const PREV: u8 = 1;
        const NOW: u8 = 2;
        let need = view.running.iter().map(|id| id.index() + 1).max().unwrap_or(0);
        if self.marks.len() < need {
            self.marks.resize(need, 0);
        }
        for &id in view.running {
            if self.marks[id.index()] & PREV == 0 {
                self.admissions.push_back(view.now);
            }
            self.marks[id.index()] |= NOW;
        }
        for &id in &self.running {
            if self.marks[id.index()] & NOW == 0 && view.req(id).phase() == Phase::Finished {
                self.finished += 1;
                self.finished_tokens += u64::from(view.req(id).generated());
            }
            self.marks[id.index()] &= !PREV;
        }
        self.running.clear();
        for &id in view.running {
            self.marks[id.index()] = PREV;
            self.running.push(id);
        }
    }

    /// The decode step target `T` and the join bound (module docs, rules 2 and 4), after [`Adaptive::observe`].
    fn steer(&mut self, view: &View<'_>) {
        let waited = if self.cfg.mechanisms.join_aware { Self::waited(view) } else { 0 };
        let held = || view.running.iter().map(|&id| u64::from(view.req(id).kv_tokens())).sum();
        (self.target_ns, self.join_ns) =
            self.targets(view.now, waited, held, view.running.len(), view.kv.total_tokens());
    }

    /// `(T, min(tau / (1 + slack), tau / (1 + gap_margin) - w))` at `now` (rules 2 and 4), ns: `waited` is `w`,
    /// `held` the KV tokens the `running` requests hold, `kv_tokens` the capacity. Admissions older than the
    /// rate window at `now` are not counted (whether or not [`Adaptive::observe`] has dropped them yet).
    fn targets(
        &self,
        now: Nanos,
        waited: u64,
        held: impl FnOnce() -> u64,
        running: usize,
        kv_tokens: u64,
    ) -> (f64, f64) {
        let tau = self.cfg.tbt_target_ns as f64 / (1.0 + self.cfg.slack);
        let join = if self.cfg.mechanisms.join_aware {
            tau.min(self.cfg.tbt_target_ns as f64 / (1.0 + self.cfg.gap_margin) - waited as f64)
        } else {
            tau
        };
        let window = Nanos(self.cfg.window_ns);
        let old = self.admissions.partition_point(|&t| t + window < now);
        let (Some(&first), true) = (self.admissions.get(old), self.finished > 0 && self.cfg.mechanisms.occupancy)
        else {
            return (tau, join);
        };
        let span = (now - first).0.max(1) as f64 / 1e9;
        let lambda = (self.admissions.len() - old) as f64 / span.min(self.cfg.window_ns as f64 / 1e9);
        let mean_out = self.finished_tokens as f64 / self.finished as f64;
        let held = held();
        let slots = if held > 0 && running > 0 {
            let c = held as f64 / running as f64;
            (self.cfg.max_num_seqs as f64).min(kv_tokens as f64 / c)
        } else {
            self.cfg.max_num_seqs as f64
        };
        let little = self.cfg.occupancy * slots / (lambda * mean_out) * 1e9;
        (if little.is_finite() { tau.min(little) } else { tau }, join)
    }

    /// The next step's target `T' = min(T, join bound)` (rule 4), ns.
    fn step_ns(&self) -> f64 {
        self.join_ns.min(self.target_ns)
    }

    /// `w` of rule 4: the longest wait so far of a decoding request since its last token, ns.
    fn waited(view: &View<'_>) -> u64 {
        view.running
            .iter()
            .map(|&id| view.req(id))
            .filter(|r| r.phase() == Phase::Decoding)
            .filter_map(|r| r.last_token())
            .map(|t| (view.now - t).0)
            .max()
            .unwrap_or(0)
    }
}

impl Adaptive {
    /// With every SM free: `chunked`'s mixed batch on the whole GPU if it is predicted to meet the step target
    /// `T'` (rule 5), else `None`.
    fn aggregated(&self, view: &View<'_>) -> Option<Plan> {
        let total = view.total_sms;
        let mut budget = self.cfg.max_chunk;
        let order = self.cfg.mechanisms.hrrn.then(|| self.admission_order(view));
        let (d, t) = loop {
            let mut d = Draft::new(view, budget);
            d.decode_running(1);
            d.continue_prefills();
            match &order {
                Some(ids) => d.admit_in_order(ids.iter().copied(), self.cfg.max_num_seqs),
                None => d.admit_waiting(self.cfg.max_num_seqs),
            }
            let work: Vec<SeqWork> = d.items().map(|it| view.seq_work(it, 0)).collect();
            if work.is_empty() {
                return None;
            }
            let t = self.ctx.cost.predict_ns(total, &work, Launch::Eager);
            if t as f64 <= self.step_ns() {
                break (d, t);
            }
            if budget / 2 < self.cfg.min_chunk {
                return None;
            }
            budget /= 2;
        };
        let decodes = d.items().any(|it| matches!(it, BatchItem::Decode { .. }));
        let mut plan = d.into_plan(Lane::Whole, total, 1);
        plan.decision = Some(Self::aggregated_decision(total, decodes, t));
        Some(plan)
    }

    /// The decision record of an aggregated batch on `total` SMs predicted at `t` ns.
    fn aggregated_decision(total: u32, decodes: bool, t: u64) -> Decision {
        Decision {
            mode: Mode::Aggregated,
            prefill_sms: total,
            decode_sms: if decodes { total } else { 0 },
            lookahead: 1,
            predicted_mixed_ns: t,
            predicted_prefill_ns: 0,
            predicted_decode_step_ns: 0,
        }
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
        let t = self.ctx.cost.predict_ns(view.total_sms, &work, Launch::Eager);
        t as f64 <= self.target_ns
    }
}

impl Policy for Adaptive {
    fn name(&self) -> &'static str {
        NAME
    }

    /// A quiet decode step (nothing waits or runs, every running request just emitted a token) is planned as
    /// rule 5's aggregated batch of every decode when it is predicted to meet `T'`, which is then computed as
    /// [`Adaptive::steer`] would at `step.now` (`w` = 0: every request just emitted). The requests that finished
    /// are noted as [`Adaptive::observe`] would note them (counts, marks, running list), so a plan call at the
    /// same moment finds nothing new. Skipping `plan` otherwise leaves the state as it finds it: nothing is
    /// pending to learn, no request was admitted, admissions leave the rate window by time alone (they are
    /// dropped at the next call, and not counted here), and `T` and the join bound are set afresh by every later
    /// call that reads them (any call with no decode-lane batch running).
    fn repeat_decode(&mut self, step: &QuietStep<'_>) -> Option<Repeat> {
        // What `observe` would note now: the requests that finished and left (it then finds the list unchanged).
        if !step.left.is_empty() && self.running.len() == step.work.len() + step.left.len() {
            for &(id, generated) in step.left {
                self.finished += 1;
                self.finished_tokens += u64::from(generated);
                if let Some(m) = self.marks.get_mut(id.index()) {
                    *m = 0;
                }
            }
            self.running.retain(|id| !step.left.iter().any(|&(l, _)| l == *id));
        }
        let n = step.work.len();
        if !self.cfg.mechanisms.aggregate
            || self.pending.is_some()
            || n == 0
            || n != self.running.len()
            || n > self.cfg.max_chunk as usize
        {
            return None;
        }
        let held = || step.work.iter().map(|w| u64::from(w.cached_tokens)).sum();
        let (target, join) = self.targets(step.now, 0, held, n, step.kv_total_tokens);
        let t = self.ctx.cost.predict_ns(step.total_sms, step.work, Launch::Eager);
        (t as f64 <= join.min(target)).then(|| Repeat {
            lane: Lane::Whole,
            sms: step.total_sms,
            decision: Some(Self::aggregated_decision(step.total_sms, true, t)),
        })
    }

    fn plan(&mut self, view: &View<'_>) -> Plan {
        self.learn(view);
        if view.busy.is_empty() {
            self.observe(view);
            self.steer(view);
            if self.cfg.mechanisms.aggregate
                && let Some(plan) = self.aggregated(view)
            {
                return plan;
            }
        } else if self.cfg.mechanisms.aggregate
            && view.on_lane(Lane::Prefill).is_none()
            && view.on_lane(Lane::Decode).is_some()
            && self.light(view)
        {
            // Light load: let the decode step end, then run aggregated.
            return Plan::default();
        }
        if view.on_lane(Lane::Decode).is_none() {
            self.observe(view);
            self.steer(view);
        }
        let memo = Memo::new(std::mem::take(&mut self.buffers), self.decode_sizes.len());
        let order = || self.cfg.mechanisms.hrrn.then(|| self.admission_order(view));
        // `layered_plan` passes the same decode work to both closures.
        let (plan, started) = layered_plan(
            view,
            self.cfg.token_budget,
            self.cfg.max_num_seqs,
            self.segments,
            &|w| self.decode_partition(&memo, w),
            &|w, free| self.interim(view, &memo, w, free),
            &order,
        );
        self.buffers = memo.into_buffers();
        if let Some((_, t)) = started {
            self.pending = Some((view.now, t));
        }
        plan
    }
}
