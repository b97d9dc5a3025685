//! The mixed-batch attention microbenchmark (the DuetServe paper's motivation): one prefill chunk and a batch of
//! decodes, their attention run as two calls (the prefill kernel on the chunk, the decode kernel on the decodes)
//! as one call of the prefill kernel over both (each decode a one-token query over its context, as an engine with a
//! single varlen attention kernel runs a mixed batch), and as the two calls back to back in one timed step (what
//! duet's replay executor does with a mixed batch). `mixed.csv` ([`MIXED_HEADER`]) holds the three
//! times per case and SM count; `duet calibrate fit` turns them into the cost model's mixed-attention penalty
//! (`duet_calibration::mixed`).
//!
//! The layouts ([`layout`]) are pure and tested here; [`Bench::mixed_attention`] runs them.

use duet_calibration::mixed::MIXED_HEADER;
use serde::Serialize;

use super::run::{Bench, time};
use crate::driver::DeviceBuffer;
use crate::error::GpuError;
use crate::kernels::BLOCK_TOKENS;
use crate::ops::{DecodeScratch, PagedKv, PrefillKernel, decode_split};

/// One case: a prefill chunk of `chunk` tokens after `before` cached ones, and `batch` decodes each attending over
/// `context` keys (its new token's included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MixedCase {
    /// New tokens of the prefill chunk.
    pub chunk: u32,
    /// Cached tokens ahead of the chunk.
    pub before: u32,
    /// Decoding sequences.
    pub batch: u32,
    /// Keys per decode.
    pub context: u32,
}

/// The cases measured: chunk sizes an engine's token budget gives, beside decode batches of a loaded server.
pub fn mixed_cases(quick: bool) -> Vec<MixedCase> {
    let all = [
        MixedCase { chunk: 512, before: 0, batch: 16, context: 1024 },
        MixedCase { chunk: 512, before: 0, batch: 64, context: 2048 },
        MixedCase { chunk: 2048, before: 0, batch: 32, context: 2048 },
        MixedCase { chunk: 2048, before: 2048, batch: 64, context: 4096 },
        MixedCase { chunk: 1024, before: 1024, batch: 128, context: 1024 },
    ];
    if quick { all[..2].to_vec() } else { all.to_vec() }
}

/// Metadata of a case (module docs): sequence 0 is the prefill chunk, sequences `1..=batch` the decodes, each owning
/// its own KV blocks (`tables`, `max_blocks` per sequence, numbered from 0 with no block shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixedLayout {
    /// Query rows of the one-call layout: `chunk + batch`.
    pub rows: u32,
    /// Per sequence of the one call: first query row.
    pub q_start: Vec<i32>,
    /// Per sequence of the one call: query rows.
    pub q_len: Vec<i32>,
    /// Per sequence of the one call: cached tokens before its queries.
    pub ctx_before: Vec<i32>,
    /// Block table of every sequence, `max_blocks` each (unused entries 0).
    pub tables: Vec<i32>,
    /// Blocks per table row.
    pub max_blocks: u32,
    /// Blocks in use (the pool to allocate).
    pub blocks: u32,
    /// The decode kernel's per-sequence keys (`context` each).
    pub decode_lens: Vec<i32>,
}

/// The layout of `c` (see [`MixedLayout`]). A decode reads `context` keys in either call: one query at position
/// `context - 1` after `context - 1` cached keys.
pub fn layout(c: &MixedCase) -> MixedLayout {
    let prefill_keys = c.before + c.chunk;
    let blocks_of = |keys: u32| keys.div_ceil(BLOCK_TOKENS);
    let max_blocks = blocks_of(prefill_keys).max(blocks_of(c.context));
    let seqs = 1 + c.batch as usize;
    let mut tables = vec![0i32; seqs * max_blocks as usize];
    let mut next = 0i32;
    let mut q_start = vec![0i32];
    let mut q_len = vec![c.chunk as i32];
    let mut ctx_before = vec![c.before as i32];
    for s in 0..seqs {
        let keys = if s == 0 { prefill_keys } else { c.context };
        for b in 0..blocks_of(keys) as usize {
            tables[s * max_blocks as usize + b] = next;
            next += 1;
        }
        if s > 0 {
            q_start.push((c.chunk + s as u32 - 1) as i32);
            q_len.push(1);
            ctx_before.push(c.context as i32 - 1);
        }
    }
    MixedLayout {
        rows: c.chunk + c.batch,
        q_start,
        q_len,
        ctx_before,
        tables,
        max_blocks,
        blocks: next as u32,
        decode_lens: vec![c.context as i32; c.batch as usize],
    }
}

/// One row of `mixed.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MixedRow {
    /// SMs it ran on.
    pub sms: u32,
    /// The case.
    pub case: MixedCase,
    /// The decode kernel on the decodes alone (ms).
    pub decode_ms: f64,
    /// The prefill kernel on the chunk alone (ms).
    pub prefill_ms: f64,
    /// The prefill kernel on chunk and decodes in one call (ms).
    pub mixed_ms: f64,
    /// The prefill call then the decode call, back to back in one step (ms).
    pub two_calls_ms: f64,
}

/// `mixed.csv` text.
pub fn mixed_csv(rows: &[MixedRow]) -> String {
    let mut s = format!("{MIXED_HEADER}\n");
    for r in rows {
        let c = r.case;
        s.push_str(&format!(
            "{},{},{},{},{},{:.6},{:.6},{:.6},{:.6}\n",
            r.sms, c.chunk, c.before, c.batch, c.context, r.decode_ms, r.prefill_ms, r.mixed_ms, r.two_calls_ms
        ));
    }
    s
}

impl Bench<'_> {
    /// [`mixed_cases`] on every SM count of the plan, with the prefill kernel `kernel` (module docs).
    pub fn mixed_attention(&mut self, kernel: PrefillKernel, quick: bool) -> Result<Vec<MixedRow>, GpuError> {
        let m = self.model;
        let (qh, kvh, d) = (m.num_q_heads as u32, m.num_kv_heads as u32, m.head_dim as u32);
        let cases = mixed_cases(quick);
        let layouts: Vec<MixedLayout> = cases.iter().map(layout).collect();
        let pool = layouts.iter().map(|l| l.blocks).max().unwrap_or(1);
        let rows = layouts.iter().map(|l| l.rows).max().unwrap_or(1);
        let max_batch = cases.iter().map(|c| c.batch).max().unwrap_or(1);
        let elems = (pool * BLOCK_TOKENS * kvh * d) as u64;
        self.gpu.bind()?;
        let whole = &self.parts.last().expect("the plan has the whole GPU").ops;
        let (k, v) = (whole.random(elems, 71, 1.0)?, whole.random(elems, 72, 1.0)?);
        let qkv = whole.random(rows as u64 * ((qh + 2 * kvh) * d) as u64, 73, 1.0)?;
        let out = DeviceBuffer::alloc((rows * qh * d * 2) as usize)?;
        let max_sms = self.parts.iter().map(|b| b.part.sms).max().unwrap_or(1);
        let max_parts = cases
            .iter()
            .map(|c| c.batch * qh * decode_split(c.batch, kvh, c.context, max_sms).0)
            .max()
            .unwrap_or(1)
            .max(max_batch * qh);
        let part_acc = DeviceBuffer::alloc((max_parts * d * 4) as usize)?;
        let part_ml = DeviceBuffer::alloc((max_parts * 2 * 4) as usize)?;
        let scratch = DecodeScratch { part_acc: part_acc.ptr, part_ml: part_ml.ptr };
        self.gpu.synchronize()?;
        let rounds = self.plan.rounds;
        let mut out_rows = Vec::new();
        for (c, l) in cases.iter().zip(&layouts) {
            let tables = DeviceBuffer::from_slice(&l.tables)?;
            let (qs, ql, cb) = (
                DeviceBuffer::from_slice(&l.q_start)?,
                DeviceBuffer::from_slice(&l.q_len)?,
                DeviceBuffer::from_slice(&l.ctx_before)?,
            );
            let lens = DeviceBuffer::from_slice(&l.decode_lens)?;
            let kv = PagedKv { k: k.ptr, v: v.ptr, tables: tables.ptr, max_blocks: l.max_blocks as i32 };
            // The decodes' tables start after the prefill's row; their query rows after the chunk's.
            let row_bytes = (l.max_blocks * 4) as u64;
            let dec_kv = PagedKv { tables: tables.ptr + row_bytes, ..kv };
            let stride = ((qh + 2 * kvh) * d * 2) as u64;
            let dec_qkv = qkv.ptr + c.chunk as u64 * stride;
            for b in &self.parts {
                let o = &b.ops;
                let max_q = c.chunk.max(1);
                let prefill = time(b.part, rounds, |_| {
                    o.prefill_attention(kernel, out.ptr, qkv.ptr, &kv, qs.ptr, ql.ptr, cb.ptr, 1, c.chunk, qh, kvh)
                })?;
                let decode = time(b.part, rounds, |_| {
                    o.decode_attention(out.ptr, dec_qkv, &dec_kv, lens.ptr, scratch, c.batch, c.context, qh, kvh)
                })?;
                let mixed = time(b.part, rounds, |_| {
                    o.prefill_attention(
                        kernel,
                        out.ptr,
                        qkv.ptr,
                        &kv,
                        qs.ptr,
                        ql.ptr,
                        cb.ptr,
                        1 + c.batch,
                        max_q,
                        qh,
                        kvh,
                    )
                })?;
                let two = time(b.part, rounds, |_| {
                    o.prefill_attention(kernel, out.ptr, qkv.ptr, &kv, qs.ptr, ql.ptr, cb.ptr, 1, c.chunk, qh, kvh)?;
                    o.decode_attention(out.ptr, dec_qkv, &dec_kv, lens.ptr, scratch, c.batch, c.context, qh, kvh)
                })?;
                let row = MixedRow {
                    sms: b.part.sms,
                    case: *c,
                    decode_ms: decode.median,
                    prefill_ms: prefill.median,
                    mixed_ms: mixed.median,
                    two_calls_ms: two.median,
                };
                (self.log)(&format!(
                    "mixed attention {} SMs, chunk {} + {} decodes of {}: parts {:.3} + {:.3} ms, one call {:.3} ms, \
                     two calls {:.3} ms",
                    row.sms, c.chunk, c.batch, c.context, row.prefill_ms, row.decode_ms, row.mixed_ms, row.two_calls_ms
                ));
                out_rows.push(row);
            }
            self.gpu.bind()?;
        }
        Ok(out_rows)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use duet_calibration::mixed::read_mixed;

    use super::*;

    #[test]
    fn layouts_give_every_sequence_its_own_blocks_and_the_right_keys() {
        let c = MixedCase { chunk: 100, before: 20, batch: 3, context: 40 };
        let l = layout(&c);
        // The chunk reads 120 keys: 8 blocks of 16; each decode 40 keys: 3 blocks.
        assert_eq!((l.max_blocks, l.blocks, l.rows), (8, 8 + 3 * 3, 103));
        assert_eq!(l.q_start, [0, 100, 101, 102]);
        assert_eq!(l.q_len, [100, 1, 1, 1]);
        assert_eq!(l.ctx_before, [20, 39, 39, 39]);
        assert_eq!(l.decode_lens, [40, 40, 40]);
        assert_eq!(&l.tables[..8], &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(&l.tables[8..16], &[8, 9, 10, 0, 0, 0, 0, 0]);
        let mut used: Vec<i32> =
            (0..4).flat_map(|s| l.tables[s * 8..s * 8 + if s == 0 { 8 } else { 3 }].to_vec()).collect();
        used.sort_unstable();
        used.dedup();
        assert_eq!(used.len() as u32, l.blocks, "no block shared");
        // A decode's query sits at its last key: ctx_before + q_len = context.
        assert!((1..4).all(|s| l.ctx_before[s] + l.q_len[s] == c.context as i32));
    }

    #[test]
    fn mixed_csv_is_what_the_calibration_reader_takes() {
        let rows: Vec<MixedRow> = mixed_cases(true)
            .into_iter()
            .map(|case| MixedRow {
                sms: 66,
                case,
                decode_ms: 0.04,
                prefill_ms: 0.3,
                mixed_ms: 0.37,
                two_calls_ms: 0.35,
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("duet-gpu-mixed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("mixed.csv");
        std::fs::write(&p, mixed_csv(&rows)).unwrap();
        let f = read_mixed(Path::new(&p)).unwrap();
        assert_eq!((f.one_call.len(), f.two_calls.len()), (2, 2));
        // (0.37 - 0.3 - 0.04) / 0.04 = 0.75 in one call; (0.35 - 0.34) / 0.04 = 0.25 in two.
        assert!((f.one_call[0].excess() - 0.75).abs() < 1e-9, "{f:?}");
        assert!((f.two_calls[1].excess() - 0.25).abs() < 1e-9, "{f:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
