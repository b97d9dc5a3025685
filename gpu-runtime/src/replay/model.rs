//! The model on the GPU: synthetic bf16 weights (seeded, never zero) with the exact shapes of one GPU's shard,
//! and the paged KV cache of every layer.

use duet_sim::model::ModelSpec;

use crate::driver::DeviceBuffer;
use crate::error::GpuError;
use crate::kernels::BLOCK_TOKENS;
use crate::ops::Ops;
use crate::replay::layout::SPARE_BLOCKS;

/// One decoder layer's weights (`[d_out, d_in]` row-major, as `y = x W^T` takes them).
pub struct LayerWeights {
    /// Input RMSNorm.
    pub attn_norm: DeviceBuffer,
    /// Fused QKV projection.
    pub qkv: DeviceBuffer,
    /// Output projection.
    pub o: DeviceBuffer,
    /// Post-attention RMSNorm.
    pub mlp_norm: DeviceBuffer,
    /// Fused gate and up projections.
    pub gate_up: DeviceBuffer,
    /// Down projection.
    pub down: DeviceBuffer,
}

/// Weights and KV cache.
pub struct DeviceModel {
    /// Shapes.
    pub spec: ModelSpec,
    /// Layers.
    pub layers: Vec<LayerWeights>,
    /// Token embedding `[vocab, hidden]`.
    pub embed: DeviceBuffer,
    /// Final RMSNorm.
    pub final_norm: DeviceBuffer,
    /// LM head `[vocab, hidden]`.
    pub lm_head: DeviceBuffer,
    /// K cache per layer, `[blocks, 16, kv_heads, head_dim]`.
    pub k_cache: Vec<DeviceBuffer>,
    /// V cache per layer.
    pub v_cache: Vec<DeviceBuffer>,
    /// Blocks per layer cache.
    pub kv_blocks: u32,
}

/// Bytes of weights of `m` as allocated here: the model's weights, plus a separate LM head when it is tied.
pub fn weight_bytes(m: &ModelSpec) -> u64 {
    let tied_head = if m.tie_word_embeddings { m.vocab_size * m.hidden_size * m.dtype_bytes } else { 0 };
    m.weight_bytes() + tied_head
}

/// Bytes of a KV cache of `blocks` blocks over all layers.
pub fn kv_bytes(m: &ModelSpec, blocks: u32) -> u64 {
    blocks as u64 * BLOCK_TOKENS as u64 * m.kv_bytes_per_token()
}

/// Working space kept free besides weights, KV cache and the executor's buffers: cuBLASLt workspaces, CUDA graphs,
/// the kernel checks' and the driver's allocations (bytes).
pub const WORKING_SPACE: u64 = 2 << 30;

/// The KV blocks a replay can hold on a device with `free` bytes free (after contexts, kernels and cuBLASLt were
/// created): `(free - weights - buffers - WORKING_SPACE) / bytes per block - SPARE_BLOCKS`, and 0 when that is
/// negative.
pub fn kv_blocks_that_fit(spec: &ModelSpec, free: u64, buffers: u64) -> u32 {
    let per_block = kv_bytes(spec, 1).max(1);
    let left = free.saturating_sub(weight_bytes(spec) + buffers + WORKING_SPACE);
    ((left / per_block).saturating_sub(SPARE_BLOCKS as u64)).min(u32::MAX as u64) as u32
}

/// The KV blocks of a replay: the configured ones when they fit in what the device has free, else as many as fit
/// (then the run is simulated with that many, so that both sides hold the same cache). Returns the blocks and
/// whether they were reduced.
pub fn replay_kv_blocks(configured: u32, fits: u32) -> (u32, bool) {
    if configured <= fits { (configured, false) } else { (fits, true) }
}

impl DeviceModel {
    /// Allocates and fills the weights (seeded) and a KV cache of `kv_blocks` blocks; a clear error when the
    /// device lacks the memory (`free_bytes` as `cuMemGetInfo` reports it).
    pub fn new(
        spec: &ModelSpec,
        kv_blocks: u32,
        ops: &Ops,
        free_bytes: u64,
        seed: u64,
    ) -> Result<DeviceModel, GpuError> {
        let need = weight_bytes(spec) + kv_bytes(spec, kv_blocks + SPARE_BLOCKS);
        if need + (2 << 30) > free_bytes {
            return Err(GpuError::Unsupported(format!(
                "too little GPU memory for {}: weights {:.1} GiB + KV cache of {kv_blocks} blocks {:.1} GiB + 2 GiB \
                 working space > {:.1} GiB free",
                spec.name,
                weight_bytes(spec) as f64 / (1u64 << 30) as f64,
                kv_bytes(spec, kv_blocks) as f64 / (1u64 << 30) as f64,
                free_bytes as f64 / (1u64 << 30) as f64
            )));
        }
        let mut next = seed;
        let mut fill = |n: u64, scale: f32| {
            next += 1;
            ops.random(n, next - 1, scale)
        };
        let (h, i, v) = (spec.hidden_size, spec.intermediate_size, spec.vocab_size);
        let qkv = (spec.num_q_heads + 2 * spec.num_kv_heads) * spec.head_dim;
        // Scales keep activations O(1) through the layers: about 1 / sqrt(d_in).
        let w = |d_in: u64| 1.0 / (d_in as f32).sqrt();
        let mut layers = Vec::with_capacity(spec.num_layers as usize);
        for _ in 0..spec.num_layers {
            layers.push(LayerWeights {
                attn_norm: fill(h, 1.0)?,
                qkv: fill(qkv * h, w(h))?,
                o: fill(h * spec.num_q_heads * spec.head_dim, w(spec.num_q_heads * spec.head_dim))?,
                mlp_norm: fill(h, 1.0)?,
                gate_up: fill(2 * i * h, w(h))?,
                down: fill(h * i, w(i))?,
            });
        }
        let embed = fill(v * h, 1.0)?;
        let final_norm = fill(h, 1.0)?;
        let lm_head = fill(v * h, w(h))?;
        let per_layer = kv_bytes(spec, kv_blocks + SPARE_BLOCKS) / (2 * spec.num_layers);
        let mut k_cache = Vec::new();
        let mut v_cache = Vec::new();
        for _ in 0..spec.num_layers {
            k_cache.push(fill(per_layer / 2, 1.0)?);
            v_cache.push(fill(per_layer / 2, 1.0)?);
        }
        Ok(DeviceModel { spec: spec.clone(), layers, embed, final_norm, lm_head, k_cache, v_cache, kv_blocks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_cache_is_sized_from_free_memory() {
        let m = ModelSpec::resolve("qwen3-8b").unwrap();
        let gib = 1u64 << 30;
        let per = kv_bytes(&m, 1);
        let free = weight_bytes(&m) + 3 * gib + WORKING_SPACE + 1000 * per + 5;
        assert_eq!(kv_blocks_that_fit(&m, free, 3 * gib), 1000 - SPARE_BLOCKS);
        assert_eq!(kv_blocks_that_fit(&m, gib, 0), 0, "less free than the weights: nothing fits");
        assert_eq!(replay_kv_blocks(900, 999), (900, false));
        assert_eq!(replay_kv_blocks(5000, 999), (999, true));
        // An H200 (141 GB) holds more Qwen3-8B KV blocks than an H100 (80 GB) with the same free fraction.
        let (h100, h200) = (79 * gib, 139 * gib);
        assert!(kv_blocks_that_fit(&m, h200, gib) > kv_blocks_that_fit(&m, h100, gib) + 20_000);
    }

    #[test]
    fn memory_of_qwen3_8b_by_hand() {
        let m = ModelSpec::resolve("qwen3-8b").unwrap();
        // Per layer: norms 2 x 4096, QKV 6144 x 4096, O 4096 x 4096, gate/up 24576 x 4096, down 4096 x 12288;
        // plus embedding and LM head 151936 x 4096 each and the final norm; 2 bytes each.
        let layer = 2 * 4096 + 6144 * 4096 + 4096 * 4096 + 24576 * 4096 + 12288 * 4096;
        assert_eq!(weight_bytes(&m), 2 * (36 * layer + 2 * 151_936 * 4096 + 4096));
        // One block: 16 tokens x 8 KV heads x 128 x 2 (K, V) x 2 B x 36 layers = 2,359,296 B.
        assert_eq!(kv_bytes(&m, 1), 2_359_296);
        assert_eq!(kv_bytes(&m, 1), 16 * m.kv_bytes_per_token());
    }
}
