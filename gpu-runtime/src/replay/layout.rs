//! Where one step's sequences go on the GPU (pure arithmetic, tested here): token rows, KV blocks, attention
//! metadata and the rows that feed the LM head.
//!
//! The engine hands the executor each sequence's work (`new` tokens over `cached` ones) but not its identity,
//! and the KV contents are synthetic, so each sequence of a step gets its own run of blocks in the cache, sized
//! for `cached + new` tokens: the kernels read and write exactly the bytes a real server would (same context
//! lengths, same block size), which is what the times depend on. Prefill sequences (more than one new token,
//! or no cached context) come first, then decode sequences (one new token over cached context), so decode
//! attention reads a contiguous tail of the QKV rows.

use duet_sim::cost::SeqWork;

use crate::error::GpuError;
use crate::kernels::BLOCK_TOKENS;

/// Everything the kernels of one step need, as host arrays.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StepLayout {
    /// Token rows (all new tokens).
    pub tokens: u32,
    /// Rows that are prefill tokens (the first `prefill_tokens` rows).
    pub prefill_tokens: u32,
    /// Prefill sequences: first row, new tokens, cached tokens.
    pub q_start: Vec<i32>,
    /// See `q_start`.
    pub q_len: Vec<i32>,
    /// See `q_start`.
    pub ctx_before: Vec<i32>,
    /// Longest prefill chunk.
    pub max_q: u32,
    /// Decode sequences: keys attended (cached + the new token).
    pub decode_ctx: Vec<i32>,
    /// Longest decode context.
    pub max_decode_ctx: u32,
    /// Block tables, `sequences x max_blocks` (prefill sequences first).
    pub tables: Vec<i32>,
    /// Row length of `tables`.
    pub max_blocks: u32,
    /// Per row: absolute position of the token (rotary).
    pub positions: Vec<i32>,
    /// Per row: cache slot its K and V go to.
    pub slot_of: Vec<i32>,
    /// Rows whose hidden state goes through the LM head (the last token of each emitting sequence).
    pub emit_rows: Vec<i32>,
    /// Blocks the step occupies.
    pub blocks_used: u32,
}

/// Blocks the device cache holds past the engine's capacity: one, shared by the padding rows of graph steps.
pub const SPARE_BLOCKS: u32 = 1;

/// Whether `w` runs through decode attention (one new token over cached context).
pub fn is_decode(w: &SeqWork) -> bool {
    w.new_tokens == 1 && w.cached_tokens > 0
}

impl StepLayout {
    /// The layout of `work` in a cache of `cache_blocks` blocks; an error when the step's contexts do not fit.
    pub fn new(work: &[SeqWork], cache_blocks: u32) -> Result<StepLayout, GpuError> {
        let order: Vec<&SeqWork> =
            work.iter().filter(|w| !is_decode(w)).chain(work.iter().filter(|w| is_decode(w))).collect();
        let blocks_of = |w: &SeqWork| (w.cached_tokens + w.new_tokens).div_ceil(BLOCK_TOKENS);
        let blocks_used: u32 = order.iter().map(|w| blocks_of(w)).sum();
        if blocks_used > cache_blocks {
            return Err(GpuError::Invalid(format!(
                "the step's contexts need {blocks_used} KV blocks, the cache has {cache_blocks}"
            )));
        }
        let max_blocks = order.iter().map(|w| blocks_of(w)).max().unwrap_or(1).max(1);
        let mut l = StepLayout { max_blocks, blocks_used, ..Default::default() };
        let mut base = 0u32;
        let mut row = 0u32;
        for w in &order {
            let nb = blocks_of(w);
            let mut table: Vec<i32> = (base..base + nb).map(|b| b as i32).collect();
            table.resize(max_blocks as usize, base as i32);
            l.tables.extend(table);
            if is_decode(w) {
                l.decode_ctx.push((w.cached_tokens + 1) as i32);
                l.max_decode_ctx = l.max_decode_ctx.max(w.cached_tokens + 1);
            } else {
                l.q_start.push(row as i32);
                l.q_len.push(w.new_tokens as i32);
                l.ctx_before.push(w.cached_tokens as i32);
                l.max_q = l.max_q.max(w.new_tokens);
                l.prefill_tokens += w.new_tokens;
            }
            for j in 0..w.new_tokens {
                let pos = w.cached_tokens + j;
                l.positions.push(pos as i32);
                l.slot_of.push(((base + pos / BLOCK_TOKENS) * BLOCK_TOKENS + pos % BLOCK_TOKENS) as i32);
            }
            row += w.new_tokens;
            if w.emits_token {
                l.emit_rows.push(row as i32 - 1);
            }
            base += nb;
        }
        l.tokens = row;
        Ok(l)
    }

    /// The layout of decode-only `work` padded to `rows` sequences for a CUDA graph: the real sequences as in
    /// [`StepLayout::new`], then one-token decodes over one cached token that all use block `cache_blocks`, the
    /// spare block past the engine's capacity ([`SPARE_BLOCKS`]), so padding never takes a block a real
    /// sequence needs. Every row emits a token (the captured shapes never change).
    pub fn padded(work: &[SeqWork], rows: u32, cache_blocks: u32) -> Result<StepLayout, GpuError> {
        let real: Vec<SeqWork> = work.iter().map(|w| SeqWork { emits_token: true, ..*w }).collect();
        if let Some(w) = real.iter().find(|w| !is_decode(w)) {
            return Err(GpuError::Invalid(format!("a graph step runs decodes only, not {w:?}")));
        }
        if real.len() > rows as usize {
            return Err(GpuError::Invalid(format!("{} sequences do not fit a graph of {rows} rows", real.len())));
        }
        let mut l = StepLayout::new(&real, cache_blocks)?;
        let pad = rows - real.len() as u32;
        for _ in 0..pad {
            l.tables.extend(std::iter::repeat_n(cache_blocks as i32, l.max_blocks as usize));
            l.decode_ctx.push(2);
            l.max_decode_ctx = l.max_decode_ctx.max(2);
            l.positions.push(1);
            l.slot_of.push((cache_blocks * BLOCK_TOKENS + 1) as i32);
            l.emit_rows.push(l.tokens as i32);
            l.tokens += 1;
        }
        Ok(l)
    }

    /// Prefill sequences.
    pub fn prefill_seqs(&self) -> u32 {
        self.q_len.len() as u32
    }

    /// Decode sequences.
    pub fn decode_seqs(&self) -> u32 {
        self.decode_ctx.len() as u32
    }
}

/// Layers of group `group` (0-based) of `groups` equal layer groups of a `layers`-layer model: the groups are
/// consecutive, disjoint and cover every layer (sizes differ by at most one).
pub fn layer_group(group: u32, groups: u32, layers: u32) -> std::ops::Range<usize> {
    let at = |g: u32| (u64::from(g) * u64::from(layers) / u64::from(groups.max(1))) as usize;
    at(group)..at(group + 1)
}

#[cfg(test)]
mod padding_tests {
    use super::*;

    #[test]
    fn graph_padding_uses_only_the_spare_block() {
        // Two decodes that fill a 4-block cache exactly, padded to a graph of 8 rows.
        let work = [
            SeqWork { new_tokens: 1, cached_tokens: 31, emits_token: true },
            SeqWork { new_tokens: 1, cached_tokens: 20, emits_token: false },
        ];
        let l = StepLayout::padded(&work, 8, 4).unwrap();
        assert_eq!((l.tokens, l.decode_seqs(), l.emit_rows.len()), (8, 8, 8));
        assert_eq!(l.blocks_used, 4, "padding adds no block to the real ones");
        let mb = l.max_blocks as usize;
        let real: Vec<i32> = l.tables[..2 * mb].to_vec();
        assert!(real.iter().all(|&b| b < 4), "{real:?}");
        assert!(l.tables[2 * mb..].iter().all(|&b| b == 4), "padding rows read the spare block only");
        assert!(l.slot_of[2..].iter().all(|&s| s as u32 / BLOCK_TOKENS == 4), "and write only there");
        assert_eq!(l.emit_rows, (0..8).collect::<Vec<i32>>());
        // Without the spare block the same padding would have needed 6 more blocks than the cache has.
        let mut naive = work.to_vec();
        naive.resize(8, SeqWork { new_tokens: 1, cached_tokens: 1, emits_token: true });
        assert!(StepLayout::new(&naive, 4).is_err());
        assert!(StepLayout::padded(&work, 1, 4).is_err());
        let prefill = [SeqWork { new_tokens: 5, cached_tokens: 0, emits_token: true }];
        assert!(StepLayout::padded(&prefill, 4, 4).is_err());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn w(new: u32, cached: u32, emits: bool) -> SeqWork {
        SeqWork { new_tokens: new, cached_tokens: cached, emits_token: emits }
    }

    #[test]
    fn mixed_step_by_hand() {
        // A decode over 20 cached tokens, a 5-token chunk after 16 cached (not the last chunk), a fresh 3-token
        // prompt that completes.
        let l = StepLayout::new(&[w(1, 20, true), w(5, 16, false), w(3, 0, true)], 100).unwrap();
        assert_eq!((l.tokens, l.prefill_tokens, l.prefill_seqs(), l.decode_seqs()), (9, 8, 2, 1));
        assert_eq!((l.q_start.clone(), l.q_len.clone(), l.ctx_before.clone()), (vec![0, 5], vec![5, 3], vec![16, 0]));
        assert_eq!(l.decode_ctx, vec![21]);
        // Blocks: chunk seq 0..=1 (21 tokens), prompt 2 (3 tokens), decode 3..=4 (21 tokens).
        assert_eq!((l.max_blocks, l.blocks_used), (2, 5));
        assert_eq!(l.tables, vec![0, 1, 2, 2, 3, 4]);
        assert_eq!(&l.positions[..6], &[16, 17, 18, 19, 20, 0]);
        assert_eq!(&l.slot_of[..5], &[16, 17, 18, 19, 20]);
        assert_eq!(l.slot_of[5], 32, "the prompt starts block 2");
        assert_eq!(l.slot_of[8], 3 * 16 + 20, "the decode token at position 20 sits in its second block (4)");
        assert_eq!(l.emit_rows, vec![7, 8], "the prompt's last token and the decode token");
        let e = StepLayout::new(&[w(1, 20, true), w(5, 16, false)], 3).unwrap_err().to_string();
        assert!(e.contains("need 4 KV blocks, the cache has 3"), "{e}");
    }

    proptest! {
        /// Every new token gets a distinct slot inside its own sequence's blocks; rows add up; blocks fit.
        #[test]
        fn slots_are_distinct_and_owned(items in proptest::collection::vec((1u32..300, 0u32..3000, any::<bool>()), 1..20)) {
            let work: Vec<SeqWork> = items.iter().map(|&(n, c, e)| w(if c > 0 && n < 3 { 1 } else { n }, c, e)).collect();
            let l = StepLayout::new(&work, 100_000).unwrap();
            prop_assert_eq!(l.tokens as usize, l.positions.len());
            prop_assert_eq!(l.tokens, work.iter().map(|x| x.new_tokens).sum::<u32>());
            let slots: HashSet<i32> = l.slot_of.iter().copied().collect();
            prop_assert_eq!(slots.len(), l.slot_of.len(), "a slot written twice");
            prop_assert!(l.slot_of.iter().all(|&s| (s as u32) < l.blocks_used * BLOCK_TOKENS));
            prop_assert_eq!(l.emit_rows.len(), work.iter().filter(|x| x.emits_token).count());
            prop_assert_eq!(l.tables.len() as u32, (l.prefill_seqs() + l.decode_seqs()) * l.max_blocks);
        }
    }

    #[test]
    fn layer_groups_cover_every_layer_once() {
        assert_eq!(layer_group(0, 1, 36), 0..36);
        assert_eq!(
            (0..5).map(|g| layer_group(g, 5, 36)).collect::<Vec<_>>(),
            vec![0..7, 7..14, 14..21, 21..28, 28..36]
        );
        for layers in 1..=40u32 {
            for groups in 1..=layers {
                let mut next = 0;
                for g in 0..groups {
                    let r = layer_group(g, groups, layers);
                    assert_eq!(r.start, next, "{layers} layers, {groups} groups");
                    assert!(!r.is_empty() && r.len() <= (layers / groups + 1) as usize);
                    next = r.end;
                }
                assert_eq!(next, layers as usize);
            }
        }
    }
}
