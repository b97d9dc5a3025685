//! Launch shapes (pure arithmetic, tested here) and typed launchers for every kernel, resolved per partition.
//!
//! [`Kernels`] holds the loaded library; [`Kernels::bind`] resolves every kernel in one partition's context and
//! returns [`Ops`], whose methods enqueue on that partition's stream. One launcher per kernel, so the parameter
//! order is written down once, beside the kernel's launch shape.

use std::collections::HashMap;

use cudarc::driver::sys::{CUcontext, CUdeviceptr, CUfunction, CUkernel, CUstream};

use crate::driver::{DeviceBuffer, KernelLibrary, LaunchConfig, Params, function_in, launch};
use crate::error::GpuError;
use crate::green::Partition;
use crate::kernels::{KERNEL_NAMES, KernelConfig};

/// Threads per block of the grid-stride kernels.
pub const STRIDE_THREADS: u32 = 256;
/// Threads per block of decode attention (4 warps).
pub const DECODE_THREADS: u32 = 128;
/// Tokens a decode-attention block consumes per round (4 warps x 4 tokens).
pub const DECODE_ROUND: u32 = 16;
/// Which prefill-attention kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefillKernel {
    /// `prefill_attention`: CUDA cores (fp32 FMA), 32 query rows per block.
    Simt,
    /// `prefill_attention_tc`: tensor cores (`mma.sync` bf16), 64 query rows per block.
    TensorCore,
}

impl PrefillKernel {
    /// The kernel's name in the sources.
    pub fn name(self) -> &'static str {
        match self {
            PrefillKernel::Simt => "prefill_attention",
            PrefillKernel::TensorCore => "prefill_attention_tc",
        }
    }

    /// Query rows one block takes.
    pub fn rows_per_block(self) -> u32 {
        match self {
            PrefillKernel::Simt => PREFILL_ROWS,
            PrefillKernel::TensorCore => 64,
        }
    }
}

/// Query rows per block of the CUDA-core prefill-attention kernel.
pub const PREFILL_ROWS: u32 = 32;
/// Threads per prefill-attention block (4 per query row).
pub const PREFILL_THREADS: u32 = 128;

/// A grid-stride launch over `n` items on a partition of `sms` SMs: enough blocks to fill it (8 per SM), no more
/// than the items need.
pub fn grid_stride(n: u64, sms: u32) -> LaunchConfig {
    let need = n.div_ceil(STRIDE_THREADS as u64).max(1);
    let blocks = need.min(8 * sms.max(1) as u64) as u32;
    LaunchConfig { grid: (blocks, 1, 1), block: (STRIDE_THREADS, 1, 1), smem: 0 }
}

/// Threads for a row kernel over `width` values: a multiple of 32, at most 1024, about one value per thread up
/// to 256 threads.
pub fn row_threads(width: u64) -> u32 {
    (width.min(256) as u32).div_ceil(32).max(1) * 32
}

/// How decode attention splits each context: `splits` slices of `chunk` tokens (a multiple of
/// [`DECODE_ROUND`]), so that `seqs x kv_heads x splits` blocks fill a partition of `sms` SMs about four
/// times over, with slices of at least 64 tokens. Every token below `max_len` falls in exactly one slice.
pub fn decode_split(seqs: u32, kv_heads: u32, max_len: u32, sms: u32) -> (u32, u32) {
    let max_len = max_len.max(1);
    let per_split = (seqs * kv_heads).max(1);
    let want = (4 * sms).div_ceil(per_split).max(1);
    let cap = max_len.div_ceil(64).max(1);
    let splits = want.min(cap);
    let chunk = max_len.div_ceil(splits).div_ceil(DECODE_ROUND) * DECODE_ROUND;
    (max_len.div_ceil(chunk), chunk)
}

/// Tokens per slice of one sequence's context of `len` tokens when decode attention runs with `splits` slices:
/// `len / splits` rounded up to [`DECODE_ROUND`], at least 64 (the kernel computes the same from each sequence's
/// own length). Slices past the context are empty; every token falls in exactly one slice.
pub fn decode_chunk(len: u32, splits: u32) -> u32 {
    (len.div_ceil(splits.max(1)).div_ceil(DECODE_ROUND) * DECODE_ROUND).max(64)
}

/// The kernels, loaded once.
pub struct Kernels {
    /// Keeps the loaded code alive (unloaded on drop).
    _lib: KernelLibrary,
    handles: HashMap<&'static str, CUkernel>,
    /// The shape constants they were compiled with.
    pub cfg: KernelConfig,
}

impl Kernels {
    /// Loads the compiled kernels and looks every kernel up.
    pub fn load(image: &crate::kernels::Image, cfg: KernelConfig) -> Result<Kernels, GpuError> {
        let lib = KernelLibrary::load(image)?;
        let mut handles = HashMap::new();
        for name in KERNEL_NAMES {
            handles.insert(name, lib.kernel(name)?);
        }
        Ok(Kernels { _lib: lib, handles, cfg })
    }

    /// Every kernel resolved in `part`'s context, launching on its stream.
    pub fn bind(&self, part: &Partition) -> Result<Ops, GpuError> {
        let mut funcs = HashMap::new();
        for (name, k) in &self.handles {
            funcs.insert(*name, function_in(part.ctx, *k, 0)?);
        }
        Ok(Ops { funcs, ctx: part.ctx, stream: part.stream, sms: part.sms, cfg: self.cfg })
    }
}

/// Launchers bound to one partition.
pub struct Ops {
    funcs: HashMap<&'static str, CUfunction>,
    /// The partition's context (made current before every launch).
    ctx: CUcontext,
    /// The partition's stream.
    pub stream: CUstream,
    /// The partition's SMs.
    pub sms: u32,
    /// Shape constants.
    pub cfg: KernelConfig,
}

/// Where decode attention keeps its per-split partial results: `part_acc` holds
/// `seqs x q_heads x splits x head_dim` floats, `part_ml` `seqs x q_heads x splits x 2`.
#[derive(Debug, Clone, Copy)]
pub struct DecodeScratch {
    /// Partial outputs.
    pub part_acc: CUdeviceptr,
    /// Partial (max, sum) pairs.
    pub part_ml: CUdeviceptr,
}

/// The paged cache and the sequences' block tables.
#[derive(Debug, Clone, Copy)]
pub struct PagedKv {
    /// Key cache.
    pub k: CUdeviceptr,
    /// Value cache.
    pub v: CUdeviceptr,
    /// Block tables, `seqs x max_blocks` ints.
    pub tables: CUdeviceptr,
    /// Block-table row length.
    pub max_blocks: i32,
}

impl Ops {
    fn go(&self, name: &'static str, cfg: LaunchConfig, p: Params) -> Result<(), GpuError> {
        let f = *self.funcs.get(name).ok_or_else(|| GpuError::Invalid(format!("kernel {name} not loaded")))?;
        // The function, the stream and the current context must agree; setting it is a few tens of ns.
        // SAFETY: the partition's context outlives its `Ops`.
        crate::error::check("cuCtxSetCurrent", unsafe { cudarc::driver::sys::cuCtxSetCurrent(self.ctx) })?;
        launch(f, cfg, self.stream, &p)
    }

    /// A new buffer of `len` bf16 values `scale * uniform(seed, i)` (random, never zero), filled on this stream.
    pub fn random(&self, len: u64, seed: u64, scale: f32) -> Result<DeviceBuffer, GpuError> {
        let b = DeviceBuffer::alloc((len * 2) as usize)?;
        self.fill_uniform(b.ptr, len, seed, scale)?;
        Ok(b)
    }

    /// Waits for this partition's stream.
    pub fn synchronize(&self) -> Result<(), GpuError> {
        // SAFETY: live stream.
        crate::error::check("cuStreamSynchronize", unsafe { cudarc::driver::sys::cuStreamSynchronize(self.stream) })
    }

    /// `out[i] = scale * uniform(seed, i)`, `n` bf16 values.
    pub fn fill_uniform(&self, out: CUdeviceptr, n: u64, seed: u64, scale: f32) -> Result<(), GpuError> {
        let p = Params::new().ptr(out).ptr(n).ptr(seed).f32(scale);
        self.go("fill_uniform", grid_stride(n, self.sms), p)
    }

    /// Launches row kernel `name`: one block per row of `width` values ([`row_threads`] threads).
    fn per_row(&self, name: &'static str, rows: u32, width: u32, p: Params) -> Result<(), GpuError> {
        let cfg = LaunchConfig { grid: (rows, 1, 1), block: (row_threads(width as u64), 1, 1), smem: 0 };
        self.go(name, cfg, p)
    }

    /// RMSNorm of `rows` rows of `hidden`.
    pub fn rmsnorm(
        &self,
        out: CUdeviceptr,
        x: CUdeviceptr,
        w: CUdeviceptr,
        rows: u32,
        hidden: u32,
        eps: f32,
    ) -> Result<(), GpuError> {
        self.per_row("rmsnorm", rows, hidden, Params::new().ptr(out).ptr(x).ptr(w).i32(hidden as i32).f32(eps))
    }

    /// `x += y` over `n` values.
    pub fn residual_add(&self, x: CUdeviceptr, y: CUdeviceptr, n: u64) -> Result<(), GpuError> {
        self.go("residual_add", grid_stride(n, self.sms), Params::new().ptr(x).ptr(y).ptr(n))
    }

    /// `out = silu(gate) * up` over `tokens x inter`.
    pub fn silu_mul(&self, out: CUdeviceptr, gate_up: CUdeviceptr, tokens: u32, inter: u32) -> Result<(), GpuError> {
        let cfg = grid_stride(tokens as u64 * inter as u64, self.sms);
        self.go("silu_mul", cfg, Params::new().ptr(out).ptr(gate_up).i32(tokens as i32).i32(inter as i32))
    }

    /// Rotary embedding in place on `tokens` fused QKV rows.
    pub fn rotary(
        &self,
        qkv: CUdeviceptr,
        positions: CUdeviceptr,
        tokens: u32,
        q_heads: u32,
        kv_heads: u32,
        theta: f32,
    ) -> Result<(), GpuError> {
        let cfg = LaunchConfig { grid: (tokens, q_heads + kv_heads, 1), block: (self.cfg.head_dim / 2, 1, 1), smem: 0 };
        self.go(
            "rotary",
            cfg,
            Params::new().ptr(qkv).ptr(positions).i32(q_heads as i32).i32(kv_heads as i32).f32(theta),
        )
    }

    /// Writes `tokens` rows' K and V into the cache at `slot_of`.
    pub fn kv_append(
        &self,
        kv: &PagedKv,
        qkv: CUdeviceptr,
        slot_of: CUdeviceptr,
        tokens: u32,
        q_heads: u32,
        kv_heads: u32,
    ) -> Result<(), GpuError> {
        let cfg = LaunchConfig { grid: (tokens, kv_heads, 1), block: (self.cfg.head_dim, 1, 1), smem: 0 };
        let p = Params::new().ptr(kv.k).ptr(kv.v).ptr(qkv).ptr(slot_of).i32(q_heads as i32).i32(kv_heads as i32);
        self.go("kv_append", cfg, p)
    }

    /// Embedding lookup of `tokens` ids.
    pub fn embed(
        &self,
        out: CUdeviceptr,
        table: CUdeviceptr,
        ids: CUdeviceptr,
        tokens: u32,
        hidden: u32,
    ) -> Result<(), GpuError> {
        self.per_row("embed", tokens, hidden, Params::new().ptr(out).ptr(table).ptr(ids).i32(hidden as i32))
    }

    /// Greedy token per row of logits.
    pub fn argmax_rows(&self, out: CUdeviceptr, logits: CUdeviceptr, rows: u32, vocab: u32) -> Result<(), GpuError> {
        let cfg = LaunchConfig { grid: (rows, 1, 1), block: (1024, 1, 1), smem: 0 };
        self.go("argmax_rows", cfg, Params::new().ptr(out).ptr(logits).i32(vocab as i32))
    }

    /// Reads `bytes` (a multiple of 16) once; `sink` holds 1024 u32.
    pub fn read_bw(&self, src: CUdeviceptr, bytes: u64, sink: CUdeviceptr) -> Result<(), GpuError> {
        self.go("read_bw", grid_stride(bytes / 16, self.sms), Params::new().ptr(src).ptr(bytes / 16).ptr(sink))
    }

    /// Copies `bytes` (a multiple of 16).
    pub fn copy_bw(&self, dst: CUdeviceptr, src: CUdeviceptr, bytes: u64) -> Result<(), GpuError> {
        self.go("copy_bw", grid_stride(bytes / 16, self.sms), Params::new().ptr(dst).ptr(src).ptr(bytes / 16))
    }

    /// An empty kernel (one block of 32 threads).
    pub fn empty(&self) -> Result<(), GpuError> {
        self.go("empty_kernel", LaunchConfig { grid: (1, 1, 1), block: (32, 1, 1), smem: 0 }, Params::new())
    }

    /// Decode attention for `seqs` sequences (one query row each in `qkv`), then the split merge into `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn decode_attention(
        &self,
        out: CUdeviceptr,
        qkv: CUdeviceptr,
        kv: &PagedKv,
        ctx_len: CUdeviceptr,
        scratch: DecodeScratch,
        seqs: u32,
        max_len: u32,
        q_heads: u32,
        kv_heads: u32,
    ) -> Result<(), GpuError> {
        // Slices per sequence from the longest context the launch may see; each sequence sizes them from its own.
        let (splits, _) = decode_split(seqs, kv_heads, max_len, self.sms);
        let scale = 1.0 / (self.cfg.head_dim as f32).sqrt();
        let cfg = LaunchConfig { grid: (seqs, kv_heads, splits), block: (DECODE_THREADS, 1, 1), smem: 0 };
        let p = Params::new()
            .ptr(scratch.part_acc)
            .ptr(scratch.part_ml)
            .ptr(qkv)
            .ptr(kv.k)
            .ptr(kv.v)
            .ptr(kv.tables)
            .i32(kv.max_blocks)
            .ptr(ctx_len)
            .i32(q_heads as i32)
            .i32(kv_heads as i32)
            .f32(scale);
        self.go("decode_attention", cfg, p)?;
        let cfg = LaunchConfig { grid: (seqs, q_heads, 1), block: (self.cfg.head_dim, 1, 1), smem: 0 };
        let p =
            Params::new().ptr(out).ptr(scratch.part_acc).ptr(scratch.part_ml).i32(q_heads as i32).i32(splits as i32);
        self.go("decode_combine", cfg, p)
    }

    /// Causal prefill attention of `seqs` sequences over their cached context, with `kernel`.
    #[allow(clippy::too_many_arguments)]
    pub fn prefill_attention(
        &self,
        kernel: PrefillKernel,
        out: CUdeviceptr,
        qkv: CUdeviceptr,
        kv: &PagedKv,
        q_start: CUdeviceptr,
        q_len: CUdeviceptr,
        ctx_before: CUdeviceptr,
        seqs: u32,
        max_q: u32,
        q_heads: u32,
        kv_heads: u32,
    ) -> Result<(), GpuError> {
        let scale = 1.0 / (self.cfg.head_dim as f32).sqrt();
        let cfg = LaunchConfig {
            grid: (max_q.div_ceil(kernel.rows_per_block()).max(1), q_heads, seqs),
            block: (PREFILL_THREADS, 1, 1),
            smem: 0,
        };
        let p = Params::new()
            .ptr(out)
            .ptr(qkv)
            .ptr(kv.k)
            .ptr(kv.v)
            .ptr(kv.tables)
            .i32(kv.max_blocks)
            .ptr(q_start)
            .ptr(q_len)
            .ptr(ctx_before)
            .i32(q_heads as i32)
            .i32(kv_heads as i32)
            .f32(scale);
        self.go(kernel.name(), cfg, p)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn launch_shapes_by_hand() {
        assert_eq!(grid_stride(1, 132).grid.0, 1);
        assert_eq!(grid_stride(1 << 30, 132).grid.0, 8 * 132);
        assert_eq!(grid_stride(1 << 30, 8).grid.0, 64);
        assert_eq!((row_threads(4096), row_threads(40), row_threads(1)), (256, 64, 32));
        // 128 sequences x 8 KV heads already give 1,024 blocks (>= 4 x 132): no split.
        assert_eq!(decode_split(128, 8, 4096, 132).0, 1);
        // 64 x 8 = 512 blocks fall short of 528: two slices.
        assert_eq!(decode_split(64, 8, 4096, 132), (2, 2048));
        // One sequence of 32k tokens, 8 KV heads on 132 SMs: 66 slices wanted, rounded to 64 of 512 tokens.
        assert_eq!(decode_split(1, 8, 32_768, 132), (64, 512));
        // Short contexts are not split below 64 tokens.
        assert_eq!(decode_split(1, 1, 100, 132), (2, 64));
    }

    proptest! {
        /// Every token of every context falls in exactly one decode slice, and slices are whole rounds.
        #[test]
        fn decode_slices_cover_each_token_once(seqs in 1u32..300, kvh in 1u32..16, len in 1u32..200_000, sms in 1u32..133) {
            let (splits, chunk) = decode_split(seqs, kvh, len, sms);
            prop_assert!(splits >= 1 && chunk % DECODE_ROUND == 0);
            prop_assert!(splits * chunk >= len, "last token uncovered");
            prop_assert!((splits - 1) * chunk < len, "an empty last slice");
        }

        /// Sized from its own length, a context is covered exactly once by the launch's slices, and a short
        /// context in a launch sized for a long one gets short slices (never more than 64 tokens past a fair share).
        #[test]
        fn per_sequence_slices_cover_each_context_once(len in 1u32..200_000, max in 1u32..200_000, seqs in 1u32..300, sms in 1u32..133) {
            let len = len.min(max);
            let (splits, _) = decode_split(seqs, 8, max, sms);
            let c = decode_chunk(len, splits);
            prop_assert!(c.is_multiple_of(DECODE_ROUND) && c >= 64);
            prop_assert!(splits * c >= len, "last token uncovered");
            prop_assert!(c <= len.div_ceil(splits).max(64) + DECODE_ROUND);
        }

        /// A larger partition never gets fewer slices (scratch sized for the whole GPU fits every partition).
        #[test]
        fn more_sms_never_fewer_slices(seqs in 1u32..300, kvh in 1u32..16, len in 1u32..200_000, a in 1u32..133, b in 1u32..133) {
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(decode_split(seqs, kvh, len, lo).0 <= decode_split(seqs, kvh, len, hi).0);
        }
    }
}
