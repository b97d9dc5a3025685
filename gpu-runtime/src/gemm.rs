//! The projections (QKV, O, gate/up, down, LM head) through cuBLASLt: `y[t, o] = sum_i x[t, i] w[o, i]`, bf16
//! inputs and output, fp32 accumulation, weights `[d_out, d_in]` row-major.
//!
//! In cuBLASLt's column-major terms `y^T (d_out x t) = W (d_out x d_in) . x^T`: A = W stored as a
//! `d_in x d_out` column-major matrix and transposed, B = x as `d_in x t`, C = y as `d_out x t`. A [`GemmPlan`]
//! (descriptors and the heuristic's algorithm) is made once per shape and SM target and reused, so timing loops
//! launch only `cublasLtMatmul`. The SM-count target (`CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET`) tells the
//! heuristic how many SMs the partition has. On a partition smaller than [`CLUSTER_MIN_SMS`] (the 4-SM remainder
//! of a 128-SM green group on a 132-SM GPU) the plan takes a heuristic candidate without thread-block clusters
//! ([`choose_algo`]): the heuristic's first choice there failed with `CUBLAS_STATUS_EXECUTION_FAILED` on an H200
//! (measurements/h200/2026-12-04-validate), as a kernel launched in clusters of SMs it cannot co-schedule would.
//! Each stream gets its own workspace ([`Workspaces`]): streams that run
//! at once (a replay's two partitions, the contention benchmark) must not share one.

use std::ffi::c_void;

use cudarc::cublaslt::result as lt;
use cudarc::cublaslt::sys;
use cudarc::driver::sys::{CUdeviceptr, CUstream};

use crate::driver::DeviceBuffer;
use crate::error::GpuError;
use crate::probe::{self, Library};

/// cuBLASLt workspace (32 MiB, what cuBLAS recommends for Hopper).
pub const WORKSPACE_BYTES: usize = 32 << 20;

/// Partitions with fewer SMs than this get a cluster-free algorithm: the green-context co-scheduling alignment on
/// compute capability 9.0 (groups come in multiples of 8 SMs; only a remainder can be smaller).
pub const CLUSTER_MIN_SMS: u32 = 8;

/// Heuristic candidates requested per plan.
const CANDIDATES: usize = 16;

/// Which candidate to use: the heuristic's first, except on a partition of fewer than [`CLUSTER_MIN_SMS`] SMs,
/// where the first whose cluster shape is 1x1x1 (`None`: no candidate qualifies). `clusters[i]` is candidate `i`'s
/// `CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID`.
pub fn choose_algo(sm_target: u32, clusters: &[u32]) -> Option<usize> {
    if clusters.is_empty() {
        return None;
    }
    if sm_target == 0 || sm_target >= CLUSTER_MIN_SMS {
        return Some(0);
    }
    let one = sys::cublasLtClusterShape_t::CUBLASLT_CLUSTER_SHAPE_1x1x1 as u32;
    clusters.iter().position(|&c| c == one)
}

fn blas(call: &'static str) -> impl FnOnce(lt::CublasError) -> GpuError {
    move |e| GpuError::Blas { call, code: format!("{:?}", e.0) }
}

/// A cuBLASLt handle and one workspace per stream it has run on.
pub struct Gemm {
    handle: sys::cublasLtHandle_t,
    workspaces: std::sync::Mutex<Workspaces<DeviceBuffer>>,
}

/// One workspace per stream, made on the stream's first use and kept.
#[derive(Debug)]
pub struct Workspaces<B> {
    by_stream: Vec<(usize, B)>,
}

impl<B> Default for Workspaces<B> {
    fn default() -> Self {
        Workspaces { by_stream: Vec::new() }
    }
}

impl<B> Workspaces<B> {
    /// The workspace of `stream`, made with `make` on its first use.
    pub fn for_stream<E>(&mut self, stream: usize, make: impl FnOnce() -> Result<B, E>) -> Result<&B, E> {
        let i = match self.by_stream.iter().position(|(s, _)| *s == stream) {
            Some(i) => i,
            None => {
                self.by_stream.push((stream, make()?));
                self.by_stream.len() - 1
            }
        };
        Ok(&self.by_stream[i].1)
    }

    /// Workspaces made so far.
    pub fn len(&self) -> usize {
        self.by_stream.len()
    }

    /// Whether none was made yet.
    pub fn is_empty(&self) -> bool {
        self.by_stream.is_empty()
    }
}

/// Shape of one projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GemmShape {
    /// Rows (tokens).
    pub tokens: u64,
    /// Input features.
    pub d_in: u64,
    /// Output features.
    pub d_out: u64,
}

impl GemmShape {
    /// Floating-point operations: `2 t d_in d_out`.
    pub fn flops(&self) -> f64 {
        2.0 * self.tokens as f64 * self.d_in as f64 * self.d_out as f64
    }

    /// Bytes moved at least once (bf16): weights, input and output.
    pub fn bytes(&self) -> f64 {
        2.0 * (self.d_in * self.d_out + self.tokens * (self.d_in + self.d_out)) as f64
    }
}

/// Descriptors and the chosen algorithm for one shape.
pub struct GemmPlan {
    /// The shape.
    pub shape: GemmShape,
    desc: sys::cublasLtMatmulDesc_t,
    a: sys::cublasLtMatrixLayout_t,
    b: sys::cublasLtMatrixLayout_t,
    c: sys::cublasLtMatrixLayout_t,
    algo: sys::cublasLtMatmulAlgo_t,
}

impl Gemm {
    /// A handle; workspaces are allocated per stream on first use (in the primary context's address space,
    /// which every green context of the device shares).
    pub fn new() -> Result<Gemm, GpuError> {
        probe::require_library(Library::CublasLt)?;
        let handle = lt::create_handle().map_err(blas("cublasLtCreate"))?;
        Ok(Gemm { handle, workspaces: std::sync::Mutex::new(Workspaces::default()) })
    }

    /// Allocates `stream`'s workspace now if it has none (before a graph capture on it, say).
    pub fn prepare(&self, stream: CUstream) -> Result<(), GpuError> {
        self.workspace(stream).map(|_| ())
    }

    fn workspace(&self, stream: CUstream) -> Result<CUdeviceptr, GpuError> {
        let mut w = self.workspaces.lock().map_err(|_| GpuError::Invalid("cuBLASLt workspace lock poisoned".into()))?;
        Ok(w.for_stream(stream as usize, || DeviceBuffer::alloc(WORKSPACE_BYTES))?.ptr)
    }

    /// Plans `shape` for a partition of `sm_target` SMs (0: let cuBLASLt assume the whole GPU).
    pub fn plan(&self, shape: GemmShape, sm_target: u32) -> Result<GemmPlan, GpuError> {
        let bf16 = sys::cudaDataType::CUDA_R_16BF;
        let desc = lt::create_matmul_desc(sys::cublasComputeType_t::CUBLAS_COMPUTE_32F, sys::cudaDataType::CUDA_R_32F)
            .map_err(blas("cublasLtMatmulDescCreate"))?;
        let a = lt::create_matrix_layout(bf16, shape.d_in, shape.d_out, shape.d_in as i64).map_err(blas("layout A"))?;
        let b =
            lt::create_matrix_layout(bf16, shape.d_in, shape.tokens, shape.d_in as i64).map_err(blas("layout B"))?;
        let c =
            lt::create_matrix_layout(bf16, shape.d_out, shape.tokens, shape.d_out as i64).map_err(blas("layout C"))?;
        let mut plan = GemmPlan { shape, desc, a, b, c, algo: unsafe { std::mem::zeroed() } };
        let trans: i32 = 1;
        let sms = sm_target as i32;
        let ws = WORKSPACE_BYTES as u64;
        // SAFETY: attribute buffers are live locals of the documented sizes; all handles were just created.
        unsafe {
            lt::set_matmul_desc_attribute(
                desc,
                sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA,
                &trans as *const i32 as *const c_void,
                4,
            )
            .map_err(blas("set TRANSA"))?;
            if sm_target > 0 {
                lt::set_matmul_desc_attribute(
                    desc,
                    sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET,
                    &sms as *const i32 as *const c_void,
                    4,
                )
                .map_err(blas("set SM_COUNT_TARGET"))?;
            }
            let pref = lt::create_matmul_pref().map_err(blas("cublasLtMatmulPreferenceCreate"))?;
            lt::set_matmul_pref_attribute(
                pref,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                &ws as *const u64 as *const c_void,
                8,
            )
            .map_err(blas("set MAX_WORKSPACE_BYTES"))?;
            let mut found: [sys::cublasLtMatmulHeuristicResult_t; CANDIDATES] = std::mem::zeroed();
            let mut n: i32 = 0;
            let st = sys::cublasLtMatmulAlgoGetHeuristic(
                self.handle,
                desc,
                a,
                b,
                c,
                c,
                pref,
                CANDIDATES as i32,
                found.as_mut_ptr(),
                &mut n,
            );
            lt::destroy_matmul_pref(pref).map_err(blas("cublasLtMatmulPreferenceDestroy"))?;
            st.result().map_err(blas("cublasLtMatmulAlgoGetHeuristic"))?;
            let found = &found[..(n.max(0) as usize).min(CANDIDATES)];
            // Cluster shapes are read only where they decide (a small partition); the attribute is a uint16_t.
            let mut clusters = Vec::with_capacity(found.len());
            for r in found {
                if sm_target == 0 || sm_target >= CLUSTER_MIN_SMS {
                    clusters.push(0);
                    continue;
                }
                let mut id: u16 = 0;
                let mut written = 0usize;
                sys::cublasLtMatmulAlgoConfigGetAttribute(
                    &r.algo,
                    sys::cublasLtMatmulAlgoConfigAttributes_t::CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID,
                    &mut id as *mut u16 as *mut c_void,
                    std::mem::size_of::<u16>(),
                    &mut written,
                )
                .result()
                .map_err(blas("cublasLtMatmulAlgoConfigGetAttribute(CLUSTER_SHAPE_ID)"))?;
                clusters.push(u32::from(id));
            }
            if found.is_empty() {
                return Err(GpuError::Invalid(format!("cuBLASLt's heuristic offers no algorithm for {shape:?}")));
            }
            let Some(i) = choose_algo(sm_target, &clusters) else {
                return Err(GpuError::Invalid(format!(
                    "cuBLASLt offers no algorithm without thread-block clusters for {shape:?} on {sm_target} SMs \
                     (cluster shape ids of its {} candidates: {clusters:?})",
                    found.len()
                )));
            };
            plan.algo = found[i].algo;
        }
        Ok(plan)
    }

    /// Enqueues `y = x W^T` on `stream`; `x`, `w`, `y` must hold the plan's shapes.
    pub fn run(
        &self,
        plan: &GemmPlan,
        x: CUdeviceptr,
        w: CUdeviceptr,
        y: CUdeviceptr,
        stream: CUstream,
    ) -> Result<(), GpuError> {
        let (alpha, beta) = (1.0f32, 0.0f32);
        let workspace = self.workspace(stream)?;
        // SAFETY: pointers address device buffers of the plan's shapes (callers allocate them from the same
        // shape); the plan's handles are live; the workspace is this stream's alone.
        unsafe {
            lt::matmul(
                self.handle,
                plan.desc,
                &alpha as *const f32 as *const c_void,
                &beta as *const f32 as *const c_void,
                w as *const c_void,
                plan.a,
                x as *const c_void,
                plan.b,
                y as *const c_void,
                plan.c,
                y as *mut c_void,
                plan.c,
                &plan.algo,
                workspace as *mut c_void,
                WORKSPACE_BYTES,
                stream as sys::cudaStream_t,
            )
            .map_err(blas("cublasLtMatmul"))
        }
    }
}

impl Drop for GemmPlan {
    fn drop(&mut self) {
        // SAFETY: created in `plan`, destroyed once.
        unsafe {
            let _ = lt::destroy_matrix_layout(self.a);
            let _ = lt::destroy_matrix_layout(self.b);
            let _ = lt::destroy_matrix_layout(self.c);
            let _ = lt::destroy_matmul_desc(self.desc);
        }
    }
}

impl Drop for Gemm {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once.
        unsafe {
            let _ = lt::destroy_handle(self.handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stream_gets_its_own_workspace_and_keeps_it() {
        let mut w: Workspaces<u32> = Workspaces::default();
        let mut made = 0;
        let mut make = || -> Result<u32, ()> {
            made += 1;
            Ok(made)
        };
        let a = *w.for_stream(0x10, &mut make).unwrap();
        let b = *w.for_stream(0x20, &mut make).unwrap();
        let a2 = *w.for_stream(0x10, &mut make).unwrap();
        assert_ne!(a, b, "two streams running at once never share a workspace");
        assert_eq!(a, a2, "a stream keeps its workspace");
        assert_eq!(w.len(), 2);
        let e: Result<&u32, &str> = w.for_stream(0x30, || Err("out of memory"));
        assert_eq!(e.unwrap_err(), "out of memory");
        assert_eq!(w.len(), 2, "a failed allocation records nothing");
    }

    #[test]
    fn small_partitions_take_the_first_cluster_free_candidate() {
        let one = sys::cublasLtClusterShape_t::CUBLASLT_CLUSTER_SHAPE_1x1x1 as u32;
        let two = sys::cublasLtClusterShape_t::CUBLASLT_CLUSTER_SHAPE_2x1x1 as u32;
        let auto = sys::cublasLtClusterShape_t::CUBLASLT_CLUSTER_SHAPE_AUTO as u32;
        // The whole GPU (target 0) and any group-sized partition: the heuristic's first choice, whatever it is.
        assert_eq!(choose_algo(0, &[two, one]), Some(0));
        assert_eq!(choose_algo(8, &[two, one]), Some(0));
        assert_eq!(choose_algo(100, &[auto]), Some(0));
        // The 4-SM remainder: the first explicit 1x1x1 (AUTO may still launch clusters).
        assert_eq!(choose_algo(4, &[two, auto, one, one]), Some(2));
        assert_eq!(choose_algo(4, &[two, auto]), None);
        assert_eq!(choose_algo(4, &[]), None);
        assert_eq!(choose_algo(0, &[]), None);
    }

    #[test]
    fn flops_and_bytes_of_a_projection() {
        let s = GemmShape { tokens: 16, d_in: 4096, d_out: 6144 };
        assert_eq!(s.flops(), 2.0 * 16.0 * 4096.0 * 6144.0);
        assert_eq!(s.bytes(), 2.0 * (4096.0 * 6144.0 + 16.0 * (4096.0 + 6144.0)));
    }
}
