//! The executor's device buffers: two sets of activations and step metadata (a prefill and a decode batch can run at
//! once), their sizes ([`buffer_sizes`], [`buffer_bytes`], known before anything is allocated, so that a replay
//! can size the KV cache from what is left) and their allocation.

use super::{CudaExecutor, ExecutorConfig, MAX_WINDOW};
use crate::driver::{DeviceBuffer, PinnedBuffer};
use crate::error::GpuError;
use crate::kernels::BLOCK_TOKENS;
use crate::ops::decode_split;

/// Activations and metadata of one in-flight step.
pub(super) struct Buffers {
    pub(super) x: DeviceBuffer,
    pub(super) xn: DeviceBuffer,
    pub(super) qkv: DeviceBuffer,
    pub(super) attn: DeviceBuffer,
    pub(super) tmp: DeviceBuffer,
    pub(super) gu: DeviceBuffer,
    pub(super) act: DeviceBuffer,
    pub(super) gathered: DeviceBuffer,
    pub(super) logits: DeviceBuffer,
    pub(super) sampled: DeviceBuffer,
    pub(super) ids: DeviceBuffer,
    pub(super) positions: DeviceBuffer,
    pub(super) slot_of: DeviceBuffer,
    pub(super) q_start: DeviceBuffer,
    pub(super) q_len: DeviceBuffer,
    pub(super) ctx_before: DeviceBuffer,
    pub(super) tables: DeviceBuffer,
    pub(super) decode_ctx: DeviceBuffer,
    pub(super) emit_rows: DeviceBuffer,
    pub(super) part_acc: DeviceBuffer,
    pub(super) part_ml: DeviceBuffer,
    pub(super) staging: PinnedBuffer,
    /// Bytes of one step's metadata region in `staging`.
    pub(super) region: usize,
    /// Steps in flight using this set.
    pub(super) users: u32,
}

/// Bytes of one buffer set's device arrays for `m` under `c` (the table row length `stride`, a partition of up to
/// `sms` SMs), in the order [`CudaExecutor`] allocates them.
pub fn buffer_sizes(m: &duet_sim::model::ModelSpec, c: &ExecutorConfig, stride: u32, sms: u32) -> Vec<usize> {
    let t = c.max_tokens.max(c.max_seqs) as u64;
    let s = c.max_seqs as u64;
    let (h, i) = (m.hidden_size, m.intermediate_size);
    let (hq, hkv, d) = (m.num_q_heads, m.num_kv_heads, m.head_dim);
    let max_parts =
        (1..=c.max_seqs).map(|n| n * decode_split(n, hkv as u32, c.max_context, sms).0).max().unwrap_or(1) as u64;
    let bf = |n: u64| (n * 2) as usize;
    let int = |n: u64| (n * 4) as usize;
    vec![
        bf(t * h),
        bf(t * h),
        bf(t * (hq + 2 * hkv) * d),
        bf(t * hq * d),
        bf(t * h),
        bf(t * 2 * i),
        bf(t * i),
        bf(s * h),
        bf(s * m.vocab_size),
        int(s),
        int(t),
        int(t),
        int(t),
        int(s),
        int(s),
        int(s),
        int(s * stride as u64),
        int(s),
        int(s),
        (max_parts * hq * d * 4) as usize,
        (max_parts * hq * 2 * 4) as usize,
    ]
}

/// Row length of the block tables: blocks of the longest context, plus one.
pub fn table_stride(c: &ExecutorConfig) -> u32 {
    c.max_context.div_ceil(BLOCK_TOKENS) + 1
}

/// Device bytes of the executor's two buffer sets for `m` under `c` on a GPU of `sms` SMs.
pub fn buffer_bytes(m: &duet_sim::model::ModelSpec, c: &ExecutorConfig, sms: u32) -> u64 {
    2 * buffer_sizes(m, c, table_stride(c), sms).iter().map(|&b| b as u64).sum::<u64>()
}

impl CudaExecutor<'_> {
    pub(super) fn buffers(
        m: &duet_sim::model::ModelSpec,
        c: &ExecutorConfig,
        stride: u32,
        sms: u32,
    ) -> Result<Buffers, GpuError> {
        let sizes = buffer_sizes(m, c, stride, sms);
        let mut next = sizes.iter();
        let mut a = || DeviceBuffer::alloc(*next.next().expect("one size per buffer"));
        let t = c.max_tokens.max(c.max_seqs) as u64;
        let s = c.max_seqs as u64;
        let meta_ints = 3 * t + 5 * s + s * stride as u64 + 16;
        Ok(Buffers {
            x: a()?,
            xn: a()?,
            qkv: a()?,
            attn: a()?,
            tmp: a()?,
            gu: a()?,
            act: a()?,
            gathered: a()?,
            logits: a()?,
            sampled: a()?,
            ids: a()?,
            positions: a()?,
            slot_of: a()?,
            q_start: a()?,
            q_len: a()?,
            ctx_before: a()?,
            tables: a()?,
            decode_ctx: a()?,
            emit_rows: a()?,
            part_acc: a()?,
            part_ml: a()?,
            staging: PinnedBuffer::alloc((meta_ints * 4) as usize * MAX_WINDOW as usize)?,
            region: (meta_ints * 4) as usize,
            users: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::PrefillKernel;

    #[test]
    fn buffer_bytes_count_both_sets() {
        let m = duet_sim::model::ModelSpec::resolve("qwen3-8b").unwrap();
        let c = ExecutorConfig {
            max_tokens: 2304,
            max_seqs: 512,
            max_context: 40_960,
            kv_blocks: 1000,
            graphs: true,
            prefill_kernel: PrefillKernel::Simt,
            seed: 0,
            startup_graphs: Vec::new(),
        };
        let one: u64 = buffer_sizes(&m, &c, 40_960 / 16 + 1, 132).iter().map(|&b| b as u64).sum();
        assert_eq!(buffer_bytes(&m, &c, 132), 2 * one);
        // The logits of 512 sequences over a 151,936-token vocabulary dominate: 155.6 MB per set.
        assert!(one > 512 * 151_936 * 2, "{one}");
    }
}
