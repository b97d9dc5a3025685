//! Plan validation and the state transitions a plan and a finished batch cause.

use super::{Engine, Event, IterationRecord};
use crate::cost::SeqWork;
use crate::error::SimError;
use crate::executor::Executor;
use crate::policy::{BatchItem, Plan};
use crate::request::{Phase, ReqId};
use crate::time::Nanos;

impl Engine {
    /// Checks every rule a plan must follow; the error says which one it broke.
    pub(super) fn validate(&mut self, plan: &Plan) -> Result<(), String> {
        // `plan_stamp[i] == stamp` marks request i as already named by this plan (no hashing on the hot path).
        self.stamp += 1;
        let stamp = self.stamp;
        let mut free = u64::from(self.pool.free());
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
            free += u64::from(r.blocks);
        }
        let mut need = 0u64;
        for (i, b) in plan.batches.iter().enumerate() {
            let p = self
                .partitions
                .iter()
                .find(|p| p.view.id == b.partition)
                .ok_or_else(|| format!("no partition {}", b.partition.0))?;
            if p.view.busy || plan.batches[..i].iter().any(|o| o.partition == b.partition) {
                return Err(format!("partition {} is busy", b.partition.0));
            }
            if b.items.is_empty() {
                return Err("empty batch".into());
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
                        if tokens == 0 || tokens > r.remaining_prefill() {
                            return Err(format!(
                                "request {}: prefill of {tokens} tokens, {} remain",
                                id.0,
                                r.remaining_prefill()
                            ));
                        }
                    }
                    (item, phase) => {
                        return Err(format!("request {}: {item:?} while {phase:?}", id.0));
                    }
                }
                need += u64::from(self.kv.blocks_for(r.kv_tokens + item.tokens()).saturating_sub(r.blocks));
            }
        }
        if need > free {
            return Err(format!("needs {need} KV blocks, {free} free"));
        }
        Ok(())
    }

    /// Applies a validated plan: preemptions first, then each batch is started on its partition.
    pub(super) fn apply(&mut self, plan: Plan, executor: &mut dyn Executor) -> Result<(), SimError> {
        for &id in &plan.preempt {
            self.preempt(id);
        }
        for batch in plan.batches {
            let pi = self.partitions.iter().position(|p| p.view.id == batch.partition).expect("validated");
            let mut record = IterationRecord {
                partition: batch.partition,
                sms: self.partitions[pi].view.sms,
                start: self.now,
                end: self.now,
                num_seqs: batch.items.len() as u32,
                prefill_tokens: 0,
                decode_tokens: 0,
            };
            self.work.clear();
            for item in &batch.items {
                let id = item.req();
                if matches!(self.requests[id.index()].phase, Phase::Queued | Phase::Preempted) {
                    let pos =
                        self.waiting.iter().position(|&w| w == id).expect("queued requests are in the waiting queue");
                    self.waiting.remove(pos);
                    self.running.push(id);
                    self.requests[id.index()].phase = Phase::Prefilling;
                }
                let r = &mut self.requests[id.index()];
                let extra = self.kv.blocks_for(r.kv_tokens + item.tokens()).saturating_sub(r.blocks);
                assert!(self.pool.allocate(extra), "validated plan over-allocated KV");
                r.blocks += extra;
                r.in_flight = true;
                r.first_scheduled.get_or_insert(self.now);
                let emits_token = match *item {
                    BatchItem::Prefill { tokens, .. } => {
                        record.prefill_tokens += tokens;
                        r.kv_tokens + tokens == r.prefill_target
                    }
                    BatchItem::Decode { .. } => {
                        record.decode_tokens += 1;
                        true
                    }
                };
                self.work.push(SeqWork { new_tokens: item.tokens(), cached_tokens: r.kv_tokens, emits_token });
            }
            let sms = self.partitions[pi].view.sms;
            // A zero-length batch would let time stand still; every batch takes at least 1 ns.
            let duration = executor.execute(self.now, sms, &self.work)?.max(Nanos(1));
            record.end = self.now + duration;
            self.iterations.push(record);
            let p = &mut self.partitions[pi];
            p.view.busy = true;
            p.in_flight = batch.items;
            self.push_event(self.now + duration, Event::BatchDone(batch.partition));
        }
        Ok(())
    }

    /// Recompute preemption: free all KV, go back to the front of the queue.
    fn preempt(&mut self, id: ReqId) {
        let r = &mut self.requests[id.index()];
        self.pool.release(r.blocks);
        r.blocks = 0;
        r.kv_tokens = 0;
        r.prefill_target = r.spec.input_tokens + r.generated;
        r.phase = Phase::Preempted;
        r.preemptions += 1;
        self.preemptions += 1;
        self.running.retain(|&x| x != id);
        self.waiting.push_front(id);
    }

    /// The batch on partition `p` finished at `self.now`: advance KV, emit tokens, retire finished requests.
    pub(super) fn complete_batch(&mut self, p: crate::policy::PartitionId) {
        let pi = self.partitions.iter().position(|s| s.view.id == p).expect("event for a known partition");
        let items = std::mem::take(&mut self.partitions[pi].in_flight);
        self.partitions[pi].view.busy = false;
        let mut any_finished = false;
        for item in &items {
            let r = &mut self.requests[item.req().index()];
            r.in_flight = false;
            r.kv_tokens += item.tokens();
            let emits = match item {
                BatchItem::Prefill { .. } => r.kv_tokens == r.prefill_target,
                BatchItem::Decode { .. } => true,
            };
            if !emits {
                continue;
            }
            match r.last_token {
                Some(last) => {
                    let gap = self.now - last;
                    self.itl_ns.push(gap.0);
                    r.max_tbt = r.max_tbt.max(gap);
                }
                None => r.first_token = Some(self.now),
            }
            r.last_token = Some(self.now);
            r.generated += 1;
            r.phase = Phase::Decoding;
            if r.generated == r.spec.output_tokens {
                r.phase = Phase::Finished;
                self.pool.release(r.blocks);
                r.blocks = 0;
                self.finished += 1;
                any_finished = true;
            }
        }
        if any_finished {
            let reqs = &self.requests;
            self.running.retain(|id| reqs[id.index()].phase != Phase::Finished);
        }
    }
}
