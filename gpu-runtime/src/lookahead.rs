//! Look-ahead decode on the GPU, the CPU side: which CUDA graph a decode batch replays (padded batch-size buckets
//! per decode partition) and the KV slots and metadata of a window of `k` steps, prepared before the first
//! step so that the `k` graphs run back to back with no host synchronisation inside the window.
//!
//! A graph is captured per (decode partition, bucket) on that partition's stream (a graph keeps the SM set it was
//! captured with), at start-up for the keys a run's windows use ([`window_graph_keys`]). A batch of `n`
//! sequences replays the smallest bucket `>= n`; the padding rows point at a scratch slot, so the captured kernels
//! read and write valid memory and the real rows are unaffected. [`KvSlots`] mirrors the engine's block accounting
//! with physical block numbers: a window reserves the blocks for all `k` new tokens of every sequence up front
//! (the engine already counted them), and a sequence's blocks return to the free list when it ends.

use std::collections::HashMap;

use crate::error::GpuError;
use crate::kernels::BLOCK_TOKENS;

/// Padded batch sizes graphs are captured for: 1, 2, 4, 8, then every 8 up to `max` (vLLM's scheme).
pub fn buckets(max: u32) -> Vec<u32> {
    let mut out: Vec<u32> = [1, 2, 4, 8].into_iter().filter(|&b| b <= max.max(1)).collect();
    let mut b = 16;
    while b <= max {
        out.push(b);
        b += 8;
    }
    if out.last() != Some(&max) && max > 8 {
        out.push(max);
    }
    out
}

/// Largest batch replayed from a graph; larger decode batches run eagerly.
pub const MAX_GRAPH_ROWS: u32 = 256;

/// The buckets of an executor whose steps hold at most `max_seqs` sequences: [`buckets`] up to
/// `min(max_seqs, MAX_GRAPH_ROWS)`.
pub fn graph_buckets(max_seqs: u32) -> Vec<u32> {
    buckets(max_seqs.min(MAX_GRAPH_ROWS))
}

/// The bucket a batch of `n` sequences replays, or `None` when `n` exceeds every bucket (run eagerly).
pub fn bucket_for(buckets: &[u32], n: u32) -> Option<u32> {
    if n == 0 {
        return None;
    }
    buckets.iter().copied().find(|&b| b >= n)
}

/// Graphs a run's look-ahead windows replay: (decode partition SMs, bucket of the window's first step) for every
/// window of more than one step in `windows` (SMs, sequences, steps), sorted, each once. Windows of batches larger
/// than every bucket run eagerly and need none.
pub fn window_graph_keys(windows: &[(u32, u32, u32)], buckets: &[u32]) -> Vec<(u32, u32)> {
    let mut keys: Vec<(u32, u32)> = windows
        .iter()
        .filter(|w| w.2 > 1)
        .filter_map(|&(sms, seqs, _)| bucket_for(buckets, seqs).map(|b| (sms, b)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Physical KV blocks of the GPU cache, owned by sequences (engine request ids).
#[derive(Debug, Clone)]
pub struct KvSlots {
    free: Vec<i32>,
    owned: HashMap<u64, Vec<i32>>,
    total: u32,
    /// A block no sequence owns: padding rows of a captured graph read and write here.
    pub scratch_block: i32,
}

/// What `k` steps of one decode batch need, per step: context lengths after the step's token, the slot of the
/// new token, its position; padded to `rows` (the graph bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowMeta {
    /// Rows per step (the bucket).
    pub rows: u32,
    /// `k x rows` keys attended (the new token included); padding rows attend 1 key.
    pub ctx_len: Vec<i32>,
    /// `k x rows` slots the new token's K and V go to; padding rows write the scratch block.
    pub slot_of: Vec<i32>,
    /// `k x rows` positions of the new token (rotary).
    pub positions: Vec<i32>,
}

impl KvSlots {
    /// A cache of `total` blocks; the last one is kept as the scratch block.
    pub fn new(total: u32) -> Result<KvSlots, GpuError> {
        if total < 2 {
            return Err(GpuError::Invalid(format!("a KV cache needs at least 2 blocks, not {total}")));
        }
        let scratch_block = total as i32 - 1;
        // Lowest block numbers first.
        let free = (0..scratch_block).rev().collect();
        Ok(KvSlots { free, owned: HashMap::new(), total, scratch_block })
    }

    /// Blocks neither owned nor scratch.
    pub fn free_blocks(&self) -> u32 {
        self.free.len() as u32
    }

    /// Blocks usable by sequences (all but the scratch block).
    pub fn capacity(&self) -> u32 {
        self.total - 1
    }

    /// The blocks of sequence `seq` (its block table), in order.
    pub fn table(&self, seq: u64) -> &[i32] {
        self.owned.get(&seq).map_or(&[], Vec::as_slice)
    }

    /// Makes `seq` own enough blocks for `tokens` tokens; an error (nothing changed) when the cache is short.
    pub fn reserve(&mut self, seq: u64, tokens: u32) -> Result<(), GpuError> {
        let have = self.table(seq).len() as u32;
        let need = tokens.div_ceil(BLOCK_TOKENS).saturating_sub(have);
        if need > self.free_blocks() {
            return Err(GpuError::Invalid(format!(
                "KV cache exhausted: sequence {seq} needs {need} more blocks, {} free",
                self.free_blocks()
            )));
        }
        let list = self.owned.entry(seq).or_default();
        for _ in 0..need {
            list.push(self.free.pop().expect("checked"));
        }
        Ok(())
    }

    /// Returns `seq`'s blocks to the free list.
    pub fn release(&mut self, seq: u64) {
        if let Some(blocks) = self.owned.remove(&seq) {
            self.free.extend(blocks.into_iter().rev());
        }
    }

    /// The slot of token position `pos` of `seq` (its block must be reserved).
    pub fn slot(&self, seq: u64, pos: u32) -> Result<i32, GpuError> {
        let b = self
            .table(seq)
            .get((pos / BLOCK_TOKENS) as usize)
            .ok_or_else(|| GpuError::Invalid(format!("sequence {seq} has no block for position {pos}")))?;
        Ok(b * BLOCK_TOKENS as i32 + (pos % BLOCK_TOKENS) as i32)
    }

    /// Block tables for `rows` rows (`rows x max_blocks` ints): each sequence's blocks, then the scratch block;
    /// padding rows hold only the scratch block. An error when a sequence has more than `max_blocks` blocks.
    pub fn block_tables(&self, seqs: &[u64], rows: u32, max_blocks: u32) -> Result<Vec<i32>, GpuError> {
        let mut out = vec![self.scratch_block; (rows * max_blocks) as usize];
        for (r, &seq) in seqs.iter().enumerate() {
            let t = self.table(seq);
            if t.len() > max_blocks as usize || r >= rows as usize {
                return Err(GpuError::Invalid(format!(
                    "sequence {seq} ({} blocks) does not fit a {rows} x {max_blocks} block table",
                    t.len()
                )));
            }
            out[r * max_blocks as usize..][..t.len()].copy_from_slice(t);
        }
        Ok(out)
    }

    /// Reserves and describes a window of `k` decode steps for `seqs` = (sequence, tokens in the cache before
    /// the window), padded to `rows`. Step `s` writes the token at position `cached + s` and attends
    /// `cached + s + 1` keys.
    pub fn window(&mut self, seqs: &[(u64, u32)], k: u32, rows: u32) -> Result<WindowMeta, GpuError> {
        if seqs.len() as u32 > rows || k == 0 {
            return Err(GpuError::Invalid(format!("{} sequences in {rows} rows, {k} steps", seqs.len())));
        }
        for &(seq, cached) in seqs {
            self.reserve(seq, cached + k)?;
        }
        let scratch = self.scratch_block * BLOCK_TOKENS as i32;
        let n = (k * rows) as usize;
        let mut m = WindowMeta {
            rows,
            ctx_len: Vec::with_capacity(n),
            slot_of: Vec::with_capacity(n),
            positions: Vec::with_capacity(n),
        };
        for s in 0..k {
            for r in 0..rows as usize {
                match seqs.get(r) {
                    Some(&(seq, cached)) => {
                        m.ctx_len.push((cached + s + 1) as i32);
                        m.slot_of.push(self.slot(seq, cached + s)?);
                        m.positions.push((cached + s) as i32);
                    }
                    None => {
                        m.ctx_len.push(1);
                        m.slot_of.push(scratch);
                        m.positions.push(0);
                    }
                }
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn buckets_and_selection() {
        assert_eq!(buckets(256).len(), 4 + 31);
        assert_eq!(&buckets(256)[..6], &[1, 2, 4, 8, 16, 24]);
        assert_eq!(buckets(20), vec![1, 2, 4, 8, 16, 20]);
        assert_eq!(buckets(3), vec![1, 2]);
        let b = buckets(256);
        assert_eq!(
            (bucket_for(&b, 1), bucket_for(&b, 3), bucket_for(&b, 9), bucket_for(&b, 256)),
            (Some(1), Some(4), Some(16), Some(256))
        );
        assert_eq!(bucket_for(&b, 257), None, "larger batches run eagerly");
        assert_eq!(bucket_for(&b, 0), None);
        // Windows (SMs, sequences, steps): one-step windows and oversized batches need no graph; 3 and 4
        // sequences share bucket 4.
        let w = [(32, 3, 4), (16, 9, 2), (32, 4, 8), (32, 5, 1), (16, 300, 4), (24, 1, 2)];
        assert_eq!(window_graph_keys(&w, &b), vec![(16, 16), (24, 1), (32, 4)]);
    }

    #[test]
    fn a_window_reserves_slots_ahead_and_pads_with_scratch() {
        let mut kv = KvSlots::new(10).unwrap();
        assert_eq!((kv.capacity(), kv.free_blocks(), kv.scratch_block), (9, 9, 9));
        // Sequence 7 has 15 cached tokens (1 block); 3 steps need positions 15, 16, 17: a second block.
        let m = kv.window(&[(7, 15), (8, 0)], 3, 4).unwrap();
        assert_eq!(kv.table(7), &[0, 1]);
        assert_eq!(kv.table(8), &[2]);
        assert_eq!(&m.ctx_len[..4], &[16, 1, 1, 1]);
        assert_eq!(&m.ctx_len[8..], &[18, 3, 1, 1]);
        assert_eq!(&m.slot_of[..4], &[15, 32, 144, 144], "token 15 in block 0, then scratch block 9 for padding");
        assert_eq!(&m.slot_of[4..6], &[16, 33], "position 16 opens block 1");
        assert_eq!(&m.positions[8..10], &[17, 2]);
        let t = kv.block_tables(&[7, 8], 3, 2).unwrap();
        assert_eq!(t, vec![0, 1, 2, 9, 9, 9], "padding row 2 and the rest of row 1 point at the scratch block");
        assert!(kv.block_tables(&[7], 1, 1).is_err());
        kv.release(7);
        assert_eq!(kv.free_blocks(), 8);
        assert!(kv.table(7).is_empty());
        assert!(kv.window(&[(1, 0)], 0, 1).is_err());
        assert!(kv.window(&[(1, 0), (2, 0)], 1, 1).is_err());
    }

    #[test]
    fn exhaustion_is_an_error_that_changes_nothing() {
        let mut kv = KvSlots::new(3).unwrap();
        kv.reserve(1, 16).unwrap();
        let e = kv.reserve(2, 40).unwrap_err().to_string();
        assert!(e.contains("needs 3 more blocks, 1 free"), "{e}");
        assert_eq!(kv.free_blocks(), 1);
        assert!(kv.table(2).is_empty());
        assert!(KvSlots::new(1).is_err());
    }

    proptest! {
        /// Slots written in a window are distinct, inside the owner's blocks, never the scratch block for real
        /// rows, and blocks are never shared between sequences or beyond capacity.
        #[test]
        fn window_slots_are_distinct_and_owned(cached in proptest::collection::vec(0u32..200, 1..12), k in 1u32..9) {
            let mut kv = KvSlots::new(400).unwrap();
            let seqs: Vec<(u64, u32)> = cached.iter().enumerate().map(|(i, &c)| (i as u64, c)).collect();
            let rows = bucket_for(&buckets(16), seqs.len() as u32).unwrap();
            let m = kv.window(&seqs, k, rows).unwrap();
            let mut seen = HashSet::new();
            for s in 0..k as usize {
                for (r, &(seq, c)) in seqs.iter().enumerate() {
                    let slot = m.slot_of[s * rows as usize + r];
                    prop_assert!(seen.insert(slot), "slot {} written twice", slot);
                    prop_assert!(kv.table(seq).contains(&(slot / BLOCK_TOKENS as i32)));
                    prop_assert_eq!(m.ctx_len[s * rows as usize + r], (c + s as u32 + 1) as i32);
                }
            }
            let mut blocks: Vec<i32> = seqs.iter().flat_map(|&(q, _)| kv.table(q).to_vec()).collect();
            let n = blocks.len();
            blocks.sort_unstable();
            blocks.dedup();
            prop_assert_eq!(blocks.len(), n, "a block owned twice");
            prop_assert!(blocks.iter().all(|&b| b != kv.scratch_block));
            prop_assert_eq!(kv.free_blocks() as usize + n, kv.capacity() as usize);
            for &(q, _) in &seqs {
                kv.release(q);
            }
            prop_assert_eq!(kv.free_blocks(), kv.capacity());
        }
    }
}
