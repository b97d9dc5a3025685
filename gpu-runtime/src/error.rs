//! Errors of the GPU runtime. Every CUDA call's status is checked and turned into a [`GpuError`] that names the
//! call; a missing driver or library is an error with the names that were searched, never a panic.

use thiserror::Error;

/// What can go wrong on the GPU side.
#[derive(Debug, Error)]
pub enum GpuError {
    /// No usable CUDA driver library (`libcuda.so`) could be loaded.
    #[error("no CUDA driver found: {0}")]
    NoDriver(String),
    /// The driver loaded but reports no device (or `cuInit` failed).
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    /// A CUDA library other than the driver (NVRTC, cuBLASLt) is missing.
    #[error("CUDA library {name} not found (searched {searched}); put its folder on LD_LIBRARY_PATH")]
    MissingLibrary {
        /// Library name without prefix/suffix, e.g. `nvrtc`.
        name: &'static str,
        /// File names that were tried.
        searched: String,
    },
    /// A driver API call returned an error.
    #[error("{call} failed: {code}")]
    Driver {
        /// The call, e.g. `cuGreenCtxCreate`.
        call: &'static str,
        /// The driver's error name and text.
        code: String,
    },
    /// cuBLASLt returned an error.
    #[error("cuBLASLt {call} failed: {code}")]
    Blas {
        /// The call.
        call: &'static str,
        /// The status.
        code: String,
    },
    /// NVRTC could not compile a kernel source.
    #[error("NVRTC could not compile {source_name}: {log}")]
    Compile {
        /// The kernel source file.
        source_name: &'static str,
        /// The compiler log.
        log: String,
    },
    /// The driver could not load the compiled kernels.
    #[error("cuLibraryLoadData ({kind}) failed: {code}; {log}")]
    Load {
        /// What was loaded (`cubin sm_90`, `PTX compute_90`).
        kind: &'static str,
        /// The driver's status.
        code: String,
        /// The driver's error and info logs.
        log: String,
    },
    /// A kernel check could not run: the kernel, its shape and the partition, and the error.
    #[error("check of {kernel} ({case}) on {partition}: {source}")]
    Check {
        /// The kernel.
        kernel: String,
        /// Its shape.
        case: String,
        /// Where it ran (`whole GPU (132 SMs)`, `green group of 8 SMs`).
        partition: String,
        /// What failed.
        source: Box<GpuError>,
    },
    /// The device cannot do what was asked (compute capability, memory, SM counts).
    #[error("{0}")]
    Unsupported(String),
    /// Bad arguments (shapes, SM counts, options).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// Writing results failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl From<cudarc::driver::DriverError> for GpuError {
    fn from(e: cudarc::driver::DriverError) -> Self {
        GpuError::Driver { call: "CUDA driver call", code: format!("{e:?}") }
    }
}

/// Turns a raw driver status into `Ok(())` or a [`GpuError::Driver`] naming `call`.
pub fn check(call: &'static str, status: cudarc::driver::sys::CUresult) -> Result<(), GpuError> {
    use cudarc::driver::sys::CUresult;
    if status == CUresult::CUDA_SUCCESS { Ok(()) } else { Err(GpuError::Driver { call, code: format!("{status:?}") }) }
}
