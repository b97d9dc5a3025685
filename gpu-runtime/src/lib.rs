//! duet's GPU runtime for an NVIDIA H100 or H200 (`duet-gpu`): green-context SM partitions, model-shaped bf16 kernels
//! with synthetic weights, correctness checks against float64 CPU references, and the calibration microbenchmarks whose
//! records `duet calibrate fit` turns into a profile.
//!
//! cudarc loads the CUDA libraries at run time, so this crate builds and its CPU-side logic is tested on machines
//! without CUDA; every GPU entry point first checks for the driver ([`probe::require_driver`]) and returns
//! [`GpuError::NoDriver`] ("no CUDA driver found: ...") instead of panicking.

pub mod bench;
pub mod check;
pub mod device;
pub mod driver;
pub mod error;
pub mod gemm;
pub mod green;
pub mod identity;
pub mod kernels;
pub mod lookahead;
pub mod menu;
pub mod ops;
pub mod probe;
pub mod reference;
pub mod replay;

pub use error::GpuError;
