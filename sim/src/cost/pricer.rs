//! One batch priced on several partitions ([`Pricer`]): what a partition-choosing policy asks at every decode
//! step boundary (the same decode work on each candidate SM count). The batch's token counts and each request's
//! attention work do not depend on the SM count, so they are computed once; each price is then
//! [`CostModel::predict_ns`]'s value for that SM count, bit for bit (the same operations in the same order).

use super::{CostModel, Launch, SeqWork, Work};

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
}

impl CostModel {
    /// `batch` (launched as `launch`) ready to be priced on several SM counts ([`Pricer::predict_ns`]).
    pub fn pricer(&self, batch: &[SeqWork], launch: Launch) -> Pricer<'_> {
        let m = self.model();
        let attention = batch
            .iter()
            .filter(|w| w.new_tokens > 0)
            .map(|w| {
                let (q, c) = (u64::from(w.new_tokens), u64::from(w.cached_tokens));
                (super::ops::attention(q, c, m.num_q_heads, m.num_kv_heads, m.head_dim, m.dtype_bytes), q == 1)
            })
            .collect();
        Pricer {
            cost: self,
            launch,
            n: batch.iter().map(|w| u64::from(w.new_tokens)).sum(),
            emitting: batch.iter().filter(|w| w.emits_token).count() as u64,
            seqs: batch.len(),
            attention,
        }
    }
}

impl Pricer<'_> {
    /// [`CostModel::predict_ns`] of the batch on `sms` SMs.
    pub fn predict_ns(&self, sms: u32) -> u64 {
        let c = self.cost;
        let fixed = c.fixed_part(sms, self.n, self.emitting);
        let rates = c.curves.attention_rates(sms);
        let attention: f64 = self
            .attention
            .iter()
            .map(|&(w, decode)| match &rates {
                Some(r) => r.time(w, decode),
                None => c.curves.attention_time(sms, w, decode),
            })
            .sum();
        c.assemble(&fixed, attention, self.n, self.seqs, self.launch).total.0
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
                        assert_eq!(cm.iteration_launched(sms, batch, launch).total.0, want);
                    }
                }
            }
        }
    }
}
