//! Argument definitions (clap derive); `main.rs` parses them and dispatches to the command modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
pub use duet_args::{SimArgs, WorkloadArgs};

/// duet: how should prefill and decode share a GPU? Simulate LLM-serving schedulers on real traces.
#[derive(Debug, Parser)]
#[command(name = "duet", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand given.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands, one per `*_cmd` module or `commands` function (dispatched in `main.rs`).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate a trace under a scheduling policy and report TTFT/TPOT/ITL/TBT/E2EL, throughput and goodput.
    Sim(SimCommand),
    /// Run a sweep file (policies x rates x traces x models x ... x seeds) in parallel, resumably; write
    /// results.parquet and results.csv (one row per point) and each point's summary.json.
    Sweep(SweepArgs),
    /// Highest request rate at which each point of a sweep file meets the [capacity] limits (bisection).
    Capacity(CapacityArgs),
    /// Figures (PNG and SVG) and a Markdown summary from a sweep's results.
    Report(ReportArgs),
    /// Time repeated simulations and report wall time and peak memory (for docs/PERFORMANCE.md); `duet bench
    /// serve` takes `vllm bench serve`'s options and prints its report as predicted by an engine preset.
    #[command(args_conflicts_with_subcommands = true)]
    Bench(BenchArgs),
    /// Inspect, convert, generate and time-load traces.
    #[command(subcommand)]
    Trace(TraceCommand),
    /// List the bundled models.
    Models,
    /// List the bundled GPUs.
    Gpus,
    /// Compare the roofline's linear operators with measured kernel times (a Vidur `*.mlp.csv` profile).
    RooflineCheck(RooflineArgs),
    /// Fit GPU profiles from measurements and check their accuracy.
    #[command(subcommand)]
    Calibrate(CalibrateCommand),
    /// Compare the simulator with a device run (`duet-gpu replay`) of the same trace window, model and policy:
    /// per-step cost-model error and TTFT/ITL/TBT/throughput error.
    Validate(ValidateArgs),
    /// Replay a trace window in wall-clock mode (on an H100: `duet-gpu replay`; here only on a fake device with
    /// --dry-run) and write what `duet validate` reads.
    Replay(ReplayArgs),
}

/// Options of `duet replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub sim: SimArgs,
    /// Output folder: summary.json, requests.csv, decisions.csv, iterations.csv, steps.csv.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace the results of an earlier run in --out (only duet's own files are removed).
    #[arg(long)]
    pub overwrite: bool,
    /// Run on a fake device whose steps take the cost model's time x --device-scale.
    #[arg(long)]
    pub dry_run: bool,
    /// The fake device's speed relative to the cost model (1.1 = 10% slower).
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    pub device_scale: f64,
}

/// Options of `duet validate`: the `duet sim` options the device run used, and where it is.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub sim: SimArgs,
    /// The device run's output folder (steps.csv, summary.json).
    #[arg(long, value_name = "DIR")]
    pub replay: PathBuf,
    /// Write validation.md, validation.json, steps_validation.csv, figures (step scatter, TTFT and TBT CDFs) and
    /// timeline.json (a Perfetto trace: simulated and measured steps per partition, one above the other) here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `duet calibrate ...`.
#[derive(Debug, Subcommand)]
pub enum CalibrateCommand {
    /// Fit a profile from measurement records (JSONL) or Vidur profiling CSVs.
    Fit {
        /// Measurement files: `.csv` = Vidur `*.mlp.csv` (ms), anything else = duet JSONL records; `duet-gpu
        /// calibrate`'s `corun.csv` (contention), `mixed.csv` (mixed-batch attention penalty) and `graph.csv`
        /// (graph launch per decode step) are recognised by their headers.
        #[arg(long, required = true, num_args = 1..)]
        measured: Vec<PathBuf>,
        /// GPU the measurements come from (identity, SM count, datasheet starting point).
        #[arg(long, default_value = "h100-sxm")]
        gpu: String,
        /// Output profile JSON.
        #[arg(long)]
        out: PathBuf,
    },
    /// Report a profile's error against measurements, per operator class and overall.
    Check {
        /// Profile: bundled name, path, or `datasheet` (the unfitted analytic curves of --gpu).
        #[arg(long, default_value = "h100-sxm")]
        profile: String,
        /// Measurement files (as for `fit`).
        #[arg(long, required = true, num_args = 1..)]
        measured: Vec<PathBuf>,
        /// GPU (for the SM count of Vidur CSVs and for `datasheet`).
        #[arg(long, default_value = "h100-sxm")]
        gpu: String,
        /// Write every prediction beside its measurement to this CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Worst cases to list.
        #[arg(long, default_value_t = 5)]
        worst: usize,
    },
}

/// Options of `duet sim`.
#[derive(Debug, Args)]
pub struct SimCommand {
    #[command(flatten)]
    pub sim: SimArgs,
    /// Write summary.json (vLLM key names), requests.csv, decisions.csv and iterations.csv into this directory:
    /// staged beside it and moved into place when complete (a folder is complete or absent).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace the results of an earlier run in --out (only duet's own files are removed).
    #[arg(long)]
    pub overwrite: bool,
    /// Write the run as a Chrome/Perfetto trace (JSON trace-event format): one track per SM partition, request
    /// arrivals and first tokens as instant events; open it in ui.perfetto.dev.
    #[arg(long, value_name = "FILE")]
    pub timeline: Option<PathBuf>,
}

/// Options of `duet bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// `duet bench serve`.
    #[command(subcommand)]
    pub serve: Option<BenchCommand>,
    #[command(flatten)]
    pub sim: SimArgs,
    /// Number of timed runs (after one warm-up run).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

/// Subcommands of `duet bench`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Predict a `vllm bench serve` run: its options (`--dataset-name random --random-input-len I
    /// --random-output-len O --num-prompts N --request-rate R --max-concurrency C ...`) plus `--gpu` and
    /// `--engine`; prints its "Serving Benchmark Result" block (and `--save-result` JSON).
    Serve(Box<crate::serve_cmd::ServeArgs>),
}

/// Options of `duet sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Sweep file (TOML; see docs/SWEEPS.md and scripts/sweeps/example.toml).
    pub config: PathBuf,
    /// Output directory (default: the file's `out`, else results/NAME).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run only shard I of N (points with index % N == I - 1), e.g. 2/3; writes results.shard-I-of-N.*.
    /// A later run without --shard finds every point done and writes the full results table.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Only list the points (of the shard): index, id, done or pending, label and `duet sim` arguments.
    #[arg(long)]
    pub list: bool,
}

/// Options of `duet capacity`.
#[derive(Debug, Args)]
pub struct CapacityArgs {
    /// Sweep file with a [capacity] table and no `rate` (see docs/SWEEPS.md).
    pub config: PathBuf,
    /// Also write capacity.csv and capacity.parquet into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Only check the file and list its points (each at the search's `low` rate) with their `duet sim` arguments
    /// and the workload each loads, without searching.
    #[arg(long)]
    pub list: bool,
}

/// Options of `duet report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// results.parquet or results.csv of a sweep, or the sweep's output directory.
    pub results: PathBuf,
    /// Output directory (default: figures/ beside the results).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Request rate of the CDF and partition-timeline figures (default: the middle rate, when the sweep stored
    /// per-point details).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Seconds of partition timeline to draw (from 1 s before the first split).
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub timeline_seconds: f64,
    /// `duet calibrate check --csv` output: adds a predicted-vs-measured scatter plot (repeatable).
    #[arg(long, value_name = "CSV")]
    pub calibration: Vec<PathBuf>,
}

/// `duet trace ...`.
#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Rows, span, mean rate, inter-arrival CV, per-minute peak, token statistics, prefix-block reuse.
    Stats {
        /// Trace file (any supported format).
        file: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Keep only BurstGPT rows of this model.
        #[arg(long, value_name = "MODEL")]
        burstgpt_model: Option<String>,
        /// Keep only BurstGPT rows of this log type.
        #[arg(long, value_name = "TYPE")]
        burstgpt_log: Option<String>,
    },
    /// Convert a timed trace to duet's canonical format (OUT ending in .csv or .jsonl).
    Convert {
        /// Input trace (any supported timed format).
        input: PathBuf,
        /// Output file, .csv or .jsonl.
        output: PathBuf,
    },
    /// Generate a synthetic workload (or transform a trace) and write it in canonical format.
    Gen {
        #[command(flatten)]
        workload: Box<WorkloadArgs>,
        /// Output file, .csv or .jsonl.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Time loading a trace (one warm-up, then --runs loads): for docs/PERFORMANCE.md.
    Bench {
        /// Trace file.
        file: PathBuf,
        /// Timed loads.
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
}

/// Options of `duet roofline-check`.
#[derive(Debug, Args)]
pub struct RooflineArgs {
    /// Vidur profile CSV (times in ms).
    #[arg(long, default_value = "../shared/kernel-profiles/vidur/h100/Llama-2-7b-hf.mlp.csv")]
    pub profile: PathBuf,
    /// GPU the profile was measured on.
    #[arg(long, default_value = "h100-sxm")]
    pub gpu: String,
    /// Tensor-parallel degree of the rows to compare.
    #[arg(long, default_value_t = 1)]
    pub tp: u64,
    /// Print every row, not only the summary.
    #[arg(long)]
    pub rows: bool,
}
