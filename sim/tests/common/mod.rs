//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use duet_sim::executor::{Executor, ExecutorError, Step, StepTiming};
use duet_sim::kv::KvCapacity;
use duet_sim::{ModelSpec, Nanos};
use duet_traces::{RequestSpec, Workload};

/// Every batch takes the same time.
pub struct FixedExecutor(pub Nanos);

impl Executor for FixedExecutor {
    fn execute(&mut self, _: &Step<'_>) -> Result<StepTiming, ExecutorError> {
        Ok(StepTiming::opaque(self.0))
    }
}

/// Returns the given durations in order (replays another executor's timings).
pub struct ReplayExecutor(pub std::collections::VecDeque<Nanos>);

impl Executor for ReplayExecutor {
    fn execute(&mut self, _: &Step<'_>) -> Result<StepTiming, ExecutorError> {
        self.0.pop_front().map(StepTiming::opaque).ok_or_else(|| ExecutorError("replay ran out of durations".into()))
    }
}

/// A workload from (arrival ns, input, output) triples.
pub fn workload(reqs: &[(u64, u32, u32)]) -> Workload {
    let specs = reqs
        .iter()
        .map(|&(arrival_ns, input_tokens, output_tokens)| RequestSpec {
            id: 0,
            arrival_ns,
            input_tokens,
            output_tokens,
        })
        .collect();
    Workload::from_unsorted("test".into(), specs)
}

/// Engine settings for tests: `blocks` KV blocks, 132 SMs, TPC granularity, default contention.
pub fn engine_cfg(blocks: u32) -> duet_sim::engine::EngineConfig {
    duet_sim::engine::EngineConfig::new(kv(blocks), 132)
}

/// A KV cache of exactly `blocks` 16-token blocks for qwen3-8b.
pub fn kv(blocks: u32) -> KvCapacity {
    let m = ModelSpec::resolve("qwen3-8b").unwrap();
    KvCapacity { block_size: 16, total_blocks: blocks, bytes_per_block: 16 * m.kv_bytes_per_token() }
}

pub const MS: u64 = 1_000_000;

/// One H100-SXM running `model` under `policy`: TPC granularity, no contention model, the datasheet curves, default
/// KV, one instance, every iteration kept.
pub fn sim_config(model: &str, policy: duet_sim::policy::PolicyConfig) -> duet_sim::SimConfig {
    let gpu = duet_sim::GpuSpec::by_name("h100-sxm").unwrap();
    duet_sim::SimConfig {
        model: ModelSpec::resolve(model).unwrap(),
        num_sms: gpu.num_sms,
        gpu,
        policy,
        granularity: duet_sim::partition::Granularity::Tpc,
        contention: None,
        partition_switch_ns: 20_000,
        cost: Default::default(),
        curves: None,
        curves_name: "datasheet".into(),
        kv: Default::default(),
        prefix_cache: true,
        slo: Default::default(),
        seed: 0,
        cluster: Default::default(),
        client: Default::default(),
        keep_iterations: true,
        keep_decisions: true,
        leap: true,
        stop: None,
    }
}

/// Builds a policy by name for qwen3-8b on an H100 (TPC granularity).
pub fn build_policy(name: &str, opts: &duet_sim::policy::PolicyOptions) -> Box<dyn duet_sim::policy::Policy> {
    let cost = std::sync::Arc::new(duet_sim::cost::CostModel::new(
        ModelSpec::resolve("qwen3-8b").unwrap(),
        duet_sim::GpuSpec::by_name("h100-sxm").unwrap(),
        Default::default(),
    ));
    let ctx =
        duet_sim::policy::PolicyContext { cost, total_sms: 132, granularity: duet_sim::partition::Granularity::Tpc };
    duet_sim::policy::PolicyConfig::by_name(name, opts).unwrap().build(&ctx).unwrap()
}
