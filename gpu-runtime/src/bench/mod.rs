//! The calibration microbenchmarks (`duet-gpu calibrate`): plan, timing, records and summary.
//!
//! [`calibrate`] opens the GPU, builds the split menu from what the device reports, creates every green-context
//! partition, compiles and checks the kernels, then measures projections, elementwise operators, bandwidth,
//! decode and prefill attention on every SM count of the plan, launch and stream-switch overheads, and
//! co-running slowdowns, and writes the files listed in [`records`].

pub mod plan;
pub mod records;
pub mod run;
pub mod stats;
pub mod summary;

use std::path::{Path, PathBuf};
use std::time::Instant;

use duet_sim::model::ModelSpec;
use serde::Serialize;

use self::plan::{BenchOptions, BenchPlan};
use self::records::CorunRow;
use self::run::{Bench, Overheads, bind_all};
use self::summary::{SmRow, saturation_sms, table};
use crate::check::{CheckResult, CheckShapes, Checker, check_attention, check_dense};
use crate::driver::{DeviceFacts, Gpu};
use crate::error::GpuError;
use crate::gemm::Gemm;
use crate::green::Partitions;
use crate::kernels::{self, KernelConfig};
use crate::menu::Menu;
use crate::ops::{Kernels, PrefillKernel};
use crate::probe;

/// What `duet-gpu calibrate` needs.
#[derive(Debug, Clone)]
pub struct CalibrateConfig {
    /// The model whose shapes are measured (per GPU).
    pub model: ModelSpec,
    /// Output folder.
    pub out: PathBuf,
    /// Plan options.
    pub options: BenchOptions,
    /// Extra folders to look for CUDA headers in (Python site-packages).
    pub include_search: Vec<PathBuf>,
    /// `--gpu`, if given: must name the GPU the device is ([`crate::identity::resolve_gpu`]).
    pub gpu: Option<String>,
}

/// Everything `summary.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationSummary {
    /// Device facts.
    pub device: DeviceFacts,
    /// The device's identity (driver facts and `nvidia-smi` clocks).
    pub identity: crate::identity::DeviceIdentity,
    /// The bundled GPU the device is (`duet calibrate fit --gpu` takes it).
    pub gpu: String,
    /// Green-context splits the driver refused.
    pub skipped_splits: Vec<crate::green::SkippedSplit>,
    /// Model measured.
    pub model: String,
    /// Green-context splits offered (decode SMs, prefill SMs), actual counts.
    pub splits: Vec<(u32, u32)>,
    /// CUDA include folder found (or none).
    pub include_dir: Option<String>,
    /// Libraries found.
    pub libraries: Vec<String>,
    /// Kernel checks.
    pub checks: Vec<CheckResult>,
    /// Per SM count headline numbers.
    pub per_sms: Vec<SmRow>,
    /// Smallest SM count at which decode attention reaches 90% of its best bandwidth.
    pub decode_attn_saturation_sms: Option<u32>,
    /// Decode attention's best bandwidth on the whole GPU over the measured copy bandwidth there.
    pub decode_attn_fraction_of_copy_bw: f64,
    /// The prefill-attention kernel measured.
    pub prefill_kernel: PrefillKernel,
    /// Prefill attention's best throughput on the whole GPU over the best projection throughput there.
    pub prefill_attn_fraction_of_gemm: f64,
    /// Launch and stream-switch overheads.
    pub overheads: Option<Overheads>,
    /// Co-running slowdowns.
    pub contention: Vec<CorunRow>,
    /// Records written.
    pub records: usize,
    /// Wall time of the whole run (s).
    pub wall_s: f64,
}

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

/// Runs the calibration; progress lines go to `log`.
pub fn calibrate(cfg: &CalibrateConfig, log: &mut dyn FnMut(&str)) -> Result<CalibrationSummary, GpuError> {
    let start = Instant::now();
    let gpu = Gpu::open(0)?;
    let identity = gpu.identity();
    let gpu_name = crate::identity::resolve_gpu(&identity, cfg.gpu.as_deref())?;
    log(&format!("device {} is {gpu_name}; clocks {:?}", identity.name, identity.smi));
    records::write(
        &cfg.out,
        "device.json",
        &serde_json::to_string_pretty(
            &serde_json::json!({ "gpu": gpu_name, "identity": identity, "facts": gpu.facts }),
        )
        .expect("serialisable"),
    )?;
    let setup = Setup::open_on(gpu, &cfg.model, &cfg.include_search, log)?;
    let m = &cfg.model;
    let checks = setup.checks(m, log)?;
    records::write(&cfg.out, "checks.json", &serde_json::to_string_pretty(&checks).expect("serialisable"))?;
    let prefill_kernel = choose_prefill_kernel(&checks);
    log(&format!("prefill attention kernel for the measurements: {}", prefill_kernel.name()));
    let (gpu, parts, kernels, gemm) = (&setup.gpu, &setup.parts, &setup.kernels, &setup.gemm);
    let f = gpu.facts.clone();
    let (include_dir, libraries) = (setup.include_dir.clone(), setup.libraries.clone());
    let plan = BenchPlan::new(m, &parts.menu, &cfg.options)?;
    let bound = bind_all(parts, kernels, &plan)?;
    let whole = bound.last().expect("plan includes the whole GPU");

    // Overheads on the whole GPU and the first green pair; contention on the plan's splits.
    let pair = &parts.pairs[0];
    let ga = crate::bench::run::Bound { part: &pair.group, ops: kernels.bind(&pair.group)? };
    let gb = crate::bench::run::Bound { part: &pair.remainder, ops: kernels.bind(&pair.remainder)? };
    let overheads = run::overheads(whole, &ga, &gb, 2000)?;
    gpu.bind()?;
    log(&format!("overheads: {overheads:?}"));
    let up = plan::projections(m)[2];
    let mut contention = Vec::new();
    for &(d, _p) in &plan.contention {
        let (dp, pp) = parts.split(d)?;
        let dec = crate::bench::run::Bound { part: dp, ops: kernels.bind(dp)? };
        let pre = crate::bench::run::Bound { part: pp, ops: kernels.bind(pp)? };
        let row = run::contention(gemm, &dec, &pre, &up, plan.rounds)?;
        gpu.bind()?;
        let (sd, sp) = row.slowdowns();
        log(&format!(
            "contention {}+{} SMs: decode GEMM +{:.1}%, prefill GEMM +{:.1}%",
            row.decode_sms,
            row.prefill_sms,
            100.0 * sd,
            100.0 * sp
        ));
        contention.push(row);
    }
    records::write(&cfg.out, "corun.csv", &records::corun_csv(&contention))?;

    // Every record is appended to records.jsonl as it is measured, so a run cut short keeps what it measured.
    let sink = records::Appender::create(&cfg.out, "records.jsonl")?;
    let mut bench = Bench { gpu, gemm, model: m, plan: &plan, parts: bound, log, sink: &sink };
    let bw = bench.bandwidth()?;
    records::write(&cfg.out, "bandwidth.csv", &records::bandwidth_csv(&bw))?;
    let mut recs = bench.projections()?;
    recs.extend(bench.elementwise()?);
    recs.extend(bench.decode_attention()?);
    recs.extend(bench.prefill_attention(prefill_kernel)?);
    if let Some(e) = sink.error() {
        return Err(GpuError::Invalid(format!("records.jsonl could not be appended to: {e}")));
    }
    // Rewritten whole at the end (same records, same order).
    records::write_records(&cfg.out, &recs)?;

    let per_sms = per_sms_rows(&plan, &recs, &bw);
    let sat = saturation_sms(&per_sms.iter().map(|r| (r.sms, r.decode_attn_gbps)).collect::<Vec<_>>(), 0.9);
    let full = per_sms.last().cloned().unwrap_or_default();
    let summary = CalibrationSummary {
        device: f,
        identity,
        gpu: gpu_name,
        skipped_splits: parts.skipped.clone(),
        model: m.name.clone(),
        splits: parts.menu.splits(),
        include_dir: include_dir.map(|d| d.display().to_string()),
        libraries,
        checks,
        decode_attn_saturation_sms: sat,
        decode_attn_fraction_of_copy_bw: full.decode_attn_gbps / full.copy_gbps,
        prefill_kernel,
        prefill_attn_fraction_of_gemm: full.prefill_attn_tflops / full.gemm_tflops,
        per_sms,
        overheads: Some(overheads),
        contention,
        records: recs.len(),
        wall_s: start.elapsed().as_secs_f64(),
    };
    write_summary(&cfg.out, &summary)?;
    Ok(summary)
}

/// The tensor-core prefill kernel when every one of its checks passed, else the CUDA-core one.
pub fn choose_prefill_kernel(checks: &[CheckResult]) -> PrefillKernel {
    let tc = PrefillKernel::TensorCore.name();
    let mine: Vec<&CheckResult> = checks.iter().filter(|c| c.kernel == tc).collect();
    if !mine.is_empty() && mine.iter().all(|c| c.passed) { PrefillKernel::TensorCore } else { PrefillKernel::Simt }
}

/// Best value per SM count of each series.
pub fn per_sms_rows(
    plan: &BenchPlan,
    recs: &[duet_calibration::record::Record],
    bw: &[records::BandwidthRow],
) -> Vec<SmRow> {
    use duet_calibration::record::OpClass;
    plan.sm_counts
        .iter()
        .map(|&s| {
            let best = |op: OpClass, f: &dyn Fn(&duet_calibration::record::Record) -> f64| {
                recs.iter().filter(|r| r.sms == s && r.op == op).map(f).fold(0.0, f64::max)
            };
            let b = bw.iter().find(|b| b.sms == s);
            SmRow {
                sms: s,
                gemm_tflops: best(OpClass::Linear, &|r| r.work().flops / r.time_ms.median / 1e9),
                read_gbps: b.map_or(0.0, |b| b.read_gbps),
                copy_gbps: b.map_or(0.0, |b| b.copy_gbps),
                decode_attn_gbps: best(OpClass::AttentionDecode, &|r| kv_bytes(r) / r.time_ms.median / 1e6),
                prefill_attn_tflops: best(OpClass::AttentionPrefill, &|r| r.work().flops / r.time_ms.median / 1e9),
            }
        })
        .collect()
}

/// KV bytes a decode-attention record reads: `batch x (d_in + 1) keys x kv_heads x head_dim x 2 (K, V) x 2 B`.
pub fn kv_bytes(r: &duet_calibration::record::Record) -> f64 {
    let b = r.batch.unwrap_or(1) as f64;
    b * (r.d_in + 1) as f64 * r.kv_heads.unwrap_or(1) as f64 * r.d_out as f64 * 2.0 * r.dtype_bytes as f64
}

fn write_summary(dir: &Path, s: &CalibrationSummary) -> Result<(), GpuError> {
    records::write(dir, "summary.json", &serde_json::to_string_pretty(s).expect("serialisable"))?;
    let mut md = format!("# duet-gpu calibrate: {} on {}\n\n", s.model, s.device.name);
    md.push_str(&table(&s.per_sms));
    md.push_str(&format!(
        "\nDecode attention reaches 90% of its best bandwidth at {} SMs; on the whole GPU it achieves {:.0}% of the \
         measured copy bandwidth. Prefill attention ({}) achieves {:.0}% of the best projection throughput.\n",
        s.decode_attn_saturation_sms.map_or("?".into(), |v| v.to_string()),
        100.0 * s.decode_attn_fraction_of_copy_bw,
        s.prefill_kernel.name(),
        100.0 * s.prefill_attn_fraction_of_gemm
    ));
    records::write(dir, "summary.md", &md)
}

#[cfg(test)]
mod tests {
    use duet_calibration::record::TimeStats;

    use super::*;
    use crate::bench::plan::DecodeCase;
    use crate::menu::SmInfo;

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

    #[test]
    fn per_sms_rows_take_the_best_of_each_series() {
        let m = ModelSpec::resolve("qwen3-8b").unwrap();
        let menu = Menu::restricted(SmInfo::H100_SXM, &[16]).unwrap();
        let plan = BenchPlan::new(&m, &menu, &BenchOptions { quick: true, sms: Some(vec![16, 132]) }).unwrap();
        let p = plan.projections[2];
        // 2 x 512 x 4096 x 24576 FLOPs in 0.25 ms: 412.3 TFLOP/s; the slower record is ignored.
        let recs = vec![
            records::linear(&p, 512, 132, TimeStats::median_only(0.25)),
            records::linear(&p, 512, 132, TimeStats::median_only(0.5)),
            records::decode(&DecodeCase { batch: 64, context: 2048 }, &m, 132, TimeStats::median_only(0.1)),
        ];
        let rows = per_sms_rows(&plan, &recs, &[]);
        assert_eq!(rows.len(), 2);
        assert!((rows[1].gemm_tflops - 2.0 * 512.0 * 4096.0 * 24576.0 / 0.25e-3 / 1e12).abs() < 1e-9);
        // 64 x 2048 keys x 8 heads x 128 x 2 (K, V) x 2 B = 536,870,912 B in 0.1 ms: 5,368.7 GB/s.
        assert!((rows[1].decode_attn_gbps - 5368.70912).abs() < 1e-6, "{rows:?}");
        assert_eq!(rows[0].gemm_tflops, 0.0);
    }
}
