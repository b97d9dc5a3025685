//! The CUDA C sources of duet's kernels and their run-time compilation with NVRTC.
//!
//! The sources (`src/kernels/*.cu`) need no CUDA headers (bf16 is handled as raw 16-bit values), so NVRTC
//! compiles them with or without an include folder; [`compile`] still passes the folder it found so that a
//! header-using variant would work, and the device script prints it. Shapes that kernels unroll over are
//! compile-time constants taken from the model ([`KernelConfig`]): head size, query heads per key/value head and
//! the KV block size. The PTX targets `compute_90` (Hopper); the driver turns it into machine code at load.

use std::path::Path;

use duet_sim::model::ModelSpec;

use crate::error::GpuError;
use crate::probe::{self, Library};

/// Source files, in the order they are concatenated into one program.
pub const SOURCES: [(&str, &str); 3] = [
    ("common.cuh", include_str!("kernels/common.cuh")),
    ("elementwise.cu", include_str!("kernels/elementwise.cu")),
    ("attention.cu", include_str!("kernels/attention.cu")),
];

/// Every `extern "C"` kernel the runtime launches.
pub const KERNEL_NAMES: [&str; 15] = [
    "fill_uniform",
    "rmsnorm",
    "residual_add",
    "silu_mul",
    "rotary",
    "kv_append",
    "embed",
    "argmax_rows",
    "read_bw",
    "copy_bw",
    "empty_kernel",
    "decode_attention",
    "decode_combine",
    "prefill_attention",
    "prefill_attention_tc",
];

/// KV cache block size in tokens (the simulator's paged KV uses the same 16).
pub const BLOCK_TOKENS: u32 = 16;

/// Compile-time shape constants of one model's kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelConfig {
    /// Head size (a multiple of 32, at most 256).
    pub head_dim: u32,
    /// Query heads per key/value head (1..=16).
    pub group: u32,
    /// Tokens per KV block.
    pub block_tokens: u32,
}

impl KernelConfig {
    /// The constants for `model` (already sharded for tensor parallelism); an error for shapes the kernels do not
    /// cover.
    pub fn for_model(model: &ModelSpec) -> Result<KernelConfig, GpuError> {
        let head_dim = model.head_dim as u32;
        if head_dim == 0 || head_dim % 32 != 0 || head_dim > 256 {
            return Err(GpuError::Unsupported(format!(
                "{}: head size {head_dim} is not a multiple of 32 up to 256",
                model.name
            )));
        }
        if model.num_kv_heads == 0 || model.num_q_heads % model.num_kv_heads != 0 {
            return Err(GpuError::Unsupported(format!(
                "{}: {} query heads are not a multiple of {} key/value heads",
                model.name, model.num_q_heads, model.num_kv_heads
            )));
        }
        let group = (model.num_q_heads / model.num_kv_heads) as u32;
        if group > 16 {
            return Err(GpuError::Unsupported(format!(
                "{}: {group} query heads per key/value head (max 16)",
                model.name
            )));
        }
        if model.dtype_bytes != 2 {
            return Err(GpuError::Unsupported(format!(
                "{}: the kernels are bf16 (2 bytes), not {} bytes",
                model.name, model.dtype_bytes
            )));
        }
        Ok(KernelConfig { head_dim, group, block_tokens: BLOCK_TOKENS })
    }

    /// The NVRTC options that set the constants.
    pub fn defines(&self) -> Vec<String> {
        vec![
            format!("-DHEAD_DIM={}", self.head_dim),
            format!("-DGROUP={}", self.group),
            format!("-DBLOCK_TOKENS={}", self.block_tokens),
        ]
    }
}

/// The whole program: every source file, each preceded by a `#line` directive so that compiler messages name
/// the file and line.
pub fn program_source() -> String {
    let mut out = String::new();
    for (name, text) in SOURCES {
        out.push_str(&format!("#line 1 \"{name}\"\n"));
        out.push_str(text);
        out.push('\n');
    }
    out
}

/// Compiles the kernels for `cfg` to PTX for compute capability 9.0.
pub fn compile(cfg: &KernelConfig, include_dir: Option<&Path>) -> Result<String, GpuError> {
    probe::require_library(Library::Nvrtc)?;
    let mut options = cfg.defines();
    options.push("--std=c++17".into());
    let opts = cudarc::nvrtc::CompileOptions {
        arch: Some("compute_90"),
        include_paths: include_dir.map(|d| vec![d.display().to_string()]).unwrap_or_default(),
        options,
        name: Some("duet_kernels.cu".into()),
        ..Default::default()
    };
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(program_source(), opts).map_err(|e| GpuError::Compile {
        source_name: "duet_kernels.cu",
        log: match e {
            cudarc::nvrtc::CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
            other => format!("{other:?}"),
        },
    })?;
    Ok(ptx.to_src())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_model_has_kernel_constants() {
        for (m, _) in ModelSpec::bundled() {
            let c = KernelConfig::for_model(&m).unwrap();
            assert_eq!(c.head_dim as u64, m.head_dim);
            assert_eq!((c.group as u64) * m.num_kv_heads, m.num_q_heads);
            assert!(c.defines().iter().any(|d| d == &format!("-DGROUP={}", c.group)));
        }
        let mut odd = ModelSpec::resolve("qwen3-8b").unwrap();
        odd.head_dim = 80;
        assert!(KernelConfig::for_model(&odd).unwrap_err().to_string().contains("head size 80"));
        odd.head_dim = 128;
        odd.num_kv_heads = 5;
        assert!(KernelConfig::for_model(&odd).unwrap_err().to_string().contains("not a multiple"));
    }

    #[test]
    fn every_launched_kernel_is_defined_in_the_sources() {
        let src = program_source();
        for name in KERNEL_NAMES {
            assert!(src.contains(&format!(" {name}(")) || src.contains(&format!("\n{name}(")), "{name} not in sources");
        }
        assert_eq!(src.matches("#line 1").count(), SOURCES.len());
    }
}
