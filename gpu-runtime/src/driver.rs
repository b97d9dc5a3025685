//! Thin, checked wrappers over the CUDA driver API: the device and its primary context, device memory, streams,
//! events, run-time compiled kernel libraries and kernel launches.
//!
//! Only what the runtime needs, with every status checked ([`check`]). Kernels are loaded context-independently
//! (`cuLibraryLoadData`) and resolved per context (`cuKernelGetFunction`), so the same compiled code runs on the
//! primary context and on every green context. Memory is allocated in the primary context; green contexts of the
//! same device see it (one address space).
//!
//! Handles (`CUstream`, `CUkernel`, ...) are opaque driver pointers that Rust never dereferences; functions that
//! take them stay safe, and the driver reports a stale handle as an error status.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

use std::ffi::{CString, c_void};

use cudarc::driver::sys::{
    self, CUcontext, CUdevice, CUdevice_attribute, CUdeviceptr, CUevent, CUfunction, CUkernel, CUlibrary, CUstream,
};
use serde::Serialize;

use crate::error::{GpuError, check};
use crate::menu::SmInfo;
use crate::probe;

/// The device, its primary context made current, and the facts the runtime needs.
pub struct Gpu {
    /// Driver device handle.
    pub dev: CUdevice,
    /// Primary context (current on the calling thread after [`Gpu::open`]).
    pub primary: CUcontext,
    /// Device facts.
    pub facts: DeviceFacts,
}

/// What the runtime reads off the device at start-up.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceFacts {
    /// Marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Device memory in bytes.
    pub total_mem: usize,
    /// L2 cache in bytes.
    pub l2_bytes: usize,
    /// SM facts the runtime plans with ([`SmInfo::for_device`] of `sm_reported`).
    pub sm: SmInfo,
    /// SM facts as the SM resource (`cuDeviceGetDevResource`) reported them.
    pub sm_reported: SmInfo,
    /// Driver version as `cuDriverGetVersion` reports it (e.g. 13000).
    pub driver_version: i32,
}

impl Gpu {
    /// Opens device `ordinal`: checks the driver, retains and binds the primary context, reads the facts.
    pub fn open(ordinal: i32) -> Result<Gpu, GpuError> {
        probe::require_driver()?;
        probe::require_symbol("cuGreenCtxCreate")?;
        let mut dev = 0;
        let mut primary = std::ptr::null_mut();
        // SAFETY: out-pointers are valid; the driver library is loaded and initialised.
        unsafe {
            check("cuDeviceGet", sys::cuDeviceGet(&mut dev, ordinal))?;
            check("cuDevicePrimaryCtxRetain", sys::cuDevicePrimaryCtxRetain(&mut primary, dev))?;
            check("cuCtxSetCurrent", sys::cuCtxSetCurrent(primary))?;
        }
        let attr = |a: CUdevice_attribute| -> Result<i32, GpuError> {
            let mut v = 0;
            // SAFETY: valid out-pointer and device.
            check("cuDeviceGetAttribute", unsafe { sys::cuDeviceGetAttribute(&mut v, a, dev) })?;
            Ok(v)
        };
        use CUdevice_attribute::*;
        let cc =
            (attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?, attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?);
        let l2_bytes = attr(CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)? as usize;
        let mut name = [0 as std::ffi::c_char; 256];
        let mut total_mem = 0usize;
        let mut driver_version = 0;
        // SAFETY: buffers are valid for the lengths passed.
        unsafe {
            check("cuDeviceGetName", sys::cuDeviceGetName(name.as_mut_ptr(), name.len() as i32, dev))?;
            check("cuDeviceTotalMem", sys::cuDeviceTotalMem_v2(&mut total_mem, dev))?;
            check("cuDriverGetVersion", sys::cuDriverGetVersion(&mut driver_version))?;
        }
        // SAFETY: the driver wrote a NUL-terminated string into `name`.
        let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_string_lossy().into_owned();
        let res = sm_resource(dev)?;
        // SAFETY: an SM resource's union holds the `sm` member.
        let sm = unsafe { res.__bindgen_anon_1.sm };
        let sm_reported =
            SmInfo { total: sm.smCount, min_partition: sm.minSmPartitionSize, alignment: sm.smCoscheduledAlignment };
        let sm = SmInfo::for_device(sm_reported, cc);
        Ok(Gpu {
            dev,
            primary,
            facts: DeviceFacts { name, compute_capability: cc, total_mem, l2_bytes, sm, sm_reported, driver_version },
        })
    }

    /// The device's identity: the driver's facts and `nvidia-smi`'s clocks (when it answers).
    pub fn identity(&self) -> crate::identity::DeviceIdentity {
        crate::identity::DeviceIdentity {
            name: self.facts.name.clone(),
            sms: self.facts.sm.total,
            memory_bytes: self.facts.total_mem as u64,
            compute_capability: self.facts.compute_capability,
            smi: crate::identity::query_smi(self.dev.max(0) as u32),
        }
    }

    /// Makes the primary context current on this thread.
    pub fn bind(&self) -> Result<(), GpuError> {
        // SAFETY: the primary context is retained for the life of `self`.
        check("cuCtxSetCurrent", unsafe { sys::cuCtxSetCurrent(self.primary) })
    }

    /// Free and total device memory in bytes.
    pub fn mem_info(&self) -> Result<(usize, usize), GpuError> {
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: valid out-pointers; a context is current.
        check("cuMemGetInfo", unsafe { sys::cuMemGetInfo_v2(&mut free, &mut total) })?;
        Ok((free, total))
    }

    /// Waits for all work on the device.
    pub fn synchronize(&self) -> Result<(), GpuError> {
        // SAFETY: a context is current.
        check("cuCtxSynchronize", unsafe { sys::cuCtxSynchronize() })
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // SAFETY: retained in `open`; released once.
        unsafe {
            sys::cuDevicePrimaryCtxRelease_v2(self.dev);
        }
    }
}

/// The device's whole SM resource.
pub fn sm_resource(dev: CUdevice) -> Result<sys::CUdevResource, GpuError> {
    // SAFETY: a zeroed resource is a valid out-parameter.
    let mut res: sys::CUdevResource = unsafe { std::mem::zeroed() };
    check("cuDeviceGetDevResource", unsafe {
        sys::cuDeviceGetDevResource(dev, &mut res, sys::CUdevResourceType::CU_DEV_RESOURCE_TYPE_SM)
    })?;
    Ok(res)
}

/// Device memory owned by this value (freed on drop, in the context it was allocated in).
pub struct DeviceBuffer {
    /// Device address.
    pub ptr: CUdeviceptr,
    /// Size in bytes.
    pub bytes: usize,
    ctx: CUcontext,
}

impl DeviceBuffer {
    /// Allocates `bytes` (at least 1) in the current context.
    pub fn alloc(bytes: usize) -> Result<DeviceBuffer, GpuError> {
        let mut ptr = 0;
        let mut ctx = std::ptr::null_mut();
        // SAFETY: valid out-pointers.
        unsafe {
            check("cuCtxGetCurrent", sys::cuCtxGetCurrent(&mut ctx))?;
            check("cuMemAlloc", sys::cuMemAlloc_v2(&mut ptr, bytes.max(1)))?;
        }
        Ok(DeviceBuffer { ptr, bytes, ctx })
    }

    /// Allocates and copies `data` in.
    pub fn from_slice<T: Copy>(data: &[T]) -> Result<DeviceBuffer, GpuError> {
        let b = DeviceBuffer::alloc(std::mem::size_of_val(data))?;
        b.upload(data)?;
        Ok(b)
    }

    /// Copies `data` to the start of the buffer (synchronous).
    pub fn upload<T: Copy>(&self, data: &[T]) -> Result<(), GpuError> {
        let n = std::mem::size_of_val(data);
        if n > self.bytes {
            return Err(GpuError::Invalid(format!("upload of {n} B into a buffer of {} B", self.bytes)));
        }
        // SAFETY: the host slice is valid for `n` bytes and the buffer holds at least `n`.
        check("cuMemcpyHtoD", unsafe { sys::cuMemcpyHtoD_v2(self.ptr, data.as_ptr() as *const c_void, n) })
    }

    /// Copies the first `len` elements out (synchronous).
    pub fn download<T: Copy + Default>(&self, len: usize) -> Result<Vec<T>, GpuError> {
        let n = len * std::mem::size_of::<T>();
        if n > self.bytes {
            return Err(GpuError::Invalid(format!("download of {n} B from a buffer of {} B", self.bytes)));
        }
        let mut out = vec![T::default(); len];
        // SAFETY: `out` is valid for `n` bytes and the buffer holds at least `n`.
        check("cuMemcpyDtoH", unsafe { sys::cuMemcpyDtoH_v2(out.as_mut_ptr() as *mut c_void, self.ptr, n) })?;
        Ok(out)
    }

    /// Fills every byte with `0xFF` (a bf16 NaN, so an output the kernel forgot to write shows up).
    pub fn poison(&self) -> Result<(), GpuError> {
        // SAFETY: the range is inside the allocation.
        check("cuMemsetD8", unsafe { sys::cuMemsetD8_v2(self.ptr, 0xFF, self.bytes) })
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated by `alloc`, freed once, with its context pushed for the call and popped after (the
        // caller's current context is left as it was).
        unsafe {
            let pushed = sys::cuCtxPushCurrent_v2(self.ctx) == sys::CUresult::CUDA_SUCCESS;
            sys::cuMemFree_v2(self.ptr);
            if pushed {
                let mut popped = std::ptr::null_mut();
                sys::cuCtxPopCurrent_v2(&mut popped);
            }
        }
    }
}

/// A CUDA event with timing.
pub struct Event(pub CUevent);

impl Event {
    /// A timing event in the current context.
    pub fn new() -> Result<Event, GpuError> {
        let mut e = std::ptr::null_mut();
        // SAFETY: valid out-pointer.
        check("cuEventCreate", unsafe { sys::cuEventCreate(&mut e, 0) })?;
        Ok(Event(e))
    }

    /// Records the event on `stream`.
    pub fn record(&self, stream: CUstream) -> Result<(), GpuError> {
        // SAFETY: both handles are live.
        check("cuEventRecord", unsafe { sys::cuEventRecord(self.0, stream) })
    }

    /// Waits for the event.
    pub fn synchronize(&self) -> Result<(), GpuError> {
        // SAFETY: live handle.
        check("cuEventSynchronize", unsafe { sys::cuEventSynchronize(self.0) })
    }

    /// Milliseconds from `self` to `end` (both recorded and complete).
    pub fn elapsed_ms(&self, end: &Event) -> Result<f64, GpuError> {
        let mut ms = 0f32;
        // SAFETY: live handles, valid out-pointer.
        check("cuEventElapsedTime", unsafe { sys::cuEventElapsedTime_v2(&mut ms, self.0, end.0) })?;
        Ok(ms as f64)
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once.
        unsafe {
            sys::cuEventDestroy_v2(self.0);
        }
    }
}

/// Captures what `body` enqueues on `stream` (relaxed mode) into an instantiated CUDA graph, which the caller
/// destroys (`cuGraphExecDestroy`). Capture ends, and the captured graph is destroyed, on every path.
pub fn capture_graph(
    stream: CUstream,
    body: impl FnOnce() -> Result<(), GpuError>,
) -> Result<sys::CUgraphExec, GpuError> {
    let mut graph = std::ptr::null_mut();
    let mut exec = std::ptr::null_mut();
    // SAFETY: the stream is live; capture ends, and the graph is destroyed, on every path below.
    unsafe {
        check(
            "cuStreamBeginCapture",
            sys::cuStreamBeginCapture_v2(stream, sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED),
        )?;
        let r = body();
        let end = check("cuStreamEndCapture", sys::cuStreamEndCapture(stream, &mut graph));
        r?;
        end?;
        let inst = check("cuGraphInstantiate", sys::cuGraphInstantiateWithFlags(&mut exec, graph, 0));
        sys::cuGraphDestroy(graph);
        inst?;
    }
    Ok(exec)
}

/// A non-blocking stream of the primary context (the whole GPU).
pub fn primary_stream() -> Result<CUstream, GpuError> {
    let mut s = std::ptr::null_mut();
    // SAFETY: valid out-pointer; a context is current.
    check("cuStreamCreate", unsafe {
        sys::cuStreamCreate(&mut s, sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32)
    })?;
    Ok(s)
}

/// Kernels compiled to PTX, loaded once for every context.
pub struct KernelLibrary {
    lib: CUlibrary,
}

impl KernelLibrary {
    /// Loads compiled kernels (context-independent loading). A cubin loads as it is; PTX goes through the
    /// driver's JIT. On failure the error carries the driver's error and info logs.
    pub fn load(image: &crate::kernels::Image) -> Result<KernelLibrary, GpuError> {
        use crate::kernels::Image;
        let mut data: Vec<u8> = match image {
            Image::Cubin(b) => b.clone(),
            Image::Ptx(t) => {
                if t.contains('\0') {
                    return Err(GpuError::Invalid("PTX contains a NUL byte".into()));
                }
                t.as_bytes().to_vec()
            }
        };
        data.push(0);
        const LOG: usize = 16 * 1024;
        let (mut err_log, mut info_log) = (vec![0u8; LOG], vec![0u8; LOG]);
        let mut opts = [
            sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER,
            sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
            sys::CUjit_option::CU_JIT_INFO_LOG_BUFFER,
            sys::CUjit_option::CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES,
        ];
        let mut values: [*mut c_void; 4] = [
            err_log.as_mut_ptr() as *mut c_void,
            LOG as *mut c_void,
            info_log.as_mut_ptr() as *mut c_void,
            LOG as *mut c_void,
        ];
        let mut lib = std::ptr::null_mut();
        // SAFETY: `data` is a cubin or NUL-terminated PTX; the log buffers outlive the call and their sizes are
        // passed by value, as the JIT options require.
        let status = unsafe {
            sys::cuLibraryLoadData(
                &mut lib,
                data.as_ptr() as *const c_void,
                opts.as_mut_ptr(),
                values.as_mut_ptr(),
                opts.len() as u32,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        if status != sys::CUresult::CUDA_SUCCESS {
            let text = |b: &[u8]| {
                String::from_utf8_lossy(&b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]).into_owned()
            };
            return Err(GpuError::Load {
                kind: image.kind(),
                code: format!("{status:?}"),
                log: format!("error log: {:?}; info log: {:?}", text(&err_log), text(&info_log)),
            });
        }
        Ok(KernelLibrary { lib })
    }

    /// The kernel named `name` (an `extern "C"` function of the source).
    pub fn kernel(&self, name: &str) -> Result<CUkernel, GpuError> {
        let c = CString::new(name).map_err(|_| GpuError::Invalid(format!("bad kernel name {name:?}")))?;
        let mut k = std::ptr::null_mut();
        // SAFETY: live library, NUL-terminated name.
        check("cuLibraryGetKernel", unsafe { sys::cuLibraryGetKernel(&mut k, self.lib, c.as_ptr()) })?;
        Ok(k)
    }
}

impl Drop for KernelLibrary {
    fn drop(&mut self) {
        // SAFETY: loaded in `load`, unloaded once.
        unsafe {
            sys::cuLibraryUnload(self.lib);
        }
    }
}

/// The function of `kernel` in `ctx` (made current first), with its dynamic shared-memory limit raised to
/// `smem_bytes` when that is above the default 48 KB.
pub fn function_in(ctx: CUcontext, kernel: CUkernel, smem_bytes: u32) -> Result<CUfunction, GpuError> {
    let mut f = std::ptr::null_mut();
    // SAFETY: live context and kernel handles; valid out-pointer.
    unsafe {
        check("cuCtxSetCurrent", sys::cuCtxSetCurrent(ctx))?;
        check("cuKernelGetFunction", sys::cuKernelGetFunction(&mut f, kernel))?;
        if smem_bytes > 48 * 1024 {
            check(
                "cuFuncSetAttribute",
                sys::cuFuncSetAttribute(
                    f,
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    smem_bytes as i32,
                ),
            )?;
        }
    }
    Ok(f)
}

/// Kernel parameters, each at most 8 bytes (pointers, integers, floats), in declaration order.
#[derive(Debug, Default, Clone)]
pub struct Params {
    values: Vec<u64>,
}

impl Params {
    /// No parameters yet.
    pub fn new() -> Params {
        Params::default()
    }

    /// A device pointer.
    pub fn ptr(mut self, p: CUdeviceptr) -> Params {
        self.values.push(p);
        self
    }

    /// A 32-bit signed integer.
    pub fn i32(mut self, v: i32) -> Params {
        self.values.push(v as u32 as u64);
        self
    }

    /// A 32-bit float.
    pub fn f32(mut self, v: f32) -> Params {
        self.values.push(v.to_bits() as u64);
        self
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Grid, block and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Blocks (x, y, z).
    pub grid: (u32, u32, u32),
    /// Threads per block (x, y, z).
    pub block: (u32, u32, u32),
    /// Dynamic shared memory in bytes.
    pub smem: u32,
}

/// Launches `f` on `stream`. Each parameter slot is 8 bytes; the driver reads as many bytes as the kernel's
/// parameter type has (little-endian, so a 4-byte `int` or `float` reads the low half).
pub fn launch(f: CUfunction, cfg: LaunchConfig, stream: CUstream, params: &Params) -> Result<(), GpuError> {
    let mut values = params.values.clone();
    let mut ptrs: Vec<*mut c_void> = values.iter_mut().map(|v| v as *mut u64 as *mut c_void).collect();
    // SAFETY: `ptrs` points at `values`, which outlive the call; the kernel's signature matches the builder's
    // order (each kernel has one launcher in `layer.rs`).
    check("cuLaunchKernel", unsafe {
        sys::cuLaunchKernel(
            f,
            cfg.grid.0,
            cfg.grid.1,
            cfg.grid.2,
            cfg.block.0,
            cfg.block.1,
            cfg.block.2,
            cfg.smem,
            stream,
            ptrs.as_mut_ptr(),
            std::ptr::null_mut(),
        )
    })
}

/// Page-locked host memory (copies from it are truly asynchronous); freed on drop.
pub struct PinnedBuffer {
    ptr: *mut c_void,
    /// Size in bytes.
    pub bytes: usize,
}

impl PinnedBuffer {
    /// Allocates `bytes` (at least 1) of page-locked host memory.
    pub fn alloc(bytes: usize) -> Result<PinnedBuffer, GpuError> {
        let mut ptr = std::ptr::null_mut();
        // SAFETY: valid out-pointer.
        check("cuMemAllocHost", unsafe { sys::cuMemAllocHost_v2(&mut ptr, bytes.max(1)) })?;
        Ok(PinnedBuffer { ptr, bytes: bytes.max(1) })
    }

    /// Copies `parts` (each a slice of 4-byte values) back to back into the buffer, then enqueues one copy of
    /// each part to its device address on `stream`. The buffer must not be rewritten before the copies ran.
    pub fn upload_async(&mut self, parts: &[(&[i32], CUdeviceptr)], stream: CUstream) -> Result<(), GpuError> {
        self.upload_async_at(0, parts, stream)
    }

    /// [`PinnedBuffer::upload_async`] staging at byte `offset` (several uploads in flight use disjoint regions).
    pub fn upload_async_at(
        &mut self,
        offset: usize,
        parts: &[(&[i32], CUdeviceptr)],
        stream: CUstream,
    ) -> Result<(), GpuError> {
        let total: usize = parts.iter().map(|(p, _)| std::mem::size_of_val(*p)).sum();
        if offset + total > self.bytes {
            return Err(GpuError::Invalid(format!(
                "{total} B of metadata at offset {offset} for a {} B staging buffer",
                self.bytes
            )));
        }
        let mut off = offset;
        for (p, dst) in parts {
            let n = std::mem::size_of_val(*p);
            // SAFETY: `off + n <= self.bytes` (offset + total checked above); the source slice is valid for `n` bytes; the copy is
            // stream-ordered and the caller keeps the buffer untouched until it ran.
            unsafe {
                let src = (self.ptr as *mut u8).add(off);
                std::ptr::copy_nonoverlapping(p.as_ptr() as *const u8, src, n);
                if n > 0 {
                    check("cuMemcpyHtoDAsync", sys::cuMemcpyHtoDAsync_v2(*dst, src as *const c_void, n, stream))?;
                }
            }
            off += n;
        }
        Ok(())
    }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated by `alloc`, freed once.
        unsafe {
            sys::cuMemFreeHost(self.ptr);
        }
    }
}
