//! One batch priced on several partitions ([`Pricer`]): what a partition-choosing policy asks at every decode
//! step boundary (the same decode work on each candidate SM count). The batch's token counts and each request's
//! attention work do not depend on the SM count, so they are computed once; each price is then
//! [`CostModel::predict_ns`]'s value for that SM count, bit for bit (the same operations in the same order).
//!
//! A policy that only needs to know whether a size meets a target can ask [`Pricer::bounds_ns`] first, in O(1).
//! Per phase, with `F_r`, `B_r` request `r`'s attention FLOPs and bytes, `F`, `B` their sums, `Pi` and `BW` the
//! partition's attention FLOP rate and bandwidth, and `I = max_r F_r / B_r` (the highest arithmetic intensity):
//! - lower: `sum_r max(F_r / Pi, B_r / BW) >= max(F / Pi, B / BW)`;
//! - upper: `F_r / Pi = (F_r / B_r) B_r / Pi <= I B_r / Pi`, so
//!   `sum_r max(F_r / Pi, B_r / BW) <= (B / BW) max(1, I BW / Pi)` (and `<= F / Pi + B / BW`; the smaller is
//!   used). Decode attention is memory-bound (`I BW / Pi < 1`), so for a decode batch the two bounds differ by
//!   rounding only.
//!
//! The float sums and quotients differ from the exact ones by under `n + 4` ulps each (`n` requests), so the
//! lower bound shrunk by [`SLACK`] and the upper one grown by it enclose the computed attention sum for any batch
//! under about a million requests; an iteration's total is non-decreasing in its attention term (a sum of
//! non-negative terms and a rounding), so the bounds of the total enclose the price. A target (a predicate that
//! holds for every price above one where it holds) is then settled without pricing unless it falls between them.

use super::memo::Fixed;
use super::{AttentionRates, CostModel, Launch, SeqWork, Work};
use std::cell::RefCell;

/// Relative margin of [`Pricer::bounds_ns`]'s attention bounds against rounding (module docs).
pub const SLACK: f64 = 1e-9;

/// FLOPs and bytes of attention summed over the requests of one phase.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    flops: f64,
    bytes: f64,
    /// The work of a request with the highest arithmetic intensity (`flops / bytes`).
    peak: Work,
}

impl Totals {
    /// `I`, the highest `flops / bytes` of a request (module docs).
    fn intensity(&self) -> f64 {
        if self.peak.flops > 0.0 { self.peak.flops / self.peak.bytes } else { 0.0 }
    }

    /// Adds request work `w`.
    fn add(&mut self, w: Work) {
        self.flops += w.flops;
        self.bytes += w.bytes;
        self.peak = Self::denser(self.peak, w);
    }

    /// The one of `a`, `b` with the higher intensity (`b` when `a` has no FLOPs), without a division.
    fn denser(a: Work, b: Work) -> Work {
        if b.flops * a.bytes > a.flops * b.bytes || a.flops == 0.0 { b } else { a }
    }
}

/// A batch ready to be priced on any SM count ([`CostModel::pricer`]).
#[derive(Debug, Clone)]
pub struct Pricer<'c> {
    cost: &'c CostModel,
    launch: Launch,
    /// Tokens of the batch.
    n: u64,
    /// Sequences that emit a token.
    emitting: u64,
    /// Sequences (for the per-sequence host overhead).
    seqs: usize,
    /// The batch (each request's attention is computed when a price is asked for).
    batch: Vec<SeqWork>,
    /// Attention work of the decoding requests and of the others.
    decode: Totals,
    prefill: Totals,
    /// [`PricerScratch::per_sms`].
    per_sms: RefCell<Vec<Option<PerSms>>>,
    model: u64,
    /// [`CostModel::mixed_factor`] of the batch.
    mixed: Option<f64>,
}

/// The buffers of a [`Pricer`], kept by a caller that prices one batch after another, so that building a pricer
/// allocates nothing and what depends only on the SM count and the batch's token counts is looked up once per SM
/// count while those counts stay the same ([`CostModel::pricer_in`], [`Pricer::into_scratch`]).
#[derive(Debug, Clone, Default)]
pub struct PricerScratch {
    batch: Vec<SeqWork>,
    /// The cost model whose values `per_sms` holds ([`CostModel`]'s memo identity; 0: none yet).
    model: u64,
    /// By SM count: the fixed part and attention rates last looked up, with the token counts they are for.
    per_sms: Vec<Option<PerSms>>,
}

/// What one SM count costs apart from the requests' attention, for one `(n, emitting)` ([`PricerScratch`]).
#[derive(Debug, Clone, Copy)]
struct PerSms {
    n: u64,
    emitting: u64,
    fixed: Fixed,
    rates: Option<AttentionRates>,
}

impl CostModel {
    /// `batch` (launched as `launch`) ready to be priced on several SM counts ([`Pricer::predict_ns`]).
    pub fn pricer(&self, batch: &[SeqWork], launch: Launch) -> Pricer<'_> {
        self.pricer_in(batch, launch, PricerScratch::default())
    }

    /// [`CostModel::pricer`] in the buffer `scratch` (its contents are replaced).
    pub fn pricer_in(&self, batch: &[SeqWork], launch: Launch, scratch: PricerScratch) -> Pricer<'_> {
        let m = self.model();
        let work =
            |q: u64, c: u64| super::ops::attention(q, c, m.num_q_heads, m.num_kv_heads, m.head_dim, m.dtype_bytes);
        let PricerScratch { batch: mut requests, model, mut per_sms } = scratch;
        if model != self.id {
            per_sms.clear();
        }
        requests.clear();
        requests.extend_from_slice(batch);
        // The batch's token counts (as `CostModel::counts`); decoding requests by their count and contexts (sum,
        // least, most); the others one by one.
        let (mut n, mut emitting) = (0u64, 0u64);
        let (mut decodes, mut context, mut least, mut most) = (0u64, 0u64, u64::MAX, 0u64);
        let mut prefill = Totals::default();
        for w in &requests {
            n += u64::from(w.new_tokens);
            emitting += u64::from(w.emits_token);
            let c = u64::from(w.cached_tokens);
            if w.new_tokens == 0 {
                continue;
            } else if w.new_tokens == 1 {
                (decodes, context) = (decodes + 1, context + c);
                (least, most) = (least.min(c), most.max(c));
            } else {
                prefill.add(work(u64::from(w.new_tokens), c));
            }
        }
        // A request's attention work at one new token is affine in its context `c` (`ops::attention`), so the
        // decoding requests' sum is `k W(0) + (sum c) (W(1) - W(0))` and the densest of them has the least or the
        // most context.
        let decode = if decodes == 0 {
            Totals::default()
        } else {
            let (w0, w1) = (work(1, 0), work(1, 1));
            let (k, sum) = (decodes as f64, context as f64);
            Totals {
                flops: k * w0.flops + sum * (w1.flops - w0.flops),
                bytes: k * w0.bytes + sum * (w1.bytes - w0.bytes),
                peak: Totals::denser(work(1, least), work(1, most)),
            }
        };
        let per_sms = RefCell::new(per_sms);
        let mixed = self.mixed_factor(batch);
        Pricer {
            cost: self,
            launch,
            n,
            emitting,
            seqs: batch.len(),
            batch: requests,
            decode,
            prefill,
            per_sms,
            model: self.id,
            mixed,
        }
    }
}

/// Whether `misses` (a target missed: it holds for every price above one where it holds) holds for a price within
/// `bounds` ([`Pricer::bounds_ns`]), when the bounds settle it: `Some(true)` when it holds for the lower bound,
/// `Some(false)` when it fails for the upper one, else `None` (price it).
pub fn settled((lo, hi): (u64, u64), misses: impl Fn(u64) -> bool) -> Option<bool> {
    if misses(lo) {
        Some(true)
    } else if !misses(hi) {
        Some(false)
    } else {
        None
    }
}

impl Pricer<'_> {
    /// The pricer's buffer, for the next [`CostModel::pricer_in`].
    pub fn into_scratch(self) -> PricerScratch {
        PricerScratch { batch: self.batch, model: self.model, per_sms: self.per_sms.into_inner() }
    }

    /// The fixed part of the batch on `sms` SMs ([`CostModel::fixed_part`]) and the attention rates there, from
    /// [`PricerScratch::per_sms`] when they were looked up for the same token counts.
    fn parts(&self, sms: u32) -> (Fixed, Option<AttentionRates>) {
        let i = sms as usize;
        let mut per_sms = self.per_sms.borrow_mut();
        if let Some(Some(e)) = per_sms.get(i)
            && (e.n, e.emitting) == (self.n, self.emitting)
        {
            return (e.fixed, e.rates);
        }
        let c = self.cost;
        let (fixed, rates) = (c.fixed_part(sms, self.n, self.emitting), c.curves.attention_rates(sms));
        if per_sms.len() <= i {
            per_sms.resize(i + 1, None);
        }
        per_sms[i] = Some(PerSms { n: self.n, emitting: self.emitting, fixed, rates });
        (fixed, rates)
    }

    /// Bounds `(lower, upper)` of [`Pricer::predict_ns`] on `sms` SMs, in O(1) (module docs): the fixed part plus
    /// the per-phase attention bounds. Without the curves' attention rates the lower bound is the fixed part
    /// alone and the upper one `u64::MAX`.
    pub fn bounds_ns(&self, sms: u32) -> (u64, u64) {
        let (fixed, rates) = self.parts(sms);
        let Some(r) = rates else {
            return (self.total(&fixed, 0.0), u64::MAX);
        };
        let lower = |t: Totals, bw: f64| (t.flops / r.flops).max(t.bytes / bw);
        let upper = |t: Totals, bw: f64| {
            let memory = t.bytes / bw;
            (t.flops / r.flops + memory).min(memory * (t.intensity() * bw / r.flops).max(1.0))
        };
        let (d, p) = (r.decode_bandwidth, r.prefill_bandwidth);
        // Each decode's time is scaled by a mixed batch's factor, so their sum (and its bounds) is too.
        let k = self.mixed.unwrap_or(1.0);
        let lo = (lower(self.decode, d) * k + lower(self.prefill, p)) * (1.0 - SLACK);
        let hi = (upper(self.decode, d) * k + upper(self.prefill, p)) * (1.0 + SLACK);
        (self.total(&fixed, lo), self.total(&fixed, hi))
    }

    /// Whether `misses` holds for the price on `sms` SMs, `misses` being a target missed (it holds for every price
    /// above one where it holds): settled by [`Pricer::bounds_ns`] when it holds for the lower bound or fails for
    /// the upper one, else priced. With the price when one was made.
    pub fn misses(&self, sms: u32, misses: impl Fn(u64) -> bool) -> (bool, Option<u64>) {
        match settled(self.bounds_ns(sms), &misses) {
            Some(m) => (m, None),
            None => {
                let t = self.predict_ns(sms);
                (misses(t), Some(t))
            }
        }
    }

    /// The total of an iteration with this batch's counts, fixed part `fixed` and attention sum `attention`.
    fn total(&self, fixed: &Fixed, attention: f64) -> u64 {
        self.cost.assemble(fixed, attention, self.n, self.seqs, self.launch).total.0
    }

    fn price(&self, sms: u32, fixed: &Fixed, rates: Option<&AttentionRates>) -> u64 {
        let c = self.cost;
        let pass = c.attention_pass(sms, rates.copied(), self.mixed);
        let attention: f64 = self
            .batch
            .iter()
            .filter(|w| w.new_tokens > 0)
            .map(|w| pass.time(c, u64::from(w.new_tokens), u64::from(w.cached_tokens)).2)
            .sum();
        self.total(fixed, attention)
    }

    /// [`CostModel::predict_ns`] of the batch on `sms` SMs.
    pub fn predict_ns(&self, sms: u32) -> u64 {
        let (fixed, rates) = self.parts(sms);
        self.price(sms, &fixed, rates.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::CostConfig;
    use crate::{GpuSpec, ModelSpec};

    /// Every price equals `predict_ns` (and the executor's total), on every SM count, for decode, prefill and
    /// mixed batches, eager and graph launches, with and without tensor parallelism.
    #[test]
    fn prices_equal_predict_ns_on_every_sm_count() {
        let gpu = GpuSpec::by_name("h100-sxm").unwrap();
        let m = ModelSpec::resolve("qwen3-8b").unwrap();
        let all_reduce = crate::cost::collective::RingAllReduce::for_gpu(&gpu);
        let tp = CostConfig {
            tensor_parallel: Some(crate::cost::TensorParallel { degree: 2, all_reduce }),
            ..CostConfig::default()
        };
        let mixed = CostConfig { mixed_attention_penalty: 0.5, ..CostConfig::default() };
        let models = [
            CostModel::new(m.clone(), gpu.clone(), CostConfig::default()),
            CostModel::new(m.clone(), gpu.clone(), tp),
            CostModel::new(m, gpu, mixed),
        ];
        let seq = |q, c, e| SeqWork { new_tokens: q, cached_tokens: c, emits_token: e };
        let batches = [
            vec![],
            vec![seq(1, 9, true)],
            (0..100).map(|i| seq(1, 100 + 37 * i, i % 9 != 0)).collect(),
            vec![seq(1, 500, true), seq(0, 800, false), seq(1500, 3000, true), seq(2, 20, false)],
        ];
        for cm in &models {
            for batch in &batches {
                for launch in [Launch::Eager, Launch::Graph] {
                    let p = cm.pricer(batch, launch);
                    for sms in 1..=132 {
                        let want = cm.predict_ns(sms, batch, launch);
                        assert_eq!(p.predict_ns(sms), want, "{sms} SMs, {} seqs", batch.len());
                        let (lo, hi) = p.bounds_ns(sms);
                        assert!(lo <= want && want <= hi, "{sms} SMs, {} seqs: {lo} {want} {hi}", batch.len());
                        // Settled by a bound, or priced when the target falls between them.
                        assert_eq!(p.misses(sms, |t| t > want), (false, (hi > want).then_some(want)));
                        assert_eq!(p.misses(sms, |t| t >= want), (true, (lo < want).then_some(want)));
                        assert_eq!(cm.iteration_launched(sms, batch, launch).total.0, want);
                    }
                }
            }
        }
    }

    /// A pricer built in a scratch another batch (other token counts) or another cost model used prices as a
    /// fresh one: nothing cached for other counts or curves is reused.
    #[test]
    fn a_reused_scratch_prices_as_a_fresh_pricer() {
        let gpu = GpuSpec::by_name("h100-sxm").unwrap();
        let small = CostModel::new(ModelSpec::resolve("qwen3-8b").unwrap(), gpu.clone(), CostConfig::default());
        let large = CostModel::new(ModelSpec::resolve("qwen3-14b").unwrap(), gpu, CostConfig::default());
        let decode =
            |n: u32, c: u32| (0..n).map(move |i| SeqWork { new_tokens: 1, cached_tokens: c + i, emits_token: true });
        let batches: Vec<Vec<SeqWork>> =
            vec![decode(8, 100).collect(), decode(9, 100).collect(), decode(8, 5000).collect()];
        let mut scratch = PricerScratch::default();
        for cm in [&small, &large, &small] {
            for batch in &batches {
                let p = cm.pricer_in(batch, Launch::Eager, scratch);
                for sms in [4, 8, 64, 132, 8] {
                    assert_eq!(p.predict_ns(sms), cm.predict_ns(sms, batch, Launch::Eager), "{sms} SMs");
                    assert_eq!(p.bounds_ns(sms), cm.pricer(batch, Launch::Eager).bounds_ns(sms));
                }
                scratch = p.into_scratch();
            }
        }
    }

    proptest::proptest! {
        /// The O(1) bounds enclose the price, on any batch (decodes over long contexts, where they are tight,
        /// mixed with prefill chunks) and SM count, and a target settled by them is settled as the price would.
        #[test]
        fn the_bounds_enclose_the_price(
            seqs in proptest::collection::vec((0u32..3, 0u32..200_000, 1u32..4096), 1..400),
            sms in 1u32..=132,
        ) {
            let cm = CostModel::new(
                ModelSpec::resolve("qwen3-8b").unwrap(),
                GpuSpec::by_name("h100-sxm").unwrap(),
                CostConfig::default(),
            );
            let batch: Vec<SeqWork> = seqs
                .iter()
                .map(|&(kind, c, q)| SeqWork { new_tokens: if kind == 0 { q } else { 1 }, cached_tokens: c, emits_token: kind != 2 })
                .collect();
            let p = cm.pricer(&batch, Launch::Eager);
            let (lo, hi, price) = (p.bounds_ns(sms).0, p.bounds_ns(sms).1, p.predict_ns(sms));
            proptest::prop_assert!(lo <= price && price <= hi, "{} {} {}", lo, price, hi);
            for target in [lo, price, hi, (lo + hi) / 2] {
                proptest::prop_assert_eq!(p.misses(sms, |t| t > target).0, price > target);
            }
        }
    }
}
