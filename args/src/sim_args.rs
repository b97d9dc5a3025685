//! The options of `duet sim` (workload, model, GPU, policy, cost model, SLOs, cluster), shared by every command
//! that runs a simulation or a replay: `duet sim`, `bench`, `validate`, `replay` and `duet-gpu replay`.

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};

/// Where requests come from and how they are transformed. Transforms apply in this order: rate change, time
/// window, length filters, length caps, length shuffle, first N; then the model's context limit is checked.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct WorkloadArgs {
    /// Trace file; format detected from extension and header: Azure 2023/2024 CSV, BurstGPT CSV,
    /// Vidur/Splitwise CSV, length-only CSV (e.g. ShareGPT stats), Mooncake JSONL, duet canonical CSV/JSONL.
    /// Default: the bundled excerpt of the Azure 2023 conversation trace (first 1,000 requests).
    #[arg(long, value_name = "PATH")]
    pub trace: Option<PathBuf>,
    /// Keep only BurstGPT rows of this model (ChatGPT, GPT-4).
    #[arg(long, value_name = "MODEL")]
    pub burstgpt_model: Option<String>,
    /// Keep only BurstGPT rows of this log type (Conversation, API).
    #[arg(long, value_name = "TYPE")]
    pub burstgpt_log: Option<String>,
    /// Generate N requests instead of replaying the trace's arrivals: arrivals from --arrivals at --rate
    /// (default: the trace's mean rate), lengths from --input-len/--output-len or else drawn from the trace.
    #[arg(allow_negative_numbers = true, long, value_name = "N")]
    pub synthetic: Option<usize>,
    /// Arrival process for --synthetic and length-only traces: poisson, gamma:cv=C (burstiness), constant,
    /// burst.
    #[arg(long, value_name = "PROCESS", default_value = "poisson")]
    pub arrivals: String,
    /// Prompt lengths for --synthetic: N (fixed), uniform:LO,HI, lognormal:mean=M,cv=C, zipf:max=N,s=S.
    #[arg(long, value_name = "DIST", requires = "synthetic", requires = "output_len")]
    pub input_len: Option<String>,
    /// Output lengths for --synthetic (same forms as --input-len).
    #[arg(long, value_name = "DIST", requires = "synthetic", requires = "input_len")]
    pub output_len: Option<String>,
    /// Multiply the arrival rate by F (arrival times are divided by F).
    #[arg(allow_negative_numbers = true, long, value_name = "F", conflicts_with = "rate")]
    pub rate_scale: Option<f64>,
    /// Mean arrival rate in requests/s: rescales a trace's arrivals so that (n - 1) / (last - first arrival)
    /// = R; with --synthetic or a length-only trace, the rate of the arrival process.
    #[arg(allow_negative_numbers = true, long, value_name = "R")]
    pub rate: Option<f64>,
    /// Keep only requests arriving within this duration (e.g. 600s, 10m, 1h) after --window-start.
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,
    /// Start of the time window (e.g. 30m); requires --window.
    #[arg(long, value_name = "DURATION", requires = "window")]
    pub window_start: Option<String>,
    /// Keep only requests whose prompt length is in MIN:MAX tokens (either side may be empty).
    #[arg(long, value_name = "MIN:MAX")]
    pub input_range: Option<String>,
    /// Keep only requests whose output length is in MIN:MAX tokens.
    #[arg(long, value_name = "MIN:MAX")]
    pub output_range: Option<String>,
    /// Cap prompt lengths at N tokens.
    #[arg(allow_negative_numbers = true, long, value_name = "N")]
    pub cap_input: Option<u32>,
    /// Cap output lengths at N tokens.
    #[arg(allow_negative_numbers = true, long, value_name = "N")]
    pub cap_output: Option<u32>,
    /// Shuffle (input, output) lengths among requests (seeded by --seed), keeping the arrival times.
    #[arg(long)]
    pub shuffle_lengths: bool,
    /// Keep only the first N requests.
    #[arg(allow_negative_numbers = true, long, value_name = "N")]
    pub num_requests: Option<usize>,
    /// Requests longer than the model's context (input + output > max_position_embeddings) are an error;
    /// with this flag they are capped to fit instead (prompt first, then output).
    #[arg(long)]
    pub cap_to_context: bool,
    /// Seed for every random draw (synthetic arrivals, sampled lengths, shuffles).
    #[arg(allow_negative_numbers = true, long, default_value_t = 0)]
    pub seed: u64,
}

/// Model, GPU, policy and SLO options shared by `sim` and `bench`.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct SimArgs {
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Model: a bundled name (see `duet models`), a path to a Hugging Face config.json, or a folder with one.
    #[arg(long, default_value = "qwen3-8b")]
    pub model: String,
    /// GPU: h100-sxm, h200 or a100-80gb (see `duet gpus`) [default: h100-sxm; `duet-gpu replay` and
    /// `calibrate`: the device's].
    #[arg(long)]
    pub gpu: Option<String>,
    /// GPU profile for the cost model: a bundled name (h100-sxm, h200, a100-80gb), a path to a profile JSON, or
    /// `datasheet` for the analytic curves of --gpu. Default: the bundled profile of --gpu.
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Make the profile's (or datasheet curves') bandwidth saturate at this many SMs: per-SM bandwidth becomes
    /// whole-GPU bandwidth x min(1, SMs / this). A sensitivity knob until per-SM measurements exist (bundled
    /// profiles assume 64 on H100/H200, 54 on A100).
    #[arg(allow_negative_numbers = true, long, value_name = "SMS")]
    pub bw_saturation_sms: Option<u32>,
    /// SM-scaling shape: `profile` (the profile's or datasheet's curves, default) or `linear` (ablation: every
    /// operator on S SMs takes total/S times its whole-GPU time).
    #[arg(long, value_name = "SHAPE", default_value = "profile")]
    pub sm_scaling: String,
    /// Use only this many SMs of the GPU (default: all of them).
    #[arg(allow_negative_numbers = true, long, value_name = "SMS")]
    pub num_sms: Option<u32>,
    /// Engine preset (opt-in): `vllm-0.11`, or a path to a preset JSON. Sets what the engine does by default on
    /// --gpu: its scheduler (replacing the default policy; name another --policy to run that one under the
    /// engine's costs), token budget and sequence limit, KV block size, memory accounting, kernel efficiency
    /// and host costs (per iteration, per sequence, per request in the frontend). Options given explicitly
    /// override the preset's values. Sources and fitted numbers: docs/VALIDATION.md.
    #[arg(long, value_name = "ENGINE")]
    pub engine: Option<String>,
    /// Scheduling policy: chunked (Sarathi-Serve: decodes first), vllm (vLLM V1's scheduler), prefill-first (SGLang default / vLLM v0), duet
    /// (DuetServe), static-split (fixed partitions, needs --split), muxwise (persistent split sized per step),
    /// adaptive (issue 19: a persistent split sized by measured contention, occupancy and join waits; HRRN admission).
    /// Default: chunked, or under --engine the engine's own scheduler.
    #[arg(long)]
    pub policy: Option<String>,
    /// Tokens per iteration (chunked, default 2048; duet, default 8192: the DuetServe paper's budget, which
    /// saturates the linear layers so that mixed batches can miss the TBT target and duet splits), prefill tokens
    /// per prefill batch (prefill-first, default 8192; static-split and muxwise, default 2048).
    #[arg(allow_negative_numbers = true, long, value_name = "TOKENS")]
    pub token_budget: Option<u32>,
    /// Most requests running at once (vLLM `max_num_seqs`) for chunked, vllm and duet (default 256).
    #[arg(allow_negative_numbers = true, long, value_name = "N")]
    pub max_num_seqs: Option<u32>,
    /// TBT target of duet and muxwise, milliseconds (default 100).
    #[arg(allow_negative_numbers = true, long, value_name = "MS")]
    pub tbt_target_ms: Option<f64>,
    /// Largest look-ahead depth of duet's decode windows (default 8); static-split's decode steps per batch
    /// (default 1).
    #[arg(allow_negative_numbers = true, long, value_name = "K")]
    pub max_lookahead: Option<u32>,
    /// Partition granularity: tpc (2 SMs, DuetServe's TPC masks; default), green (CC 9.0 green contexts: a
    /// multiple of 8 SMs and the remainder), green8 (green without partitions under 8 SMs), sm.
    #[arg(long, default_value = "tpc")]
    pub granularity: String,
    /// Decode-step guard of duet (default 0, the paper's rule) and muxwise (default 0.3): a decode partition
    /// qualifies when its predicted step x (1 + guard) meets the TBT target.
    #[arg(allow_negative_numbers = true, long, value_name = "FRACTION")]
    pub decode_guard: Option<f64>,
    /// Switch off these mechanisms of `adaptive` (ablation; comma-separated): learn-contention, occupancy,
    /// join-aware, aggregate, hrrn. Other policies refuse it.
    #[arg(long, value_name = "MECHANISMS")]
    #[serde(default)]
    pub adaptive_without: Option<String>,
    /// Static split as PREFILL_SMS:DECODE_SMS (static-split only), e.g. 100:32.
    #[arg(long, value_name = "P:D")]
    pub split: Option<String>,
    /// Per-iteration CPU scheduling and launch overhead of an eagerly launched batch, microseconds (default 1000).
    #[arg(allow_negative_numbers = true, long, value_name = "US")]
    pub iteration_overhead_us: Option<u64>,
    /// Launch time of a decode step replayed from a CUDA graph in a look-ahead window, microseconds (default 30).
    #[arg(allow_negative_numbers = true, long, value_name = "US")]
    pub graph_launch_us: Option<u64>,
    /// Extra attention time of each decode in an iteration that also carries a prefill chunk, as a fraction of
    /// its time in a uniform batch (default: the profile's fitted value, 0 until measured; must be > -1).
    #[arg(allow_negative_numbers = true, long, value_name = "FRACTION")]
    pub mixed_attention_penalty: Option<f64>,
    /// Time to change the partition layout, microseconds (default 20).
    #[arg(allow_negative_numbers = true, long, value_name = "US")]
    pub partition_switch_us: Option<u64>,
    /// Use fixed contention slowdowns instead of the profile's bandwidth model: slowdown of a decode partition
    /// while another runs (default with this mode 0.15).
    #[arg(allow_negative_numbers = true, long, value_name = "FRACTION")]
    pub contention_decode: Option<f64>,
    /// Fixed-slowdown mode: slowdown of a prefill or whole-GPU batch while another runs (default 0.05).
    #[arg(allow_negative_numbers = true, long, value_name = "FRACTION")]
    pub contention_prefill: Option<f64>,
    /// Bandwidth contention model: extra stretch of memory-bound work while partitions overlap (profile
    /// default 0.1).
    #[arg(allow_negative_numbers = true, long, value_name = "FRACTION")]
    pub contention_interference: Option<f64>,
    /// Fraction of GPU memory for weights, activations and KV cache (default 0.9).
    #[arg(allow_negative_numbers = true, long, value_name = "FRACTION")]
    pub gpu_memory_utilization: Option<f64>,
    /// Set the KV cache to exactly this many 16-token blocks instead of deriving it from GPU memory.
    #[arg(allow_negative_numbers = true, long, value_name = "BLOCKS")]
    pub kv_blocks: Option<u32>,
    /// Disable the prefix cache (on by default when the trace has prefix hashes, e.g. Mooncake).
    #[arg(long)]
    pub no_prefix_cache: bool,
    /// Run every decode step through the policy instead of leaping over quiet ones (outputs are byte-identical
    /// either way; for checking that, and for timing the difference)
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_leap: bool,
    /// Aggregated instances behind the router, each on --tp GPUs running --policy.
    #[arg(allow_negative_numbers = true, long, value_name = "N", default_value_t = 1)]
    pub replicas: u32,
    /// Tensor-parallel degree of every instance: GPUs per instance (shards heads and MLP, two ring all-reduces
    /// per layer over NVLink).
    #[arg(allow_negative_numbers = true, long, value_name = "N", default_value_t = 1)]
    pub tp: u32,
    /// Disaggregated prefill/decode as xPyD (e.g. 1P1D, 2P1D): x prefill and y decode instances, each running
    /// --policy on --tp GPUs; the prompt's KV moves over --kv-link. Replaces --replicas.
    #[arg(long, value_name = "xPyD")]
    pub disagg: Option<String>,
    /// How arrivals (and, with --disagg, prefilled requests) are assigned to instances: round-robin,
    /// least-outstanding (fewest unfinished requests) or least-kv (most free KV) [default: least-outstanding].
    #[arg(long, value_name = "ROUTER")]
    pub router: Option<String>,
    /// Link that moves KV from prefill to decode instances: nvlink, pcie, network, or BANDWIDTH_GBPS:LATENCY_US
    /// (e.g. 50:10) [default: nvlink].
    #[arg(long, value_name = "LINK")]
    pub kv_link: Option<String>,
    /// GPUs available (default: exactly what the instances need); an error if the instances need more.
    #[arg(allow_negative_numbers = true, long, value_name = "N")]
    pub gpus: Option<u32>,
    /// TTFT SLO in milliseconds (a request is good only if its TTFT <= this).
    #[arg(allow_negative_numbers = true, long, value_name = "MS")]
    pub slo_ttft_ms: Option<f64>,
    /// TBT SLO in milliseconds, applied to each request's largest inter-token gap.
    #[arg(allow_negative_numbers = true, long, value_name = "MS")]
    pub slo_tbt_ms: Option<f64>,
    /// TPOT SLO in milliseconds ((E2EL - TTFT) / (output tokens - 1)).
    #[arg(allow_negative_numbers = true, long, value_name = "MS")]
    pub slo_tpot_ms: Option<f64>,
}

impl SimArgs {
    /// The GPU when none is given.
    pub const DEFAULT_GPU: &'static str = "h100-sxm";

    /// `--gpu`, or [`SimArgs::DEFAULT_GPU`].
    pub fn gpu_name(&self) -> &str {
        self.gpu.as_deref().unwrap_or(Self::DEFAULT_GPU)
    }
}
