//! The model on the GPU: synthetic bf16 weights (seeded, never zero) with the exact shapes of one GPU's shard,
//! and the paged KV cache of every layer.

use duet_sim::model::ModelSpec;

use crate::driver::DeviceBuffer;
use crate::error::GpuError;
use crate::kernels::BLOCK_TOKENS;
use crate::ops::Ops;

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
        let need = weight_bytes(spec) + kv_bytes(spec, kv_blocks);
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
        let per_layer = kv_bytes(spec, kv_blocks) / (2 * spec.num_layers);
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
