//! `duet`: DuetServe (Gao et al., arXiv 2511.04791): aggregated by default, SM-partitioned prefill and decode
//! only when the roofline predicts that the mixed batch would miss the TBT target, with look-ahead decode.
//!
//! With all SMs free, each scheduling point:
//! 1. builds the decode-first mixed batch exactly as `chunked` does (same token budget and admission) and predicts
//!    its latency on all SMs; if it meets the TBT target `tau` (or it has no decode or no prefill part), it runs
//!    aggregated on the whole GPU;
//! 2. otherwise splits it into a prefill-only batch P and a decode-only batch D and, over every legal split
//!    (S_d, S_p = S - S_d) at the configured granularity and every look-ahead `k` in `1..=K` whose KV fits,
//!    discards decode partitions whose predicted step time `t_d(S_d)` (times `1 + guard`, default guard 0)
//!    exceeds `tau` and picks the maximum of
//!    `(k |D| + tokens(P)) / max(W(S_d, k), t_p(S_p))`, where `W(S_d, k) = t_d(S_d) + (k - 1) t_g(S_d)` is the
//!    look-ahead window (the first step launched eagerly, the others replayed from CUDA graphs, `t_g` = the step
//!    with the graph-launch cost instead of the host overhead). Ties keep the smaller decode partition and `k`;
//! 3. if no decode partition meets `tau`, it runs the mixed batch aggregated and logs a fallback.
//!
//! One split decision covers one prefill batch and one decode window; the plan is remade when both have ended
//! ("re-plan when the window ends"). In between, the partitions keep their sizes: when the decode window ends
//! while the prefill batch still runs, another window runs on the same decode SMs with the decodes of that moment
//! (requests whose prefill completed join), with `k` sized to end near the prefill's predicted end; when the
//! prefill batch ends first, its partition waits for the window to end, so that the next decision sees all SMs
//! (a split sized for few decodes must not outlive them).
//!
//! Choices the paper leaves open, made here and exposed as settings: the TBT target (default 100 ms), `K`
//! (default 8), the token budget (default 2048, as `chunked`), the TBT check on the eager first step (the
//! largest gap inside a window).

use super::draft::Draft;
use super::{Batch, BatchItem, Decision, Lane, Mode, Plan, Policy, PolicyContext, RunningBatch, View};
use crate::cost::{Launch, SeqWork};
use crate::error::ConfigError;

/// Settings of [`Duet`].
#[derive(Debug, Clone, PartialEq)]
pub struct DuetConfig {
    /// Tokens per mixed batch (as `chunked`) and per prefill batch. Default 8192, the DuetServe paper's setting: a
    /// budget that saturates an H100's linear layers is what makes mixed batches miss a TBT target, the case the
    /// policy exists for (at 2048 it never splits on the bundled workload and equals `chunked`).
    pub token_budget: u32,
    /// Most requests holding KV at once. Default 256.
    pub max_num_seqs: usize,
    /// TBT target, ns. Default 100 ms.
    pub tbt_target_ns: u64,
    /// Largest look-ahead depth `K`. Default 8.
    pub max_lookahead: u32,
    /// Decode steps are checked against the target as `t_d x (1 + guard)`. Default 0 (the paper's rule: the
    /// roofline prediction alone); set it to the contention model's decode slowdown for a contention-aware
    /// variant.
    pub guard: f64,
}

impl Default for DuetConfig {
    fn default() -> Self {
        Self { token_budget: 8192, max_num_seqs: 256, tbt_target_ns: 100_000_000, max_lookahead: 8, guard: 0.0 }
    }
}

/// The policy's name (command line, reports, registry).
pub const NAME: &str = "duet";

/// `duet` in the policy registry.
pub const ENTRY: super::Entry = super::Entry {
    name: NAME,
    options: &["--token-budget", "--max-num-seqs", "--tbt-target-ms", "--max-lookahead", "--decode-guard"],
    settings: |o| {
        let d = DuetConfig::default();
        Ok(std::sync::Arc::new(DuetConfig {
            token_budget: o.budget(d.token_budget),
            tbt_target_ns: o.tbt_ns(d.tbt_target_ns),
            max_lookahead: o.max_lookahead.unwrap_or(d.max_lookahead),
            guard: o.guard.unwrap_or(d.guard),
            max_num_seqs: o.seqs(d.max_num_seqs),
        }))
    },
};

impl super::Settings for DuetConfig {
    fn name(&self) -> &'static str {
        NAME
    }
    fn token_budget(&self) -> u32 {
        self.token_budget
    }
    fn build(&self, ctx: &super::PolicyContext) -> Result<Box<dyn super::Policy>, crate::error::ConfigError> {
        Ok(Box::new(Duet::new(self.clone(), ctx.clone())?))
    }
}

/// The DuetServe policy.
#[derive(Debug)]
pub struct Duet {
    cfg: DuetConfig,
    ctx: PolicyContext,
    /// Legal (decode SMs, prefill SMs) splits, decode ascending.
    splits: Vec<(u32, u32)>,
}

/// The chosen split and its predictions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitChoice {
    /// Decode SMs.
    pub decode_sms: u32,
    /// Prefill SMs.
    pub prefill_sms: u32,
    /// Look-ahead depth.
    pub k: u32,
    /// Predicted eager decode step, ns.
    pub t_decode_ns: u64,
    /// Predicted prefill batch, ns.
    pub t_prefill_ns: u64,
    /// Objective value, tokens per ns.
    pub objective: f64,
}

impl Duet {
    /// A DuetServe policy; fails if the granularity cannot split this GPU.
    pub fn new(cfg: DuetConfig, ctx: PolicyContext) -> Result<Self, ConfigError> {
        ctx.granularity.validate(ctx.total_sms)?;
        if !(cfg.guard.is_finite() && cfg.guard >= 0.0) {
            return Err(ConfigError::Invalid(format!("decode guard must be >= 0, got {}", cfg.guard)));
        }
        if cfg.max_lookahead == 0 || cfg.token_budget == 0 || cfg.tbt_target_ns == 0 {
            return Err(ConfigError::Invalid("duet needs a token budget, TBT target and max look-ahead >= 1".into()));
        }
        let splits = ctx.granularity.splits(ctx.total_sms);
        Ok(Self { cfg, ctx, splits })
    }

    fn predict(&self, sms: u32, work: &[SeqWork], launch: Launch) -> u64 {
        self.ctx.cost.predict_ns(sms, work, launch)
    }

    /// Largest `k <= K` whose look-ahead KV for `decodes` fits in `free` blocks.
    fn kv_lookahead_limit(&self, view: &View<'_>, decodes: &[BatchItem], free: u32) -> u32 {
        let mut best = 1;
        for k in 2..=self.cfg.max_lookahead {
            let need: u64 = decodes.iter().map(|it| u64::from(view.extra_blocks(it.req(), k))).sum();
            if need > u64::from(free) {
                break;
            }
            best = k;
        }
        best
    }

    /// The optimiser of step 2: best split for prefill work `prefill` and decode work `decode`, or `None` when no
    /// decode partition meets the target. Public for tests (brute-force comparison).
    pub fn choose_split(&self, prefill: &[SeqWork], decode: &[SeqWork], k_max: u32) -> Option<SplitChoice> {
        let prefill_tokens: f64 = prefill.iter().map(|w| f64::from(w.new_tokens)).sum();
        let d = decode.len() as f64;
        let graph_delta = self.ctx.cost.launch_overhead_ns(Launch::Eager) as f64
            - self.ctx.cost.launch_overhead_ns(Launch::Graph) as f64;
        let mut best: Option<SplitChoice> = None;
        for &(decode_sms, prefill_sms) in &self.splits {
            let t_d = self.predict(decode_sms, decode, Launch::Eager);
            if t_d as f64 * (1.0 + self.cfg.guard) > self.cfg.tbt_target_ns as f64 {
                continue;
            }
            let t_p = self.predict(prefill_sms, prefill, Launch::Eager);
            let t_g = (t_d as f64 - graph_delta).max(1.0);
            for k in 1..=k_max {
                let window = t_d as f64 + f64::from(k - 1) * t_g;
                let objective = (f64::from(k) * d + prefill_tokens) / window.max(t_p as f64);
                if best.is_none_or(|b| objective > b.objective) {
                    best = Some(SplitChoice {
                        decode_sms,
                        prefill_sms,
                        k,
                        t_decode_ns: t_d,
                        t_prefill_ns: t_p,
                        objective,
                    });
                }
            }
        }
        best
    }

    fn plan_idle(&self, view: &View<'_>) -> Plan {
        let mut d = Draft::new(view, self.cfg.token_budget);
        d.decode_running(1);
        d.continue_prefills();
        d.admit_waiting(self.cfg.max_num_seqs);
        let items: Vec<BatchItem> = d.items().copied().collect();
        let free_after = d.free;
        let total = view.total_sms;
        if items.is_empty() {
            return d.into_plan(Lane::Whole, total, 1);
        }
        let work: Vec<SeqWork> = items.iter().map(|it| view.seq_work(it, 0)).collect();
        let t_mixed = self.predict(total, &work, Launch::Eager);
        let (pre, dec): (Vec<BatchItem>, Vec<BatchItem>) =
            items.iter().partition(|it| matches!(it, BatchItem::Prefill { .. }));
        let aggregated = |d: Draft<'_, '_>, mode: Mode| {
            let mut plan = d.into_plan(Lane::Whole, total, 1);
            plan.decision = Some(Decision {
                mode,
                prefill_sms: if pre.is_empty() { 0 } else { total },
                decode_sms: if dec.is_empty() { 0 } else { total },
                lookahead: 1,
                predicted_mixed_ns: t_mixed,
                predicted_prefill_ns: 0,
                predicted_decode_step_ns: 0,
            });
            plan
        };
        if t_mixed <= self.cfg.tbt_target_ns || pre.is_empty() || dec.is_empty() {
            return aggregated(d, Mode::Aggregated);
        }
        let pre_work: Vec<SeqWork> = pre.iter().map(|it| view.seq_work(it, 0)).collect();
        let dec_work: Vec<SeqWork> = dec.iter().map(|it| view.seq_work(it, 0)).collect();
        // Blocks for 1 decode step are already counted in `free_after`; add back and test k steps.
        let free_for_decode = free_after + dec.iter().map(|it| view.extra_blocks(it.req(), 1)).sum::<u32>();
        let k_max = self.kv_lookahead_limit(view, &dec, free_for_decode);
        let Some(c) = self.choose_split(&pre_work, &dec_work, k_max) else {
            return aggregated(d, Mode::Fallback);
        };
        let (preempt, _) = d.into_parts();
        Plan {
            preempt,
            resize: Vec::new(),
            batches: vec![
                Batch::new(Lane::Prefill, c.prefill_sms, pre),
                Batch { lookahead: c.k, ..Batch::new(Lane::Decode, c.decode_sms, dec) },
            ],
            decision: Some(Decision {
                mode: Mode::Split,
                prefill_sms: c.prefill_sms,
                decode_sms: c.decode_sms,
                lookahead: c.k,
                predicted_mixed_ns: t_mixed,
                predicted_prefill_ns: c.t_prefill_ns,
                predicted_decode_step_ns: c.t_decode_ns,
            }),
        }
    }

    /// Decode partition idle while the prefill batch `p` runs: the next window on the remaining SMs.
    fn plan_decode_window(&self, view: &View<'_>, p: &RunningBatch) -> Plan {
        let sms = view.total_sms - p.sms;
        let mut probe = Draft::new(view, u32::MAX);
        probe.decode_running(1);
        let dec: Vec<BatchItem> = probe.items().copied().collect();
        if dec.is_empty() {
            return Plan::default();
        }
        let work: Vec<SeqWork> = dec.iter().map(|it| view.seq_work(it, 0)).collect();
        let t_d = self.predict(sms, &work, Launch::Eager);
        let t_g = self.predict(sms, &work, Launch::Graph).max(1);
        let left = p.expected_end.0.saturating_sub(view.now.0);
        let k_time = if left <= t_d { 1 } else { 1 + (left - t_d).div_ceil(t_g) };
        let k_kv = self.kv_lookahead_limit(view, &dec, view.free_blocks);
        let k = (k_time.min(u64::from(self.cfg.max_lookahead)) as u32).min(k_kv).max(1);
        let mut d = Draft::new(view, u32::MAX);
        d.decode_running(k);
        let mut plan = d.into_plan(Lane::Decode, sms, k);
        plan.decision = Some(Decision {
            mode: Mode::Split,
            prefill_sms: 0,
            decode_sms: sms,
            lookahead: k,
            predicted_mixed_ns: 0,
            predicted_prefill_ns: 0,
            predicted_decode_step_ns: t_d,
        });
        plan
    }
}

impl Policy for Duet {
    fn name(&self) -> &'static str {
        NAME
    }

    /// With nothing waiting and every running request decoding, `plan_idle` has no prefill: one aggregated
    /// whole-GPU batch of every decode (the budget permitting, which the engine checks), logged with its
    /// predicted time. The policy keeps no state and reads no time.
    fn repeat_decode(&mut self, step: &super::QuietStep<'_>) -> Option<super::Repeat> {
        let (total_sms, work) = (step.total_sms, step.work);
        let decision = Decision {
            mode: Mode::Aggregated,
            prefill_sms: 0,
            decode_sms: total_sms,
            lookahead: 1,
            predicted_mixed_ns: self.predict(total_sms, work, Launch::Eager),
            predicted_prefill_ns: 0,
            predicted_decode_step_ns: 0,
        };
        Some(super::Repeat { lane: Lane::Whole, sms: total_sms, decision: Some(decision) })
    }

    fn plan(&mut self, view: &View<'_>) -> Plan {
        if view.on_lane(Lane::Whole).is_some() {
            return Plan::default();
        }
        match (view.on_lane(Lane::Prefill), view.on_lane(Lane::Decode)) {
            (None, None) => self.plan_idle(view),
            (Some(p), None) => self.plan_decode_window(view, p),
            // The prefill partition waits for the decode window to end; then the whole GPU is re-planned.
            (None, Some(_)) | (Some(_), Some(_)) => Plan::default(),
        }
    }
}
