//! The discrete-event engine: owns time, request state, the KV block pool and the SM partitions; asks the
//! policy for plans, validates and applies them, and hands batches to the executor.
//!
//! Events are a closed enum ([`Event`]) ordered by `(time, sequence number)`, so simultaneous events resolve in
//! the order they were scheduled and a run is fully deterministic. All events at one instant are applied before
//! the policy is consulted, so a policy sees every arrival that has happened.

mod apply;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use duet_traces::Workload;

use crate::cost::SeqWork;
use crate::error::{ConfigError, SimError};
use crate::executor::Executor;
use crate::kv::{BlockPool, KvCapacity};
use crate::policy::{BatchItem, PartitionId, PartitionView, Policy, View};
use crate::request::{Phase, ReqId, Request};
use crate::time::Nanos;

/// What the engine needs besides the policy and executor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    /// KV-cache geometry and capacity.
    pub kv: KvCapacity,
    /// SMs of the GPU (one partition owning all of them).
    pub num_sms: u32,
}

/// Something that happens at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A request arrives and joins the queue.
    Arrival(ReqId),
    /// The batch running on a partition finishes.
    BatchDone(PartitionId),
}

/// One executed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IterationRecord {
    /// Partition it ran on.
    pub partition: PartitionId,
    /// SMs of that partition.
    pub sms: u32,
    /// Start time.
    pub start: Nanos,
    /// End time.
    pub end: Nanos,
    /// Sequences in the batch.
    pub num_seqs: u32,
    /// Prefill tokens in the batch.
    pub prefill_tokens: u32,
    /// Decode tokens (one per decoding sequence).
    pub decode_tokens: u32,
}

/// Per-request results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRecord {
    /// Request id.
    pub id: u32,
    /// Arrival time.
    pub arrival: Nanos,
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Output tokens requested.
    pub output_tokens: u32,
    /// Output tokens produced (equals `output_tokens` for a finished request).
    pub tokens_emitted: u32,
    /// First time the request was in a batch.
    pub first_scheduled: Nanos,
    /// Time of the first output token.
    pub first_token: Nanos,
    /// Time of the last output token.
    pub finish: Nanos,
    /// Largest gap between consecutive output tokens (0 with one output token).
    pub max_tbt: Nanos,
    /// Times it was preempted.
    pub preemptions: u32,
}

/// Engine-wide counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStats {
    /// Total preemptions.
    pub preemptions: u64,
    /// Most KV blocks in use at once.
    pub peak_kv_blocks: u32,
    /// KV blocks in the cache.
    pub total_kv_blocks: u32,
    /// Time of the last event.
    pub end: Nanos,
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct SimOutput {
    /// One record per request, in id order.
    pub requests: Vec<RequestRecord>,
    /// Every inter-token gap of every request, in ns, sorted ascending (pooled: the ITL population).
    pub itl_ns: Vec<u64>,
    /// Every executed batch, in start order.
    pub iterations: Vec<IterationRecord>,
    /// Counters.
    pub stats: EngineStats,
}

struct PartitionState {
    view: PartitionView,
    /// Items of the batch running on it (empty when idle).
    in_flight: Vec<BatchItem>,
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
    let mut engine = Engine::new(workload, cfg)?;
    engine.run(policy, executor)?;
    Ok(engine.into_output())
}

struct Engine {
    now: Nanos,
    seq: u64,
    events: BinaryHeap<Reverse<(Nanos, u64, Event)>>,
    requests: Vec<Request>,
    waiting: VecDeque<ReqId>,
    running: Vec<ReqId>,
    pool: BlockPool,
    kv: KvCapacity,
    partitions: Vec<PartitionState>,
    finished: usize,
    preemptions: u64,
    itl_ns: Vec<u64>,
    iterations: Vec<IterationRecord>,
    work: Vec<SeqWork>,
    /// Per request: the stamp of the last plan that named it (duplicate detection in `validate`).
    plan_stamp: Vec<u64>,
    stamp: u64,
}

impl Engine {
    fn new(workload: &Workload, cfg: &EngineConfig) -> Result<Self, SimError> {
        let requests: Vec<Request> = workload.requests.iter().map(|s| Request::new(*s)).collect();
        let cap_tokens = cfg.kv.total_tokens();
        let too_big: Vec<&Request> =
            requests.iter().filter(|r| cfg.kv.blocks_for(r.peak_kv_tokens()) > cfg.kv.total_blocks).collect();
        if let Some(first) = too_big.first() {
            return Err(ConfigError::Memory(format!(
                "{} request(s) can never fit in the KV cache ({} blocks = {cap_tokens} tokens); first: request {} needs \
                 input + output - 1 = {} tokens",
                too_big.len(),
                cfg.kv.total_blocks,
                first.spec.id,
                first.peak_kv_tokens()
            ))
            .into());
        }
        if cfg.num_sms == 0 {
            return Err(ConfigError::Invalid("the GPU needs at least one SM".into()).into());
        }
        let mut engine = Engine {
            now: Nanos::ZERO,
            seq: 0,
            events: BinaryHeap::with_capacity(requests.len() + 4),
            requests,
            waiting: VecDeque::new(),
            running: Vec::new(),
            pool: BlockPool::new(cfg.kv.total_blocks),
            kv: cfg.kv,
            partitions: vec![PartitionState {
                view: PartitionView { id: PartitionId(0), sms: cfg.num_sms, busy: false },
                in_flight: Vec::new(),
            }],
            finished: 0,
            preemptions: 0,
            // Exactly one gap per output token after the first: reserve it all (the largest buffer of a run).
            itl_ns: Vec::with_capacity(workload.requests.iter().map(|s| s.output_tokens as usize - 1).sum()),
            iterations: Vec::new(),
            work: Vec::new(),
            plan_stamp: vec![0; workload.len()],
            stamp: 0,
        };
        for s in &workload.requests {
            engine.push_event(Nanos(s.arrival_ns), Event::Arrival(ReqId(s.id)));
        }
        Ok(engine)
    }

    fn push_event(&mut self, at: Nanos, ev: Event) {
        self.events.push(Reverse((at, self.seq, ev)));
        self.seq += 1;
    }

    fn run(&mut self, policy: &mut dyn Policy, executor: &mut dyn Executor) -> Result<(), SimError> {
        while let Some(Reverse((t, _, ev))) = self.events.pop() {
            assert!(t >= self.now, "time went backwards: {t:?} < {:?}", self.now);
            self.now = t;
            self.handle(ev);
            while let Some(Reverse((t2, _, _))) = self.events.peek() {
                if *t2 != self.now {
                    break;
                }
                let Reverse((_, _, ev)) = self.events.pop().expect("peeked");
                self.handle(ev);
            }
            self.schedule(policy, executor)?;
        }
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

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Arrival(id) => self.waiting.push_back(id),
            Event::BatchDone(p) => self.complete_batch(p),
        }
    }

    /// Consults the policy until it has nothing more to start (bounded: each round either starts a batch on an
    /// idle partition or preempts a running request).
    fn schedule(&mut self, policy: &mut dyn Policy, executor: &mut dyn Executor) -> Result<(), SimError> {
        let max_rounds = self.running.len() + self.partitions.len() + 1;
        for _ in 0..max_rounds {
            if self.partitions.iter().all(|p| p.view.busy) || (self.waiting.is_empty() && self.running.is_empty()) {
                return Ok(());
            }
            let views: Vec<PartitionView> = self.partitions.iter().map(|p| p.view).collect();
            let view = View {
                now: self.now,
                waiting: &self.waiting,
                running: &self.running,
                requests: &self.requests,
                kv: self.kv,
                free_blocks: self.pool.free(),
                partitions: &views,
            };
            let plan = policy.plan(&view);
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

    fn into_output(mut self) -> SimOutput {
        self.itl_ns.sort_unstable();
        let requests = self
            .requests
            .iter()
            .map(|r| RequestRecord {
                id: r.spec.id,
                arrival: r.arrival(),
                input_tokens: r.spec.input_tokens,
                output_tokens: r.spec.output_tokens,
                tokens_emitted: r.generated,
                first_scheduled: r.first_scheduled.unwrap_or_default(),
                first_token: r.first_token.unwrap_or_default(),
                finish: r.last_token.unwrap_or_default(),
                max_tbt: r.max_tbt,
                preemptions: r.preemptions,
            })
            .collect();
        debug_assert!(self.requests.iter().all(|r| r.phase == Phase::Finished));
        SimOutput {
            requests,
            itl_ns: self.itl_ns,
            iterations: self.iterations,
            stats: EngineStats {
                preemptions: self.preemptions,
                peak_kv_blocks: self.pool.peak(),
                total_kv_blocks: self.pool.total(),
                end: self.now,
            },
        }
    }
}
