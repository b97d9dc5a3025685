//! The CUDA C sources of duet's kernels and their run-time compilation with NVRTC.
//!
//! The sources (`src/kernels/*.cu`) need no CUDA headers (bf16 is handled as raw 16-bit values), so NVRTC
//! compiles them with or without an include folder; [`compile`] still passes the folder it found so that a
//! header-using variant would work, and the device script prints it. Shapes that kernels unroll over are
//! compile-time constants taken from the model ([`KernelConfig`]): head size, query heads per key/value head and
//! the KV block size. [`compile`] gives an `sm_90` cubin (Hopper machine code, loaded without the driver's JIT, so a
//! compiler newer than the driver cannot hand it PTX it does not understand); [`compile_ptx`] gives `compute_90`
//! PTX for `duet-gpu ptx` and the register/spill checks with ptxas.

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
        if head_dim == 0 || !head_dim.is_multiple_of(32) || head_dim > 256 {
            return Err(GpuError::Unsupported(format!(
                "{}: head size {head_dim} is not a multiple of 32 up to 256",
                model.name
            )));
        }
        if model.num_kv_heads == 0 || !model.num_q_heads.is_multiple_of(model.num_kv_heads) {
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

/// Compiled kernels, ready for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// Machine code for `sm_90` (an ELF file).
    Cubin(Vec<u8>),
    /// PTX text for `compute_90` (the driver compiles it at load).
    Ptx(String),
}

impl Image {
    /// `cubin sm_90` or `PTX compute_90`.
    pub fn kind(&self) -> &'static str {
        match self {
            Image::Cubin(_) => "cubin sm_90",
            Image::Ptx(_) => "PTX compute_90",
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Image::Cubin(b) => b.len(),
            Image::Ptx(t) => t.len(),
        }
    }

    /// Whether the image is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// NVRTC options for `cfg` and the target `arch` (`sm_90` or `compute_90`), with the include folder.
pub fn options(cfg: &KernelConfig, arch: &str, include_dir: Option<&Path>) -> Vec<String> {
    let mut o = cfg.defines();
    o.push("--std=c++17".into());
    o.push(format!("--gpu-architecture={arch}"));
    if let Some(d) = include_dir {
        o.push(format!("--include-path={}", d.display()));
    }
    o
}

/// Compiles the program with NVRTC for `arch`; returns the PTX (for `compute_*`) or the cubin (for `sm_*`). A
/// failure carries the compiler's log.
fn nvrtc(cfg: &KernelConfig, arch: &str, include_dir: Option<&Path>) -> Result<Image, GpuError> {
    use cudarc::nvrtc::result as nv;
    use cudarc::nvrtc::sys as ns;
    probe::require_library(Library::Nvrtc)?;
    let fail = |log: String| GpuError::Compile { source_name: "duet_kernels.cu", log };
    let src = std::ffi::CString::new(program_source()).map_err(|_| fail("the source holds a NUL byte".into()))?;
    let name = c"duet_kernels.cu";
    let prog = nv::create_program(&src, Some(name)).map_err(|e| fail(format!("nvrtcCreateProgram: {e:?}")))?;
    // SAFETY: `prog` was just created and is destroyed once below; `src` and `name` outlive it.
    unsafe {
        let compiled = nv::compile_program(prog, &options(cfg, arch, include_dir));
        let log = nv::get_program_log(prog)
            .map(|l| std::ffi::CStr::from_ptr(l.as_ptr()).to_string_lossy().into_owned())
            .unwrap_or_default();
        let image = match compiled {
            Err(e) => Err(fail(format!("{e:?} ({arch}): {log}"))),
            Ok(()) if arch.starts_with("sm_") => {
                let mut size = 0usize;
                let r = ns::nvrtcGetCUBINSize(prog, &mut size);
                if r != ns::nvrtcResult::NVRTC_SUCCESS {
                    Err(fail(format!("nvrtcGetCUBINSize: {r:?}")))
                } else {
                    let mut bin = vec![0u8; size];
                    match ns::nvrtcGetCUBIN(prog, bin.as_mut_ptr() as *mut std::ffi::c_char) {
                        ns::nvrtcResult::NVRTC_SUCCESS => Ok(Image::Cubin(bin)),
                        r => Err(fail(format!("nvrtcGetCUBIN: {r:?}"))),
                    }
                }
            }
            Ok(()) => nv::get_ptx(prog)
                .map(|p| Image::Ptx(std::ffi::CStr::from_ptr(p.as_ptr()).to_string_lossy().into_owned()))
                .map_err(|e| fail(format!("nvrtcGetPTX: {e:?}"))),
        };
        let _ = nv::destroy_program(prog);
        image
    }
}

/// Compiles the kernels for `cfg` to an `sm_90` cubin.
pub fn compile(cfg: &KernelConfig, include_dir: Option<&Path>) -> Result<Image, GpuError> {
    nvrtc(cfg, "sm_90", include_dir)
}

/// Compiles the kernels for `cfg` to PTX for compute capability 9.0.
pub fn compile_ptx(cfg: &KernelConfig, include_dir: Option<&Path>) -> Result<String, GpuError> {
    match nvrtc(cfg, "compute_90", include_dir)? {
        Image::Ptx(p) => Ok(p),
        Image::Cubin(_) => unreachable!("compute_90 gives PTX"),
    }
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
    fn options_set_the_constants_the_target_and_the_include_folder() {
        let c = KernelConfig::for_model(&ModelSpec::resolve("qwen3-8b").unwrap()).unwrap();
        let o = options(&c, "sm_90", Some(Path::new("/opt/inc")));
        for want in ["-DHEAD_DIM=128", "-DGROUP=4", "--gpu-architecture=sm_90", "--include-path=/opt/inc"] {
            assert!(o.iter().any(|x| x == want), "{want} missing from {o:?}");
        }
        assert!(!options(&c, "compute_90", None).iter().any(|x| x.starts_with("--include-path")));
    }

    #[test]
    fn cubin_for_sm_90_when_nvrtc_is_here() {
        if probe::require_library(Library::Nvrtc).is_err() {
            println!("SKIPPED: no NVRTC on this machine (CI unpacks the nvidia-cuda-nvrtc wheel)");
            return;
        }
        let c = KernelConfig::for_model(&ModelSpec::resolve("qwen3-8b").unwrap()).unwrap();
        let img = compile(&c, None).unwrap();
        match &img {
            Image::Cubin(b) => assert_eq!(&b[..4], b"\x7fELF", "a cubin is an ELF file"),
            Image::Ptx(_) => panic!("sm_90 must give a cubin"),
        }
        assert_eq!(img.kind(), "cubin sm_90");
        assert!(compile_ptx(&c, None).unwrap().contains(".target sm_90"));
        let (major, _) = probe::nvrtc_version().unwrap();
        assert!(major >= 12, "NVRTC {major}");
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
