//! One simulation from configuration to results: builds the cost model, KV capacity, policy and simulated
//! executor, runs the engine, computes the metrics.

use std::sync::Arc;

use duet_traces::Workload;

use crate::cluster::{self, ClusterConfig, ClusterReport, InstanceParts};
use crate::cost::collective::RingAllReduce;
use crate::cost::{CostConfig, CostModel, DeviceCurves, TensorParallel};
use crate::engine::{self, ClientConfig, Contention, EngineConfig, Role, SimOutput};
use crate::error::{ConfigError, SimError};
use crate::executor::SimExecutor;
use crate::gpu::GpuSpec;
use crate::kv::{KvCapacity, KvConfig};
use crate::metrics::{self, Metrics, Slo};
use crate::model::ModelSpec;
use crate::partition::Granularity;
use crate::policy::{PolicyConfig, PolicyContext};
use crate::realtime::{self, AsyncExecutor};

/// Everything that defines a simulation besides the workload.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Model shapes.
    pub model: ModelSpec,
    /// GPU.
    pub gpu: GpuSpec,
    /// SMs the engine runs on (`1..=gpu.num_sms`; all of them unless studying a partition).
    pub num_sms: u32,
    /// Scheduling policy and its settings.
    pub policy: PolicyConfig,
    /// Legal SM partition sizes.
    pub granularity: Granularity,
    /// Contention between co-running partitions (`None`: none).
    pub contention: Option<Contention>,
    /// Cost of changing the partition layout, ns.
    pub partition_switch_ns: u64,
    /// Cost-model settings.
    pub cost: CostConfig,
    /// SM-scaling curves (a calibrated profile); `None` uses the GPU's default analytic curves.
    pub curves: Option<Arc<dyn DeviceCurves>>,
    /// What the curves are, for reports (`h100-sxm (fitted)`, `datasheet`).
    pub curves_name: String,
    /// KV-cache settings.
    pub kv: KvConfig,
    /// Share prompt KV between requests with equal prefix hashes (only when the workload has hashes).
    pub prefix_cache: bool,
    /// SLO limits for goodput and attainment.
    pub slo: Slo,
    /// Seed recorded with the results (the workload generator used it; the engine itself draws nothing).
    pub seed: u64,
    /// Instances, tensor parallelism, routing and KV link (default: one instance on one GPU).
    pub cluster: ClusterConfig,
    /// Frontend cost and closed-loop client (single instance only; default: none).
    pub client: ClientConfig,
    /// Keep every iteration record in the output (needed for `iterations.csv`, timelines and validation; when
    /// false the output keeps the recent tail only and the count: `EngineConfig::keep_iterations`).
    pub keep_iterations: bool,
    /// Keep every decision record in the output (needed for `decisions.csv`; when false the output keeps the recent
    /// tail only, and the counts: `EngineConfig::keep_decisions`).
    pub keep_decisions: bool,
    /// Leap over quiet decode steps (`EngineConfig::leap`; outputs are byte-identical either way).
    pub leap: bool,
    /// Stop early once one of these percentile limits is certain to fail (`EngineConfig::stop`; single instance
    /// only): `simulate` then returns [`SimError::LimitExceeded`].
    pub stop: Option<crate::engine::StopLimits>,
}

/// Run parameters echoed into reports.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMeta {
    /// Policy name.
    pub policy: String,
    /// Policy token budget.
    pub token_budget: u32,
    /// Partition granularity.
    pub granularity: Granularity,
    /// GPU profile used by the cost model.
    pub profile: String,
    /// Model name.
    pub model: String,
    /// GPU name.
    pub gpu: String,
    /// SMs used.
    pub num_sms: u32,
    /// Workload source.
    pub trace: String,
    /// What loading and transforming the workload excluded or changed.
    pub trace_notes: Vec<String>,
    /// KV capacity, tokens.
    pub kv_capacity_tokens: u64,
    /// SLO limits.
    pub slo: Slo,
    /// Seed.
    pub seed: u64,
    /// Tensor-parallel degree (GPUs per instance).
    pub tp: u32,
}

/// A finished simulation.
#[derive(Debug, Clone)]
pub struct SimRun {
    /// Raw engine output.
    pub output: SimOutput,
    /// Aggregate metrics.
    pub metrics: Metrics,
    /// Parameters.
    pub meta: RunMeta,
    /// Per-instance statistics and KV transfers (`None` for a single instance).
    pub cluster: Option<ClusterReport>,
}

/// What every run builds from its configuration before the engine starts.
struct Prepared {
    model: ModelSpec,
    kv: KvCapacity,
    cost: Arc<CostModel>,
    ctx: PolicyContext,
    engine_cfg: EngineConfig,
    policy_name: &'static str,
}

fn prepare(workload: &Workload, cfg: &SimConfig) -> Result<Prepared, SimError> {
    cfg.slo.validate()?;
    if workload.is_empty() {
        return Err(ConfigError::Invalid("the workload holds no request".into()).into());
    }
    if cfg.num_sms == 0 || cfg.num_sms > cfg.gpu.num_sms {
        return Err(ConfigError::Invalid(format!(
            "SM count must be in 1..={} for {}, got {}",
            cfg.gpu.num_sms, cfg.gpu.name, cfg.num_sms
        ))
        .into());
    }
    cfg.cluster.validate()?;
    if !cfg.cluster.is_single() && !cfg.client.is_transparent() {
        return Err(ConfigError::Invalid(
            "a frontend cost or a closed-loop client (--max-concurrency) needs a single instance".into(),
        )
        .into());
    }
    let tp = cfg.cluster.tp;
    // One GPU's shard of the model: its weights, KV bytes per token and operator shapes.
    let model = cfg.model.shard(tp)?;
    let kv = KvCapacity::compute(&model, &cfg.gpu, &cfg.kv)?;
    let cost = cost_model(cfg)?;
    let ctx = PolicyContext { cost: Arc::clone(&cost), total_sms: cfg.num_sms, granularity: cfg.granularity };
    let engine_cfg = EngineConfig {
        kv,
        num_sms: cfg.num_sms,
        granularity: cfg.granularity,
        contention: cfg.contention,
        partition_switch_ns: cfg.partition_switch_ns,
        prefix_cache: cfg.prefix_cache,
        role: Role::Aggregated,
        client: cfg.client,
        keep_iterations: cfg.keep_iterations,
        keep_decisions: cfg.keep_decisions,
        leap: cfg.leap,
        stop: cfg.stop.filter(|_| cfg.cluster.is_single()),
    };
    let policy_name = cfg.policy.name();
    Ok(Prepared { model, kv, cost, ctx, engine_cfg, policy_name })
}

fn finish(
    workload: &Workload,
    cfg: &SimConfig,
    p: &Prepared,
    output: SimOutput,
    cluster: Option<ClusterReport>,
) -> SimRun {
    let metrics = metrics::compute(&output, &cfg.slo);
    let meta = RunMeta {
        policy: p.policy_name.into(),
        token_budget: cfg.policy.token_budget(),
        granularity: cfg.granularity,
        profile: cfg.curves_name.clone(),
        model: cfg.model.name.clone(),
        gpu: cfg.gpu.name.clone(),
        num_sms: cfg.num_sms,
        trace: workload.source.clone(),
        trace_notes: workload.notes.clone(),
        kv_capacity_tokens: p.kv.total_tokens(),
        slo: cfg.slo,
        seed: cfg.seed,
        tp: cfg.cluster.tp,
    };
    SimRun { output, metrics, meta, cluster }
}

/// Runs `workload` under `cfg`.
pub fn simulate(workload: &Workload, cfg: &SimConfig) -> Result<SimRun, SimError> {
    simulate_inner(workload, cfg, None)
}

/// [`simulate`], handing every iteration record to `sink` in order instead of keeping them all in memory (a
/// single instance keeps a bounded history and streams the rest; a cluster, which sums every instance's records,
/// keeps them and hands them over at the end). The output's `iterations` holds only the last ones then.
pub fn simulate_streaming(
    workload: &Workload,
    cfg: &SimConfig,
    sink: engine::IterationSink,
) -> Result<SimRun, SimError> {
    simulate_inner(workload, cfg, Some(sink))
}

fn simulate_inner(
    workload: &Workload,
    cfg: &SimConfig,
    sink: Option<engine::IterationSink>,
) -> Result<SimRun, SimError> {
    let mut p = prepare(workload, cfg)?;
    // A cluster hands its merged records to the sink at the end: its instances keep every record then.
    p.engine_cfg.keep_iterations |= sink.is_some() && !cfg.cluster.is_single();
    // A run that writes its files (a sink for iterations.csv) writes decisions.csv from every decision record.
    p.engine_cfg.keep_decisions |= sink.is_some();
    let (output, cluster) = if cfg.cluster.is_single() {
        let mut policy = cfg.policy.build(&p.ctx)?;
        let mut executor = SimExecutor::new(Arc::clone(&p.cost));
        let out = match sink {
            Some(sink) => engine::run_streaming(workload, policy.as_mut(), &mut executor, &p.engine_cfg, sink)?,
            None => engine::run(workload, policy.as_mut(), &mut executor, &p.engine_cfg)?,
        };
        (out, None)
    } else {
        let mut parts = |_: u32| -> Result<InstanceParts, SimError> {
            Ok(InstanceParts {
                engine: p.engine_cfg,
                policy: cfg.policy.build(&p.ctx)?,
                executor: Box::new(SimExecutor::new(Arc::clone(&p.cost))),
            })
        };
        let (out, report) = cluster::run(workload, &cfg.cluster, p.model.kv_bytes_per_token(), &mut parts)?;
        if let Some(mut sink) = sink {
            sink(&out.iterations).map_err(|e| SimError::Output(format!("writing iteration records: {e}")))?;
        }
        (out, Some(report))
    };
    Ok(finish(workload, cfg, &p, output, cluster))
}

/// The cost model a run under `cfg` uses (one GPU's shard of the model, the configured curves): what a device
/// executor gives policies as its estimates, and what `duet validate` predicts steps with.
pub fn cost_model(cfg: &SimConfig) -> Result<Arc<CostModel>, SimError> {
    let tp = cfg.cluster.tp;
    let model = cfg.model.shard(tp)?;
    let mut cost_cfg = cfg.cost.clone();
    if tp > 1 {
        cost_cfg.tensor_parallel = Some(TensorParallel { degree: tp, all_reduce: RingAllReduce::for_gpu(&cfg.gpu) });
    }
    Ok(Arc::new(match &cfg.curves {
        Some(c) => CostModel::with_curves(model, cfg.gpu.clone(), Arc::clone(c), cost_cfg),
        None => CostModel::new(model, cfg.gpu.clone(), cost_cfg),
    }))
}

/// `cfg` for a run on a device: contention between partitions and partition-switch costs are in the device's
/// times, so the engine models neither.
pub fn device_config(mut cfg: SimConfig) -> SimConfig {
    cfg.contention = None;
    cfg.partition_switch_ns = 0;
    cfg
}

/// Runs `workload` under `cfg` on a device in wall-clock mode ([`crate::realtime`]): one instance, the same
/// policy, `executor` runs the steps. `cfg.contention` must be `None` (see [`device_config`]).
pub fn run_wall_clock(
    workload: &Workload,
    cfg: &SimConfig,
    executor: &mut dyn AsyncExecutor,
) -> Result<SimRun, SimError> {
    if !cfg.cluster.is_single() {
        return Err(ConfigError::Invalid("wall-clock runs drive one instance on one device".into()).into());
    }
    let p = prepare(workload, cfg)?;
    let mut policy = cfg.policy.build(&p.ctx)?;
    let output = realtime::run(workload, policy.as_mut(), executor, &p.engine_cfg)?;
    Ok(finish(workload, cfg, &p, output, None))
}
