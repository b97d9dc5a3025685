//! The discrete-event engine: owns time, request state, the KV block pool and the GPU's SMs; asks the policy
//! for plans, validates and applies them, and hands batch steps to the executor.
//!
//! Events are a closed enum ([`Event`]) ordered by `(time, sequence number)`, so simultaneous events resolve in
//! the order they were scheduled and a run is fully deterministic. All events at one instant are applied before
//! the policy is consulted, so a policy sees every arrival that has happened.
//!
//! Several batches may run at once on disjoint SM partitions. While they overlap, the [`Contention`] model slows
//! each one down (HBM and L2 are shared; green contexts and TPC masks partition only SMs): a batch's progress
//! rate is `1 / (1 + s)` while any other batch runs, with `s` depending on its lane, and completion times are
//! recomputed whenever the set of running batches changes.

mod apply;
mod client;
mod complete;
mod history;
mod inflight;
mod kv_store;
mod leap;
pub(crate) mod pending;
mod records;
mod watch;

pub use history::{BusyUnion, HISTORY_TAIL, IterationSink, IterationTotals, run_streaming};
pub use watch::StopLimits;

use std::collections::VecDeque;

use duet_traces::{RequestSpec, Workload};

use crate::cost::SeqWork;
use crate::error::{ConfigError, SimError};
use crate::executor::{AsyncExecutor, Executor, VirtualClock};
use crate::kv::KvCapacity;
use crate::partition::Granularity;
use crate::policy::{Policy, RunningBatch, View};
use crate::prefix::PrefixCache;
use crate::queue::EventQueue;
use crate::request::{Phase, ReqId, Request};
use crate::stats::Gaps;
use crate::time::Nanos;
pub use client::ClientConfig;
pub use inflight::Contention;
use inflight::InFlight;
use kv_store::KvStore;
pub use records::{DecisionCounts, DecisionRecord, EngineStats, IterationRecord, RequestRecord, SimOutput};

/// What the engine needs besides the policy and executor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    /// KV-cache geometry and capacity.
    pub kv: KvCapacity,
    /// SMs of the GPU.
    pub num_sms: u32,
    /// Legal partition sizes.
    pub granularity: Granularity,
    /// Contention between co-running batches (`None`: the executor's times already include it, as on a GPU).
    pub contention: Option<Contention>,
    /// Time added to a batch that starts on a different partition layout than its lane had (switching between
    /// aggregated and split mode, or resizing a partition), ns.
    pub partition_switch_ns: u64,
    /// Whether requests with prefix hashes share KV through a [`crate::prefix::PrefixCache`].
    pub prefix_cache: bool,
    /// What the instance does in a cluster.
    pub role: Role,
    /// Frontend cost and closed-loop client in front of a single instance ([`ClientConfig`]).
    pub client: ClientConfig,
    /// Keep every iteration record for the output (`SimOutput::iterations`). When false, only the records of
    /// running steps and the last [`HISTORY_TAIL`] others are kept (policies read the recent tail, `View::history`),
    /// and the output holds that tail; the count is `EngineStats::iterations` either way. For runs that write no
    /// `iterations.csv`: peak memory then follows the requests in flight, not the run's length.
    pub keep_iterations: bool,
    /// Keep every decision record for the output (`SimOutput::decisions`, `decisions.csv`). When false, only those
    /// of running steps and the last [`HISTORY_TAIL`] others are kept, and the output holds those; the counts the
    /// reports print are `EngineStats::decisions` either way.
    pub keep_decisions: bool,
    /// Leap over quiet decode steps ([`leap`]) when the policy allows it ([`Policy::repeat_decode`]). Outputs are
    /// byte-identical either way; false runs every step through the policy (tests compare the two).
    pub leap: bool,
    /// Stop with [`SimError::LimitExceeded`] as soon as one of these percentile limits is certain to fail
    /// (capacity searches; [`StopLimits`]). Ignored behind a frontend, whose token times the engine does not see
    /// as the client does.
    pub stop: Option<StopLimits>,
}

/// What an instance does in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Prefill and decode (aggregated serving).
    #[default]
    Aggregated,
    /// Disaggregated prefill: a request is done when its prefill has produced the first token; its KV stays
    /// until the cluster has moved it to a decode instance.
    Prefill,
    /// Disaggregated decode: requests arrive with their prompt's KV (reserved first, then transferred).
    Decode,
}

impl Role {
    /// Name in reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Aggregated => "aggregated",
            Role::Prefill => "prefill",
            Role::Decode => "decode",
        }
    }
}

impl EngineConfig {
    /// One GPU of `num_sms` SMs with TPC granularity, H100 bandwidth contention and a 20 us partition switch.
    pub fn new(kv: KvCapacity, num_sms: u32) -> Self {
        Self {
            kv,
            num_sms,
            granularity: Granularity::Tpc,
            contention: Some(Contention::bandwidth(3.35e12 * 0.84)),
            partition_switch_ns: 20_000,
            prefix_cache: true,
            role: Role::Aggregated,
            client: ClientConfig::default(),
            keep_iterations: true,
            keep_decisions: true,
            leap: true,
            stop: None,
        }
    }
}

/// Something that happens at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A request arrives and joins the queue.
    Arrival(ReqId),
    /// The client sends a request to the frontend ([`ClientConfig`]): its input job joins the frontend's queue.
    Sent(ReqId),
    /// A request's input job ended: its hand-off to the engine joins the frontend's queue.
    HandOff(ReqId),
    /// The current step of a running batch finishes (ignored unless `version` is still current).
    StepDone {
        /// Batch id.
        batch: u64,
        /// Version of its completion estimate.
        version: u32,
    },
    /// A disaggregated request's prompt KV has arrived: it starts decoding.
    KvArrived(ReqId),
    /// Something outside the engine freed KV (a finished transfer): consult the policy.
    Wake,
}

/// Runs `workload` to completion under `policy` on `executor`.
///
/// Fails with a [`ConfigError::Memory`] if some request can never fit in the KV cache, with
/// [`SimError::InvalidPlan`] if the policy returns a plan the engine refuses, and with [`SimError::Stalled`] if
/// work remains but nothing can run.
pub fn run(
    workload: &Workload,
    policy: &mut dyn Policy,
    executor: &mut dyn Executor,
    cfg: &EngineConfig,
) -> Result<SimOutput, SimError> {
    let mut engine = Engine::for_workload(workload, cfg)?;
    engine.drive(policy, &mut VirtualClock::new(executor))?;
    engine.check_finished(policy)?;
    Ok(engine.into_output())
}

/// One engine with its policy, as the event kernel drives it.
struct Single<'a> {
    engine: &'a mut Engine,
    policy: &'a mut dyn Policy,
}

impl crate::kernel::Driven for Single<'_> {
    fn next_time(&self) -> Option<Nanos> {
        self.engine.next_time()
    }
    fn advance_to(&mut self, now: Nanos, executor: &mut dyn Executor) -> Result<(), SimError> {
        // Nothing outside the engine can happen: it may leap as far as its own events allow.
        self.engine.advance_to(now, Nanos(u64::MAX), self.policy, executor)
    }
    fn pending_steps(&self) -> usize {
        self.engine.pending_steps()
    }
    fn step_finished(&mut self, ticket: u64, end: Nanos) -> Result<(), SimError> {
        self.engine.step_finished(ticket, end)
    }
}

pub(crate) struct Engine {
    cfg: EngineConfig,
    now: Nanos,
    events: EventQueue<Event>,
    requests: Vec<Request>,
    waiting: VecDeque<ReqId>,
    running: Vec<ReqId>,
    /// KV blocks and the prefix cache (when enabled and the workload has hashes).
    kv: KvStore,
    batches: Vec<InFlight>,
    next_batch: u64,
    /// SMs of the last batch started on each lane (Whole, Prefill, Decode), for the switch cost.
    last_sms: [Option<u32>; 3],
    last_was_whole: Option<bool>,
    finished: usize,
    preemptions: u64,
    /// KV tokens discarded by preemptions.
    recomputed_tokens: u64,
    peak_sms: u32,
    itl_ns: Gaps,
    iterations: Vec<IterationRecord>,
    /// Records dropped from the front of `iterations` (`keep_iterations: false`): record `r` is
    /// `iterations[r - iter_base]`.
    iter_base: usize,
    /// Totals of the records trimmed from the front of `iterations`.
    trimmed: history::IterationTotals,
    /// Receives the records trimmed from the history ([`run_streaming`]).
    sink: Option<IterationSink>,
    /// The sink's first error (reported when the run ends).
    sink_error: Option<SimError>,
    decisions: Vec<DecisionRecord>,
    /// Decision records dropped from the front of `decisions` (`keep_decisions: false`): decision `d` is
    /// `decisions[d - dec_base]`.
    dec_base: usize,
    /// Counts of the decision records dropped.
    dec_trimmed: DecisionCounts,
    work: Vec<SeqWork>,
    /// The work of the step after the current one while leaping ([`leap`]).
    next_work: Vec<SeqWork>,
    /// Leaping: the requests that finish at the running step's end, with their generated tokens then.
    left: Vec<(ReqId, u32)>,
    /// The running batches as the policy sees them ([`Engine::schedule`]'s buffer).
    busy: Vec<RunningBatch>,
    /// Per request: the stamp of the last plan that named it (duplicate detection in `validate`).
    plan_stamp: Vec<u64>,
    stamp: u64,
    /// Prefill role: finished requests whose KV waits for the cluster to move it.
    handoffs: Vec<ReqId>,
    /// Client and frontend in front of the engine.
    client: client::Client,
    /// Per request, token times as the client sees them (only with a frontend output cost).
    delivered: Vec<client::Delivered>,
    /// Counts towards the early stop (`EngineConfig::stop`).
    watch: Option<watch::Watch>,
}

impl Engine {
    /// An engine holding every request of `workload` as a future arrival (each checked to fit the KV cache).
    pub(crate) fn for_workload(workload: &Workload, cfg: &EngineConfig) -> Result<Self, SimError> {
        let mut engine = Engine::new(cfg, workload.prefix.as_ref().map(|p| p.block_tokens))?;
        engine.check_fit(workload.requests.iter())?;
        if let Some(limits) = cfg.stop.filter(|_| !engine.client.cfg.has_frontend()) {
            engine.watch = Some(watch::Watch::new(&limits, &workload.requests));
        }
        for (i, s) in workload.requests.iter().enumerate() {
            let hashes = workload.prefix.as_ref().map(|p| p.get(i));
            if engine.client.sends_at_start(i) {
                engine.send(*s, hashes, Nanos::ZERO);
            } else {
                engine.client.hold(*s, hashes);
            }
        }
        Ok(engine)
    }

    /// Runs to completion under `policy` on `clock` (the event kernel, [`crate::kernel::drive`]).
    pub(crate) fn drive<C: AsyncExecutor + ?Sized>(
        &mut self,
        policy: &mut dyn Policy,
        clock: &mut C,
    ) -> Result<(), SimError> {
        crate::kernel::drive(&mut Single { engine: self, policy }, clock)
    }

    /// An engine with no requests yet. `prefix_block_tokens` is the hash-block size of the workload's prefix
    /// hashes (`None`: no hashes, no cache).
    pub(crate) fn new(cfg: &EngineConfig, prefix_block_tokens: Option<u32>) -> Result<Self, SimError> {
        if cfg.num_sms == 0 {
            return Err(ConfigError::Invalid("the GPU needs at least one SM".into()).into());
        }
        let prefix = match prefix_block_tokens.filter(|_| cfg.prefix_cache) {
            None => None,
            Some(h) => Some(PrefixCache::new(h, cfg.kv.block_size).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "prefix cache: the trace's hash blocks ({h} tokens) must be a multiple of the KV block size ({} \
                     tokens); disable the cache with --no-prefix-cache",
                    cfg.kv.block_size
                ))
            })?),
        };
        Ok(Engine {
            cfg: *cfg,
            now: Nanos::ZERO,
            events: EventQueue::new(),
            requests: Vec::new(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            kv: KvStore::new(cfg.kv.total_blocks, prefix),
            batches: Vec::new(),
            next_batch: 0,
            last_sms: [None; 3],
            last_was_whole: None,
            finished: 0,
            preemptions: 0,
            recomputed_tokens: 0,
            peak_sms: 0,
            itl_ns: Gaps::new(),
            iterations: Vec::new(),
            iter_base: 0,
            trimmed: history::IterationTotals::default(),
            sink: None,
            sink_error: None,
            decisions: Vec::new(),
            dec_base: 0,
            dec_trimmed: DecisionCounts::default(),
            work: Vec::new(),
            next_work: Vec::new(),
            left: Vec::new(),
            busy: Vec::new(),
            plan_stamp: Vec::new(),
            stamp: 0,
            handoffs: Vec::new(),
            client: client::Client::new(cfg.client),
            delivered: Vec::new(),
            watch: None,
        })
    }

    /// Fails with a [`ConfigError::Memory`] if some of `specs` could never fit in this engine's KV cache.
    pub(crate) fn check_fit<'a>(&self, specs: impl Iterator<Item = &'a RequestSpec>) -> Result<(), SimError> {
        let kv = &self.cfg.kv;
        let too_big: Vec<&RequestSpec> =
            specs.filter(|s| kv.blocks_for(s.input_tokens + s.output_tokens - 1) > kv.total_blocks).collect();
        if let Some(first) = too_big.first() {
            return Err(ConfigError::Memory(format!(
                "{} request(s) can never fit in the KV cache ({} blocks = {} tokens); first: request {} needs \
                 input + output - 1 = {} tokens",
                too_big.len(),
                kv.total_blocks,
                kv.total_tokens(),
                first.id,
                first.input_tokens + first.output_tokens - 1
            ))
            .into());
        }
        Ok(())
    }

    /// Adds a request (its id becomes the next local index) without scheduling anything.
    fn push_request(&mut self, mut spec: RequestSpec, hashes: Option<&[u64]>) -> ReqId {
        let id = ReqId(self.requests.len() as u32);
        spec.id = id.0;
        self.requests.push(Request::new(spec));
        self.plan_stamp.push(0);
        if self.client.cfg.has_frontend() {
            self.delivered.push(client::Delivered::default());
        }
        self.kv.add_request(id, hashes);
        id
    }

    /// Adds a request that arrives at `spec.arrival_ns` (at or after the engine's current time); returns its
    /// local id.
    pub(crate) fn add_arrival(&mut self, spec: RequestSpec, hashes: Option<&[u64]>) -> ReqId {
        let at = Nanos(spec.arrival_ns).max(self.now);
        let id = self.push_request(spec, hashes);
        self.push_event(at, Event::Arrival(id));
        id
    }

    /// Decode role: reserves the KV of a request whose prefill ran elsewhere (its prompt's `input` tokens, if
    /// `input + 1` tokens fit, counting evictable cache blocks as free). Returns its local id, or `None` when
    /// there is no room yet. The request decodes only after [`Engine::kv_arrived`].
    pub(crate) fn reserve_transfer(&mut self, spec: RequestSpec) -> Option<ReqId> {
        let kv = self.cfg.kv;
        if self.free_blocks() < kv.blocks_for(spec.input_tokens + 1) {
            return None;
        }
        let id = self.push_request(spec, None);
        let blocks = kv.blocks_for(spec.input_tokens);
        let ok = self.alloc(blocks);
        debug_assert!(ok, "room was checked");
        self.requests[id.index()].await_transfer(blocks, spec.input_tokens);
        Some(id)
    }

    /// Decode role: the KV of reserved request `id` arrives at `at`; its next token is decoded here.
    pub(crate) fn kv_arrived(&mut self, id: ReqId, at: Nanos) {
        self.push_event(at.max(self.now), Event::KvArrived(id));
    }

    /// Prefill role: requests finished since the last call (their KV is still held).
    pub(crate) fn take_handoffs(&mut self) -> Vec<ReqId> {
        std::mem::take(&mut self.handoffs)
    }

    /// Prefill role: the KV of handed-off request `id` has been moved away at `at`; frees it.
    pub(crate) fn release_handoff(&mut self, id: ReqId, at: Nanos) {
        self.release_kv(id);
        self.push_event(at.max(self.now), Event::Wake);
    }

    /// Requests added and not finished.
    pub(crate) fn outstanding(&self) -> usize {
        self.requests.len() - self.finished
    }

    /// KV blocks a request may take now: free blocks plus evictable prefix-cache blocks.
    pub(crate) fn free_blocks(&self) -> u32 {
        self.kv.free_blocks()
    }

    /// Takes `n` blocks ([`KvStore::alloc`]).
    fn alloc(&mut self, n: u32) -> bool {
        self.kv.alloc(n, &mut self.requests)
    }

    /// Gives back all KV of request `id` (shared prefix blocks stay in the cache); requests that waited for a
    /// block it was computing resume.
    fn release_kv(&mut self, id: ReqId) {
        let woken = self.kv.release(id, &mut self.requests);
        self.wake(woken);
    }

    /// Request `id` joins the waiting queue (at the front after a preemption), unless the prefix cache makes it
    /// wait for a block another request is computing.
    fn enqueue(&mut self, id: ReqId, front: bool) {
        if !self.kv.enqueue(id, &mut self.requests[id.index()]) {
            return;
        }
        if front {
            self.waiting.push_front(id);
        } else {
            self.waiting.push_back(id);
        }
    }

    /// After request `id` computed prefill tokens: blocks it finished join the prefix cache, and requests that
    /// waited for them join the queue (in arrival order).
    fn prefix_progress(&mut self, id: ReqId) {
        let released = self.kv.progress(id, &mut self.requests[id.index()]);
        self.wake(released);
    }

    /// Requests that waited for a prefix block extend their match and join the queue in arrival order (or
    /// wait for the next pending block).
    fn wake(&mut self, ids: Vec<ReqId>) {
        for w in ids {
            if self.kv.resume(w, &mut self.requests[w.index()]) {
                let key = |r: &Request| (r.arrival(), r.spec.id);
                let mine = key(&self.requests[w.index()]);
                let pos = self.waiting.iter().position(|&x| key(&self.requests[x.index()]) > mine);
                self.waiting.insert(pos.unwrap_or(self.waiting.len()), w);
            }
        }
    }

    /// Time of the next event, if any.
    pub(crate) fn next_time(&self) -> Option<Nanos> {
        self.events.next_time()
    }

    /// Applies every event due by `self.now` (in (time, sequence) order), then consults the policy once if
    /// anything changed, then leaps over the quiet decode steps that end before `horizon` ([`leap`]).
    fn apply_due(
        &mut self,
        horizon: Nanos,
        policy: &mut dyn Policy,
        executor: &mut dyn Executor,
    ) -> Result<(), SimError> {
        let mut changed = false;
        while let Some((_, ev)) = self.events.pop_due(self.now) {
            changed |= self.handle(ev, executor)?;
        }
        if changed {
            self.schedule(policy, executor)?;
        }
        if self.cfg.leap {
            self.leap(horizon, policy, executor)?;
            self.glide(horizon, executor)?;
        }
        self.watch.as_ref().map_or(Ok(()), watch::Watch::verdict)
    }

    /// Fails with [`SimError::Stalled`] if requests remain unfinished once no event is left.
    pub(crate) fn check_finished(&self, policy: &dyn Policy) -> Result<(), SimError> {
        if self.finished < self.requests.len() {
            return Err(SimError::Stalled {
                policy: policy.name().into(),
                at_ns: self.now.0,
                waiting: self.waiting.len(),
                running: self.running.len(),
            });
        }
        Ok(())
    }

    fn push_event(&mut self, at: Nanos, ev: Event) {
        self.events.push(at, ev);
    }

    /// Applies one event; returns whether the policy should be consulted (stale completion events are not).
    fn handle(&mut self, ev: Event, executor: &mut dyn Executor) -> Result<bool, SimError> {
        match ev {
            Event::Arrival(id) => {
                self.enqueue(id, false);
                Ok(true)
            }
            Event::Sent(id) => {
                self.input_job(id);
                Ok(false)
            }
            Event::HandOff(id) => Ok(self.hand_off(id)),
            Event::KvArrived(id) => {
                let now = self.now;
                let r = &mut self.requests[id.index()];
                debug_assert_eq!((r.phase, r.generated), (Phase::Transferring, 0));
                r.first_scheduled = Some(now);
                // The prefill instance produced the first token; it is this request's first here.
                if r.emit_token(now).finished {
                    self.finished += 1;
                    self.release_kv(id);
                } else {
                    self.running.push(id);
                }
                Ok(true)
            }
            Event::Wake => Ok(true),
            Event::StepDone { batch, version } => {
                match self.batches.iter().position(|b| b.id == batch && b.version == version) {
                    Some(i) => {
                        self.complete_step(i, executor)?;
                        Ok(true)
                    }
                    None => Ok(false),
                }
            }
        }
    }

    /// Consults the policy until it has nothing more to start (bounded: each round starts a batch or preempts).
    fn schedule(&mut self, policy: &mut dyn Policy, executor: &mut dyn Executor) -> Result<(), SimError> {
        let max_rounds = self.running.len() + 4;
        for _ in 0..max_rounds {
            let busy_sms: u32 = self.batches.iter().map(|b| b.sms).sum();
            if busy_sms >= self.cfg.num_sms || (self.waiting.is_empty() && self.running.is_empty()) {
                return Ok(());
            }
            let mut busy = std::mem::take(&mut self.busy);
            busy.clear();
            busy.extend(self.batches.iter().map(|b| b.as_running(self.now)));
            let view = View {
                now: self.now,
                waiting: &self.waiting,
                running: &self.running,
                requests: crate::policy::Requests::new(&self.requests),
                kv: self.cfg.kv,
                free_blocks: self.free_blocks(),
                total_sms: self.cfg.num_sms,
                busy: &busy,
                prefix: self.kv.cache(),
                history: &self.iterations,
            };
            let plan = policy.plan(&view);
            self.busy = busy;
            // After the policy has read the history of this moment (a step that just ended is seen once).
            self.trim_history();
            if plan.is_empty() {
                return Ok(());
            }
            self.validate(&plan).map_err(|reason| SimError::InvalidPlan {
                policy: policy.name().into(),
                at_ns: self.now.0,
                reason,
            })?;
            self.apply(plan, executor)?;
        }
        Ok(())
    }
}
