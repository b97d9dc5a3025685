//! Plan validation and starting batches.

use super::inflight::traffic;
use super::{DecisionRecord, Engine, InFlight, IterationRecord};
use crate::cost::Launch;
use crate::error::SimError;
use crate::executor::{Executor, Step};
use crate::policy::{Batch, BatchItem, Lane, Plan};
use crate::request::{Phase, ReqId};
use crate::time::Nanos;

fn lane_index(lane: Lane) -> usize {
    match lane {
        Lane::Whole => 0,
        Lane::Prefill => 1,
        Lane::Decode => 2,
    }
}

impl Engine {
    /// KV tokens a batch item needs beyond what its request holds: the chunk for a prefill, one per look-ahead
    /// step for a decode.
    fn item_kv_tokens(item: &BatchItem, lookahead: u32) -> u32 {
        match item {
            BatchItem::Prefill { tokens, .. } => *tokens,
            BatchItem::Decode { .. } => lookahead,
        }
    }

    /// Checks every rule a plan must follow; the error says which one it broke.
    pub(super) fn validate(&mut self, plan: &Plan) -> Result<(), String> {
        // `plan_stamp[i] == stamp` marks request i as already named by this plan (no hashing on the hot path).
        self.stamp += 1;
        let stamp = self.stamp;
        let mut free = u64::from(self.free_blocks());
        for &id in &plan.preempt {
            let r = self.requests.get(id.index()).ok_or_else(|| format!("preempt: no request {}", id.0))?;
            if !matches!(r.phase, Phase::Prefilling | Phase::Decoding) || r.in_flight {
                return Err(format!(
                    "preempt: request {} is {:?}{}",
                    id.0,
                    r.phase,
                    if r.in_flight { " and in flight" } else { "" }
                ));
            }
            if std::mem::replace(&mut self.plan_stamp[id.index()], stamp) == stamp {
                return Err(format!("request {} preempted twice", id.0));
            }
            free += u64::from(r.blocks - r.shared_blocks);
        }
        let total = self.cfg.num_sms;
        let mut sms_used: u32 = self.batches.iter().map(|b| b.sms).sum();
        let mut need = 0u64;
        // Unreferenced prefix-cache entries that admissions in this plan pin (each counted once).
        let mut pinned: Vec<u64> = Vec::new();
        for (i, b) in plan.batches.iter().enumerate() {
            if self.batches.iter().any(|x| x.lane == b.lane) || plan.batches[..i].iter().any(|o| o.lane == b.lane) {
                return Err(format!("lane {:?} is busy", b.lane));
            }
            let legal = match b.lane {
                Lane::Whole => b.sms == total,
                Lane::Prefill | Lane::Decode => self.cfg.granularity.allows(b.sms, total),
            };
            if !legal {
                return Err(format!(
                    "{} SMs on lane {:?} is not a legal {} partition of {total} SMs",
                    b.sms, b.lane, self.cfg.granularity
                ));
            }
            sms_used += b.sms;
            if sms_used > total {
                return Err(format!("batches need {sms_used} SMs, the GPU has {total}"));
            }
            if b.items.is_empty() {
                return Err("empty batch".into());
            }
            if b.lookahead == 0 || (b.lookahead > 1 && b.items.iter().any(|it| matches!(it, BatchItem::Prefill { .. })))
            {
                return Err(format!("look-ahead {} is only allowed (> 1) for decode-only batches", b.lookahead));
            }
            for item in &b.items {
                let id = item.req();
                let r = self.requests.get(id.index()).ok_or_else(|| format!("no request {}", id.0))?;
                if std::mem::replace(&mut self.plan_stamp[id.index()], stamp) == stamp {
                    return Err(format!("request {} appears twice in the plan", id.0));
                }
                if r.in_flight {
                    return Err(format!("request {} is already running", id.0));
                }
                match (*item, r.phase) {
                    (BatchItem::Decode { .. }, Phase::Decoding) => {}
                    (BatchItem::Prefill { tokens, .. }, Phase::Queued | Phase::Preempted | Phase::Prefilling) => {
                        if r.phase != Phase::Prefilling {
                            need += u64::from(self.kv.pin_cost_once(id, &mut pinned));
                        }
                        if tokens == 0 || tokens > r.remaining_prefill() {
                            return Err(format!(
                                "request {}: prefill of {tokens} tokens, {} remain",
                                id.0,
                                r.remaining_prefill()
                            ));
                        }
                    }
                    (item, phase) => return Err(format!("request {}: {item:?} while {phase:?}", id.0)),
                }
                need += u64::from(
                    self.cfg.kv.blocks_beyond(r.blocks, r.kv_tokens + Self::item_kv_tokens(item, b.lookahead)),
                );
            }
        }
        if need > free {
            return Err(format!("needs {need} KV blocks, {free} free"));
        }
        for r in &plan.resize {
            let b = self
                .batches
                .iter()
                .find(|b| b.lane == r.lane)
                .ok_or_else(|| format!("resize: nothing runs on lane {:?}", r.lane))?;
            if b.segment + 1 >= b.segments {
                return Err(format!("resize: the batch on lane {:?} has no layer-group boundary left", r.lane));
            }
            if r.lane == Lane::Whole || !self.cfg.granularity.allows(r.sms, total) {
                return Err(format!(
                    "resize: {} SMs on lane {:?} is not a legal {} partition of {total} SMs",
                    r.sms, r.lane, self.cfg.granularity
                ));
            }
        }
        Ok(())
    }

    /// Applies a validated plan: preemptions first, then each batch is started.
    pub(super) fn apply(&mut self, plan: Plan, executor: &mut dyn Executor) -> Result<(), SimError> {
        for &id in &plan.preempt {
            self.preempt(id);
        }
        // Admissions pin their cached prefixes before any allocation can evict them.
        for item in plan.batches.iter().flat_map(|b| &b.items) {
            if matches!(self.requests[item.req().index()].phase, Phase::Queued | Phase::Preempted) {
                self.kv.pin(item.req());
            }
        }
        let decision = plan.decision.map(|decision| {
            self.decisions.push(DecisionRecord {
                at: self.now,
                decision,
                whole_ns: None,
                prefill_ns: None,
                decode_window_ns: None,
            });
            self.dec_base + self.decisions.len() - 1
        });
        // Decode first (as DuetServe dispatches it): on a device its kernels are enqueued before the prefill's.
        let mut batches = plan.batches;
        // A stable sort (no allocation for a plan's few batches): the decode batches, then the others, each in plan order.
        batches.sort_by_key(|b| b.lane != Lane::Decode);
        for batch in batches {
            self.start(batch, decision, executor)?;
        }
        for r in plan.resize {
            let b = self.batches.iter_mut().find(|b| b.lane == r.lane).expect("validated");
            b.pending_sms = Some(r.sms);
        }
        self.rebalance();
        Ok(())
    }

    /// The work of the current step of a batch's items.
    pub(super) fn step_work(&mut self, items: &[BatchItem]) {
        self.work.clear();
        for item in items {
            self.work.push(item.work(&self.requests[item.req().index()], 0));
        }
    }

    /// Whether a batch on `lane` with `sms` SMs changes the partition layout (and pays the switch cost).
    pub(super) fn switches_layout(&mut self, lane: Lane, sms: u32) -> bool {
        let whole = lane == Lane::Whole;
        let switch = match self.last_was_whole {
            None => false,
            Some(last_whole) => last_whole != whole || (!whole && self.last_sms[lane_index(lane)] != Some(sms)),
        };
        self.last_was_whole = Some(whole);
        self.last_sms[lane_index(lane)] = Some(sms);
        switch
    }

    pub(super) fn start(
        &mut self,
        batch: Batch,
        decision: Option<usize>,
        executor: &mut dyn Executor,
    ) -> Result<(), SimError> {
        let mut record = IterationRecord::starting(batch.lane, batch.sms, self.now, batch.items.len() as u32, 0);
        for item in &batch.items {
            let id = item.req();
            if matches!(self.requests[id.index()].phase, Phase::Queued | Phase::Preempted) {
                let pos = self.waiting.iter().position(|&w| w == id).expect("queued requests are in the waiting queue");
                self.waiting.remove(pos);
                self.running.push(id);
                self.requests[id.index()].admit();
                self.kv.on_admit(id, &self.requests[id.index()]);
            }
            let r = &self.requests[id.index()];
            let extra = self.cfg.kv.blocks_beyond(r.blocks, r.kv_tokens + Self::item_kv_tokens(item, batch.lookahead));
            assert!(self.alloc(extra), "validated plan over-allocated KV");
            let r = &mut self.requests[id.index()];
            r.blocks += extra;
            r.in_flight = true;
            r.first_scheduled.get_or_insert(self.now);
            match item {
                BatchItem::Prefill { tokens, .. } => record.prefill_tokens += tokens,
                BatchItem::Decode { .. } => record.decode_tokens += 1,
            }
        }
        self.step_work(&batch.items);
        let switch = if self.switches_layout(batch.lane, batch.sms) { self.cfg.partition_switch_ns } else { 0 };
        // A zero-length step would let time stand still; every step takes at least 1 ns.
        let step = Step {
            window: batch.lookahead,
            group: (0, batch.segments),
            ..Step::new(self.now, batch.sms, &self.work, Launch::Eager)
        };
        let timing = executor.execute(&step)?;
        let solo = timing.duration.max(Nanos(1)).0 + switch;
        let (demand, mem_fraction) = traffic(&timing, solo);
        self.iterations.push(record);
        let id = self.next_batch;
        self.next_batch += 1;
        self.batches.push(InFlight {
            id,
            lane: batch.lane,
            sms: batch.sms,
            items: batch.items,
            steps_total: batch.lookahead,
            step: 0,
            segments: batch.segments,
            segment: 0,
            pending_sms: None,
            started: self.now,
            remaining: solo as f64 / f64::from(batch.segments),
            segment_solo: solo as f64 / f64::from(batch.segments),
            demand,
            mem_fraction,
            rate: 1.0,
            last_update: self.now,
            version: 0,
            dirty: true,
            pending: timing.pending,
            device_ends: timing.pending.is_some(),
            decision,
            record: self.iter_base + self.iterations.len() - 1,
        });
        self.peak_sms = self.peak_sms.max(self.batches.iter().map(|b| b.sms).sum());
        Ok(())
    }

    /// Recompute preemption: free all KV, go back to the front of the queue.
    fn preempt(&mut self, id: ReqId) {
        self.recomputed_tokens += u64::from(self.requests[id.index()].kv_tokens);
        self.release_kv(id);
        self.requests[id.index()].preempt();
        self.preemptions += 1;
        self.running.retain(|&x| x != id);
        self.enqueue(id, true);
    }
}
