//! From [`SimArgs`] to what a run needs: the [`SimConfig`] (model, GPU, policy, profile curves, contention,
//! KV, SLOs, cluster) and the [`Workload`] (loaded or generated, transformed, checked against the context).

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use duet_calibration::Profile;
use duet_sim::cluster::{ClusterConfig, KvLink, Layout, Router};
use duet_sim::cost::{CostConfig, DefaultCurves, DeviceCurves, EngineCurves, LinearSmScaling};
use duet_sim::engine::{ClientConfig, Contention};
use duet_sim::kv::KvConfig;
use duet_sim::metrics::Slo;
use duet_sim::partition::Granularity;
use duet_sim::policy::{PolicyConfig, PolicyOptions};
use duet_sim::preset::EnginePreset;
use duet_sim::{GpuSpec, ModelSpec, SimConfig};
use duet_traces::Workload;

use crate::sim_args::SimArgs;
use crate::workload;

/// Parses `P:D` (prefill SMs, decode SMs).
fn parse_split(s: &str) -> Result<(u32, u32)> {
    let (p, d) = s.split_once(':').with_context(|| format!("--split {s:?} must be PREFILL_SMS:DECODE_SMS"))?;
    let num = |v: &str| v.trim().parse::<u32>().with_context(|| format!("--split {s:?}: {v:?} is not a number of SMs"));
    Ok((num(p)?, num(d)?))
}

/// Builds the simulation configuration the arguments describe.
/// Notes on options given that the chosen policy does not read (they cannot affect the run; sweeps set such
/// options on purpose, so they are notes, not errors). `duet sim` prints them.
pub fn option_notes(a: &SimArgs) -> Vec<String> {
    let preset = a.engine.as_deref().and_then(|e| EnginePreset::resolve(e).ok());
    let name = policy_name(a, preset.as_ref());
    let opts = PolicyOptions {
        token_budget: a.token_budget,
        max_num_seqs: a.max_num_seqs,
        tbt_target_ms: a.tbt_target_ms,
        max_lookahead: a.max_lookahead,
        split: None,
        guard: a.decode_guard,
        without: a.adaptive_without.iter().map(String::clone).collect(),
    };
    PolicyConfig::ignored_options(name, &opts)
        .into_iter()
        .map(|flag| format!("{flag} does not apply to policy {name}: ignored"))
        .collect()
}

/// The policy a run uses: `--policy`, else under an engine preset the engine's own scheduler, else chunked.
fn policy_name<'a>(a: &'a SimArgs, preset: Option<&'a EnginePreset>) -> &'a str {
    match (&a.policy, preset) {
        (Some(name), _) => name,
        (None, Some(p)) => &p.policy,
        (None, None) => "chunked",
    }
}

pub fn config(a: &SimArgs) -> Result<SimConfig> {
    let model = ModelSpec::resolve(&a.model)?;
    let mut gpu = GpuSpec::by_name(a.gpu_name())?;
    if let Some(s) = a.bw_saturation_sms {
        if s == 0 || s > gpu.num_sms {
            bail!("--bw-saturation-sms must be between 1 and {}, got {s}", gpu.num_sms);
        }
        gpu.bandwidth_saturation_sms = s;
    }
    let split = a.split.as_deref().map(parse_split).transpose()?;
    let preset = a.engine.as_deref().map(EnginePreset::resolve).transpose()?;
    let engine_gpu = preset.as_ref().map(|p| p.for_gpu(&gpu.name)).transpose()?;
    let opts = PolicyOptions {
        token_budget: a.token_budget.or(engine_gpu.map(|g| g.token_budget)),
        max_num_seqs: a.max_num_seqs.or(engine_gpu.map(|g| g.max_num_seqs)),
        tbt_target_ms: a.tbt_target_ms,
        max_lookahead: a.max_lookahead,
        split,
        guard: a.decode_guard,
        without: a.adaptive_without.iter().flat_map(|l| l.split(',')).map(|m| m.trim().to_string()).collect(),
    };
    let policy = PolicyConfig::by_name(policy_name(a, preset.as_ref()), &opts)?;
    let granularity: Granularity = a.granularity.parse()?;
    let mut cost = CostConfig::default();
    if let Some(us) = a.iteration_overhead_us {
        cost.iteration_overhead_ns = us * 1_000;
    }
    if let Some(us) = a.graph_launch_us {
        cost.graph_launch_ns = us * 1_000;
    }
    let profile = match a.profile.as_deref() {
        Some("datasheet") => None,
        Some(p) => Some(Profile::resolve(p)?),
        None => Profile::bundled(&gpu.name),
    };
    let profile = match (profile, a.bw_saturation_sms) {
        (Some(p), Some(sat)) => Some(p.with_bandwidth_saturation(sat)),
        (p, _) => p,
    };
    if let Some(p) = &profile
        && p.gpu.num_sms != gpu.num_sms
    {
        bail!(
            "profile {} is for {} ({} SMs), not {} ({} SMs)",
            p.gpu.name,
            p.gpu.name,
            p.gpu.num_sms,
            gpu.name,
            gpu.num_sms
        );
    }
    if let Some(p) = &profile {
        cost.iteration_overhead_ns = a.iteration_overhead_us.map_or(p.overheads.iteration_overhead_ns, |us| us * 1_000);
        cost.graph_launch_ns = a.graph_launch_us.map_or(p.overheads.graph_launch_ns, |us| us * 1_000);
        cost.mixed_attention_penalty = p.overheads.mixed_attention_penalty;
    }
    if let Some(v) = a.mixed_attention_penalty {
        if !(v.is_finite() && v > -1.0) {
            bail!("--mixed-attention-penalty must be a fraction > -1, got {v}");
        }
        cost.mixed_attention_penalty = v;
    }
    let (hbm, interference) = match &profile {
        Some(p) => (p.contention.hbm_bandwidth, p.contention.interference),
        None => (gpu.hbm_bandwidth * gpu.bandwidth_efficiency, 0.1),
    };
    let check = |v: f64, name: &str| {
        if v.is_finite() && v >= 0.0 { Ok(v) } else { Err(anyhow::anyhow!("{name} must be a fraction >= 0, got {v}")) }
    };
    let contention = match (a.contention_decode, a.contention_prefill) {
        (None, None) => {
            let interference = a
                .contention_interference
                .map(|v| check(v, "--contention-interference"))
                .transpose()?
                .unwrap_or(interference);
            Contention::Bandwidth { hbm_bandwidth: hbm, interference }
        }
        (d, p) => Contention::Fixed {
            decode_slowdown: check(d.unwrap_or(0.15), "--contention-decode")?,
            prefill_slowdown: check(p.unwrap_or(0.05), "--contention-prefill")?,
        },
    };
    let mut curves: Option<Arc<dyn DeviceCurves>> =
        profile.as_ref().map(|p| Arc::new(p.curves()) as Arc<dyn DeviceCurves>);
    let mut client = ClientConfig::default();
    let mut kv = KvConfig { total_blocks_override: a.kv_blocks, ..KvConfig::default() };
    if let (Some(p), Some(g)) = (&preset, engine_gpu) {
        let inner = curves.take().unwrap_or_else(|| Arc::new(DefaultCurves::new(gpu.clone())));
        curves = Some(Arc::new(EngineCurves::new(inner, g.efficiency.into())));
        if a.iteration_overhead_us.is_none() {
            cost.iteration_overhead_ns = EnginePreset::us_to_ns(p.step_overhead_us);
        }
        cost.per_seq_overhead_ns = EnginePreset::us_to_ns(p.per_seq_overhead_us);
        client.frontend_ns = EnginePreset::us_to_ns(p.frontend_us_per_request);
        client.output_ns = EnginePreset::us_to_ns(p.frontend_us_per_output_token);
        kv.block_size = p.block_size;
        kv.gpu_memory_utilization = p.gpu_memory_utilization;
        kv.activation_reserve_bytes = (g.non_kv_reserve_gib * (1u64 << 30) as f64).round() as u64;
    }
    let mut sat = a.bw_saturation_sms.map_or(String::new(), |s| format!(", bandwidth saturating at {s} SMs"));
    match a.sm_scaling.as_str() {
        "profile" => {}
        "linear" => {
            let inner = curves.take().unwrap_or_else(|| Arc::new(DefaultCurves::new(gpu.clone())));
            curves = Some(Arc::new(LinearSmScaling::new(inner, gpu.num_sms)));
            sat.push_str(", linear SM scaling");
        }
        other => bail!("--sm-scaling {other:?}: expected profile or linear"),
    }
    if let Some(p) = &preset {
        sat.push_str(&format!(", {} kernels", p.name));
    }
    let curves_name = match &profile {
        Some(p) => format!("{} ({}{sat})", a.profile.as_deref().unwrap_or(&p.gpu.name), p.provenance.kind),
        None => format!("datasheet{sat}"),
    };
    let partition_switch_ns = a.partition_switch_us.map_or(20_000, |us| us * 1_000);
    if let Some(u) = a.gpu_memory_utilization {
        kv.gpu_memory_utilization = u;
    }
    let num_sms = a.num_sms.unwrap_or(gpu.num_sms);
    let slo = Slo { ttft_ms: a.slo_ttft_ms, tbt_ms: a.slo_tbt_ms, tpot_ms: a.slo_tpot_ms };
    slo.validate()?;
    Ok(SimConfig {
        model,
        gpu,
        num_sms,
        policy,
        granularity,
        contention: Some(contention),
        partition_switch_ns,
        cost,
        curves,
        curves_name,
        kv,
        prefix_cache: !a.no_prefix_cache,
        slo,
        seed: a.workload.seed,
        cluster: cluster_config(a)?,
        client,
        keep_iterations: true,
        keep_decisions: true,
        leap: !a.no_leap,
        stop: None,
    })
}

/// Instances, TP, router and KV link of `a`.
fn cluster_config(a: &SimArgs) -> Result<ClusterConfig> {
    let layout = match &a.disagg {
        Some(d) => {
            if a.replicas != 1 {
                bail!("--disagg {d} sets the instances; it cannot be combined with --replicas {}", a.replicas);
            }
            Layout::parse_disagg(d)?
        }
        None => Layout::Replicas(a.replicas),
    };
    if a.kv_link.is_some() && a.disagg.is_none() {
        bail!("--kv-link only applies with --disagg (replicas do not move KV)");
    }
    let c = ClusterConfig {
        layout,
        tp: a.tp,
        router: a.router.as_deref().map(Router::parse).transpose()?.unwrap_or_default(),
        link: a.kv_link.as_deref().map(KvLink::parse).transpose()?.unwrap_or(KvLink::NVLINK),
        gpus: a.gpus,
    };
    c.validate()?;
    Ok(c)
}

/// The workload of `a`, checked against the model's context.
///
/// Under an engine preset with the prefix cache on, a workload without prefix hashes gets a distinct hash per
/// KV block of every prompt (vLLM's automatic prefix caching on prompts that share nothing): no request hits
/// another's blocks, but a preempted request finds its own computed blocks again unless they were evicted.
pub fn load_workload(a: &SimArgs, cfg: &SimConfig) -> Result<Workload> {
    let mut w = workload::build(&a.workload, cfg.model.max_context)?;
    if a.engine.is_some() && cfg.prefix_cache && w.prefix.is_none() {
        let b = cfg.kv.block_size;
        let lists: Vec<Vec<u64>> = w
            .requests
            .iter()
            .enumerate()
            .map(|(i, r)| (0..u64::from(r.input_tokens.div_ceil(b))).map(|j| ((i as u64) << 32) | j).collect())
            .collect();
        w.prefix = Some(duet_traces::PrefixHashes::from_lists(b, &lists));
    }
    Ok(w)
}
