//! Memos of pure cost-model results: per thread, two-way set-associative, exact.
//!
//! A GEMM's predicted time is a pure function of the cost model's curves and `(SMs, tokens, d_in, d_out)`, and
//! policies that compare partitions (`adaptive`, `duet`, `muxwise`) ask for the same few shapes over and over: a
//! decode batch of `n` tokens priced at several SM counts, step after step. The curves' GEMM time (an efficiency
//! interpolated in log2 tokens, wave quantisation, and a blend with two `powf`) was about 40% of an `adaptive` run
//! (docs/PERFORMANCE.md). Likewise everything in an iteration but attention depends only on
//! `(SMs, tokens, emitting sequences)` ([`super::CostModel::iteration_launched`] keeps that part here), and a
//! decode-heavy run prices the same few batch sizes hundreds of thousands of times.
//!
//! Entries are keyed by the cost model's identity too, so models with different curves never share one; a hit
//! returns the very values that were computed, so outputs are byte-identical with or without a memo. Per thread
//! (`thread_local!`), so cost models stay `Sync` without locks. Each key hashes (a multiply-xorshift mix, whose top
//! bits pick the set) to a set of two entries, most recent first; a miss evicts the older one.

use std::cell::RefCell;

/// Sets per table (a power of two): 16,384 sets x 2 entries. A chunked run on a long trace prices a few thousand
/// token counts x 5 GEMM shapes; the first memo (8,192 direct-mapped slots, a weak hash) missed on a third of its
/// lookups (issue 23).
const BITS: u32 = 14;

/// One table of `V` by a 4-word key.
struct Table<V: Copy> {
    /// `2 << BITS` entries; set `s` is entries `2s` (most recent) and `2s + 1`. A key of all zeros is empty
    /// (model identities are never 0).
    entries: Vec<([u64; 4], V)>,
}

impl<V: Copy + Default> Table<V> {
    fn new() -> Self {
        Self { entries: vec![([0; 4], V::default()); 2 << BITS] }
    }

    fn get(&mut self, key: [u64; 4], compute: impl FnOnce() -> V) -> V {
        let i = 2 * set(&key);
        if self.entries[i].0 == key {
            return self.entries[i].1;
        }
        if self.entries[i + 1].0 == key {
            self.entries.swap(i, i + 1);
            return self.entries[i].1;
        }
        let value = compute();
        self.entries[i + 1] = self.entries[i];
        self.entries[i] = (key, value);
        value
    }
}

fn set(key: &[u64; 4]) -> usize {
    let mut h = 0u64;
    for &k in key {
        h = (h ^ k).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
    }
    (h.wrapping_mul(0xBF58_476D_1CE4_E5B9) >> (64 - BITS)) as usize
}

/// What an iteration costs apart from attention and host overhead, for one `(SMs, tokens, emitting)`
/// ([`super::CostModel::iteration_launched`]).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Fixed {
    /// Linear layers of one layer, s.
    pub linear: f64,
    /// Elementwise operators of one layer, s.
    pub per_layer_mem: f64,
    /// Per-layer traffic of the linear and elementwise operators (attention's is added to it).
    pub per_layer: super::Tally,
    /// Embedding and final norm, s.
    pub once_mem: f64,
    /// Traffic of the embedding, final norm and LM head.
    pub once: super::Tally,
    /// LM head, s.
    pub lm_head_s: f64,
}

thread_local! {
    static GEMM: RefCell<Table<f64>> = RefCell::new(Table::new());
    static FIXED: RefCell<Table<Fixed>> = RefCell::new(Table::new());
}

/// `compute()`'s value for GEMM `(sms, n, d_in, d_out)` of cost model `model_id` (never 0), from the memo when it
/// is there. Shapes whose dimensions do not fit the key (over 2^32) are computed every time.
pub fn gemm_time(model_id: u64, sms: u32, n: u64, d_in: u64, d_out: u64, compute: impl FnOnce() -> f64) -> f64 {
    if d_in >> 32 != 0 || d_out >> 32 != 0 {
        return compute();
    }
    GEMM.with(|t| t.borrow_mut().get([model_id, n, u64::from(sms), d_in << 32 | d_out], compute))
}

/// `compute()`'s value for the fixed part of an iteration of `n` tokens, `emitting` of which sample, on `sms` SMs
/// of cost model `model_id` (never 0), from the memo when it is there.
pub(super) fn fixed(model_id: u64, sms: u32, n: u64, emitting: u64, compute: impl FnOnce() -> Fixed) -> Fixed {
    FIXED.with(|t| t.borrow_mut().get([model_id, n, u64::from(sms), emitting], compute))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_hit_returns_the_computed_value_without_computing_again() {
        let calls = Cell::new(0);
        let f = |v: f64| {
            let calls = &calls;
            move || {
                calls.set(calls.get() + 1);
                v
            }
        };
        assert_eq!(gemm_time(7, 32, 5, 4096, 6144, f(1.25)), 1.25);
        assert_eq!(gemm_time(7, 32, 5, 4096, 6144, f(9.0)), 1.25);
        assert_eq!(calls.get(), 1);
        // Any field of the key that differs is another entry: model, SMs, tokens, either dimension.
        for (m, s, n, i, o) in [(8, 32, 5, 4096, 6144), (7, 40, 5, 4096, 6144), (7, 32, 6, 4096, 6144)] {
            assert_eq!(gemm_time(m, s, n, i, o, f(2.0)), 2.0);
        }
        assert_eq!(gemm_time(7, 32, 5, 6144, 4096, f(3.0)), 3.0);
        assert_eq!(calls.get(), 5);
        // Dimensions that do not fit the key are never memoised.
        assert_eq!(gemm_time(7, 32, 5, 1 << 33, 1, f(4.0)), 4.0);
        assert_eq!(gemm_time(7, 32, 5, 1 << 33, 1, f(5.0)), 5.0);
    }

    #[test]
    fn colliding_keys_evict_not_confuse() {
        // Fill far more keys than entries: every answer is still the one computed for its own key.
        for round in 0..2 {
            for n in 0..(3u64 << BITS) {
                let want = n as f64 * 0.5;
                let got = gemm_time(99, 8, n, 128, 256, || want);
                assert_eq!(got, want, "round {round}, n {n}");
            }
        }
    }

    #[test]
    fn the_shapes_of_a_long_run_fit_without_thrashing() {
        // 2,100 token counts x 5 Qwen3-8B shapes (10,500 keys, 0.64 per set): a uniform hash leaves about 510 keys
        // beyond their set's two entries (Poisson); the first memo's hash sent 4,900 of them to occupied slots.
        let shapes = [(4096, 6144), (4096, 4096), (4096, 24576), (12288, 4096), (4096, 151936)];
        let mut per_set = vec![0u32; 1 << BITS];
        for n in 1..2100u64 {
            for (a, b) in shapes {
                per_set[set(&[1, n, 132, a << 32 | b])] += 1;
            }
        }
        let over: u32 = per_set.iter().map(|&c| c.saturating_sub(2)).sum();
        assert!(over < 700, "{over} keys beyond their set's two entries");
    }
}
