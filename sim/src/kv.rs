//! Paged KV cache: how many blocks fit on the GPU, and the block pool the engine allocates from.
//!
//! Capacity follows vLLM: `usable = memory x gpu_memory_utilization - weights - activation_reserve`, and
//! `blocks = floor(usable / (block_size x kv_bytes_per_token))` where `kv_bytes_per_token = 2 L h_kv d_h s`.
//! A request holding `t` tokens of KV holds `ceil(t / block_size)` blocks.

use crate::error::ConfigError;
use crate::gpu::GpuSpec;
use crate::model::ModelSpec;

/// KV-cache settings.
#[derive(Debug, Clone, PartialEq)]
pub struct KvConfig {
    /// Tokens per block (vLLM default 16).
    pub block_size: u32,
    /// Fraction of GPU memory the engine may use (vLLM `--gpu-memory-utilization`, default 0.9).
    pub gpu_memory_utilization: f64,
    /// Bytes held back for activations, CUDA graphs and workspace (default 2 GiB, an assumption close to what
    /// vLLM's profiling run reserves for 8B-class models at a 2K-8K token budget).
    pub activation_reserve_bytes: u64,
    /// Overrides the computed capacity with an exact number of blocks (tests, KV-starved studies).
    pub total_blocks_override: Option<u32>,
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            block_size: 16,
            gpu_memory_utilization: 0.9,
            activation_reserve_bytes: 2 << 30,
            total_blocks_override: None,
        }
    }
}

/// The KV capacity of one model on one GPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KvCapacity {
    /// Tokens per block.
    pub block_size: u32,
    /// Blocks available to requests.
    pub total_blocks: u32,
    /// Bytes of one block.
    pub bytes_per_block: u64,
}

impl KvCapacity {
    /// Computes the capacity, or explains why the model does not fit.
    pub fn compute(model: &ModelSpec, gpu: &GpuSpec, cfg: &KvConfig) -> Result<KvCapacity, ConfigError> {
        if cfg.block_size == 0 {
            return Err(ConfigError::Invalid("KV block size must be >= 1 token".into()));
        }
        if !(cfg.gpu_memory_utilization > 0.0 && cfg.gpu_memory_utilization <= 1.0) {
            return Err(ConfigError::Invalid(format!(
                "gpu_memory_utilization must be in (0, 1], got {}",
                cfg.gpu_memory_utilization
            )));
        }
        let bytes_per_block = u64::from(cfg.block_size) * model.kv_bytes_per_token();
        let budget = gpu.memory_bytes as f64 * cfg.gpu_memory_utilization;
        let weights = model.weight_bytes() as f64;
        let usable = budget - weights - cfg.activation_reserve_bytes as f64;
        let gb = |b: f64| b / 1e9;
        if usable < bytes_per_block as f64 {
            return Err(ConfigError::Memory(format!(
                "{} does not fit on {}: weights {:.1} GB + activation reserve {:.1} GB exceed the usable {:.1} GB \
                 ({:.1} GB x gpu_memory_utilization {}), leaving no room for KV cache",
                model.name,
                gpu.name,
                gb(weights),
                gb(cfg.activation_reserve_bytes as f64),
                gb(budget),
                gb(gpu.memory_bytes as f64),
                cfg.gpu_memory_utilization
            )));
        }
        // An override sets the cache size exactly, but the weights must still fit (checked above).
        let total_blocks = cfg
            .total_blocks_override
            .unwrap_or_else(|| (usable / bytes_per_block as f64).floor().min(f64::from(u32::MAX)) as u32);
        Ok(KvCapacity { block_size: cfg.block_size, total_blocks, bytes_per_block })
    }

    /// Blocks needed to hold `tokens` tokens: `ceil(tokens / block_size)`.
    pub fn blocks_for(&self, tokens: u32) -> u32 {
        tokens.div_ceil(self.block_size)
    }

    /// Blocks to add to `held` blocks to hold `tokens` tokens: `blocks_for(tokens) - held`, 0 when `held` covers
    /// them (checked by a multiplication first: most decode steps need no block, and need no division then).
    #[inline]
    pub fn blocks_beyond(&self, held: u32, tokens: u32) -> u32 {
        if u64::from(tokens) <= u64::from(held) * u64::from(self.block_size) {
            return 0;
        }
        self.blocks_for(tokens).saturating_sub(held)
    }

    /// Capacity in tokens.
    pub fn total_tokens(&self) -> u64 {
        u64::from(self.total_blocks) * u64::from(self.block_size)
    }
}

/// Counts free and used blocks; refuses to over-allocate.
#[derive(Debug, Clone)]
pub struct BlockPool {
    total: u32,
    used: u32,
    peak: u32,
}

impl BlockPool {
    /// A pool of `total` free blocks.
    pub fn new(total: u32) -> Self {
        Self { total, used: 0, peak: 0 }
    }

    /// Free blocks.
    pub fn free(&self) -> u32 {
        self.total - self.used
    }

    /// Blocks in use.
    pub fn used(&self) -> u32 {
        self.used
    }

    /// Most blocks ever in use at once.
    pub fn peak(&self) -> u32 {
        self.peak
    }

    /// Total blocks.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Takes `n` blocks; `false` (and no change) if fewer than `n` are free.
    #[must_use]
    pub fn allocate(&mut self, n: u32) -> bool {
        if n > self.free() {
            return false;
        }
        self.used += n;
        self.peak = self.peak.max(self.used);
        true
    }

    /// Returns `n` blocks. Panics if more are returned than were taken (an engine bug).
    pub fn release(&mut self, n: u32) {
        self.used = self.used.checked_sub(n).expect("released more KV blocks than allocated");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen3_8b_on_h100_capacity_by_hand() {
        let m = ModelSpec::resolve("qwen3-8b").unwrap();
        let g = GpuSpec::by_name("h100-sxm").unwrap();
        let cap = KvCapacity::compute(&m, &g, &KvConfig::default()).unwrap();
        // 81,559 MiB x 0.9 = 76,968,728,985.6 B; minus 16,381,452,288 B weights and 2,147,483,648 B reserve
        // = 58,439,793,049.6 B; one block = 16 x 147,456 B = 2,359,296 B -> 24,770 blocks.
        assert_eq!(cap.bytes_per_block, 2_359_296);
        assert_eq!(cap.total_blocks, 24_770);
        assert_eq!(cap.blocks_for(16), 1);
        assert_eq!(cap.blocks_for(17), 2);
    }

    #[test]
    fn seventy_b_does_not_fit_one_h100() {
        let m = ModelSpec::resolve("llama-3.1-70b").unwrap();
        let g = GpuSpec::by_name("h100-sxm").unwrap();
        let e = KvCapacity::compute(&m, &g, &KvConfig::default()).unwrap_err().to_string();
        assert!(e.contains("does not fit on h100-sxm") && e.contains("weights 141.1 GB"), "{e}");
    }

    #[test]
    fn pool_never_over_allocates() {
        let mut p = BlockPool::new(10);
        assert!(p.allocate(7));
        assert!(!p.allocate(4));
        assert_eq!(p.free(), 3);
        p.release(7);
        assert!(p.allocate(10));
        assert_eq!((p.used(), p.peak(), p.free()), (10, 10, 0));
    }
}
