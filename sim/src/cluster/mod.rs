//! Several GPUs: instances (each an engine with its own policy, KV cache and prefix cache, on `tp` GPUs)
//! behind a global router, either as aggregated replicas or as disaggregated prefill and decode instances
//! joined by a KV-transfer link.
//!
//! Time. One clock for the cluster: the next thing to happen is the earliest of the cluster's own events
//! (arrivals, finished transfers) and every instance's next event; ties go to cluster events, then instances
//! in index order. Every rule is deterministic, so equal inputs give equal bytes out. The cluster is driven by the
//! same event kernel as a single engine (`crate::kernel::drive`, over a virtual clock).
//!
//! Disaggregation (DistServe, Dynamo, vLLM's P/D connectors). A request is routed to a prefill instance, which
//! runs its prompt (as a request with one output token) and keeps its KV. The router then picks a decode
//! instance, where the request queues (first come, first served) until `input + 1` tokens of KV are free; the
//! decode instance reserves `input` tokens, the prompt's KV moves over the prefill instance's link
//! ([`KvLink`]), the prefill instance frees it, and the request joins the decode instance's running set with its
//! first token. **TTFT is measured when the first token reaches the user with the request running on its
//! decode instance**, so prefill, the wait for decode KV room and the transfer are all in it; a request with one
//! output token finishes on its prefill instance. A decode instance that preempts a request recomputes it there.

mod link;
mod router;

use crate::queue::EventQueue;
use std::collections::VecDeque;

use duet_traces::{RequestSpec, Workload};

pub use link::KvLink;
pub use router::{Load, Router};

use crate::engine::{Engine, EngineConfig, EngineStats, IterationTotals, RequestRecord, Role, SimOutput};
use crate::error::{ConfigError, SimError};
use crate::executor::{Executor, Step, StepTiming, VirtualClock};
use crate::policy::Policy;
use crate::request::ReqId;
use crate::time::Nanos;

/// How the GPUs are organised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `n` aggregated instances.
    Replicas(u32),
    /// `prefill` prefill instances and `decode` decode instances.
    Disaggregated {
        /// Prefill instances.
        prefill: u32,
        /// Decode instances.
        decode: u32,
    },
}

impl Layout {
    /// Parses `xPyD` (e.g. `1P1D`, `2p1d`).
    pub fn parse_disagg(s: &str) -> Result<Layout, ConfigError> {
        let bad = || ConfigError::Invalid(format!("--disagg {s:?}: expected xPyD with x, y >= 1 (e.g. 1P1D, 2P1D)"));
        let u = s.to_ascii_uppercase();
        let (p, d) = u.strip_suffix('D').and_then(|r| r.split_once('P')).ok_or_else(bad)?;
        let (prefill, decode) = (p.parse::<u32>().map_err(|_| bad())?, d.parse::<u32>().map_err(|_| bad())?);
        if prefill == 0 || decode == 0 {
            return Err(bad());
        }
        Ok(Layout::Disaggregated { prefill, decode })
    }

    /// Instances in the layout.
    pub fn instances(&self) -> u32 {
        match *self {
            Layout::Replicas(n) => n,
            Layout::Disaggregated { prefill, decode } => prefill + decode,
        }
    }

    /// Name in reports: `1 replica`, `3 replicas`, `2P1D`.
    pub fn label(&self) -> String {
        match *self {
            Layout::Replicas(1) => "1 replica".into(),
            Layout::Replicas(n) => format!("{n} replicas"),
            Layout::Disaggregated { prefill, decode } => format!("{prefill}P{decode}D"),
        }
    }

    /// Role of instance `i`.
    pub fn role(&self, i: u32) -> Role {
        match *self {
            Layout::Replicas(_) => Role::Aggregated,
            Layout::Disaggregated { prefill, .. } if i < prefill => Role::Prefill,
            Layout::Disaggregated { .. } => Role::Decode,
        }
    }
}

/// Cluster settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterConfig {
    /// Instances and their roles.
    pub layout: Layout,
    /// GPUs per instance (tensor parallelism).
    pub tp: u32,
    /// Routing rule (for arrivals, and for picking a decode instance after prefill).
    pub router: Router,
    /// Prefill-to-decode KV link.
    pub link: KvLink,
    /// GPUs available (`None`: exactly what the layout needs).
    pub gpus: Option<u32>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self { layout: Layout::Replicas(1), tp: 1, router: Router::default(), link: KvLink::NVLINK, gpus: None }
    }
}

impl ClusterConfig {
    /// GPUs the layout uses: instances x TP.
    pub fn gpus_needed(&self) -> u32 {
        self.layout.instances() * self.tp
    }

    /// Checks counts: at least one instance, TP >= 1, and no more GPUs needed than available.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.layout.instances() == 0 {
            return Err(ConfigError::Invalid("--replicas must be >= 1".into()));
        }
        if self.tp == 0 {
            return Err(ConfigError::Invalid("--tp must be >= 1".into()));
        }
        if let Some(g) = self.gpus
            && self.gpus_needed() > g
        {
            return Err(ConfigError::Invalid(format!(
                "{} instance(s) x --tp {} need {} GPUs, but --gpus is {g}",
                self.layout.instances(),
                self.tp,
                self.gpus_needed()
            )));
        }
        Ok(())
    }

    /// Whether this is one plain instance (the engine runs alone, without the cluster loop).
    pub fn is_single(&self) -> bool {
        self.layout == Layout::Replicas(1)
    }
}

/// One instance's share of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceStats {
    /// Index (prefill instances first).
    pub index: u32,
    /// What it did.
    pub role: Role,
    /// Requests routed to it.
    pub requests: usize,
    /// Union of its iterations' busy intervals over the run's duration (first arrival to last token).
    pub busy_fraction: f64,
    /// Most KV blocks in use at once over its capacity.
    pub peak_kv_utilization: f64,
    /// Iterations it ran.
    pub iterations: usize,
    /// Prefill tokens it computed.
    pub prefill_tokens: u64,
    /// Decode tokens it computed.
    pub decode_tokens: u64,
    /// Preemptions.
    pub preemptions: u64,
    /// Prefix-cache block hit rate (`None` without a cache).
    pub prefix_hit_rate: Option<f64>,
}

/// One KV transfer of a disaggregated run (times in ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferRecord {
    /// Request id (workload order).
    pub request: u32,
    /// Prefill instance.
    pub from: u32,
    /// Decode instance.
    pub to: u32,
    /// Prefill finished (the request started waiting for decode KV).
    pub prefilled: Nanos,
    /// KV reserved on the decode instance; the transfer was queued on the link.
    pub reserved: Nanos,
    /// The KV arrived; the request runs on the decode instance from here.
    pub arrived: Nanos,
    /// Bytes per GPU moved.
    pub bytes: u64,
}

/// What a cluster run produced besides the merged [`SimOutput`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterReport {
    /// The configuration.
    pub config: ClusterConfig,
    /// Per instance.
    pub instances: Vec<InstanceStats>,
    /// Per transfer (disaggregation only), in request order.
    pub transfers: Vec<TransferRecord>,
}

/// Everything an instance needs: its engine settings, a fresh policy and an executor.
pub struct InstanceParts {
    /// Engine settings (the role is set by the cluster).
    pub engine: EngineConfig,
    /// Its policy.
    pub policy: Box<dyn Policy>,
    /// Its executor.
    pub executor: Box<dyn Executor>,
}

struct Instance {
    engine: Engine,
    policy: Box<dyn Policy>,
    executor: Box<dyn Executor>,
    role: Role,
    /// Local request id -> workload request id.
    global: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ClusterEvent {
    Arrival(u32),
    TransferDone(usize),
}

/// A prefilled request waiting for KV room on its decode instance.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    request: u32,
    from: u32,
    local: ReqId,
    since: Nanos,
}

/// Runs `workload` on the cluster; `parts(i)` builds instance `i` (`kv_bytes_per_token` is per GPU).
pub fn run(
    workload: &Workload,
    cfg: &ClusterConfig,
    kv_bytes_per_token: u64,
    parts: &mut dyn FnMut(u32) -> Result<InstanceParts, SimError>,
) -> Result<(SimOutput, ClusterReport), SimError> {
    cfg.validate()?;
    let prefix_tokens = workload.prefix.as_ref().map(|p| p.block_tokens);
    let n = cfg.layout.instances();
    let mut inst = Vec::with_capacity(n as usize);
    for i in 0..n {
        let p = parts(i)?;
        let role = cfg.layout.role(i);
        let engine_cfg = EngineConfig { role, ..p.engine };
        // Decode instances receive KV, not prompts: no prefix cache there.
        let engine = Engine::new(&engine_cfg, prefix_tokens.filter(|_| role != Role::Decode))?;
        engine.check_fit(workload.requests.iter())?;
        inst.push(Instance { engine, policy: p.policy, executor: p.executor, role, global: Vec::new() });
    }
    let (front, back): (Vec<u32>, Vec<u32>) = match cfg.layout {
        Layout::Replicas(r) => ((0..r).collect(), Vec::new()),
        Layout::Disaggregated { prefill, decode } => ((0..prefill).collect(), (prefill..prefill + decode).collect()),
    };
    let mut events: EventQueue<ClusterEvent> = EventQueue::new();
    for s in &workload.requests {
        events.push(Nanos(s.arrival_ns), ClusterEvent::Arrival(s.id));
    }
    let mut run = ClusterRun {
        workload,
        cfg,
        kv_bytes_per_token,
        inst,
        front,
        back,
        events,
        turns: [0; 2],
        waiting: vec![VecDeque::new(); n as usize],
        link_free: vec![Nanos::ZERO; n as usize],
        transfers: Vec::new(),
        transfer_ids: Vec::new(),
        placed: vec![(0, ReqId(0)); workload.len()],
    };
    crate::kernel::drive(&mut run, &mut VirtualClock::new(&mut NoSteps))?;
    let ClusterRun { inst, waiting, transfers, placed, .. } = run;
    if let Some((d, q)) = waiting.iter().enumerate().find(|(_, q)| !q.is_empty()) {
        return Err(ConfigError::Memory(format!(
            "{} prefilled request(s) never found KV room on decode instance {d}",
            q.len()
        ))
        .into());
    }
    for x in &inst {
        x.engine.check_finished(x.policy.as_ref())?;
    }
    Ok(merge(workload, cfg, inst, transfers, &placed))
}

/// The cluster as the event kernel drives it: its instances, its own events (arrivals, finished transfers) and the
/// router's and links' state.
struct ClusterRun<'a> {
    workload: &'a Workload,
    cfg: &'a ClusterConfig,
    kv_bytes_per_token: u64,
    inst: Vec<Instance>,
    front: Vec<u32>,
    back: Vec<u32>,
    events: EventQueue<ClusterEvent>,
    turns: [u64; 2],
    waiting: Vec<VecDeque<Waiting>>,
    link_free: Vec<Nanos>,
    transfers: Vec<TransferRecord>,
    /// (instance, local id) of each transfer's decode-side request and prefill-side request.
    transfer_ids: Vec<(ReqId, ReqId)>,
    placed: Vec<(u32, ReqId)>,
}

/// The loads the router compares: per instance of `group`, unfinished requests (waiting transfers included) and
/// free KV blocks.
fn loads(inst: &[Instance], group: &[u32], waiting: &[VecDeque<Waiting>]) -> Vec<Load> {
    group
        .iter()
        .map(|&i| Load {
            outstanding: inst[i as usize].engine.outstanding() + waiting[i as usize].len(),
            free_blocks: inst[i as usize].engine.free_blocks(),
        })
        .collect()
}

/// The executor of the cluster's own clock: never asked to run a step (each instance has its executor).
struct NoSteps;

impl Executor for NoSteps {
    fn execute(&mut self, _: &Step<'_>) -> Result<StepTiming, crate::executor::ExecutorError> {
        Err(crate::executor::ExecutorError("the cluster runs steps on its instances' executors".into()))
    }
}

impl crate::kernel::Driven for ClusterRun<'_> {
    /// The earliest of the cluster's own events and every instance's next event.
    fn next_time(&self) -> Option<Nanos> {
        let ti = self.inst.iter().filter_map(|x| x.engine.next_time()).min();
        self.events.next_time().into_iter().chain(ti).min()
    }

    /// One instant: the cluster's events at the next event time when there are any (ties go to cluster events),
    /// else every instance whose next event is then, in index order, then decode instances admit waiting
    /// transfers.
    fn advance_to(&mut self, _now: Nanos, _: &mut dyn Executor) -> Result<(), SimError> {
        let Some(t) = self.next_time() else { return Ok(()) };
        let tc = self.events.next_time();
        if tc == Some(t) {
            while let Some((_, ev)) = self.events.pop_due(t) {
                match ev {
                    ClusterEvent::Arrival(g) => {
                        let spec = self.workload.requests[g as usize];
                        let k = self.front
                            [self.cfg.router.pick(self.turns[0], &loads(&self.inst, &self.front, &self.waiting))];
                        self.turns[0] += 1;
                        let x = &mut self.inst[k as usize];
                        let mut local = spec;
                        if x.role == Role::Prefill {
                            local.output_tokens = 1;
                        }
                        let hashes = self.workload.prefix.as_ref().map(|p| p.get(g as usize));
                        let id = x.engine.add_arrival(local, hashes);
                        x.global.push(g);
                        self.placed[g as usize] = (k, id);
                    }
                    ClusterEvent::TransferDone(tid) => {
                        let tr = self.transfers[tid];
                        let (decode_id, prefill_id) = self.transfer_ids[tid];
                        self.inst[tr.to as usize].engine.kv_arrived(decode_id, t);
                        self.inst[tr.from as usize].engine.release_handoff(prefill_id, t);
                    }
                }
            }
            return Ok(());
        }
        // Replicas meet only at the cluster's arrivals (all queued from the start; the router reads their loads
        // then): an instance may leap over quiet steps up to the next one. Disaggregated decode instances are read
        // after every advance (waiting transfers reserve their KV), so no instance leaps there.
        let disaggregated = self.inst.iter().any(|x| x.role != Role::Aggregated);
        let horizon = if disaggregated { t } else { tc.unwrap_or(Nanos(u64::MAX)) };
        for i in 0..self.inst.len() {
            if self.inst[i].engine.next_time() != Some(t) {
                continue;
            }
            let x = &mut self.inst[i];
            x.engine.advance_to(t, horizon, x.policy.as_mut(), x.executor.as_mut())?;
            if x.role != Role::Prefill {
                continue;
            }
            for local in x.engine.take_handoffs() {
                let g = self.inst[i].global[local.index()];
                if self.workload.requests[g as usize].output_tokens == 1 {
                    self.inst[i].engine.release_handoff(local, t);
                    continue;
                }
                let d = self.back[self.cfg.router.pick(self.turns[1], &loads(&self.inst, &self.back, &self.waiting))];
                self.turns[1] += 1;
                self.waiting[d as usize].push_back(Waiting { request: g, from: i as u32, local, since: t });
            }
        }
        // Decode instances admit waiting transfers in order while they have room.
        for &d in &self.back {
            while let Some(w) = self.waiting[d as usize].front().copied() {
                let spec = RequestSpec { arrival_ns: t.0, ..self.workload.requests[w.request as usize] };
                let x = &mut self.inst[d as usize];
                let Some(id) = x.engine.reserve_transfer(spec) else { break };
                self.waiting[d as usize].pop_front();
                x.global.push(w.request);
                self.placed[w.request as usize] = (d, id);
                let bytes = u64::from(spec.input_tokens) * self.kv_bytes_per_token;
                let start = t.max(self.link_free[w.from as usize]);
                self.link_free[w.from as usize] = start + Nanos(self.cfg.link.busy_ns(bytes));
                let arrived = start + Nanos(self.cfg.link.transfer_ns(bytes));
                self.transfers.push(TransferRecord {
                    request: w.request,
                    from: w.from,
                    to: d,
                    prefilled: w.since,
                    reserved: t,
                    arrived,
                    bytes,
                });
                self.transfer_ids.push((id, w.local));
                self.events.push(arrived, ClusterEvent::TransferDone(self.transfers.len() - 1));
            }
        }
        Ok(())
    }

    fn pending_steps(&self) -> usize {
        0
    }

    fn step_finished(&mut self, ticket: u64, _: Nanos) -> Result<(), SimError> {
        Err(crate::executor::ExecutorError(format!("the cluster runs in virtual time: no step {ticket} is pending"))
            .into())
    }
}

/// Builds the cluster's [`SimOutput`] (requests in workload order with their end-to-end timings) and report.
fn merge(
    workload: &Workload,
    cfg: &ClusterConfig,
    inst: Vec<Instance>,
    mut transfers: Vec<TransferRecord>,
    placed: &[(u32, ReqId)],
) -> (SimOutput, ClusterReport) {
    // Per instance, totals over all its records (kept or trimmed), for the report.
    let mut totals: Vec<IterationTotals> = Vec::with_capacity(inst.len());
    let outs: Vec<(SimOutput, Role, Vec<u32>)> = inst
        .into_iter()
        .map(|x| {
            totals.push(x.engine.iteration_totals());
            (x.engine.into_output(), x.role, x.global)
        })
        .collect();
    // Prefill-side record of each request (disaggregation), to take its first scheduling and preemptions.
    let mut prefill_side: Vec<Option<RequestRecord>> = vec![None; workload.len()];
    for (out, role, global) in &outs {
        if *role == Role::Prefill {
            for (r, &g) in out.requests.iter().zip(global) {
                prefill_side[g as usize] = Some(*r);
            }
        }
    }
    let requests: Vec<RequestRecord> = workload
        .requests
        .iter()
        .map(|s| {
            let (k, local) = placed[s.id as usize];
            let mut r = outs[k as usize].0.requests[local.index()];
            r.id = s.id;
            r.arrival = Nanos(s.arrival_ns);
            r.input_tokens = s.input_tokens;
            r.output_tokens = s.output_tokens;
            if let Some(p) = prefill_side[s.id as usize].filter(|_| outs[k as usize].1 == Role::Decode) {
                r.first_scheduled = p.first_scheduled;
                r.preemptions += p.preemptions;
            }
            r
        })
        .collect();
    let end = requests.iter().map(|r| r.finish).max().unwrap_or_default();
    let mut gap_parts = Vec::with_capacity(outs.len());
    let mut iterations = Vec::new();
    let mut decisions = Vec::new();
    let mut stats = EngineStats::default();
    let mut instances = Vec::new();
    for (i, ((out, role, global), totals)) in outs.into_iter().zip(totals).enumerate() {
        gap_parts.push(out.itl_ns);
        let s = out.stats;
        stats.preemptions += s.preemptions;
        stats.recomputed_tokens += s.recomputed_tokens;
        stats.iterations += s.iterations;
        stats.peak_kv_blocks = stats.peak_kv_blocks.max(s.peak_kv_blocks);
        stats.total_kv_blocks = s.total_kv_blocks;
        stats.end = stats.end.max(s.end);
        stats.peak_sms = stats.peak_sms.max(s.peak_sms);
        stats.prefix.merge(&s.prefix);
        stats.prefix_cache |= s.prefix_cache;
        stats.decisions.merge(&s.decisions);
        let busy = totals.busy.total();
        instances.push(InstanceStats {
            index: i as u32,
            role,
            requests: global.len(),
            busy_fraction: if end.0 > 0 { busy as f64 / end.0 as f64 } else { 0.0 },
            peak_kv_utilization: f64::from(s.peak_kv_blocks) / f64::from(s.total_kv_blocks.max(1)),
            iterations: totals.count,
            prefill_tokens: totals.prefill_tokens,
            decode_tokens: totals.decode_tokens,
            preemptions: s.preemptions,
            prefix_hit_rate: s.prefix_cache.then(|| s.prefix.hit_rate()),
        });
        iterations.extend(out.iterations.into_iter().map(|mut it| {
            it.instance = i as u32;
            it
        }));
        decisions.extend(out.decisions);
    }
    // Each instance's gaps are sorted (`into_output`): merged in one linear pass per instance.
    let itl_ns = crate::stats::Gaps::merge_sorted(gap_parts);
    // Stable sorts: equal times keep instance order.
    iterations.sort_by_key(|it| it.start);
    decisions.sort_by_key(|d| d.at);
    transfers.sort_by_key(|t| t.request);
    let output = SimOutput { requests, itl_ns, iterations, decisions, stats };
    (output, ClusterReport { config: *cfg, instances, transfers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_parse_and_count() {
        assert_eq!(Layout::parse_disagg("2P1D").unwrap(), Layout::Disaggregated { prefill: 2, decode: 1 });
        assert_eq!(Layout::parse_disagg("1p3d").unwrap().instances(), 4);
        for bad in ["P1D", "1P", "0P1D", "1P0D", "xPyD", "1D1P"] {
            assert!(Layout::parse_disagg(bad).is_err(), "{bad}");
        }
        let l = Layout::Disaggregated { prefill: 2, decode: 1 };
        assert_eq!((l.role(0), l.role(1), l.role(2)), (Role::Prefill, Role::Prefill, Role::Decode));
        assert_eq!(l.label(), "2P1D");
    }

    #[test]
    fn more_instances_than_gpus_is_an_error() {
        let c = ClusterConfig { layout: Layout::Replicas(4), tp: 2, gpus: Some(4), ..Default::default() };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("4 instance(s) x --tp 2 need 8 GPUs, but --gpus is 4"), "{e}");
        assert!(ClusterConfig { gpus: Some(8), ..c }.validate().is_ok());
    }
}
