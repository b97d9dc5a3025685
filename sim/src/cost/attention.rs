//! One request's attention time in one layer, as every caller of the cost model evaluates it (the executor's
//! iterations, predictions, [`super::Pricer`]): `max(F_r / Pi_attn, B_r / BW)` from the partition's
//! [`AttentionRates`] (or the curves' own `attention_time`), with two refinements looked up once per iteration
//! ([`AttentionPass`]):
//! - **memory-bound decodes**: where every decoding request is memory-bound, its time is `B_r / BW` bit for bit and
//!   the compute side's division is skipped ([`CostModel::decode_is_memory_bound`]);
//! - **mixed batches**: each decode's time in an iteration that also carries a prefill chunk is scaled by
//!   `1 + p` ([`super::CostConfig::mixed_attention_penalty`]).

use super::{AttentionRates, CostModel, SeqWork, Work, ops};
use crate::model::ModelSpec;

/// The highest arithmetic intensity (FLOPs / byte) of one decoding request's attention over every context. At one
/// new token the work is affine in the context `c` (`ops::attention`; tested there): `W(c) = W(0) + c D`, so
/// `F / B` moves monotonically from `F(0) / B(0)` towards `D_F / D_B` and never exceeds the larger.
pub(super) fn decode_intensity(m: &ModelSpec) -> f64 {
    let at = |c| ops::attention(1, c, m.num_q_heads, m.num_kv_heads, m.head_dim, m.dtype_bytes);
    let (w0, w1) = (at(0), at(1));
    let (df, db) = (w1.flops - w0.flops, w1.bytes - w0.bytes);
    let limit = if db > 0.0 {
        df / db
    } else if df > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    (w0.flops / w0.bytes).max(limit)
}

/// How the requests of one iteration have their attention timed on one partition (module docs).
#[derive(Debug, Clone, Copy)]
pub(super) struct AttentionPass {
    sms: u32,
    rates: Option<AttentionRates>,
    /// The decode bandwidth when every decoding request is memory-bound ([`CostModel::memory_bound_decode`]).
    decode_bw: Option<f64>,
    /// `1 + p` in a mixed batch ([`CostModel::mixed_factor`]).
    mixed: Option<f64>,
}

impl AttentionPass {
    /// The decode bandwidth a memory-bound decode's time is divided by, when decodes are memory-bound.
    pub(super) fn decode_bandwidth(&self) -> Option<f64> {
        self.decode_bw
    }

    /// Request `(q, c)`'s attention: its work, its time as in a uniform batch, and its time in this one.
    #[inline]
    pub(super) fn time(&self, cm: &CostModel, q: u64, c: u64) -> (Work, f64, f64) {
        let m = &cm.model;
        let w = ops::attention(q, c, m.num_q_heads, m.num_kv_heads, m.head_dim, m.dtype_bytes);
        let solo = match self.decode_bw {
            Some(bw) if q == 1 => w.bytes / bw,
            _ => match &self.rates {
                Some(r) => r.time(w, q == 1),
                None => cm.curves.attention_time(self.sms, w, q == 1),
            },
        };
        let t = match self.mixed {
            Some(k) if q == 1 => solo * k,
            _ => solo,
        };
        (w, solo, t)
    }
}

impl CostModel {
    /// Time in seconds of one request's attention in one layer of a uniform batch (`max(F_r / Pi_attn, B_r / BW)`
    /// by default).
    pub fn attention_time(&self, sms: u32, q: u64, c: u64) -> f64 {
        self.attention_pass(sms, self.curves.attention_rates(sms), None).time(self, q, c).1
    }

    /// Whether every decoding request's attention is memory-bound on `sms` SMs (for any context), so that its time
    /// is its bytes over the decode bandwidth ([`CostModel::memory_bound_decode`]): the cost model then skips the
    /// compute side's division.
    pub fn decode_is_memory_bound(&self, sms: u32) -> bool {
        self.memory_bound_decode(self.curves.attention_rates(sms).as_ref()).is_some()
    }

    /// The attention pass on `sms` SMs whose attention rates are `rates` (the curves', looked up by the caller),
    /// `mixed` being [`CostModel::mixed_factor`] of the batch.
    #[inline]
    pub(super) fn attention_pass(&self, sms: u32, rates: Option<AttentionRates>, mixed: Option<f64>) -> AttentionPass {
        AttentionPass { sms, decode_bw: self.memory_bound_decode(rates.as_ref()), rates, mixed }
    }

    /// `1 + p` ([`super::CostConfig::mixed_attention_penalty`]) for a batch with both a decode (one new token) and
    /// a prefill chunk (more than one) when `p` is not 0, else `None` (decode attention timed as is).
    #[inline]
    pub(super) fn mixed_factor(&self, batch: &[SeqWork]) -> Option<f64> {
        let p = self.config.mixed_attention_penalty;
        let mixed = p != 0.0 && batch.iter().any(|w| w.new_tokens == 1) && batch.iter().any(|w| w.new_tokens > 1);
        mixed.then_some(1.0 + p)
    }

    /// The decode bandwidth of `rates` when every decoding request's attention is memory-bound there, else `None`.
    /// A decoding request's time is then its bytes over that bandwidth, bit for bit: with `I` the highest
    /// intensity of a decoding request ([`decode_intensity`]) and `I BW < Pi` (checked with a relative margin of
    /// 1e-9 against rounding), each request has `F_r / Pi < B_r / BW` exactly, so the rounded quotients keep that
    /// order and `max(F_r / Pi, B_r / BW)` ([`AttentionRates::time`]) is the second; its division is skipped.
    #[inline]
    fn memory_bound_decode(&self, rates: Option<&AttentionRates>) -> Option<f64> {
        rates
            .filter(|r| self.decode_intensity * r.decode_bandwidth < r.flops * (1.0 - 1e-9))
            .map(|r| r.decode_bandwidth)
    }
}
