//! One batch priced on several partitions ([`Pricer`]): what a partition-choosing policy asks at every decode
//! step boundary (the same decode work on each candidate SM count). The batch's token counts and each request's
//! attention work do not depend on the SM count, so they are computed once; each price is then
//! [`CostModel::predict_ns`]'s value for that SM count, bit for bit (the same operations in the same order).
//!
//! A policy that only needs to know whether a size *misses* a target can ask [`Pricer::lower_bound_ns`] first, in
//! O(1): with `F`, `B` the attention FLOPs and bytes summed per phase,
//! `sum_r max(F_r / Pi, B_r / BW) >= max(F / Pi, B / BW)` (per phase), and the float sums differ from the exact
//! ones by under `n` ulps each (`n` requests), so that bound shrunk by [`SLACK`] is below the computed attention
//! sum for any batch under about a million requests. Only sizes whose bound meets the target are priced.

use super::{AttentionRates, CostModel, Launch, SeqWork, Work};

/// Relative margin of [`Pricer::lower_bound_ns`]'s attention bound against rounding (module docs).
pub const SLACK: f64 = 1e-9;

/// FLOPs and bytes of attention summed over the requests of one phase.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    flops: f64,
    bytes: f64,
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
    /// Each request with new tokens: its attention work and whether it decodes (one new token), in batch order.
    attention: Vec<(Work, bool)>,
    /// Attention work of the decoding requests and of the others.
    decode: Totals,
    prefill: Totals,
}

impl CostModel {
    /// `batch` (launched as `launch`) ready to be priced on several SM counts ([`Pricer::predict_ns`]).
    pub fn pricer(&self, batch: &[SeqWork], launch: Launch) -> Pricer<'_> {
        let m = self.model();
        let mut attention = Vec::with_capacity(batch.len());
        attention.extend(batch.iter().filter(|w| w.new_tokens > 0).map(|w| {
            let (q, c) = (u64::from(w.new_tokens), u64::from(w.cached_tokens));
            (super::ops::attention(q, c, m.num_q_heads, m.num_kv_heads, m.head_dim, m.dtype_bytes), q == 1)
        }));
        let (mut decode, mut prefill) = (Totals::default(), Totals::default());
        for &(w, d) in &attention {
            let t = if d { &mut decode } else { &mut prefill };
            t.flops += w.flops;
            t.bytes += w.bytes;
        }
        let (n, emitting) = Self::counts(batch);
        Pricer { cost: self, launch, n, emitting, seqs: batch.len(), attention, decode, prefill }
    }
}

impl Pricer<'_> {
    /// A lower bound of [`Pricer::predict_ns`] on `sms` SMs in O(1) (module docs): the fixed part, plus the
    /// per-phase attention roofline of the summed work shrunk by [`SLACK`] when the curves give their attention
    /// rates (nothing otherwise). A size whose bound already misses a target need not be priced.
    pub fn lower_bound_ns(&self, sms: u32) -> u64 {
        let c = self.cost;
        self.bound(&c.fixed_part(sms, self.n, self.emitting), c.curves.attention_rates(sms).as_ref())
    }

    /// [`Pricer::predict_ns`] on `sms` SMs, or `None` when `hopeless` holds for [`Pricer::lower_bound_ns`]
    /// (the price could only be higher): one memo lookup for both.
    pub fn price_unless(&self, sms: u32, hopeless: impl FnOnce(u64) -> bool) -> Option<u64> {
        let c = self.cost;
        let fixed = c.fixed_part(sms, self.n, self.emitting);
        let rates = c.curves.attention_rates(sms);
        (!hopeless(self.bound(&fixed, rates.as_ref()))).then(|| self.price(sms, &fixed, rates.as_ref()))
    }

    fn bound(&self, fixed: &super::memo::Fixed, rates: Option<&AttentionRates>) -> u64 {
        let attention = rates.map_or(0.0, |r| {
            let phase = |t: Totals, bw: f64| (t.flops / r.flops).max(t.bytes / bw);
            (phase(self.decode, r.decode_bandwidth) + phase(self.prefill, r.prefill_bandwidth)) * (1.0 - SLACK)
        });
        self.cost.assemble(fixed, attention, self.n, self.seqs, self.launch).total.0
    }

    fn price(&self, sms: u32, fixed: &super::memo::Fixed, rates: Option<&AttentionRates>) -> u64 {
        let c = self.cost;
        let attention: f64 = self.attention.iter().map(|&(w, decode)| c.attention_of(sms, w, decode, rates)).sum();
        c.assemble(fixed, attention, self.n, self.seqs, self.launch).total.0
    }

    /// [`CostModel::predict_ns`] of the batch on `sms` SMs.
    pub fn predict_ns(&self, sms: u32) -> u64 {
        let c = self.cost;
        self.price(sms, &c.fixed_part(sms, self.n, self.emitting), c.curves.attention_rates(sms).as_ref())
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
        let models = [CostModel::new(m.clone(), gpu.clone(), CostConfig::default()), CostModel::new(m, gpu, tp)];
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
                        assert!(p.lower_bound_ns(sms) <= want, "{sms} SMs, {} seqs", batch.len());
                        assert_eq!(p.price_unless(sms, |_| false), Some(want));
                        assert_eq!(p.price_unless(sms, |b| b == p.lower_bound_ns(sms)), None);
                        assert_eq!(cm.iteration_launched(sms, batch, launch).total.0, want);
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// The O(1) bound never exceeds the price, on any batch (decodes over long contexts, where it is tight,
        /// mixed with prefill chunks) and SM count.
        #[test]
        fn the_lower_bound_is_below_the_price(
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
            proptest::prop_assert!(p.lower_bound_ns(sms) <= p.predict_ns(sms));
        }
    }
}
