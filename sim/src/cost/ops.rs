//! FLOPs and bytes of every operator in a transformer iteration.
//!
//! Notation: `n` tokens in the iteration, `h` hidden size, `h_q`/`h_kv` query/KV heads, `d_h` head size,
//! `I` MLP intermediate size, `V` vocabulary, `s` bytes per element.

/// Work of one operator: floating-point operations and bytes moved to or from HBM.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Work {
    /// Floating-point operations.
    pub flops: f64,
    /// Bytes read from and written to HBM.
    pub bytes: f64,
}

/// A linear layer `y = x W` with `W` of `d_in x d_out`, applied to `n` tokens:
/// `F = 2 n d_in d_out`, `B = (n d_in + d_in d_out + n d_out) s` (read activations and weights, write output).
pub fn linear(n: u64, d_in: u64, d_out: u64, s: u64) -> Work {
    let (n, di, dout, s) = (n as f64, d_in as f64, d_out as f64, s as f64);
    Work { flops: 2.0 * n * di * dout, bytes: (n * di + di * dout + n * dout) * s }
}

/// RMSNorm fused with the residual add (as vLLM and SGLang run it): reads the input and the residual,
/// writes the normalised output and the new residual, reads the `h` weights:
/// `F = 5 n h` (add, square, sum, scale, weight), `B = (4 n h + h) s`.
pub fn rmsnorm(n: u64, h: u64, s: u64) -> Work {
    let (n, h, s) = (n as f64, h as f64, s as f64);
    Work { flops: 5.0 * n * h, bytes: (4.0 * n * h + h) * s }
}

/// SiLU-and-multiply of the gated MLP: reads gate and up (`2 n I`), writes `n I`:
/// `F = 5 n I`, `B = 3 n I s`.
pub fn silu_mul(n: u64, i: u64, s: u64) -> Work {
    let (n, i, s) = (n as f64, i as f64, s as f64);
    Work { flops: 5.0 * n * i, bytes: 3.0 * n * i * s }
}

/// Rotary embedding of queries and keys in place: reads and writes `n (h_q + h_kv) d_h` elements:
/// `F = 3 n (h_q + h_kv) d_h`, `B = 2 n (h_q + h_kv) d_h s`.
pub fn rotary(n: u64, h_q: u64, h_kv: u64, d_h: u64, s: u64) -> Work {
    let e = (n * (h_q + h_kv) * d_h) as f64;
    Work { flops: 3.0 * e, bytes: 2.0 * e * s as f64 }
}

/// Embedding lookup for `n` tokens: reads `n` rows of `h` and writes them: `F = 0`, `B = 2 n h s`.
pub fn embedding(n: u64, h: u64, s: u64) -> Work {
    Work { flops: 0.0, bytes: 2.0 * (n * h * s) as f64 }
}

/// Causal attention of one request with `q` new query tokens over `c` cached tokens.
///
/// Query token `i` (0-based) attends to `c + i + 1` keys, so the kernel computes
/// `P = q c + q (q + 1) / 2` query-key pairs (the causal triangle, not the full `q (q + c)` rectangle:
/// FlashAttention skips the masked tiles). Per pair: `2 d_h` FLOPs for `QK^T`, `2 d_h` for `PV`, 2 for the
/// softmax, per query head:
/// `F = h_q P (4 d_h + 2)`.
/// Bytes: read Q and write O (`2 h_q q d_h s`), read K and V of all `q + c` positions once
/// (`2 h_kv (q + c) d_h s`):
/// `B = 2 h_q q d_h s + 2 h_kv (q + c) d_h s`.
pub fn attention(q: u64, c: u64, h_q: u64, h_kv: u64, d_h: u64, s: u64) -> Work {
    let (qf, cf) = (q as f64, c as f64);
    let pairs = qf * cf + qf * (qf + 1.0) / 2.0;
    let (hq, hkv, dh, s) = (h_q as f64, h_kv as f64, d_h as f64, s as f64);
    Work { flops: hq * pairs * (4.0 * dh + 2.0), bytes: 2.0 * hq * qf * dh * s + 2.0 * hkv * (qf + cf) * dh * s }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Tiny config: h = 64, h_q = 4, h_kv = 2, d_h = 16, I = 128, s = 2; QKV width (4 + 2 x 2) x 16 = 128.
    #[test]
    fn linear_counts_by_hand() {
        // n = 3 through QKV 64 -> 128: F = 2*3*64*128 = 49,152; B = (192 + 8,192 + 384) * 2 = 17,536.
        assert_eq!(linear(3, 64, 128, 2), Work { flops: 49_152.0, bytes: 17_536.0 });
        // Down projection 128 -> 64 for one token: F = 16,384; B = (128 + 8,192 + 64) * 2 = 16,768.
        assert_eq!(linear(1, 128, 64, 2), Work { flops: 16_384.0, bytes: 16_768.0 });
    }

    /// At one new token, attention work is affine in the context: `W(c) = W(0) + c (W(1) - W(0))` (what
    /// `Pricer` sums decoding requests by), exactly for the bundled models' shapes up to the longest contexts.
    #[test]
    fn decode_attention_is_affine_in_the_context() {
        for (h_q, h_kv, d_h, s) in [(32, 8, 128, 2), (40, 8, 128, 2), (64, 8, 128, 2), (4, 2, 16, 2), (28, 4, 128, 1)] {
            let w = |c: u64| attention(1, c, h_q, h_kv, d_h, s);
            let (w0, w1) = (w(0), w(1));
            for c in [0, 1, 2, 17, 4095, 131_072, 1 << 20, (1 << 24) + 3] {
                let cf = c as f64;
                let affine =
                    Work { flops: w0.flops + cf * (w1.flops - w0.flops), bytes: w0.bytes + cf * (w1.bytes - w0.bytes) };
                assert_eq!(w(c), affine, "context {c}, heads {h_q}/{h_kv}");
            }
        }
    }

    #[test]
    fn elementwise_counts_by_hand() {
        // n = 3, h = 64: F = 960; B = (768 + 64) * 2 = 1,664.
        assert_eq!(rmsnorm(3, 64, 2), Work { flops: 960.0, bytes: 1_664.0 });
        // n = 3, I = 128: F = 1,920; B = 3*3*128*2 = 2,304.
        assert_eq!(silu_mul(3, 128, 2), Work { flops: 1_920.0, bytes: 2_304.0 });
        // n = 3, (4 + 2) * 16 = 96 per token -> 288 elements: F = 864, B = 1,152.
        assert_eq!(rotary(3, 4, 2, 16, 2), Work { flops: 864.0, bytes: 1_152.0 });
        assert_eq!(embedding(3, 64, 2), Work { flops: 0.0, bytes: 768.0 });
    }

    #[test]
    fn attention_counts_by_hand() {
        // q = 2, c = 3: pairs = 6 + 3 = 9; F = 4 heads * 9 * (64 + 2) = 2,376.
        // B = 2*4*2*16*2 (Q, O) + 2*2*5*16*2 (K, V) = 512 + 640 = 1,152.
        assert_eq!(attention(2, 3, 4, 2, 16, 2), Work { flops: 2_376.0, bytes: 1_152.0 });
        // Decode (q = 1) over 100 cached tokens: 101 pairs; K/V of 101 positions dominate the bytes.
        assert_eq!(attention(1, 100, 4, 2, 16, 2), Work { flops: 4.0 * 101.0 * 66.0, bytes: 256.0 + 12_928.0 });
    }
}
