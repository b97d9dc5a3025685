//! Argument definitions (clap derive) and dispatch.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;

/// duet: how should prefill and decode share a GPU? Simulate LLM-serving schedulers on real traces.
#[derive(Debug, Parser)]
#[command(name = "duet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate a trace under a scheduling policy and report TTFT/TPOT/ITL/TBT/E2EL, throughput and goodput.
    Sim(SimCommand),
    /// Time repeated simulations and report wall time and peak memory (for docs/PERFORMANCE.md).
    Bench(BenchArgs),
    /// List the bundled models.
    Models,
    /// List the bundled GPUs.
    Gpus,
    /// Compare the roofline's linear operators with measured kernel times (a Vidur `*.mlp.csv` profile).
    RooflineCheck(RooflineArgs),
}

/// Workload, model, GPU, policy and SLO options shared by `sim` and `bench`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Trace file; format detected from extension and header (Azure `TIMESTAMP,ContextTokens,GeneratedTokens`
    /// CSV). Default: the bundled excerpt of the Azure 2023 conversation trace (first 1,000 requests).
    #[arg(long, value_name = "PATH")]
    pub trace: Option<PathBuf>,
    /// Instead of the trace's arrivals, generate N requests with Poisson arrivals at --rate req/s (default: the
    /// trace's mean rate); lengths are sampled from the trace unless --input-tokens/--output-tokens fix them.
    #[arg(long, value_name = "N")]
    pub synthetic: Option<usize>,
    /// Fixed prompt length in tokens for --synthetic.
    #[arg(long, value_name = "TOKENS", requires = "synthetic", requires = "output_tokens")]
    pub input_tokens: Option<u32>,
    /// Fixed output length in tokens for --synthetic.
    #[arg(long, value_name = "TOKENS", requires = "synthetic", requires = "input_tokens")]
    pub output_tokens: Option<u32>,
    /// Keep only the first N requests (after any rate change).
    #[arg(long, value_name = "N")]
    pub num_requests: Option<usize>,
    /// Multiply the arrival rate by F (arrival times are divided by F).
    #[arg(long, value_name = "F", conflicts_with = "rate")]
    pub rate_scale: Option<f64>,
    /// Rescale arrivals to a mean rate of R requests/s (mean rate = (n - 1) / (last - first arrival)); with
    /// --synthetic, the Poisson rate.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Model: a bundled name (see `duet models`) or a path to a Hugging Face config.json.
    #[arg(long, default_value = "qwen3-8b")]
    pub model: String,
    /// GPU: h100-sxm, h200 or a100-80gb (see `duet gpus`).
    #[arg(long, default_value = "h100-sxm")]
    pub gpu: String,
    /// Use only this many SMs of the GPU (default: all of them).
    #[arg(long, value_name = "SMS")]
    pub num_sms: Option<u32>,
    /// Scheduling policy: chunked (vLLM v1 / Sarathi-Serve) or prefill-first (SGLang default / vLLM v0).
    #[arg(long, default_value = "chunked")]
    pub policy: String,
    /// Tokens per iteration (chunked, default 2048) or prefill tokens per prefill batch (prefill-first,
    /// default 8192).
    #[arg(long, value_name = "TOKENS")]
    pub token_budget: Option<u32>,
    /// Per-iteration CPU scheduling and launch overhead, microseconds (default 1000).
    #[arg(long, value_name = "US")]
    pub iteration_overhead_us: Option<u64>,
    /// Fraction of GPU memory for weights, activations and KV cache (default 0.9).
    #[arg(long, value_name = "FRACTION")]
    pub gpu_memory_utilization: Option<f64>,
    /// Set the KV cache to exactly this many 16-token blocks instead of deriving it from GPU memory.
    #[arg(long, value_name = "BLOCKS")]
    pub kv_blocks: Option<u32>,
    /// TTFT SLO in milliseconds (a request is good only if its TTFT <= this).
    #[arg(long, value_name = "MS")]
    pub slo_ttft_ms: Option<f64>,
    /// TBT SLO in milliseconds, applied to each request's largest inter-token gap.
    #[arg(long, value_name = "MS")]
    pub slo_tbt_ms: Option<f64>,
    /// TPOT SLO in milliseconds ((E2EL - TTFT) / (output tokens - 1)).
    #[arg(long, value_name = "MS")]
    pub slo_tpot_ms: Option<f64>,
    /// Seed for every random draw (synthetic arrivals and sampled lengths).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Options of `duet sim`.
#[derive(Debug, Args)]
pub struct SimCommand {
    #[command(flatten)]
    pub sim: SimArgs,
    /// Write summary.json (vLLM key names) and requests.csv into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Options of `duet bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub sim: SimArgs,
    /// Number of timed runs (after one warm-up run).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
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

/// Parses the command line and runs the command.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(a) => commands::sim(&a.sim, a.out.as_deref()),
        Command::Bench(a) => commands::bench(&a.sim, a.runs),
        Command::Models => commands::models(),
        Command::Gpus => commands::gpus(),
        Command::RooflineCheck(a) => commands::roofline_check(&a),
    }
}
