//! Property tests of engine invariants over random workloads, cache sizes, budgets, policies, SM counts and
//! partition granularities: every request finishes exactly once with exactly its output tokens; KV never exceeds
//! capacity; time never goes backwards; batches on one lane never overlap; partitions running at the same time
//! never exceed the SM count and always respect the granularity; `duet` splits only when the aggregated
//! prediction misses the TBT target, and then with a decode partition that meets it.

mod common;

use std::sync::Arc;

use common::{kv, workload};
use duet_sim::cost::{CostConfig, CostModel};
use duet_sim::engine::{self, EngineConfig};
use duet_sim::executor::SimExecutor;
use duet_sim::partition::Granularity;
use duet_sim::policy::{Lane, Mechanisms, Mode, PolicyConfig, PolicyContext, PolicyOptions};
use duet_sim::{GpuSpec, ModelSpec, Nanos};
use proptest::prelude::*;

fn requests() -> impl Strategy<Value = Vec<(u64, u32, u32)>> {
    prop::collection::vec((0u64..2_000_000_000, 1u32..3000, 1u32..60), 1..40)
}

const POLICIES: [&str; 6] = ["chunked", "prefill-first", "duet", "static-split", "muxwise", "adaptive"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn engine_invariants(
        reqs in requests(),
        extra_blocks in 0u32..200,
        budget in 1u32..3000,
        policy in 0usize..6,
        sms_pick in 0usize..4,
        gran in 0usize..3,
        tbt_ms in 5.0f64..200.0,
        lookahead in 1u32..6,
        off in 0usize..32,
    ) {
        let w = workload(&reqs);
        let total_sms = [16u32, 32, 66, 132][sms_pick];
        let granularity = [Granularity::Tpc, Granularity::Green, Granularity::Sm][gran];
        // Smallest cache that fits the largest request, plus a random margin: KV pressure ranges from severe to none.
        let need = w.requests.iter().map(|r| (r.input_tokens + r.output_tokens - 1).div_ceil(16)).max().unwrap();
        let cap = kv(need + extra_blocks);
        let name = POLICIES[policy];
        let split = granularity.splits(total_sms)[granularity.splits(total_sms).len() / 3];
        let opts = PolicyOptions { token_budget: Some(budget), tbt_target_ms: Some(tbt_ms), max_lookahead: Some(lookahead), split: Some((split.1, split.0)), guard: None, max_num_seqs: None, without: Vec::new() };
        // adaptive: any subset of its mechanisms switched off (bit i: Mechanisms::NAMES[i]).
        let without = Mechanisms::NAMES.iter().enumerate().filter(|(i, _)| off >> i & 1 == 1).map(|(_, n)| n.to_string());
        let opts = if name == "adaptive" { PolicyOptions { without: without.collect(), ..opts } } else { opts };
        // Only static-split takes a split (the others refuse one).
        let opts = if name == "static-split" { opts } else { PolicyOptions { split: None, ..opts } };
        let model = ModelSpec::resolve("qwen3-8b").unwrap();
        let cost = Arc::new(CostModel::new(model, GpuSpec::by_name("h100-sxm").unwrap(), CostConfig::default()));
        let ctx = PolicyContext { cost: Arc::clone(&cost), total_sms, granularity };
        let mut policy = PolicyConfig::by_name(name, &opts).unwrap().build(&ctx).unwrap();
        let mut exec = SimExecutor::new(cost);
        let cfg = EngineConfig { granularity, ..EngineConfig::new(cap, total_sms) };
        let out = engine::run(&w, policy.as_mut(), &mut exec, &cfg).unwrap();

        // Every request finished exactly once, with exactly its output tokens.
        prop_assert_eq!(out.requests.len(), w.len());
        for (r, spec) in out.requests.iter().zip(&w.requests) {
            prop_assert_eq!(r.id, spec.id);
            prop_assert_eq!(r.tokens_emitted, spec.output_tokens);
            prop_assert!(r.arrival <= r.first_scheduled && r.first_scheduled < r.first_token && r.first_token <= r.finish);
        }
        let gaps: u64 = w.requests.iter().map(|r| u64::from(r.output_tokens - 1)).sum();
        prop_assert_eq!(out.itl_ns.len(), gaps);
        // KV never over capacity.
        prop_assert!(out.stats.peak_kv_blocks <= cap.total_blocks);
        // Partitions: legal sizes; steps on one lane never overlap; concurrent steps fit in the GPU.
        prop_assert!(out.stats.peak_sms <= total_sms);
        for it in &out.iterations {
            prop_assert!(it.start < it.end);
            prop_assert!(granularity.allows(it.sms, total_sms), "{} SMs", it.sms);
            prop_assert!(it.lane != Lane::Whole || it.sms == total_sms);
        }
        for lane in [Lane::Whole, Lane::Prefill, Lane::Decode] {
            let steps: Vec<_> = out.iterations.iter().filter(|i| i.lane == lane).collect();
            for pair in steps.windows(2) {
                prop_assert!(pair[0].end <= pair[1].start);
            }
        }
        // SMs in use over time (a sweep over step starts and ends; a step holds its SMs on [start, end), so at
        // equal times ends come first), never more than the GPU's: linear in steps, as runs can hold 10^5 of them.
        let mut edges: Vec<(Nanos, i64)> = out.iterations.iter().flat_map(|it| [(it.start, i64::from(it.sms)), (it.end, -i64::from(it.sms))]).collect();
        edges.sort();
        let mut in_use = 0i64;
        for (t, d) in edges {
            in_use += d;
            prop_assert!(in_use <= i64::from(total_sms), "{} SMs in use at {:?}", in_use, t);
        }
        let target = (tbt_ms * 1e6).round() as u64;
        match name {
            "chunked" => prop_assert!(out.iterations.iter().all(|it| it.prefill_tokens + it.decode_tokens <= budget && it.lane == Lane::Whole)),
            "prefill-first" => prop_assert!(out.iterations.iter().all(|it| it.prefill_tokens == 0 || it.decode_tokens == 0)),
            "duet" => {
                for d in &out.decisions {
                    let idle_decision = d.decision.predicted_mixed_ns > 0;
                    match d.decision.mode {
                        // A split from the idle state happens only when the mixed batch misses the target, and its
                        // decode partition meets it.
                        Mode::Split if idle_decision => {
                            prop_assert!(d.decision.predicted_mixed_ns > target);
                            prop_assert!(d.decision.predicted_decode_step_ns <= target);
                        }
                        Mode::Aggregated => prop_assert!(d.decision.predicted_mixed_ns <= target || d.decision.prefill_sms == 0 || d.decision.decode_sms == 0),
                        Mode::Fallback => prop_assert!(d.decision.predicted_mixed_ns > target),
                        Mode::Split => {}
                    }
                }
            }
            "adaptive" => {
                // Whole-GPU steps only where an aggregated decision, predicted to meet the target, started them.
                for d in &out.decisions {
                    if d.decision.mode == Mode::Aggregated {
                        prop_assert!(d.decision.predicted_mixed_ns <= target);
                    }
                }
                for it in out.iterations.iter().filter(|it| it.lane == Lane::Whole) {
                    prop_assert!(out.decisions.iter().any(|d| d.at == it.start && d.decision.mode == Mode::Aggregated));
                }
            }
            _ => prop_assert!(out.iterations.iter().all(|it| it.lane != Lane::Whole)),
        }
    }
}
