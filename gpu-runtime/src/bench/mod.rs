//! The calibration microbenchmarks (`duet-gpu calibrate`): plan, timing, records and summary.
//!
//! [`calibrate`] opens the device session ([`crate::device::Setup`]: the split menu from what the device reports, every
//! green-context partition, the kernels compiled and checked), then measures projections, elementwise operators,
//! bandwidth, decode and prefill attention on every SM count of the plan, launch and stream-switch overheads, graph
//! launches ([`graph`]), co-running slowdowns, and mixed prefill+decode attention against its parts ([`mixed`]),
//! and writes the files listed in [`records`].

pub mod graph;
pub mod mixed;
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
use crate::check::CheckResult;
use crate::device::{Setup, choose_prefill_kernel, open_identified};
use crate::driver::DeviceFacts;
use crate::error::GpuError;
use crate::ops::PrefillKernel;

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
    /// Graph-launch rows (`graph.csv`).
    pub graph_launch: Vec<duet_calibration::launch::GraphLaunchSample>,
    /// Mixed prefill+decode attention against its parts (`mixed.csv`).
    pub mixed_attention: Vec<mixed::MixedRow>,
    /// Records written.
    pub records: usize,
    /// Wall time of the whole run (s).
    pub wall_s: f64,
}

/// Runs the calibration; progress lines go to `log`.
pub fn calibrate(cfg: &CalibrateConfig, log: &mut dyn FnMut(&str)) -> Result<CalibrationSummary, GpuError> {
    let start = Instant::now();
    let (gpu, identity, gpu_name) = open_identified(cfg.gpu.as_deref(), log)?;
    // Marked partial until summary.json is written (records.jsonl grows as records are measured).
    records::write(&cfg.out, PARTIAL_MARKER, PARTIAL_TEXT)?;
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
    let mut graph_rows = Vec::new();
    for b in [whole, &ga, &gb] {
        for nodes in graph::GRAPH_NODES {
            let row = graph::graph_launch(b, nodes, 200)?;
            log(&format!(
                "graph launch {} SMs, {} kernels: eager {:.1} us (host {:.1}), graph {:.1} us (host {:.1})",
                row.sms, row.nodes, row.eager_step_us, row.eager_host_us, row.graph_step_us, row.graph_host_us
            ));
            graph_rows.push(row);
        }
    }
    gpu.bind()?;
    records::write(&cfg.out, "graph.csv", &duet_calibration::launch::graph_csv(&graph_rows))?;
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
    let mixed_rows = bench.mixed_attention(prefill_kernel, cfg.options.quick)?;
    records::write(&cfg.out, "mixed.csv", &mixed::mixed_csv(&mixed_rows))?;
    if let Some(e) = sink.error() {
        return Err(GpuError::Invalid(format!("records.jsonl could not be appended to: {e}")));
    }

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
        graph_launch: graph_rows,
        mixed_attention: mixed_rows,
        records: recs.len(),
        wall_s: start.elapsed().as_secs_f64(),
    };
    write_summary(&cfg.out, &summary)?;
    Ok(summary)
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

/// A file present while a calibration folder is incomplete (the run is measuring, or stopped before its summary).
pub const PARTIAL_MARKER: &str = "PARTIAL";

const PARTIAL_TEXT: &str = "This calibration has not finished: records.jsonl holds the records measured so far; \
summary.json appears, and this file goes, when it completes.\n";

fn write_summary(dir: &Path, s: &CalibrationSummary) -> Result<(), GpuError> {
    records::write(dir, "summary.json", &serde_json::to_string_pretty(s).expect("serialisable"))?;
    let marker = dir.join(PARTIAL_MARKER);
    if marker.exists() {
        std::fs::remove_file(&marker).map_err(|source| GpuError::Io { path: marker.clone(), source })?;
    }
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
    use crate::menu::{Menu, SmInfo};

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
