//! Property tests of engine invariants over random workloads, cache sizes, budgets and policies:
//! every request finishes exactly once with exactly its output tokens; KV never exceeds capacity; time never
//! goes backwards; batches on a partition never overlap.

mod common;

use common::{kv, workload};
use duet_sim::cost::{CostConfig, CostModel};
use duet_sim::engine::{self, EngineConfig};
use duet_sim::executor::SimExecutor;
use duet_sim::policy::PolicyConfig;
use duet_sim::{GpuSpec, ModelSpec};
use proptest::prelude::*;

fn requests() -> impl Strategy<Value = Vec<(u64, u32, u32)>> {
    prop::collection::vec((0u64..2_000_000_000, 1u32..400, 1u32..60), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn engine_invariants(
        reqs in requests(),
        extra_blocks in 0u32..60,
        budget in 1u32..1200,
        prefill_first in any::<bool>(),
        sms in 1u32..=132,
    ) {
        let w = workload(&reqs);
        // Smallest cache that fits the largest request, plus a random margin: KV pressure ranges from severe to none.
        let need = w.requests.iter().map(|r| (r.input_tokens + r.output_tokens - 1).div_ceil(16)).max().unwrap();
        let cap = kv(need + extra_blocks);
        let name = if prefill_first { "prefill-first" } else { "chunked" };
        let mut policy = PolicyConfig::by_name(name, Some(budget)).unwrap().build();
        let model = ModelSpec::resolve("qwen3-8b").unwrap();
        let mut exec = SimExecutor::new(CostModel::new(model, GpuSpec::by_name("h100-sxm").unwrap(), CostConfig::default()));
        let out = engine::run(&w, policy.as_mut(), &mut exec, &EngineConfig { kv: cap, num_sms: sms }).unwrap();

        // Every request finished exactly once, with exactly its output tokens.
        prop_assert_eq!(out.requests.len(), w.len());
        for (r, spec) in out.requests.iter().zip(&w.requests) {
            prop_assert_eq!(r.id, spec.id);
            prop_assert_eq!(r.tokens_emitted, spec.output_tokens);
            // Time order within a request.
            prop_assert!(r.arrival <= r.first_scheduled && r.first_scheduled < r.first_token && r.first_token <= r.finish);
        }
        let gaps: u64 = w.requests.iter().map(|r| u64::from(r.output_tokens - 1)).sum();
        prop_assert_eq!(out.itl_ns.len() as u64, gaps);
        // KV never over capacity.
        prop_assert!(out.stats.peak_kv_blocks <= cap.total_blocks);
        // Batches start in time order and never overlap on the (single) partition.
        for pair in out.iterations.windows(2) {
            prop_assert!(pair[0].start < pair[0].end && pair[0].end <= pair[1].start);
        }
        // Decode-first chunked batches never exceed the token budget.
        if !prefill_first {
            prop_assert!(out.iterations.iter().all(|it| it.prefill_tokens + it.decode_tokens <= budget));
        } else {
            // prefill-first never mixes phases.
            prop_assert!(out.iterations.iter().all(|it| it.prefill_tokens == 0 || it.decode_tokens == 0));
        }
    }
}
