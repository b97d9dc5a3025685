//! `duet bench serve`: `vllm bench serve`'s command line and report, answered by the simulator.
//!
//! A user replaces `vllm bench serve` by `duet bench serve --gpu G` (engine preset `vllm-0.11` by default) and
//! gets duet's prediction printed in vLLM's "Serving Benchmark Result" block, and with `--save-result` the same
//! JSON keys. How the flags map:
//! - `--dataset-name random`: prompt and output lengths uniform on `[floor(L (1 - r)), ceil(L (1 + r))]` for
//!   `L = --random-input-len / --random-output-len`, `r = --random-range-ratio` (fixed lengths when `r = 0`),
//!   as vLLM's random dataset draws them (duet's own seeded generator, so the draws differ, not the law).
//!   `--random-prefix-len` adds that many tokens to every prompt.
//! - `--dataset-name sharegpt|custom`: `--dataset-path` must be a file duet reads as a trace (e.g. a
//!   length-only CSV of prompt and output token counts); duet does not tokenize text.
//! - `--request-rate inf` (default): every request arrives at 0; a finite rate: Poisson arrivals, or gamma with
//!   shape `--burstiness` (coefficient of variation `1 / sqrt(burstiness)`).
//! - `--max-concurrency C`: a closed-loop client (at most `C` outstanding; [`duet_sim::engine::ClientConfig`]).
//! - Flags that only address the server or tokenizer (`--backend`, `--endpoint`, `--base-url`, `--host`,
//!   `--port`, `--tokenizer`) are accepted and reported as not affecting the prediction.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use duet_args::{SimArgs, config, load_workload};
use duet_sim::engine::ClientConfig;
use duet_sim::metrics::{self, stats};
use duet_sim::{SimRun, simulate};
use serde_json::{Map, Value, json};

/// Options of `duet bench serve` (vLLM's names; the last group is duet's own).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Model: a Hugging Face id (`Qwen/Qwen3-32B` -> the bundled `qwen3-32b`), a bundled name or a config path.
    #[arg(long)]
    pub model: String,
    /// Dataset: random, sharegpt or custom.
    #[arg(long, default_value = "random")]
    pub dataset_name: String,
    /// Trace file for sharegpt/custom (a format duet reads, e.g. a length-only CSV).
    #[arg(long)]
    pub dataset_path: Option<PathBuf>,
    /// Prompt length of the random dataset.
    #[arg(long, default_value_t = 1024)]
    pub random_input_len: u32,
    /// Output length of the random dataset.
    #[arg(long, default_value_t = 128)]
    pub random_output_len: u32,
    /// Range ratio of the random dataset's lengths.
    #[arg(long, default_value_t = 0.0)]
    pub random_range_ratio: f64,
    /// Tokens added in front of every random prompt.
    #[arg(long, default_value_t = 0)]
    pub random_prefix_len: u32,
    /// Number of prompts.
    #[arg(long, default_value_t = 1000)]
    pub num_prompts: usize,
    /// Requests per second (`inf`: all at once).
    #[arg(long, default_value = "inf")]
    pub request_rate: String,
    /// Burstiness of the arrivals (1: Poisson).
    #[arg(long, default_value_t = 1.0)]
    pub burstiness: f64,
    /// Most requests outstanding at once (closed loop).
    #[arg(long)]
    pub max_concurrency: Option<u32>,
    /// Seed of the dataset and arrivals.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the result JSON.
    #[arg(long)]
    pub save_result: bool,
    /// Folder of the result JSON (default: the current folder).
    #[arg(long)]
    pub result_dir: Option<PathBuf>,
    /// File name of the result JSON (default: `{backend}-{rate}qps[-concurrency{C}]-{model}.json`, without
    /// vLLM's date so that the same command writes the same file).
    #[arg(long)]
    pub result_filename: Option<String>,
    /// Metrics with percentiles printed: a comma list of ttft, tpot, itl, e2el.
    #[arg(long, default_value = "ttft,tpot,itl")]
    pub percentile_metrics: String,
    /// Percentiles printed, a comma list.
    #[arg(long, default_value = "99")]
    pub metric_percentiles: String,
    /// Server backend (accepted; does not affect the prediction).
    #[arg(long, default_value = "vllm")]
    pub backend: String,
    /// Accepted; does not affect the prediction.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Accepted; does not affect the prediction.
    #[arg(long)]
    pub base_url: Option<String>,
    /// Accepted; does not affect the prediction.
    #[arg(long)]
    pub host: Option<String>,
    /// Accepted; does not affect the prediction.
    #[arg(long)]
    pub port: Option<u16>,
    /// Accepted; does not affect the prediction (duet counts tokens, it does not tokenize).
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// duet: the GPU (h100-sxm, h200, a100-80gb).
    #[arg(long, default_value = "h100-sxm")]
    pub gpu: String,
    /// duet: the engine preset the server is predicted with.
    #[arg(long, default_value = "vllm-0.11")]
    pub engine: String,
    /// duet (vllm serve's flag): token budget per iteration, if the server was started with one.
    #[arg(long)]
    pub max_num_batched_tokens: Option<u32>,
    /// duet (vllm serve's flag): sequence limit, if the server was started with one.
    #[arg(long)]
    pub max_num_seqs: Option<u32>,
    /// duet (vllm serve's flag): memory utilisation, if the server was started with one.
    #[arg(long)]
    pub gpu_memory_utilization: Option<f64>,
    /// duet: set the KV cache to exactly this many 16-token blocks (when the server's is known).
    #[arg(long)]
    pub kv_blocks: Option<u32>,
}

/// `Qwen/Qwen3-32B` -> `qwen3-32b` when that is bundled; anything else unchanged.
fn model_name(m: &str) -> String {
    let short = m.rsplit('/').next().unwrap_or(m).to_ascii_lowercase();
    if duet_sim::ModelSpec::bundled_names().iter().any(|n| *n == short) { short } else { m.to_string() }
}

/// The `duet sim` options the benchmark command means.
pub fn sim_args(s: &ServeArgs) -> Result<SimArgs> {
    let mut a = duet_args::record::defaults();
    a.model = model_name(&s.model);
    a.gpu = Some(s.gpu.clone());
    a.engine = Some(s.engine.clone());
    a.token_budget = s.max_num_batched_tokens;
    a.max_num_seqs = s.max_num_seqs;
    a.gpu_memory_utilization = s.gpu_memory_utilization;
    a.kv_blocks = s.kv_blocks;
    let w = &mut a.workload;
    w.seed = s.seed;
    w.synthetic = Some(s.num_prompts);
    match s.dataset_name.as_str() {
        "random" => {
            let r = s.random_range_ratio;
            if !(0.0..1.0).contains(&r) {
                bail!("--random-range-ratio must be in [0, 1), got {r}");
            }
            let len = |l: u32, prefix: u32| -> Result<String> {
                if l == 0 {
                    bail!("--random-input-len and --random-output-len must be >= 1");
                }
                let (lo, hi) = ((f64::from(l) * (1.0 - r)).floor() as u32, (f64::from(l) * (1.0 + r)).ceil() as u32);
                Ok(if lo == hi {
                    format!("{}", l + prefix)
                } else {
                    format!("uniform:{},{}", lo.max(1) + prefix, hi + prefix)
                })
            };
            w.input_len = Some(len(s.random_input_len, s.random_prefix_len)?);
            w.output_len = Some(len(s.random_output_len, 0)?);
        }
        "sharegpt" | "custom" => {
            let p = s
                .dataset_path
                .as_ref()
                .with_context(|| format!("--dataset-name {} needs --dataset-path", s.dataset_name))?;
            w.trace = Some(p.clone());
        }
        other => bail!("--dataset-name {other:?}: duet supports random, sharegpt and custom"),
    }
    if s.request_rate == "inf" {
        w.arrivals = "burst".into();
    } else {
        let rate: f64 = s
            .request_rate
            .parse()
            .with_context(|| format!("--request-rate {:?} is not a number or inf", s.request_rate))?;
        if !(rate.is_finite() && rate > 0.0) {
            bail!("--request-rate must be > 0 or inf, got {rate}");
        }
        if !(s.burstiness.is_finite() && s.burstiness > 0.0) {
            bail!("--burstiness must be > 0, got {}", s.burstiness);
        }
        w.rate = Some(rate);
        w.arrivals =
            if s.burstiness == 1.0 { "poisson".into() } else { format!("gamma:cv={}", 1.0 / s.burstiness.sqrt()) };
    }
    Ok(a)
}

/// Runs the prediction and prints vLLM's report.
pub fn run(s: &ServeArgs) -> Result<()> {
    for (flag, given) in [
        ("--endpoint", s.endpoint.is_some()),
        ("--base-url", s.base_url.is_some()),
        ("--host", s.host.is_some()),
        ("--port", s.port.is_some()),
        ("--tokenizer", s.tokenizer.is_some()),
    ] {
        if given {
            eprintln!("note: {flag} addresses a server or tokenizer; it does not affect duet's prediction");
        }
    }
    if s.max_concurrency == Some(0) {
        bail!("--max-concurrency must be >= 1");
    }
    let a = sim_args(s)?;
    let mut cfg = config(&a)?;
    cfg.client = ClientConfig { max_concurrency: s.max_concurrency, ..cfg.client };
    let w = load_workload(&a, &cfg)?;
    for n in &w.notes {
        eprintln!("note: {n}");
    }
    let run = simulate(&w, &cfg)?;
    let ps = percentiles(&s.metric_percentiles)?;
    let result = result_json(s, &run, &ps);
    print!("{}", block(s, &result, &ps)?);
    if s.save_result {
        let dir = s.result_dir.clone().unwrap_or_else(|| PathBuf::from("."));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let name = s.result_filename.clone().unwrap_or_else(|| {
            let c = s.max_concurrency.map_or(String::new(), |c| format!("-concurrency{c}"));
            format!("{}-{}qps{c}-{}.json", s.backend, s.request_rate, s.model.rsplit('/').next().unwrap_or(&s.model))
        });
        let path = dir.join(name);
        std::fs::write(&path, serde_json::to_string_pretty(&result)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn percentiles(list: &str) -> Result<Vec<f64>> {
    list.split(',')
        .map(|p| {
            let v: f64 = p.trim().parse().with_context(|| format!("--metric-percentiles: {p:?} is not a number"))?;
            if !(0.0..=100.0).contains(&v) {
                bail!("--metric-percentiles: {v} is not in [0, 100]");
            }
            Ok(v)
        })
        .collect()
}

/// vLLM's percentile key suffix: `99` for 99.0, `99.9` otherwise.
fn pkey(p: f64) -> String {
    if p.fract() == 0.0 { format!("{}", p as u64) } else { format!("{p}") }
}

/// The result JSON with vLLM's keys (ms for latencies, s for duration), plus duet's run description.
fn result_json(s: &ServeArgs, run: &SimRun, ps: &[f64]) -> Value {
    let out = &run.output;
    let done: Vec<_> = out.requests.iter().filter(|r| r.tokens_emitted == r.output_tokens).collect();
    let mut series: Vec<(&str, Vec<f64>)> = vec![
        ("ttft", done.iter().map(|r| metrics::ttft_ms(r)).collect()),
        ("tpot", done.iter().filter_map(|r| metrics::tpot_ms(r)).collect()),
        ("itl", out.itl_ns.iter().map(|g| g as f64 / 1e6).collect()),
        ("e2el", done.iter().map(|r| metrics::e2el_ms(r)).collect()),
    ];
    let m = &run.metrics;
    let mut o = Map::new();
    o.insert("backend".into(), json!(s.backend));
    o.insert("model_id".into(), json!(s.model));
    o.insert("num_prompts".into(), json!(s.num_prompts));
    o.insert("request_rate".into(), json!(s.request_rate));
    o.insert("burstiness".into(), json!(s.burstiness));
    o.insert("max_concurrency".into(), json!(s.max_concurrency));
    o.insert("duration".into(), json!(m.duration));
    o.insert("completed".into(), json!(m.completed));
    o.insert("total_input_tokens".into(), json!(m.total_input_tokens));
    o.insert("total_output_tokens".into(), json!(m.total_output_tokens));
    o.insert("request_throughput".into(), json!(m.request_throughput));
    o.insert("output_throughput".into(), json!(m.output_throughput));
    o.insert("total_token_throughput".into(), json!(m.total_token_throughput));
    o.insert("max_output_tokens_per_s".into(), json!(peak_output_per_s(run)));
    o.insert("max_concurrent_requests".into(), json!(peak_concurrency(run)));
    for (name, v) in &mut series {
        let d = stats::Dist::of(v); // sorts v

        o.insert(format!("mean_{name}_ms"), json!(d.mean));
        o.insert(format!("median_{name}_ms"), json!(d.median));
        o.insert(format!("std_{name}_ms"), json!(d.std));
        for &p in ps {
            o.insert(
                format!("p{}_{name}_ms", pkey(p)),
                json!(if v.is_empty() { 0.0 } else { stats::percentile(v, p) }),
            );
        }
    }
    o.insert(
        "duet".into(),
        json!({"engine": s.engine, "gpu": run.meta.gpu, "model": run.meta.model, "policy": run.meta.policy,
               "token_budget": run.meta.token_budget, "kv_capacity_tokens": run.meta.kv_capacity_tokens,
               "profile": run.meta.profile, "preemptions": out.stats.preemptions}),
    );
    Value::Object(o)
}

/// Most output tokens emitted within one whole second of the run (vLLM buckets token times by second).
fn peak_output_per_s(run: &SimRun) -> f64 {
    let mut per_s: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
    for it in &run.output.iterations {
        *per_s.entry(it.end.0 / 1_000_000_000).or_default() += u64::from(it.decode_tokens);
    }
    for r in &run.output.requests {
        *per_s.entry(r.first_token.0 / 1_000_000_000).or_default() += 1;
    }
    per_s.values().copied().max().unwrap_or(0) as f64
}

/// Most requests outstanding (sent, not finished) at once.
fn peak_concurrency(run: &SimRun) -> f64 {
    let mut ev: Vec<(u64, i64)> =
        run.output.requests.iter().flat_map(|r| [(r.arrival.0, 1), (r.finish.0, -1)]).collect();
    ev.sort_by_key(|&(t, d)| (t, d));
    let (mut cur, mut peak) = (0i64, 0i64);
    for (_, d) in ev {
        cur += d;
        peak = peak.max(cur);
    }
    peak as f64
}

/// vLLM's "Serving Benchmark Result" block.
fn block(s: &ServeArgs, r: &Value, ps: &[f64]) -> Result<String> {
    use std::fmt::Write;
    let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
    let mut b = String::new();
    let line = |b: &mut String, k: &str, v: String| writeln!(b, "{k:<40} {v:<10}").expect("string");
    writeln!(b, "{:=^50}", " Serving Benchmark Result ")?;
    line(&mut b, "Successful requests:", format!("{}", f("completed") as u64));
    if let Some(c) = s.max_concurrency {
        line(&mut b, "Maximum request concurrency:", format!("{c}"));
    }
    line(&mut b, "Benchmark duration (s):", format!("{:.2}", f("duration")));
    line(&mut b, "Total input tokens:", format!("{}", f("total_input_tokens") as u64));
    line(&mut b, "Total generated tokens:", format!("{}", f("total_output_tokens") as u64));
    line(&mut b, "Request throughput (req/s):", format!("{:.2}", f("request_throughput")));
    line(&mut b, "Output token throughput (tok/s):", format!("{:.2}", f("output_throughput")));
    line(&mut b, "Peak output token throughput (tok/s):", format!("{:.2}", f("max_output_tokens_per_s")));
    line(&mut b, "Peak concurrent requests:", format!("{:.2}", f("max_concurrent_requests")));
    line(&mut b, "Total Token throughput (tok/s):", format!("{:.2}", f("total_token_throughput")));
    for (key, header, name) in [
        ("ttft", "Time to First Token", "TTFT"),
        ("tpot", "Time per Output Token (excl. 1st token)", "TPOT"),
        ("itl", "Inter-token Latency", "ITL"),
        ("e2el", "End-to-end Latency", "E2EL"),
    ] {
        if !s.percentile_metrics.split(',').any(|m| m.trim() == key) {
            continue;
        }
        writeln!(b, "{:-^50}", header)?;
        line(&mut b, &format!("Mean {name} (ms):"), format!("{:.2}", f(&format!("mean_{key}_ms"))));
        line(&mut b, &format!("Median {name} (ms):"), format!("{:.2}", f(&format!("median_{key}_ms"))));
        for &p in ps {
            line(&mut b, &format!("P{} {name} (ms):", pkey(p)), format!("{:.2}", f(&format!("p{}_{key}_ms", pkey(p)))));
        }
    }
    writeln!(b, "{}", "=".repeat(50))?;
    Ok(b)
}
