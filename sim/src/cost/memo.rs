//! A memo of GEMM times: per thread, direct-mapped, exact.
//!
//! A GEMM's predicted time is a pure function of the cost model's curves and `(SMs, tokens, d_in, d_out)`, and
//! policies that compare partitions (`adaptive`, `duet`, `muxwise`) ask for the same few shapes over and over: a
//! decode batch of `n` tokens priced at several SM counts, step after step. The curves' GEMM time (an efficiency
//! interpolated in log2 tokens, wave quantisation, and a blend with two `powf`) was about 40% of an `adaptive` run
//! (docs/PERFORMANCE.md). Entries are keyed by the cost model's identity too, so models with different curves never
//! share one; a hit returns the very `f64` the curves computed, so outputs are byte-identical with or without it.
//! Per thread (`thread_local!`), so cost models stay `Sync` without locks; a slot holds the latest key that hashed
//! to it.

use std::cell::RefCell;

/// Slots per thread (a power of two): 8,192 x 40 bytes.
const BITS: u32 = 13;

#[derive(Clone, Copy)]
struct Entry {
    key: [u64; 4],
    value: f64,
}

thread_local! {
    static SLOTS: RefCell<Vec<Entry>> = RefCell::new(vec![Entry { key: [0; 4], value: 0.0 }; 1 << BITS]);
}

fn slot(key: &[u64; 4]) -> usize {
    let h =
        key.iter().fold(0x9E37_79B9_7F4A_7C15u64, |h, &k| (h ^ k).wrapping_mul(0xBF58_476D_1CE4_E5B9).rotate_left(29));
    (h >> (64 - BITS)) as usize
}

/// `compute()`'s value for GEMM `(sms, n, d_in, d_out)` of cost model `model_id` (never 0), from the memo when it
/// is there. Shapes whose dimensions do not fit the key (over 2^32) are computed every time.
pub fn gemm_time(model_id: u64, sms: u32, n: u64, d_in: u64, d_out: u64, compute: impl FnOnce() -> f64) -> f64 {
    if d_in >> 32 != 0 || d_out >> 32 != 0 {
        return compute();
    }
    let key = [model_id, n, u64::from(sms), d_in << 32 | d_out];
    let i = slot(&key);
    if let Some(v) = SLOTS.with(|s| {
        let e = s.borrow()[i];
        (e.key == key).then_some(e.value)
    }) {
        return v;
    }
    let value = compute();
    SLOTS.with(|s| s.borrow_mut()[i] = Entry { key, value });
    value
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
        // Fill far more keys than slots: every answer is still the one computed for its own key.
        for round in 0..2 {
            for n in 0..(3u64 << BITS) {
                let want = n as f64 * 0.5;
                let got = gemm_time(99, 8, n, 128, 256, || want);
                assert_eq!(got, want, "round {round}, n {n}");
            }
        }
    }
}
