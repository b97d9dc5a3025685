//! `duet-gpu`: the GPU runtime's command line (device facts, kernel checks, calibration microbenchmarks).
//!
//! Every GPU command fails with a clear message and a non-zero exit status on a machine without a CUDA driver
//! ("no CUDA driver found: ..."); `duet-gpu libs` works anywhere and says which CUDA libraries were found.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use duet_gpu::bench::plan::BenchOptions;
use duet_gpu::bench::{CalibrateConfig, calibrate};
use duet_gpu::device::Setup;
use duet_sim::model::ModelSpec;

#[derive(Parser)]
#[command(name = "duet-gpu", version, about = "duet's GPU runtime: green-context partitions, kernels, calibration")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Which CUDA libraries this machine has (no GPU needed).
    Libs,
    /// Device facts and the green-context split menu.
    Info,
    /// Compile the kernels for a model and write the PTX (needs NVRTC only, no GPU).
    Ptx {
        #[command(flatten)]
        model: ModelArgs,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Kernel correctness against float64 CPU references.
    Check {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Replay a trace window under a policy on the GPU (the `duet sim` options; --granularity green), writing
    /// summary.json, requests.csv, decisions.csv, iterations.csv, steps.csv and replay.json for `duet validate`.
    Replay {
        #[command(flatten)]
        sim: Box<duet_args::SimArgs>,
        /// Output folder (created).
        #[arg(long)]
        out: PathBuf,
        /// Run look-ahead steps eagerly instead of from CUDA graphs.
        #[arg(long)]
        no_graphs: bool,
        /// Python site-packages folders to search for CUDA headers (NVIDIA wheels).
        #[arg(long)]
        site_packages: Vec<PathBuf>,
        /// Replay even when kernel checks failed (replay.json lists them).
        #[arg(long)]
        allow_failed_checks: bool,
    },
    /// Microbenchmarks on every SM partition; writes measurement records for `duet calibrate fit`.
    Calibrate {
        #[command(flatten)]
        model: ModelArgs,
        /// Output folder (created).
        #[arg(long)]
        out: PathBuf,
        /// Fewer token counts and cases.
        #[arg(long)]
        quick: bool,
        /// Only these SM counts (comma-separated, each a partition of the GPU); the whole GPU is always added.
        #[arg(long, value_delimiter = ',')]
        sms: Option<Vec<u32>>,
        /// The GPU this is (h100-sxm, h200, a100-80gb); default: detected from the device, and refused when it
        /// contradicts the device.
        #[arg(long)]
        gpu: Option<String>,
    },
}

#[derive(clap::Args)]
struct ModelArgs {
    /// Bundled model name or a Hugging Face config.json.
    #[arg(long, default_value = "qwen3-8b")]
    model: String,
    /// Tensor-parallel degree: measure one GPU's shard.
    #[arg(long, default_value_t = 1)]
    tp: u32,
    /// Python site-packages folders to search for CUDA headers (NVIDIA wheels).
    #[arg(long)]
    site_packages: Vec<PathBuf>,
}

impl ModelArgs {
    fn model(&self) -> Result<ModelSpec> {
        let m = ModelSpec::resolve(&self.model)?;
        Ok(m.shard(self.tp)?)
    }
}

fn log(line: &str) {
    println!("{line}");
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Libs => {
            for l in duet_gpu::probe::report() {
                println!("{l}");
            }
        }
        Cmd::Info => {
            let gpu = duet_gpu::driver::Gpu::open(0)?;
            println!("{}", serde_json::to_string_pretty(&gpu.facts)?);
            let id = gpu.identity();
            println!("nvidia-smi: {:?}", id.smi);
            match duet_gpu::identity::resolve_gpu(&id, None) {
                Ok(g) => println!("simulated as: {g} (bundled profile calibration/profiles/{g}.json)"),
                Err(e) => println!("simulated as: none ({e})"),
            }
            let (free, total) = gpu.mem_info()?;
            println!("memory: {:.2} GiB free of {:.2} GiB", free as f64 / 1073741824.0, total as f64 / 1073741824.0);
            let menu = duet_gpu::menu::Menu::new(gpu.facts.sm)?;
            println!("splits (decode, prefill) before creation: {:?}", menu.splits());
        }
        Cmd::Ptx { model, out } => {
            let m = model.model()?;
            let cfg = duet_gpu::kernels::KernelConfig::for_model(&m)?;
            let inc = duet_gpu::probe::find_include_dir(&duet_gpu::probe::include_candidates(&model.site_packages));
            let ptx = duet_gpu::kernels::compile_ptx(&cfg, inc.as_deref())?;
            std::fs::write(&out, ptx).with_context(|| format!("writing {}", out.display()))?;
            println!("{}: {cfg:?} -> {}", m.name, out.display());
        }
        Cmd::Check { model } => {
            let m = model.model()?;
            let setup = Setup::open(&m, &model.site_packages, &mut log)?;
            let checks = setup.checks(&m, &mut log)?;
            let failed: Vec<_> = checks.iter().filter(|c| !c.passed).map(|c| c.kernel.clone()).collect();
            if !failed.is_empty() {
                bail!("{} of {} kernel checks failed: {failed:?}", failed.len(), checks.len());
            }
            println!("all {} kernel checks passed", checks.len());
        }
        Cmd::Replay { sim, out, no_graphs, site_packages, allow_failed_checks } => {
            duet_gpu::probe::require_driver()?;
            let o = duet_gpu::replay::run::ReplayOptions {
                out,
                graphs: !no_graphs,
                include_search: site_packages,
                allow_failed_checks,
            };
            duet_gpu::replay::run::replay(&sim, &o, &mut log)?;
        }
        Cmd::Calibrate { model, out, quick, sms, gpu } => {
            let m = model.model()?;
            // Fail on a missing driver before creating anything.
            duet_gpu::probe::require_driver()?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let cfg = CalibrateConfig {
                model: m,
                out: out.clone(),
                options: BenchOptions { quick, sms },
                include_search: model.site_packages.clone(),
                gpu,
            };
            let s = calibrate(&cfg, &mut log)?;
            println!("{}", std::fs::read_to_string(out.join("summary.md"))?);
            println!("{} records in {:.0} s under {}", s.records, s.wall_s, out.display());
            let failed = s.checks.iter().filter(|c| !c.passed).count();
            if failed > 0 {
                bail!("{failed} kernel checks failed (see checks.json); attention measurements are not trustworthy");
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
