//! Leaping over quiet decode steps (`EngineConfig::leap`, issue 23) changes no output: every policy and layout gives
//! the same run with and without it, compared as the Debug text of the whole run (every record, every counter,
//! every `f64` printed exactly), which is what `summary.json`, `requests.csv`, `decisions.csv` and
//! `iterations.csv` are written from. Workloads: an excerpt of the bundled Azure conversation trace at its own rate
//! and four times faster, a KV cache small enough to preempt, a frontend (which turns leaping off), and, when
//! `../shared` is there, the Mooncake trace's prefix hashes.

mod common;

use duet_sim::cluster::{ClusterConfig, Layout};
use duet_sim::cost::CostModel;
use duet_sim::engine;
use duet_sim::engine::{ClientConfig, Contention};
use duet_sim::executor::SimExecutor;
use duet_sim::kv::KvConfig;
use duet_sim::partition::Granularity;
use duet_sim::policy::{Plan, Policy, PolicyConfig, PolicyContext, PolicyOptions, QuietStep, Repeat, View};
use duet_sim::{GpuSpec, ModelSpec};
use duet_sim::{SimConfig, simulate};
use duet_traces::Workload;
use std::sync::Arc;

/// Qwen3-8B on an H100 at green-context granularity with the bandwidth contention model (partitions interact).
fn config(policy: &str, opts: &PolicyOptions) -> SimConfig {
    SimConfig {
        granularity: Granularity::Green,
        contention: Some(Contention::bandwidth(3.35e12 * 0.84)),
        ..common::sim_config("qwen3-8b", PolicyConfig::by_name(policy, opts).unwrap())
    }
}

fn excerpt(n: usize, rate_scale: f64) -> Workload {
    let w = duet_traces::bundled_default();
    duet_traces::transform::first_n(duet_traces::transform::scale_rate(w, rate_scale).unwrap(), n).unwrap()
}

/// Every policy with the options that make it do its distinctive thing on these loads.
fn policies() -> Vec<(&'static str, PolicyOptions)> {
    let o = PolicyOptions::default;
    vec![
        ("chunked", o()),
        ("chunked", PolicyOptions { token_budget: Some(256), ..o() }),
        ("vllm", o()),
        ("prefill-first", o()),
        ("duet", o()),
        ("duet", PolicyOptions { tbt_target_ms: Some(40.0), token_budget: Some(2048), ..o() }),
        ("static-split", PolicyOptions { split: Some((100, 32)), ..o() }),
        ("muxwise", o()),
        ("adaptive", o()),
        ("adaptive", PolicyOptions { tbt_target_ms: Some(40.0), ..o() }),
        ("adaptive", PolicyOptions { without: vec!["join-aware".into(), "occupancy".into()], ..o() }),
        ("adaptive", PolicyOptions { without: vec!["aggregate".into()], ..o() }),
    ]
}

/// Runs `cfg` on `w` with and without leaping; fails on the first difference. Returns the iteration count.
fn same_both_ways(w: &Workload, cfg: &SimConfig, label: &str) -> u64 {
    let leapt = simulate(w, cfg).unwrap_or_else(|e| panic!("{label}: {e}"));
    let full = simulate(w, &SimConfig { leap: false, ..cfg.clone() }).unwrap();
    let (a, b) = (format!("{leapt:?}"), format!("{full:?}"));
    if a != b {
        let at = a.bytes().zip(b.bytes()).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
        let from = at.saturating_sub(200);
        panic!(
            "{label}: outputs differ at byte {at}:\nleap: {}\nfull: {}",
            &a[from..(at + 200).min(a.len())],
            &b[from..(at + 200).min(b.len())]
        );
    }
    assert_eq!(leapt.output.requests.len(), w.requests.len(), "{label}");
    leapt.output.stats.iterations
}

#[test]
fn every_policy_gives_the_same_output_with_and_without_leaping() {
    for (rate, n) in [(1.0, 120), (4.0, 250)] {
        let w = excerpt(n, rate);
        for (name, opts) in policies() {
            let iterations = same_both_ways(&w, &config(name, &opts), &format!("{name} {opts:?} at {rate}x"));
            assert!(iterations > n as u64, "{name}: a real schedule ({iterations} iterations)");
        }
    }
}

/// Counts a policy's answers to [`Policy::repeat_decode`].
struct Vouching {
    inner: Box<dyn Policy>,
    asked: u64,
    vouched: u64,
}

impl Policy for Vouching {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn plan(&mut self, view: &View<'_>) -> Plan {
        self.inner.plan(view)
    }
    fn repeat_decode(&mut self, step: &QuietStep<'_>) -> Option<Repeat> {
        let r = self.inner.repeat_decode(step);
        self.asked += 1;
        self.vouched += u64::from(r.is_some());
        r
    }
}

/// The comparisons above are not vacuous: on the slower excerpt every policy is asked about quiet steps and
/// vouches for some (adaptive only while its aggregated batch meets the step target: not when aggregation is off).
#[test]
fn every_policy_vouches_for_quiet_steps() {
    let w = excerpt(120, 1.0);
    for (name, opts) in policies() {
        let model = ModelSpec::resolve("qwen3-8b").unwrap();
        let cost = Arc::new(CostModel::new(model, GpuSpec::by_name("h100-sxm").unwrap(), Default::default()));
        let ctx = PolicyContext { cost: cost.clone(), total_sms: 132, granularity: Granularity::Green };
        let inner = PolicyConfig::by_name(name, &opts).unwrap().build(&ctx).unwrap();
        let mut policy = Vouching { inner, asked: 0, vouched: 0 };
        engine::run(&w, &mut policy, &mut SimExecutor::new(cost), &common::engine_cfg(20_000)).unwrap();
        let (asked, vouched) = (policy.asked, policy.vouched);
        let label = format!("{name} {opts:?}");
        assert!(asked > 100, "{label}: asked {asked} times");
        if opts.without.iter().any(|m| m == "aggregate") {
            assert_eq!(vouched, 0, "{label}");
        } else {
            assert!(vouched * 2 > asked, "{label}: vouched for {vouched} of {asked} quiet steps");
        }
    }
}

#[test]
fn every_layout_gives_the_same_output_with_and_without_leaping() {
    let w = excerpt(200, 4.0);
    let layouts = [
        ("2 replicas", ClusterConfig { layout: Layout::Replicas(2), ..Default::default() }),
        ("3 replicas tp 2", ClusterConfig { layout: Layout::Replicas(3), tp: 2, ..Default::default() }),
        ("1P1D", ClusterConfig { layout: Layout::Disaggregated { prefill: 1, decode: 1 }, ..Default::default() }),
        ("1P2D", ClusterConfig { layout: Layout::Disaggregated { prefill: 1, decode: 2 }, ..Default::default() }),
        ("tp 2", ClusterConfig { tp: 2, ..Default::default() }),
    ];
    for (label, cluster) in layouts {
        for name in ["chunked", "duet", "muxwise", "adaptive"] {
            let cfg = SimConfig { cluster, ..config(name, &PolicyOptions::default()) };
            same_both_ways(&w, &cfg, &format!("{name} on {label}"));
            // A small KV cache: transfers wait for room on decode instances, replicas preempt.
            let kv = KvConfig { total_blocks_override: Some(400), ..KvConfig::default() };
            same_both_ways(&w, &SimConfig { kv, ..cfg }, &format!("{name} on {label} with 400 KV blocks"));
        }
    }
}

#[test]
fn preemption_and_a_frontend_give_the_same_output_with_and_without_leaping() {
    let w = excerpt(200, 4.0);
    for (name, opts) in policies() {
        // 600 blocks of 16 tokens: requests preempt each other (and quiet stretches end on KV).
        let kv = KvConfig { total_blocks_override: Some(600), ..KvConfig::default() };
        let cfg = SimConfig { kv, ..config(name, &opts) };
        same_both_ways(&w, &cfg, &format!("{name} with 600 KV blocks"));
        let client = ClientConfig { frontend_ns: 200_000, output_ns: 20_000, max_concurrency: Some(16) };
        let cfg = SimConfig { client, ..config(name, &opts) };
        same_both_ways(&w, &cfg, &format!("{name} behind a frontend"));
        // A closed loop without a frontend: a finish sends the next request (so it ends a leap).
        let client = ClientConfig { max_concurrency: Some(8), ..ClientConfig::default() };
        let cfg = SimConfig { client, ..config(name, &opts) };
        same_both_ways(&w, &cfg, &format!("{name} in a closed loop of 8"));
    }
}

#[test]
fn the_prefix_cache_gives_the_same_output_with_and_without_leaping() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces/mooncake/conversation_trace.jsonl");
    if !path.exists() {
        eprintln!("skipped: {} is absent (the Mooncake trace with prefix hashes)", path.display());
        return;
    }
    let w = match duet_traces::load_path(&path, &duet_traces::LoadOptions::default()).unwrap() {
        duet_traces::TraceData::Timed(w) => w,
        duet_traces::TraceData::Lengths(_) => panic!("Mooncake is timed"),
    };
    let w = duet_traces::transform::first_n(w, 150).unwrap();
    let mut cfg = config("chunked", &PolicyOptions::default());
    cfg.kv.total_blocks_override = Some(12_000);
    let iterations = same_both_ways(&w, &cfg, "chunked on Mooncake with a bounded prefix cache");
    assert!(iterations > 150);
}

#[test]
fn an_early_stop_fails_only_runs_whose_percentile_fails() {
    use duet_sim::SimError;
    use duet_sim::engine::StopLimits;
    // Overloaded (8x the excerpt's rate): P99 TTFT is seconds; lightly loaded (0.5x): well under the limits. A
    // stop is certain but not necessary: a run that does not stop is the full run (and may still fail).
    let (mut stopped, mut failing) = (0, 0);
    for (rate, n) in [(8.0, 400), (0.5, 150), (2.0, 300)] {
        let w = excerpt(n, rate);
        for (name, opts) in policies() {
            let cfg = config(name, &opts);
            let full = simulate(&w, &cfg).unwrap();
            for (field, limit) in [("p99_ttft_ms", 2000.0), ("p99_itl_ms", 60.0), ("p90_tbt_ms", 80.0)] {
                let mut limits = StopLimits::default();
                assert!(limits.add_field(field, limit));
                let fails = match field {
                    "p99_ttft_ms" => full.metrics.ttft_ms.p99 > limit,
                    "p99_itl_ms" => full.metrics.itl_ms.p99 > limit,
                    _ => full.metrics.tbt_ms.p90 > limit,
                };
                failing += u32::from(fails);
                let label = format!("{name} at {rate}x, {field} <= {limit}");
                match simulate(&w, &SimConfig { stop: Some(limits), ..cfg.clone() }) {
                    Ok(run) => assert_eq!(format!("{run:?}"), format!("{full:?}"), "{label}"),
                    Err(SimError::LimitExceeded { what }) => {
                        assert!(fails, "{label}: stopped ({what}) but meets it");
                        stopped += 1;
                    }
                    Err(e) => panic!("{label}: {e}"),
                }
            }
        }
    }
    // Most failing runs stop early (the rest fail by interpolation between the last two ranks).
    assert!(stopped * 10 >= failing * 9 && stopped > 20, "{stopped} of {failing} failing runs stopped");
}
