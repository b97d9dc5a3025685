//! Finding the CUDA pieces on this machine: the driver library, NVRTC, cuBLASLt and the CUDA include folder.
//!
//! cudarc loads libraries on first use and panics when one is missing; every entry point of this crate calls
//! [`require_driver`] (and [`require_library`] for NVRTC and cuBLASLt) first, so a machine without CUDA gets a
//! [`GpuError`] that lists what was searched. [`report`] says which files were found, for the device script's log.

use std::path::{Path, PathBuf};

use crate::error::GpuError;

/// The libraries the runtime uses, by their cudarc names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Library {
    /// `libcuda.so` (the driver).
    Driver,
    /// `libnvrtc.so` (run-time compilation of the kernels).
    Nvrtc,
    /// `libcublasLt.so` (the projections).
    CublasLt,
}

impl Library {
    /// The library's base name as cudarc searches for it.
    pub fn base_name(self) -> &'static str {
        match self {
            Library::Driver => "cuda",
            Library::Nvrtc => "nvrtc",
            Library::CublasLt => "cublasLt",
        }
    }

    fn present(self) -> bool {
        // SAFETY: these only try `dlopen` on a list of names and drop what they opened.
        unsafe {
            match self {
                Library::Driver => cudarc::driver::sys::is_culib_present(),
                Library::Nvrtc => cudarc::nvrtc::sys::is_culib_present(),
                Library::CublasLt => cudarc::cublaslt::sys::is_culib_present(),
            }
        }
    }
}

/// File names cudarc tries for `lib`, in order.
pub fn candidates(lib: Library) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in cudarc::get_lib_name_candidates(lib.base_name()) {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// Ok when `lib` can be loaded; otherwise an error naming what was searched.
pub fn require_library(lib: Library) -> Result<(), GpuError> {
    if lib.present() {
        return Ok(());
    }
    let searched = candidates(lib).join(", ");
    Err(match lib {
        Library::Driver => GpuError::NoDriver(format!(
            "none of {searched} could be loaded (is this a machine with an NVIDIA GPU and driver? \
             LD_LIBRARY_PATH={})",
            std::env::var("LD_LIBRARY_PATH").unwrap_or_default()
        )),
        _ => GpuError::MissingLibrary { name: lib.base_name(), searched },
    })
}

/// Ok when the driver library loads, `cuInit` succeeds and there is at least one device.
pub fn require_driver() -> Result<(), GpuError> {
    require_library(Library::Driver)?;
    // SAFETY: the driver library is present (checked above), so cudarc's loader does not panic.
    let status = unsafe { cudarc::driver::sys::cuInit(0) };
    if status != cudarc::driver::sys::CUresult::CUDA_SUCCESS {
        return Err(GpuError::NoDevice(format!("cuInit failed: {status:?}")));
    }
    let mut count = 0;
    // SAFETY: `count` is a valid out-pointer.
    let status = unsafe { cudarc::driver::sys::cuDeviceGetCount(&mut count) };
    if status != cudarc::driver::sys::CUresult::CUDA_SUCCESS || count < 1 {
        return Err(GpuError::NoDevice(format!("cuDeviceGetCount: {status:?}, {count} devices")));
    }
    Ok(())
}

/// Ok when the loaded driver exports `symbol` (green contexts need a CUDA 12.4+ driver).
pub fn require_symbol(symbol: &str) -> Result<(), GpuError> {
    require_library(Library::Driver)?;
    // SAFETY: the library is present; looking a symbol up has no side effect.
    let found = unsafe { cudarc::driver::sys::culib().get::<unsafe extern "C" fn()>(symbol.as_bytes()).is_ok() };
    if found {
        Ok(())
    } else {
        Err(GpuError::Unsupported(format!("the CUDA driver has no {symbol} (green contexts need driver >= 550)")))
    }
}

/// Folders that may hold the CUDA headers, most specific first: `$CUDA_HOME`, `$CUDA_PATH`, `/usr/local/cuda`,
/// versioned `/usr/local/cuda-*`, and the `nvidia/cu13` / `nvidia/cuda_runtime` folders of Python wheels under
/// `extra` (site-packages folders).
pub fn include_candidates(extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Ok(v) = std::env::var(var) {
            out.push(Path::new(&v).join("include"));
        }
    }
    out.push(PathBuf::from("/usr/local/cuda/include"));
    if let Ok(rd) = std::fs::read_dir("/usr/local") {
        let mut versioned: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("cuda-")))
            .map(|p| p.join("include"))
            .collect();
        versioned.sort();
        versioned.reverse();
        out.extend(versioned);
    }
    for site in extra {
        out.push(site.join("nvidia/cu13/include"));
        out.push(site.join("nvidia/cuda_runtime/include"));
    }
    out
}

/// The first candidate folder that holds `cuda_bf16.h`, if any.
pub fn find_include_dir(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates.iter().find(|d| d.join("cuda_bf16.h").is_file()).cloned()
}

/// Paths of the loaded shared objects whose file name contains `needle` (read from `/proc/self/maps`).
pub fn loaded_paths(needle: &str) -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut out: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| Path::new(p).file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(needle)))
        .map(str::to_string)
        .collect();
    out.dedup();
    out
}

/// The loaded version of `lib` (present), as `major.minor[.patch]`: the CUDA version the driver supports, NVRTC's,
/// cuBLASLt's.
pub fn version(lib: Library) -> Option<String> {
    match lib {
        Library::Driver => {
            let mut v = 0;
            // SAFETY: the library is present (callers check); valid out-pointer.
            let r = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) };
            (r == cudarc::driver::sys::CUresult::CUDA_SUCCESS).then(|| format!("CUDA {}.{}", v / 1000, v % 1000 / 10))
        }
        Library::Nvrtc => nvrtc_version().map(|(a, b)| format!("{a}.{b}")),
        Library::CublasLt => {
            // SAFETY: the library is present (callers check); no arguments.
            let v = unsafe { cudarc::cublaslt::sys::cublasLtGetVersion() };
            Some(format!("{}.{}.{}", v / 10_000, v % 10_000 / 100, v % 100))
        }
    }
}

/// NVRTC's version (major, minor), when the library loads.
pub fn nvrtc_version() -> Option<(i32, i32)> {
    require_library(Library::Nvrtc).ok()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: valid out-pointers; the library is present.
    let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    (r == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS).then_some((major, minor))
}

/// One line per library: found (with the loaded path where the process has it mapped) or missing.
pub fn report() -> Vec<String> {
    [Library::Driver, Library::Nvrtc, Library::CublasLt]
        .into_iter()
        .map(|lib| {
            if lib.present() {
                // SAFETY: the library is present, so these loaders do not panic; it stays loaded for the process.
                unsafe {
                    match lib {
                        Library::Driver => drop(cudarc::driver::sys::culib()),
                        Library::Nvrtc => drop(cudarc::nvrtc::sys::culib()),
                        Library::CublasLt => drop(cudarc::cublaslt::sys::culib()),
                    }
                }
                let paths = loaded_paths(&format!("lib{}.so", lib.base_name()));
                format!(
                    "{}: found {}, version {}",
                    lib.base_name(),
                    if paths.is_empty() { "(path not in /proc/self/maps)".into() } else { paths.join(", ") },
                    version(lib).unwrap_or_else(|| "unknown".into())
                )
            } else {
                format!("{}: MISSING (searched {})", lib.base_name(), candidates(lib).join(", "))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_dir_is_the_first_candidate_with_the_header() {
        let base = std::env::temp_dir().join(format!("duet-gpu-inc-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("cuda_bf16.h"), "").unwrap();
        assert_eq!(find_include_dir(&[a.clone(), b.clone()]), Some(b.clone()));
        assert_eq!(find_include_dir(&[a]), None);
        let wheel = include_candidates(std::slice::from_ref(&base));
        assert!(wheel.contains(&base.join("nvidia/cu13/include")), "{wheel:?}");
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn missing_driver_is_a_clear_error_not_a_panic() {
        // On a machine with a driver this holds trivially; without one it must be the documented message.
        if let Err(e) = require_driver() {
            let msg = e.to_string();
            assert!(msg.starts_with("no CUDA driver found") || msg.starts_with("no CUDA device"), "{msg}");
            if msg.starts_with("no CUDA driver found") {
                assert!(msg.contains("libcuda.so"), "{msg}");
            }
        }
    }
}
