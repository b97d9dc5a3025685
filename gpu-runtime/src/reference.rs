//! Float64 CPU references for every kernel, the host's copies of the kernels' bf16 rounding and seeded random
//! stream, and the error measure the correctness checks use.
//!
//! Layouts are the kernels' (see `src/kernels/*.cu`): fused QKV rows `[q | k | v]`, paged KV cache
//! `[blocks, block_tokens, kv_heads, head_dim]` addressed through a block table, attention output
//! `[tokens, q_heads * head_dim]`, weights `[d_out, d_in]` (so `y = x W^T`).

use serde::Serialize;

/// bf16 bits of `f` rounded to nearest even (the kernels' `f2bf`); NaN stays NaN.
pub fn to_bf16(f: f32) -> u16 {
    let u = f.to_bits();
    if (u & 0x7f80_0000) == 0x7f80_0000 && (u & 0x007f_ffff) != 0 {
        return 0x7fc0;
    }
    let u = u.wrapping_add(0x7fff + ((u >> 16) & 1));
    (u >> 16) as u16
}

/// The value of bf16 bits.
pub fn from_bf16(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// splitmix64's finaliser (the kernels' `mix64`).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform in [-1, 1) from (seed, index), never zero (the kernels' `uniform_pm1`).
pub fn uniform_pm1(seed: u64, i: u64) -> f32 {
    let z = mix64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i).wrapping_add(1));
    let u = (z >> 40) as f32 * (1.0 / 16_777_216.0);
    let v = 2.0 * u - 1.0;
    if v == 0.0 { 0.5 / 16_777_216.0 } else { v }
}

/// `n` bf16 values `scale * uniform(seed, i)`: exactly what the `fill_uniform` kernel writes.
pub fn fill_uniform(n: usize, seed: u64, scale: f32) -> Vec<u16> {
    (0..n as u64).map(|i| to_bf16(scale * uniform_pm1(seed, i))).collect()
}

/// bf16 bits to f64.
pub fn widen(x: &[u16]) -> Vec<f64> {
    x.iter().map(|&b| from_bf16(b) as f64).collect()
}

/// `y[t, o] = sum_i x[t, i] w[o, i]`.
pub fn linear(x: &[f64], w: &[f64], tokens: usize, d_in: usize, d_out: usize) -> Vec<f64> {
    let mut y = vec![0.0; tokens * d_out];
    for t in 0..tokens {
        let xr = &x[t * d_in..(t + 1) * d_in];
        for o in 0..d_out {
            y[t * d_out + o] = xr.iter().zip(&w[o * d_in..(o + 1) * d_in]).map(|(a, b)| a * b).sum();
        }
    }
    y
}

/// RMSNorm of each row: `x / sqrt(mean(x^2) + eps) * w`.
pub fn rmsnorm(x: &[f64], w: &[f64], hidden: usize, eps: f64) -> Vec<f64> {
    x.chunks(hidden)
        .flat_map(|r| {
            let inv = 1.0 / (r.iter().map(|v| v * v).sum::<f64>() / hidden as f64 + eps).sqrt();
            r.iter().zip(w).map(move |(v, g)| v * inv * g)
        })
        .collect()
}

/// `silu(gate) * up` for rows `[gate | up]` of width `2 inter`.
pub fn silu_mul(gate_up: &[f64], inter: usize) -> Vec<f64> {
    gate_up
        .chunks(2 * inter)
        .flat_map(|r| (0..inter).map(move |i| r[i] / (1.0 + (-r[i]).exp()) * r[inter + i]))
        .collect()
}

/// Rotary embedding (rotate halves) applied to the query and key heads of fused QKV rows, in place.
pub fn rotary(qkv: &mut [f64], positions: &[i32], q_heads: usize, kv_heads: usize, head_dim: usize, theta: f64) {
    let width = (q_heads + 2 * kv_heads) * head_dim;
    let half = head_dim / 2;
    for (t, &pos) in positions.iter().enumerate() {
        for h in 0..q_heads + kv_heads {
            let base = t * width + h * head_dim;
            for i in 0..half {
                let ang = pos as f64 * theta.powf(-2.0 * i as f64 / head_dim as f64);
                let (s, c) = ang.sin_cos();
                let (x1, x2) = (qkv[base + i], qkv[base + i + half]);
                qkv[base + i] = x1 * c - x2 * s;
                qkv[base + i + half] = x2 * c + x1 * s;
            }
        }
    }
}

/// Shapes shared by the attention references.
#[derive(Debug, Clone, Copy)]
pub struct AttnShape {
    /// Query heads.
    pub q_heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Head size.
    pub head_dim: usize,
    /// Tokens per KV block.
    pub block_tokens: usize,
    /// Block-table row length.
    pub max_blocks: usize,
}

impl AttnShape {
    /// Offset of token `t`'s head `kvh` in the cache, through `table` (one sequence's row).
    pub fn cache_offset(&self, table: &[i32], t: usize, kvh: usize) -> usize {
        let slot = table[t / self.block_tokens] as usize * self.block_tokens + t % self.block_tokens;
        (slot * self.kv_heads + kvh) * self.head_dim
    }

    fn qkv_width(&self) -> usize {
        (self.q_heads + 2 * self.kv_heads) * self.head_dim
    }
}

/// Writes each token's K and V heads into the caches at `slot_of[t]` (the `kv_append` kernel).
pub fn kv_append(k_cache: &mut [f64], v_cache: &mut [f64], qkv: &[f64], slot_of: &[i32], s: &AttnShape) {
    let w = s.qkv_width();
    for (t, &slot) in slot_of.iter().enumerate() {
        for h in 0..s.kv_heads {
            let dst = (slot as usize * s.kv_heads + h) * s.head_dim;
            let k = t * w + (s.q_heads + h) * s.head_dim;
            let v = t * w + (s.q_heads + s.kv_heads + h) * s.head_dim;
            k_cache[dst..dst + s.head_dim].copy_from_slice(&qkv[k..k + s.head_dim]);
            v_cache[dst..dst + s.head_dim].copy_from_slice(&qkv[v..v + s.head_dim]);
        }
    }
}

/// Softmax attention of one query head over keys `0..n` of one sequence.
#[allow(clippy::too_many_arguments)]
fn attend(q: &[f64], n: usize, kvh: usize, table: &[i32], k: &[f64], v: &[f64], s: &AttnShape, scale: f64) -> Vec<f64> {
    let d = s.head_dim;
    let scores: Vec<f64> = (0..n)
        .map(|t| {
            let o = s.cache_offset(table, t, kvh);
            q.iter().zip(&k[o..o + d]).map(|(a, b)| a * b).sum::<f64>() * scale
        })
        .collect();
    let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let p: Vec<f64> = scores.iter().map(|x| (x - mx).exp()).collect();
    let sum: f64 = p.iter().sum();
    let mut out = vec![0.0; d];
    for (t, pt) in p.iter().enumerate() {
        let o = s.cache_offset(table, t, kvh);
        for (acc, vv) in out.iter_mut().zip(&v[o..o + d]) {
            *acc += pt / sum * vv;
        }
    }
    out
}

/// Decode attention: sequence `i`'s query heads (row `i` of `qkv`) over its `ctx_len[i]` cached tokens.
/// Output `[seqs, q_heads * head_dim]`.
pub fn decode_attention(
    qkv: &[f64],
    k: &[f64],
    v: &[f64],
    tables: &[i32],
    ctx_len: &[i32],
    s: &AttnShape,
    scale: f64,
) -> Vec<f64> {
    let group = s.q_heads / s.kv_heads;
    let mut out = Vec::new();
    for (i, &n) in ctx_len.iter().enumerate() {
        let table = &tables[i * s.max_blocks..(i + 1) * s.max_blocks];
        for h in 0..s.q_heads {
            let q = &qkv[i * s.qkv_width() + h * s.head_dim..][..s.head_dim];
            out.extend(attend(q, n as usize, h / group, table, k, v, s, scale));
        }
    }
    out
}

/// Causal prefill attention over cached context: sequence `i` has rows `q_start[i]..q_start[i] + q_len[i]` of
/// `qkv`; row `j` sits at position `ctx_before[i] + j` and sees keys `0..=ctx_before[i] + j`. Output
/// `[tokens, q_heads * head_dim]` in row order.
#[allow(clippy::too_many_arguments)]
pub fn prefill_attention(
    qkv: &[f64],
    k: &[f64],
    v: &[f64],
    tables: &[i32],
    q_start: &[i32],
    q_len: &[i32],
    ctx_before: &[i32],
    s: &AttnShape,
    scale: f64,
) -> Vec<f64> {
    let group = s.q_heads / s.kv_heads;
    let tokens = q_start.iter().zip(q_len).map(|(a, b)| (a + b) as usize).max().unwrap_or(0);
    let mut out = vec![0.0; tokens * s.q_heads * s.head_dim];
    for i in 0..q_len.len() {
        let table = &tables[i * s.max_blocks..(i + 1) * s.max_blocks];
        for j in 0..q_len[i] as usize {
            let row = q_start[i] as usize + j;
            let n = ctx_before[i] as usize + j + 1;
            for h in 0..s.q_heads {
                let q = &qkv[row * s.qkv_width() + h * s.head_dim..][..s.head_dim];
                let o = attend(q, n, h / group, table, k, v, s, scale);
                out[(row * s.q_heads + h) * s.head_dim..][..s.head_dim].copy_from_slice(&o);
            }
        }
    }
    out
}

/// Index of each row's largest value (lowest index on ties).
pub fn argmax_rows(logits: &[f64], vocab: usize) -> Vec<i32> {
    logits
        .chunks(vocab)
        .map(|r| {
            r.iter().enumerate().fold((0, f64::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as i32
        })
        .collect()
}

/// How far a kernel's output is from its reference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ErrorStats {
    /// Values compared.
    pub count: usize,
    /// Largest absolute difference.
    pub max_abs: f64,
    /// `max_abs` divided by the reference's largest magnitude (the check's measure).
    pub rel_to_max: f64,
    /// Outputs that are NaN or infinite (an unwritten, poisoned output shows up here).
    pub non_finite: usize,
}

impl ErrorStats {
    /// Whether the output passes: no non-finite value and `rel_to_max <= tol`.
    pub fn passes(&self, tol: f64) -> bool {
        self.non_finite == 0 && self.rel_to_max <= tol && self.count > 0
    }
}

/// Compares `got` with `want`; lengths must match.
pub fn compare(got: &[f64], want: &[f64]) -> ErrorStats {
    assert_eq!(got.len(), want.len(), "output and reference lengths differ");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    let mut max_abs = 0.0f64;
    let mut non_finite = 0;
    for (g, w) in got.iter().zip(want) {
        if !g.is_finite() {
            non_finite += 1;
        } else {
            max_abs = max_abs.max((g - w).abs());
        }
    }
    ErrorStats { count: got.len(), max_abs, rel_to_max: max_abs / scale, non_finite }
}

/// Tolerance of the correctness checks: a few bf16 roundings (2^-8 relative each) of inputs and output.
pub const TOLERANCE: f64 = 2e-2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert_eq!(from_bf16(0x3f80), 1.0);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(to_bf16(-2.0), 0xc000);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert!(from_bf16(0xffff).is_nan(), "the poison pattern is a NaN");
    }

    #[test]
    fn random_stream_is_seeded_bounded_and_never_zero() {
        let a = fill_uniform(10_000, 7, 0.5);
        assert_eq!(a, fill_uniform(10_000, 7, 0.5));
        assert_ne!(a, fill_uniform(10_000, 8, 0.5));
        let w = widen(&a);
        assert!(w.iter().all(|v| *v != 0.0 && v.abs() <= 0.5));
        let mean = w.iter().sum::<f64>() / w.len() as f64;
        assert!(mean.abs() < 0.02, "{mean}");
    }

    #[test]
    fn small_references_by_hand() {
        // RMSNorm of [3, 4]: mean square 12.5.
        let r = rmsnorm(&[3.0, 4.0], &[1.0, 2.0], 2, 0.0);
        assert!((r[0] - 3.0 / 12.5f64.sqrt()).abs() < 1e-12 && (r[1] - 8.0 / 12.5f64.sqrt()).abs() < 1e-12);
        // silu(0) * up = 0; silu(large) * up ~ large * up.
        let s = silu_mul(&[0.0, 20.0, 3.0, 0.5], 2);
        assert_eq!(s[0], 0.0);
        assert!((s[1] - 10.0).abs() < 1e-6);
        assert_eq!(linear(&[1.0, 2.0], &[3.0, 4.0, 5.0, 6.0], 1, 2, 2), vec![11.0, 17.0]);
        assert_eq!(argmax_rows(&[1.0, 3.0, 3.0, 0.0, -1.0, -2.0], 3), vec![1, 0]);
    }

    #[test]
    fn rotary_is_identity_at_position_zero_and_keeps_norms() {
        let x: Vec<f64> = (0..3 * 8).map(|i| (i as f64 * 0.37).sin()).collect();
        let mut a = x.clone();
        rotary(&mut a, &[0], 1, 1, 8, 10_000.0);
        assert_eq!(a, x);
        let mut b = x.clone();
        rotary(&mut b, &[17], 1, 1, 8, 10_000.0);
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
        for h in 0..2 {
            assert!((norm(&b[h * 8..h * 8 + 8]) - norm(&x[h * 8..h * 8 + 8])).abs() < 1e-12);
        }
        assert_eq!(&b[16..], &x[16..], "values are not rotated");
    }

    #[test]
    fn attention_references_by_hand() {
        // One KV head of size 2, blocks of 2 tokens; the sequence's blocks are 1 then 0 (paging is honoured).
        let s = AttnShape { q_heads: 2, kv_heads: 1, head_dim: 2, block_tokens: 2, max_blocks: 2 };
        let table = [1, 0];
        let mut k = vec![0.0; 8];
        let mut v = vec![0.0; 8];
        // Three tokens: rows [q0 q1 | k | v] of width 8.
        let qkv = vec![
            0.0, 0.0, 1.0, 0.0, /* k */ 1.0, 0.0, /* v */ 10.0, 0.0, //
            0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 20.0, //
            0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 30.0, 30.0,
        ];
        let slots: Vec<i32> = (0..3).map(|t| table[t / 2] * 2 + (t % 2) as i32).collect();
        kv_append(&mut k, &mut v, &qkv, &slots, &s);
        assert_eq!(&v[4..6], &[10.0, 0.0], "token 0 lands in block 1");
        // Query head 0 is zero: uniform weights, the mean of the values seen.
        let d = decode_attention(&qkv[16..], &k, &v, &table, &[3], &s, 1.0);
        assert!((d[0] - 40.0 / 3.0).abs() < 1e-12 && (d[1] - 50.0 / 3.0).abs() < 1e-12);
        // Causal prefill of all three tokens from an empty cache: row 0 sees only token 0.
        let p = prefill_attention(&qkv, &k, &v, &[1, 0], &[0], &[3], &[0], &s, 1.0);
        assert_eq!(&p[0..2], &[10.0, 0.0]);
        assert_eq!(&p[2..4], &[10.0, 0.0], "head 1 at row 0 also sees only token 0");
        assert!((p[4] - 5.0).abs() < 1e-12 && (p[5] - 10.0).abs() < 1e-12, "row 1, head 0: mean of two values");
        // Head 1 (q = [1, 0]) at row 2 weights tokens by exp(k . q) = e, 1, e.
        let e = std::f64::consts::E;
        let want = (10.0 * e + 0.0 + 30.0 * e) / (2.0 * e + 1.0);
        assert!((p[(2 * 2 + 1) * 2] - want).abs() < 1e-12);
        // Decode with the same context gives the last prefill row.
        let d = decode_attention(&qkv[16..], &k, &v, &table, &[3], &s, 1.0);
        assert!(d.iter().zip(&p[8..12]).all(|(a, b)| (a - b).abs() < 1e-12));
    }

    #[test]
    fn comparison_flags_nan_and_relative_error() {
        let e = compare(&[1.0, 2.0, f64::NAN], &[1.0, 2.1, 3.0]);
        assert_eq!(e.non_finite, 1);
        assert!((e.rel_to_max - 0.1 / 3.0).abs() < 1e-12);
        assert!(!e.passes(1.0));
        assert!(compare(&[1.0], &[1.001]).passes(TOLERANCE));
    }
}
