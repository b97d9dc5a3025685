//! The device session shared by the calibration benchmarks and the replay: the opened GPU, every green-context
//! partition, the compiled kernels and cuBLASLt ([`Setup`]), the kernel checks, and the choice of prefill-attention
//! kernel from their results ([`choose_prefill_kernel`]).

use std::path::PathBuf;
use std::time::Instant;

use duet_sim::model::ModelSpec;

use crate::check::{CheckResult, CheckShapes, Checker, check_attention, check_dense};
use crate::driver::Gpu;
use crate::error::GpuError;
use crate::gemm::Gemm;
use crate::green::Partitions;
use crate::kernels::{self, KernelConfig};
use crate::menu::Menu;
use crate::ops::{Kernels, PrefillKernel};
use crate::probe;

/// The opened GPU with every partition, the compiled kernels and cuBLASLt. Fields drop in order: cuBLASLt,
/// kernels and partitions before the primary context is released.
pub struct Setup {
    /// cuBLASLt handle and workspace.
    pub gemm: Gemm,
    /// Compiled kernels.
    pub kernels: Kernels,
    /// Whole GPU and green pairs.
    pub parts: Partitions,
    /// CUDA include folder found.
    pub include_dir: Option<PathBuf>,
    /// Library report lines.
    pub libraries: Vec<String>,
    /// The device (last: released after everything else).
    pub gpu: Gpu,
}

impl Setup {
    /// Opens device 0, creates every green-context split the device offers, compiles the kernels for `model`.
    pub fn open(model: &ModelSpec, include_search: &[PathBuf], log: &mut dyn FnMut(&str)) -> Result<Setup, GpuError> {
        Setup::open_on(Gpu::open(0)?, model, include_search, log)
    }

    /// [`Setup::open`] on a device already opened (to read its identity first).
    pub fn open_on(
        gpu: Gpu,
        model: &ModelSpec,
        include_search: &[PathBuf],
        log: &mut dyn FnMut(&str),
    ) -> Result<Setup, GpuError> {
        let f = gpu.facts.clone();
        log(&format!(
            "device: {} (compute {}.{}), {} SMs, min partition {}, alignment {} (reported {}), {:.1} GiB, L2 {} MiB, \
             driver API {}",
            f.name,
            f.compute_capability.0,
            f.compute_capability.1,
            f.sm.total,
            f.sm.min_partition,
            f.sm.alignment,
            f.sm_reported.alignment,
            f.total_mem as f64 / (1u64 << 30) as f64,
            f.l2_bytes >> 20,
            f.driver_version
        ));
        if f.compute_capability.0 < 9 {
            return Err(GpuError::Unsupported(format!(
                "{}: green contexts and these kernels need compute capability 9.0+",
                f.name
            )));
        }
        let parts = Partitions::create(&gpu, Menu::new(f.sm)?)?;
        log(&format!("green-context splits (decode, prefill): {:?}", parts.menu.splits()));
        for s in &parts.skipped {
            log(&format!("green-context split of {} SMs skipped: {}", s.requested, s.error));
        }
        let include_dir = probe::find_include_dir(&probe::include_candidates(include_search));
        log(&format!(
            "CUDA include folder: {}",
            include_dir.as_ref().map_or("none found (not needed)".into(), |d| d.display().to_string())
        ));
        let kcfg = KernelConfig::for_model(model)?;
        let t = Instant::now();
        let image = kernels::compile(&kcfg, include_dir.as_deref())?;
        gpu.bind()?;
        let kernels = Kernels::load(&image, kcfg)?;
        log(&format!(
            "kernels compiled ({}) and loaded in {:.1} s ({} bytes)",
            image.kind(),
            t.elapsed().as_secs_f64(),
            image.len()
        ));
        let gemm = Gemm::new()?;
        let libraries = probe::report();
        for l in &libraries {
            log(l);
        }
        let (free, total) = gpu.mem_info()?;
        log(&format!(
            "device memory after contexts, kernels and cuBLASLt: {:.2} GiB free of {:.2} GiB",
            free as f64 / (1u64 << 30) as f64,
            total as f64 / (1u64 << 30) as f64
        ));
        Ok(Setup { gemm, kernels, parts, include_dir, libraries, gpu })
    }

    /// Every kernel check: all kernels on the whole GPU, attention also on the smallest partition; each result is
    /// printed as it completes.
    pub fn checks(&self, model: &ModelSpec, log: &mut dyn FnMut(&str)) -> Result<Vec<CheckResult>, GpuError> {
        let shapes = CheckShapes {
            hidden: model.hidden_size as u32,
            inter: model.intermediate_size as u32,
            q_heads: model.num_q_heads as u32,
            kv_heads: model.num_kv_heads as u32,
            head_dim: model.head_dim as u32,
            max_context: model.max_context.unwrap_or(32_768),
        };
        let whole = self.kernels.bind(&self.parts.whole)?;
        self.parts.whole.bind()?;
        let mut c = Checker::new(format!("whole GPU ({} SMs)", self.parts.whole.sms), log);
        check_dense(&mut c, &whole, &self.gemm, shapes, 1)?;
        check_attention(&mut c, &whole, shapes, 2)?;
        let mut checks = std::mem::take(&mut c.out);
        drop(c);
        let small = &self.parts.pairs[0].group;
        let ops = self.kernels.bind(small)?;
        let mut c = Checker::new(format!("green group of {} SMs", small.sms), log);
        check_attention(&mut c, &ops, shapes, 3)?;
        checks.append(&mut c.out);
        self.gpu.bind()?;
        Ok(checks)
    }
}

/// Opens device 0 and says which bundled GPU it is: its identity and the GPU to simulate it as (`explicit`,
/// `--gpu`, must agree with the device: [`crate::identity::resolve_gpu`]); logs both.
pub fn open_identified(
    explicit: Option<&str>,
    log: &mut dyn FnMut(&str),
) -> Result<(Gpu, crate::identity::DeviceIdentity, String), GpuError> {
    let gpu = Gpu::open(0)?;
    let id = gpu.identity();
    let name = crate::identity::resolve_gpu(&id, explicit)?;
    log(&format!("device {} is simulated as {name}; nvidia-smi: {:?}", id.name, id.smi));
    Ok((gpu, id, name))
}

/// The tensor-core prefill kernel when every one of its checks passed, else the CUDA-core one.
pub fn choose_prefill_kernel(checks: &[CheckResult]) -> PrefillKernel {
    let tc = PrefillKernel::TensorCore.name();
    let mine: Vec<&CheckResult> = checks.iter().filter(|c| c.kernel == tc).collect();
    if !mine.is_empty() && mine.iter().all(|c| c.passed) { PrefillKernel::TensorCore } else { PrefillKernel::Simt }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tensor_core_kernel_is_used_only_when_all_its_checks_passed() {
        let c = |kernel: &str, passed: bool| CheckResult {
            kernel: kernel.into(),
            case: String::new(),
            partition: String::new(),
            error: crate::reference::compare(&[1.0], &[1.0]),
            passed,
        };
        let ok = [c("prefill_attention", true), c("prefill_attention_tc", true), c("prefill_attention_tc", true)];
        assert_eq!(choose_prefill_kernel(&ok), PrefillKernel::TensorCore);
        let bad = [c("prefill_attention_tc", true), c("prefill_attention_tc", false)];
        assert_eq!(choose_prefill_kernel(&bad), PrefillKernel::Simt);
        assert_eq!(choose_prefill_kernel(&[]), PrefillKernel::Simt, "unchecked means not trusted");
    }
}
