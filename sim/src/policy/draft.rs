//! A plan under construction: the scratch bookkeeping (free blocks, token budget, preemptions) that the
//! batch-building policies share, so that KV accounting and preemption follow one rule everywhere.
//!
//! Preemption rule (vLLM's recompute mode, priority by age): a running request that needs blocks may preempt
//! only requests admitted *after* it, newest first; a victim already placed in this batch is taken out again.
//! The oldest running request can therefore always make progress (the engine rejects workloads where a single
//! request cannot fit in the whole cache), which rules out livelock.

use super::{Batch, BatchItem, Lane, Plan, View};
use crate::request::{Phase, ReqId};

pub(super) struct Draft<'v, 'a> {
    view: &'v View<'a>,
    /// Blocks still free after the items and preemptions so far.
    pub free: u32,
    /// Tokens still allowed in the batch.
    pub budget: u32,
    preempt: Vec<ReqId>,
    /// Scheduled items, and the blocks each one adds (by position).
    items: Vec<BatchItem>,
    blocks: Vec<u32>,
    /// Per running position: preempted in this draft.
    preempted: Vec<bool>,
    /// Queued requests admitted ([`Draft::try_admit`]).
    admitted: usize,
}

impl<'v, 'a> Draft<'v, 'a> {
    pub fn new(view: &'v View<'a>, budget: u32) -> Self {
        Self {
            view,
            free: view.free_blocks,
            budget,
            preempt: Vec::new(),
            // Room for every running request and a few admissions: a plan's items are seldom more.
            items: Vec::with_capacity(view.running.len() + 8),
            blocks: Vec::with_capacity(view.running.len() + 8),
            preempted: vec![false; view.running.len()],
            admitted: 0,
        }
    }

    /// Whether anything was preempted so far.
    pub fn preempted_any(&self) -> bool {
        !self.preempt.is_empty()
    }

    /// Whether there are items.
    pub fn has_items(&self) -> bool {
        !self.items.is_empty()
    }

    /// Requests that will hold KV after this plan: running minus preempted plus admitted.
    pub fn admitted_count(&self) -> usize {
        // Only `try_admit` schedules queued requests, and preemption takes only running ones out again.
        debug_assert_eq!(
            self.admitted,
            self.items
                .iter()
                .filter(|it| matches!(self.view.req(it.req()).phase(), Phase::Queued | Phase::Preempted))
                .count()
        );
        self.view.running.len() - self.preempt.len() + self.admitted
    }

    /// Whether the running request at position `pos` (admission order) is schedulable: not in flight, not
    /// preempted, in `phase`. Loops test each position when they reach it: a position preempted earlier in the same loop is skipped
    /// there, where [`Draft::add_running`] would refuse it without side effects.
    #[inline]
    pub fn running_in_phase(&self, pos: usize, phase: Phase) -> bool {
        let r = self.view.req(self.view.running[pos]);
        !self.preempted[pos] && !r.in_flight() && r.phase() == phase
    }

    /// Most tokens (up to `want`) the running request at `pos` can add without more blocks than are free.
    pub fn tokens_that_fit(&self, pos: usize, want: u32) -> u32 {
        let r = self.view.req(self.view.running[pos]);
        let room = (u64::from(r.blocks()) + u64::from(self.free)) * u64::from(self.view.kv.block_size);
        let fit = room.saturating_sub(u64::from(r.kv_tokens()));
        want.min(fit.min(u64::from(u32::MAX)) as u32)
    }

    /// Schedules the running request at `pos` for `tokens` new tokens (for a decoding request: KV for `tokens`
    /// look-ahead steps, one token of budget), preempting newer requests (newest first) while blocks are short. When none is left to preempt: with `self_preempt` the request preempts itself
    /// (it frees its blocks for older ones); returns whether it was scheduled.
    pub fn add_running(&mut self, pos: usize, tokens: u32, self_preempt: bool) -> bool {
        if self.preempted[pos] {
            // Preempted earlier in this draft by an older request.
            return false;
        }
        let id = self.view.running[pos];
        let need = self.view.extra_blocks(id, tokens);
        while need > self.free {
            match self.newest_victim_after(pos) {
                Some(v) => self.preempt_pos(v),
                None => {
                    if self_preempt {
                        self.preempt_pos(pos);
                    }
                    return false;
                }
            }
        }
        let item = match self.view.req(id).phase() {
            Phase::Decoding => BatchItem::Decode { req: id },
            _ => BatchItem::Prefill { req: id, tokens },
        };
        self.push(item, need);
        true
    }

    /// Decode for every running decode, oldest first, while the budget lasts, with KV reserved for `lookahead`
    /// steps; a decode whose KV cannot grow preempts newer requests, or itself when none is left.
    pub fn decode_running(&mut self, lookahead: u32) {
        for pos in 0..self.view.running.len() {
            if !self.running_in_phase(pos, Phase::Decoding) {
                continue;
            }
            if self.budget == 0 {
                break;
            }
            self.add_running(pos, lookahead, true);
        }
    }

    /// vLLM V1's pass over the running list: every running request in admission order, decodes and partial
    /// prefills alike, asks for `min(remaining, budget left)` tokens (1 for a decode) without shrinking its
    /// chunk to the free KV; while its blocks are short the newest running request is preempted, which may be
    /// the request itself, and then the pass stops.
    pub fn schedule_running_in_order(&mut self) {
        for pos in 0..self.view.running.len() {
            if self.budget == 0 {
                break;
            }
            let r = self.view.req(self.view.running[pos]);
            if self.preempted[pos] || r.in_flight() {
                continue;
            }
            let tokens = match r.phase() {
                Phase::Decoding => 1,
                Phase::Prefilling => r.remaining_prefill().min(self.budget),
                _ => continue,
            };
            if tokens > 0 && !self.add_running(pos, tokens, true) {
                break;
            }
        }
    }

    /// Gives running requests with an unfinished prefill their next chunk, oldest first:
    /// `min(remaining, budget left)`, shrunk to the free KV; when not even one token fits, newer requests are
    /// preempted to make room (never the request itself).
    pub fn continue_prefills(&mut self) {
        for pos in 0..self.view.running.len() {
            if !self.running_in_phase(pos, Phase::Prefilling) {
                continue;
            }
            let want = self.view.req(self.view.running[pos]).remaining_prefill().min(self.budget);
            if want == 0 {
                break;
            }
            let fit = self.tokens_that_fit(pos, want);
            self.add_running(pos, if fit > 0 { fit } else { want }, false);
        }
    }

    /// Admits queued requests first-come first-served with a first chunk of `min(prompt, budget left)`, while
    /// the budget, the KV blocks for that chunk and `max_num_seqs` allow; stops at the first that does not fit.
    /// Does nothing once something was preempted in this draft (vLLM admits nothing in an iteration that
    /// preempts).
    pub fn admit_waiting(&mut self, max_num_seqs: usize) {
        let view = self.view;
        self.admit_in_order(view.waiting.iter().copied(), max_num_seqs);
    }

    /// [`Draft::admit_waiting`] in the order of `ids` (a permutation of some queued requests) instead of the
    /// queue's.
    pub fn admit_in_order(&mut self, ids: impl IntoIterator<Item = ReqId>, max_num_seqs: usize) {
        if self.preempted_any() {
            return;
        }
        for id in ids {
            if self.budget == 0 || self.admitted_count() >= max_num_seqs {
                break;
            }
            let tokens = self.view.req(id).remaining_prefill().min(self.budget);
            if !self.try_admit(id, tokens) {
                break;
            }
        }
    }

    /// Admits queued request `id` with a first chunk of `tokens` if its blocks are free; never preempts.
    pub fn try_admit(&mut self, id: ReqId, tokens: u32) -> bool {
        // A queued request's cached prefix costs no new blocks, but pins the cache blocks it uses.
        let need = self.view.admit_blocks(id, tokens);
        if tokens == 0 || need > self.free || tokens > self.budget {
            return false;
        }
        self.push(BatchItem::Prefill { req: id, tokens }, need);
        self.admitted += 1;
        true
    }

    fn push(&mut self, item: BatchItem, blocks: u32) {
        self.free -= blocks;
        self.budget -= item.tokens();
        self.items.push(item);
        self.blocks.push(blocks);
    }

    fn newest_victim_after(&self, pos: usize) -> Option<usize> {
        (pos + 1..self.view.running.len())
            .rev()
            .find(|&p| !self.preempted[p] && !self.view.req(self.view.running[p]).in_flight())
    }

    fn preempt_pos(&mut self, pos: usize) {
        let id = self.view.running[pos];
        if let Some(i) = self.items.iter().position(|it| it.req() == id) {
            let (item, blocks) = (self.items.remove(i), self.blocks.remove(i));
            self.free += blocks;
            self.budget += item.tokens();
        }
        self.free += self.view.req(id).private_blocks();
        self.preempted[pos] = true;
        self.preempt.push(id);
    }

    /// The items scheduled so far.
    pub fn items(&self) -> impl Iterator<Item = &BatchItem> {
        self.items.iter()
    }

    /// The preemptions and the scheduled items, for policies that split them into several batches.
    pub fn into_parts(self) -> (Vec<crate::request::ReqId>, Vec<BatchItem>) {
        (self.preempt, self.items)
    }

    /// The plan: preemptions, then one batch of everything scheduled on `lane` with `sms` SMs.
    pub fn into_plan(self, lane: Lane, sms: u32, lookahead: u32) -> Plan {
        let (preempt, items) = self.into_parts();
        let batches =
            if items.is_empty() { Vec::new() } else { vec![Batch { lookahead, ..Batch::new(lane, sms, items) }] };
        Plan { preempt, batches, ..Plan::default() }
    }
}
