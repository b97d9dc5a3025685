//! What the calibration microbenchmarks measure: SM counts, projection shapes, token counts, attention cases and
//! co-running splits, derived from the model and the split menu. Pure data, tested without a GPU.

use duet_sim::model::ModelSpec;
use serde::Serialize;

use crate::error::GpuError;
use crate::menu::Menu;

/// Options of a calibration run.
#[derive(Debug, Clone, Default)]
pub struct BenchOptions {
    /// Fewer token counts and cases (a smoke run).
    pub quick: bool,
    /// Only these SM counts (each must be on the menu; the whole GPU is always added); all when `None`.
    pub sms: Option<Vec<u32>>,
}

/// One projection of a decoder layer: `d_in -> d_out`, named as in Vidur's profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Projection {
    /// `attn_pre_proj` (QKV), `attn_post_proj` (O), `mlp_up_proj` (gate and up), `mlp_down_proj`, `lm_head`.
    pub name: &'static str,
    /// Input features.
    pub d_in: u64,
    /// Output features.
    pub d_out: u64,
}

/// Decode attention: `batch` sequences each attending over `context` keys (the new token's included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DecodeCase {
    /// Sequences.
    pub batch: u32,
    /// Keys per sequence.
    pub context: u32,
}

/// Prefill attention: one sequence's chunk of `chunk` new tokens after `before` cached ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PrefillCase {
    /// New tokens.
    pub chunk: u32,
    /// Tokens already cached.
    pub before: u32,
}

/// Everything one calibration run measures.
#[derive(Debug, Clone, Serialize)]
pub struct BenchPlan {
    /// SM counts swept (ascending; the last is the whole GPU).
    pub sm_counts: Vec<u32>,
    /// Projections of one layer (and the LM head).
    pub projections: Vec<Projection>,
    /// Token counts for projections and elementwise operators.
    pub tokens: Vec<u64>,
    /// Decode-attention cases.
    pub decode: Vec<DecodeCase>,
    /// Prefill-attention cases.
    pub prefill: Vec<PrefillCase>,
    /// (decode SMs, prefill SMs) splits for the co-running measurement.
    pub contention: Vec<(u32, u32)>,
    /// Timed rounds per measurement (the median is recorded).
    pub rounds: u32,
}

/// The projections of `m` (per GPU, already sharded).
pub fn projections(m: &ModelSpec) -> Vec<Projection> {
    let qkv = (m.num_q_heads + 2 * m.num_kv_heads) * m.head_dim;
    vec![
        Projection { name: "attn_pre_proj", d_in: m.hidden_size, d_out: qkv },
        Projection { name: "attn_post_proj", d_in: m.num_q_heads * m.head_dim, d_out: m.hidden_size },
        Projection { name: "mlp_up_proj", d_in: m.hidden_size, d_out: 2 * m.intermediate_size },
        Projection { name: "mlp_down_proj", d_in: m.intermediate_size, d_out: m.hidden_size },
        Projection { name: "lm_head", d_in: m.hidden_size, d_out: m.vocab_size },
    ]
}

/// Token counts from 1 to 16,384: powers of two and the midpoints between them (`quick`: eight of them).
pub fn token_counts(quick: bool) -> Vec<u64> {
    if quick {
        return vec![1, 8, 32, 128, 512, 2048, 8192, 16_384];
    }
    let mut out = vec![1, 2];
    let mut p = 4u64;
    while p <= 16_384 {
        out.push(p);
        if p < 16_384 {
            out.push(p + p / 2);
        }
        p *= 2;
    }
    out
}

impl BenchPlan {
    /// The plan for `model` on the SM counts of `menu`.
    pub fn new(model: &ModelSpec, menu: &Menu, opts: &BenchOptions) -> Result<BenchPlan, GpuError> {
        let all = menu.sm_counts();
        let sm_counts = match &opts.sms {
            None => all,
            Some(list) => {
                let mut v = Vec::new();
                for &s in list {
                    if !all.contains(&s) {
                        return Err(GpuError::Invalid(format!(
                            "{s} SMs is not a partition of this GPU; the menu has {all:?}"
                        )));
                    }
                    v.push(s);
                }
                v.push(menu.info.total);
                v.sort_unstable();
                v.dedup();
                v
            }
        };
        let decode = if opts.quick {
            vec![DecodeCase { batch: 1, context: 8192 }, DecodeCase { batch: 64, context: 2048 }]
        } else {
            [
                (1, 4096),
                (1, 32_768),
                (8, 8192),
                (32, 2048),
                (32, 8192),
                (64, 4096),
                (128, 1024),
                (128, 4096),
                (256, 2048),
            ]
            .into_iter()
            .map(|(batch, context)| DecodeCase { batch, context })
            .collect()
        };
        let prefill = if opts.quick {
            vec![PrefillCase { chunk: 512, before: 0 }, PrefillCase { chunk: 512, before: 2048 }]
        } else {
            [(128, 0), (512, 0), (2048, 0), (128, 2048), (512, 2048), (2048, 2048), (512, 8192)]
                .into_iter()
                .map(|(chunk, before)| PrefillCase { chunk, before })
                .collect()
        };
        let contention = [16u32, 32, 48, 64]
            .into_iter()
            .filter_map(|d| menu.lookup(d))
            .map(|c| (c.decode_sms, c.prefill_sms))
            .collect();
        Ok(BenchPlan {
            sm_counts,
            projections: projections(model),
            tokens: token_counts(opts.quick),
            decode,
            prefill,
            contention,
            rounds: if opts.quick { 3 } else { 5 },
        })
    }

    /// The token counts the LM head is measured at (it runs once per emitted token per sequence: up to 256).
    pub fn lm_head_tokens(&self) -> Vec<u64> {
        self.tokens.iter().copied().filter(|&t| t <= 256).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::menu::SmInfo;

    #[test]
    fn qwen3_8b_on_an_h100() {
        let m = ModelSpec::resolve("qwen3-8b").unwrap();
        let menu = Menu::new(SmInfo::H100_SXM).unwrap();
        let p = BenchPlan::new(&m, &menu, &BenchOptions::default()).unwrap();
        assert_eq!(p.sm_counts.len(), 33);
        assert_eq!((p.sm_counts[0], *p.sm_counts.last().unwrap()), (4, 132));
        let names: Vec<(&str, u64, u64)> = p.projections.iter().map(|x| (x.name, x.d_in, x.d_out)).collect();
        assert_eq!(
            names,
            vec![
                ("attn_pre_proj", 4096, 6144),
                ("attn_post_proj", 4096, 4096),
                ("mlp_up_proj", 4096, 24_576),
                ("mlp_down_proj", 12_288, 4096),
                ("lm_head", 4096, 151_936)
            ]
        );
        assert_eq!((p.tokens[0], *p.tokens.last().unwrap(), p.tokens.len()), (1, 16_384, 27));
        assert!(p.tokens.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(p.contention, vec![(16, 116), (32, 100), (48, 84), (64, 68)]);
        assert_eq!(p.lm_head_tokens().last(), Some(&256));
        // The largest decode case's KV for one layer stays within 4 GiB.
        let kv_per_token = 2 * m.num_kv_heads * m.head_dim * 2;
        assert!(p.decode.iter().all(|c| c.batch as u64 * c.context as u64 * kv_per_token <= 4 << 30));
    }

    #[test]
    fn restricted_sm_counts_must_be_partitions() {
        let m = ModelSpec::resolve("qwen3-8b").unwrap();
        let menu = Menu::new(SmInfo::H100_SXM).unwrap();
        let opts = BenchOptions { quick: true, sms: Some(vec![132, 16, 16]) };
        assert_eq!(BenchPlan::new(&m, &menu, &opts).unwrap().sm_counts, vec![16, 132]);
        let opts = BenchOptions { quick: true, sms: Some(vec![64]) };
        assert_eq!(BenchPlan::new(&m, &menu, &opts).unwrap().sm_counts, vec![64, 132], "whole GPU always measured");
        let bad = BenchOptions { quick: true, sms: Some(vec![10]) };
        assert!(BenchPlan::new(&m, &menu, &bad).unwrap_err().to_string().contains("10 SMs is not a partition"));
    }
}
