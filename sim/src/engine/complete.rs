//! What a finished step does: advance KV, emit tokens, start the next look-ahead step or retire the batch.

use super::inflight::traffic;
use super::{Engine, IterationRecord, Role};
use crate::cost::Launch;
use crate::error::SimError;
use crate::executor::{Executor, Step};
use crate::policy::{BatchItem, Lane};
use crate::request::Phase;
use crate::time::Nanos;

impl Engine {
    /// The current step of batch `bi` finished at `self.now`.
    pub(super) fn complete_step(&mut self, bi: usize, executor: &mut dyn Executor) -> Result<(), SimError> {
        let now = self.now;
        let record = self.batches[bi].record;
        self.iterations[record - self.iter_base].end = now;
        if self.batches[bi].segment + 1 < self.batches[bi].segments {
            return self.next_segment(bi, executor);
        }
        let items = std::mem::take(&mut self.batches[bi].items);
        for item in &items {
            let r = &mut self.requests[item.req().index()];
            if r.phase == Phase::Finished {
                continue; // a look-ahead slot of a request that finished earlier in the window
            }
            r.kv_tokens += item.tokens();
            if matches!(item, BatchItem::Prefill { .. }) {
                self.prefix_progress(item.req());
            }
            let r = &mut self.requests[item.req().index()];
            let emits = match item {
                BatchItem::Prefill { .. } => r.kv_tokens == r.prefill_target,
                BatchItem::Decode { .. } => true,
            };
            if !emits {
                continue;
            }
            let before = r.max_tbt;
            let e = r.emit_token(now);
            if let Some(w) = &mut self.watch {
                match e.gap {
                    None => w.first_token((now - r.arrival()).0),
                    Some(g) => {
                        w.gaps(g.0, 1);
                        w.largest_gap(before.0, r.max_tbt.0);
                    }
                }
            }
            // What the client sees: the engine's time, or when the frontend delivers the token.
            let (gap, seen) = self.client_token(item.req(), e.gap);
            if let Some(gap) = gap {
                self.itl_ns.push(gap.0);
            }
            if e.finished {
                self.finished += 1;
                self.release_held(seen);
                if self.cfg.role == Role::Prefill {
                    self.handoffs.push(item.req());
                }
            }
        }
        let b = &mut self.batches[bi];
        b.step += 1;
        if b.step < b.steps_total {
            // Next look-ahead step: replayed from a CUDA graph, same SMs, same slots.
            let (lane, sms) = (b.lane, b.sms);
            self.step_work(&items);
            let timing = executor.execute(&Step::new(now, sms, &self.work, Launch::Graph))?;
            let solo = timing.duration.max(Nanos(1)).0;
            let (demand, mem_fraction) = traffic(&timing, solo);
            let decode_tokens = items.len() as u32;
            self.iterations.push(IterationRecord::starting(lane, sms, now, decode_tokens, decode_tokens));
            let b = &mut self.batches[bi];
            b.items = items;
            b.remaining = solo as f64;
            b.demand = demand;
            b.mem_fraction = mem_fraction;
            b.last_update = now;
            b.dirty = true;
            b.pending = timing.pending;
            b.record = self.iter_base + self.iterations.len() - 1;
        } else {
            let b = self.batches.remove(bi);
            if let Some(d) = b.decision {
                let took = Some((now - b.started).0);
                let rec = &mut self.decisions[d - self.dec_base];
                match b.lane {
                    Lane::Whole => rec.whole_ns = took,
                    Lane::Prefill => rec.prefill_ns = took,
                    Lane::Decode => rec.decode_window_ns = took,
                }
            }
            let mut any_finished = false;
            for item in &items {
                let r = &mut self.requests[item.req().index()];
                r.in_flight = false;
                if r.phase == Phase::Finished && r.blocks > 0 {
                    any_finished = true;
                    // A prefill instance keeps the KV until the cluster has moved it.
                    if self.cfg.role != Role::Prefill {
                        self.release_kv(item.req());
                    }
                }
            }
            if any_finished {
                let reqs = &self.requests;
                self.running.retain(|id| reqs[id.index()].phase != Phase::Finished);
            }
        }
        self.rebalance();
        Ok(())
    }

    /// A layer group of a segmented batch finished: apply a pending resize (growth only into free SMs) and run
    /// the next group, which takes `1 / segments` of the step's predicted time on the (new) SM count. On a device
    /// (wall-clock mode) every group is its own call, whose end the executor reports.
    fn next_segment(&mut self, bi: usize, executor: &mut dyn Executor) -> Result<(), SimError> {
        self.advance_segment(bi, executor)?;
        self.rebalance();
        Ok(())
    }

    /// [`Engine::next_segment`] but for the re-timing of the running batches (the caller's).
    pub(super) fn advance_segment(&mut self, bi: usize, executor: &mut dyn Executor) -> Result<(), SimError> {
        let now = self.now;
        let others: u32 = self.batches.iter().enumerate().filter(|&(i, _)| i != bi).map(|(_, b)| b.sms).sum();
        let b = &mut self.batches[bi];
        b.segment += 1;
        let mut resized = false;
        if let Some(new) = b.pending_sms.take()
            && new + others <= self.cfg.num_sms
            && new != b.sms
        {
            b.sms = new;
            resized = true;
        }
        let (lane, sms, segments, segment, device_ends) = (b.lane, b.sms, b.segments, b.segment, b.device_ends);
        let num_seqs = b.items.len() as u32;
        if resized || device_ends {
            // The remaining layer groups run at the new SM count's speed.
            let items = std::mem::take(&mut b.items);
            self.step_work(&items);
            // On a device each group is its own call; in simulation the whole step is re-timed at the new SMs.
            let group = if device_ends { (segment, segments) } else { (0, 1) };
            let timing = executor.execute(&Step { group, ..Step::new(now, sms, &self.work, Launch::Eager) })?;
            let solo = timing.duration.max(Nanos(1)).0;
            let (demand, mem_fraction) = traffic(&timing, solo);
            let b = &mut self.batches[bi];
            b.items = items;
            b.segment_solo = solo as f64 / f64::from(segments);
            b.demand = demand;
            b.mem_fraction = mem_fraction;
            b.pending = timing.pending;
        }
        self.iterations.push(IterationRecord::starting(lane, sms, now, num_seqs, 0));
        let b = &mut self.batches[bi];
        b.remaining = b.segment_solo;
        b.last_update = now;
        b.dirty = true;
        b.record = self.iter_base + self.iterations.len() - 1;
        self.peak_sms = self.peak_sms.max(self.batches.iter().map(|b| b.sms).sum());
        Ok(())
    }
}
