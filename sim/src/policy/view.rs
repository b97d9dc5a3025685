//! What a policy may see: the read-only [`View`] of the engine, with each request as a [`ReqView`] that exposes
//! what a real scheduler knows (arrival, prompt length, tokens generated so far, KV held, phase, timestamps) and
//! never the request's output length. The request list is sealed in this module ([`Requests`]: its slice is
//! private here), so no policy module can reach a request's spec, by type.

use std::collections::VecDeque;

use crate::cost::SeqWork;
use crate::kv::KvCapacity;
use crate::policy::BatchItem;
use crate::prefix::PrefixCache;
use crate::request::{Phase, ReqId, Request};
use crate::time::Nanos;

/// The workload's requests, indexed by id, readable only as [`ReqView`]s.
#[derive(Debug, Clone, Copy)]
pub struct Requests<'a> {
    all: &'a [Request],
}

impl<'a> Requests<'a> {
    /// Seals `all` (the engine's requests, indexed by id).
    pub fn new(all: &'a [Request]) -> Requests<'a> {
        Requests { all }
    }

    /// Request `id` as a scheduler sees it.
    #[inline]
    pub fn get(&self, id: ReqId) -> ReqView<'a> {
        ReqView { r: &self.all[id.index()] }
    }

    /// Requests in the workload.
    #[inline]
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether there are none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    #[inline]
    fn raw(&self, id: ReqId) -> &'a Request {
        &self.all[id.index()]
    }
}

/// One request as a scheduler sees it: everything but its output length (and what follows from it).
#[derive(Debug, Clone, Copy)]
pub struct ReqView<'a> {
    r: &'a Request,
}

impl ReqView<'_> {
    /// Its id.
    #[inline]
    pub fn id(&self) -> ReqId {
        self.r.id()
    }
    /// Arrival time.
    #[inline]
    pub fn arrival(&self) -> Nanos {
        self.r.arrival()
    }
    /// Prompt tokens.
    #[inline]
    pub fn input_tokens(&self) -> u32 {
        self.r.spec.input_tokens
    }
    /// Lifecycle phase.
    #[inline]
    pub fn phase(&self) -> Phase {
        self.r.phase
    }
    /// Output tokens produced so far.
    #[inline]
    pub fn generated(&self) -> u32 {
        self.r.generated
    }
    /// Tokens whose K/V are in the cache.
    #[inline]
    pub fn kv_tokens(&self) -> u32 {
        self.r.kv_tokens
    }
    /// Tokens to prefill before the next token is sampled.
    #[inline]
    pub fn prefill_target(&self) -> u32 {
        self.r.prefill_target
    }
    /// KV blocks held.
    #[inline]
    pub fn blocks(&self) -> u32 {
        self.r.blocks
    }
    /// KV blocks only this request holds.
    #[inline]
    pub fn private_blocks(&self) -> u32 {
        self.r.private_blocks()
    }
    /// Part of a batch executing now.
    #[inline]
    pub fn in_flight(&self) -> bool {
        self.r.in_flight
    }
    /// Times preempted.
    #[inline]
    pub fn preemptions(&self) -> u32 {
        self.r.preemptions
    }
    /// When its first token was produced.
    #[inline]
    pub fn first_token(&self) -> Option<Nanos> {
        self.r.first_token
    }
    /// When its latest token was produced.
    #[inline]
    pub fn last_token(&self) -> Option<Nanos> {
        self.r.last_token
    }
    /// Prefill tokens still to compute before the next token is sampled (0 when decoding).
    #[inline]
    pub fn remaining_prefill(&self) -> u32 {
        self.r.remaining_prefill()
    }
    /// Tokens of its next step with an unlimited budget.
    #[inline]
    pub fn next_step_tokens(&self) -> u32 {
        self.r.next_step_tokens()
    }
}

/// What a batch runs on: the whole GPU, or one side of a prefill/decode split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// All SMs (aggregated serving).
    Whole,
    /// The prefill partition.
    Prefill,
    /// The decode partition.
    Decode,
}

impl Lane {
    /// Name in outputs (`iterations.csv`, `steps.csv`).
    #[inline]
    pub fn as_str(&self) -> &'static str {
        match self {
            Lane::Whole => "whole",
            Lane::Prefill => "prefill",
            Lane::Decode => "decode",
        }
    }
}

/// A batch that is executing, as a policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningBatch {
    /// Its lane.
    pub lane: Lane,
    /// SMs it holds.
    pub sms: u32,
    /// When it started.
    pub started: Nanos,
    /// When its current step (or layer group) would end if nothing changed (contention can move it).
    pub expected_end: Nanos,
    /// Layer groups left after the current one (0 for unsegmented batches).
    pub segments_left: u32,
    /// A resize waiting for the next layer-group boundary.
    pub pending_sms: Option<u32>,
}

/// One executed step of a batch (the engine's record of it, and a policy's history: [`View::history`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IterationRecord {
    /// Lane it ran on.
    pub lane: Lane,
    /// SMs it ran on.
    pub sms: u32,
    /// Start time.
    pub start: Nanos,
    /// End time.
    pub end: Nanos,
    /// Sequences in the step.
    pub num_seqs: u32,
    /// Prefill tokens in the step.
    pub prefill_tokens: u32,
    /// Decode tokens (one per decoding sequence, finished look-ahead slots included).
    pub decode_tokens: u32,
    /// Instance that ran it (0 on a single GPU).
    pub instance: u32,
}

impl IterationRecord {
    /// A step of `num_seqs` sequences starting at `at` (its end is set when it ends), on instance 0 (the
    /// cluster driver sets the instance).
    pub fn starting(lane: Lane, sms: u32, at: Nanos, num_seqs: u32, decode_tokens: u32) -> IterationRecord {
        IterationRecord { lane, sms, start: at, end: at, num_seqs, prefill_tokens: 0, decode_tokens, instance: 0 }
    }
}

/// Everything a policy may look at, read-only.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// Current simulated (or wall-clock) time.
    pub now: Nanos,
    /// Arrived requests not holding KV, in queue order (preempted requests go to the front).
    pub waiting: &'a VecDeque<ReqId>,
    /// Admitted requests in admission order (oldest first).
    pub running: &'a [ReqId],
    /// All requests of the workload, indexed by id, as a scheduler sees them (no output lengths).
    pub requests: Requests<'a>,
    /// KV-cache geometry.
    pub kv: KvCapacity,
    /// KV blocks free now.
    pub free_blocks: u32,
    /// SMs of the GPU.
    pub total_sms: u32,
    /// Batches executing now.
    pub busy: &'a [RunningBatch],
    /// The instance's prefix cache, if any (admission costs of queued requests).
    pub prefix: Option<&'a PrefixCache>,
    /// Every step started so far, in start order, with its executed time (simulated, or measured on a device); a
    /// step still running has `end == start`.
    pub history: &'a [IterationRecord],
}

impl View<'_> {
    /// The request with id `id`, as a scheduler sees it.
    pub fn req(&self, id: ReqId) -> ReqView<'_> {
        self.requests.get(id)
    }

    /// Blocks request `id` must add to hold `new_tokens` more tokens.
    pub fn extra_blocks(&self, id: ReqId, new_tokens: u32) -> u32 {
        let r = self.requests.raw(id);
        self.kv.blocks_beyond(r.blocks, r.kv_tokens + new_tokens)
    }

    /// Blocks that admitting queued request `id` with a first chunk of `tokens` takes from `free_blocks`: its
    /// new blocks plus the unreferenced prefix-cache blocks it would pin (an upper bound when several queued
    /// requests share them).
    pub fn admit_blocks(&self, id: ReqId, tokens: u32) -> u32 {
        self.extra_blocks(id, tokens) + self.prefix.map_or(0, |c| c.pin_cost(id))
    }

    /// SMs not held by a running batch.
    #[inline]
    pub fn free_sms(&self) -> u32 {
        self.total_sms - self.busy.iter().map(|b| b.sms).sum::<u32>()
    }

    /// The running batch on `lane`, if any.
    pub fn on_lane(&self, lane: Lane) -> Option<&RunningBatch> {
        self.busy.iter().find(|b| b.lane == lane)
    }

    /// The cost-model work of `item` at step `step` of a look-ahead window (0 for a single step):
    /// [`BatchItem::work`], the engine's own definition.
    pub fn seq_work(&self, item: &BatchItem, step: u32) -> SeqWork {
        item.work(self.requests.raw(item.req()), step)
    }
}
