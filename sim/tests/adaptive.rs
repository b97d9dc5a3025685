//! The `adaptive` policy (issue 19): it learns decode step times from what executed, and it never reads an output
//! length.

mod common;

use common::{FixedExecutor, MS, engine_cfg, workload};
use duet_sim::cost::CostModel;
use duet_sim::engine::{self, SimOutput};
use duet_sim::executor::SimExecutor;
use duet_sim::partition::Granularity;
use duet_sim::policy::{Adaptive, AdaptiveConfig, PolicyContext};
use duet_sim::{GpuSpec, ModelSpec, Nanos};

fn adaptive() -> Adaptive {
    let cost = std::sync::Arc::new(CostModel::new(
        ModelSpec::resolve("qwen3-8b").unwrap(),
        GpuSpec::by_name("h100-sxm").unwrap(),
        Default::default(),
    ));
    let ctx = PolicyContext { cost, total_sms: 132, granularity: Granularity::Green };
    // A 20 ms TBT target: no mixed batch with a 1024-token chunk meets it, so the policy splits the GPU.
    Adaptive::new(AdaptiveConfig { tbt_target_ns: 20 * MS, ..AdaptiveConfig::default() }, ctx).unwrap()
}

fn requests(n: u64) -> Vec<(u64, u32, u32)> {
    (0..n).map(|i| (i * 20 * MS, 300 + (i as u32 % 7) * 50, 20 + (i as u32 % 5) * 9)).collect()
}

#[test]
fn the_contention_ratio_follows_the_executed_decode_steps() {
    // 40 prompts of 2,000-2,300 tokens at once: the GPU splits while they are prefilled.
    let burst: Vec<(u64, u32, u32)> = (0..40).map(|i| (0, 2000 + (i % 4) * 100, 30)).collect();
    let w = workload(&burst);
    let prior = adaptive().ratio();
    // Steps that take far longer than any roofline prediction raise r; steps far shorter lower it.
    let mut slow = adaptive();
    engine::run(&w, &mut slow, &mut FixedExecutor(Nanos(500 * MS)), &engine_cfg(4000)).unwrap();
    let mut fast = adaptive();
    engine::run(&w, &mut fast, &mut FixedExecutor(Nanos(1_000)), &engine_cfg(4000)).unwrap();
    assert!(slow.ratio() > 2.0 * prior, "slow steps: r = {} (prior {prior})", slow.ratio());
    assert!(fast.ratio() < 0.1 * prior, "fast steps: r = {} (prior {prior})", fast.ratio());
}

fn run(reqs: &[(u64, u32, u32)]) -> SimOutput {
    let cost = std::sync::Arc::new(CostModel::new(
        ModelSpec::resolve("qwen3-8b").unwrap(),
        GpuSpec::by_name("h100-sxm").unwrap(),
        Default::default(),
    ));
    let mut policy = adaptive();
    engine::run(&workload(reqs), &mut policy, &mut SimExecutor::new(cost), &engine_cfg(3000)).unwrap()
}

#[test]
fn unseen_output_lengths_do_not_change_decisions_before_those_requests_finish() {
    let base = requests(60);
    let a = run(&base);
    // Lengthen the outputs of every third request; until the first of them finishes in `a`, the policy has seen
    // nothing that differs, so both runs must schedule identically up to then.
    let mut longer = base.clone();
    for r in longer.iter_mut().step_by(3) {
        r.2 += 40;
    }
    let b = run(&longer);
    let first_finish = a.requests.iter().step_by(3).map(|r| r.finish).min().unwrap();
    // Steps that ended by then (one still running may end differently: contention changes when a request
    // finishes).
    let before = |o: &SimOutput| -> Vec<_> { o.iterations.iter().filter(|i| i.end <= first_finish).copied().collect() };
    let (ia, ib) = (before(&a), before(&b));
    assert!(ia.len() > 20, "a real schedule before the first changed request finishes ({} steps)", ia.len());
    if let Some(i) = (0..ia.len().max(ib.len())).find(|&i| ia.get(i) != ib.get(i)) {
        panic!("step {i} differs before {first_finish:?}: {:?} vs {:?}", ia.get(i), ib.get(i));
    }
    let decided =
        |o: &SimOutput| -> Vec<_> { o.decisions.iter().filter(|d| d.at < first_finish).map(|d| d.decision).collect() };
    assert_eq!(decided(&a), decided(&b));
    // And the runs do differ afterwards (the lengths were used by the engine, not the policy).
    assert_ne!(a.iterations.len(), b.iterations.len());
}

#[test]
fn an_unknown_mechanism_is_an_error_that_lists_the_known_ones() {
    let e = AdaptiveConfig::default().mechanisms.without("lookahead").unwrap_err().to_string();
    assert!(
        e.contains("\"lookahead\"") && e.contains("learn-contention, occupancy, join-aware, aggregate, hrrn"),
        "{e}"
    );
}
