//! Leaping over quiet decode steps. While a single one-step batch decodes every running request, nothing waits and
//! the KV for each next token is free, a policy may say what its plan would be
//! ([`crate::policy::Policy::repeat_decode`]: the same requests, less those that just finished, on a lane and SMs,
//! with a decision record). The engine then completes the step and starts the next one itself: no kernel round, no
//! view, no plan and no validation, and no completion event queued per step. The state changes are those of the
//! full path ([`Engine::complete_step`], the policy's moment, [`Engine::start`]) in the same order, with the same
//! cost function for each step's time, so every output is byte-identical (`sim/tests/leap.rs` runs each policy and
//! layout both ways; `scripts/output-checksums.sh` compares full traces).
//!
//! A request may finish inside a leap when its finish only releases its KV (no client holding requests back, not a
//! prefill instance); the others go on.
//! A leap stops before a step whose end is not strictly the next event (an arrival, a frontend or cluster event
//! at or before it), reaches `horizon` (the next time something outside the engine may read or change it: a
//! cluster's arrivals and transfers), ends with every request finished or with a finish that may do more, needs
//! blocks that are not free (the policy would preempt), or that the policy does not vouch for; that step goes
//! through the full path.

use super::inflight::traffic;
use super::{DecisionRecord, Engine, Event, IterationRecord, Role};
use crate::cost::Launch;
use crate::error::SimError;
use crate::executor::{Executor, Step};
use crate::policy::{BatchItem, Lane, Policy, QuietStep, Repeat};
use crate::request::{Phase, ReqId};
use crate::time::Nanos;

impl Engine {
    /// Completes and restarts the running decode batch while its steps are quiet (module docs) and end before
    /// `horizon`.
    pub(super) fn leap(
        &mut self,
        horizon: Nanos,
        policy: &mut dyn Policy,
        executor: &mut dyn Executor,
    ) -> Result<(), SimError> {
        if self.client.cfg.has_frontend() || !self.quiet_batch() {
            return Ok(());
        }
        // The running step's completion, if it is the only event by its time (before `horizon`): the policy is
        // asked only then (a policy may update its state when it vouches, as its plan there would).
        let (id, version) = (self.batches[0].id, self.batches[0].version);
        let due = |e: &Event| *e == Event::StepDone { batch: id, version };
        let by = Nanos(horizon.0.saturating_sub(1));
        let Some(at) = self.events.peek_sole_if(by, due) else { return Ok(()) };
        let Some(mut next) = self.ask(at, policy) else { return Ok(()) };
        let (mut t, _) = self.events.pop_sole_if(by, due).expect("peeked: the running step's completion");
        loop {
            self.now = t;
            let (end, quiet) = self.restart_quiet(next, executor)?;
            // The next step's completion would be the sole event by its time: go on without queueing it.
            if !quiet || end >= horizon || self.events.next_time().is_some_and(|n| n <= end) {
                break;
            }
            // `restart_quiet` left the next step's work in `next_work`.
            std::mem::swap(&mut self.work, &mut self.next_work);
            match policy.repeat_decode(&self.quiet_step(end)) {
                Some(r) => next = r,
                None => break,
            }
            t = end;
        }
        // Queue the running step's completion, as starting it on the full path does.
        self.rebalance();
        Ok(())
    }

    /// The policy's batch for the running batch's next step, starting at `at` (the running step's end), whose
    /// work (each request's decode over the tokens it will hold then) is left in `self.work`.
    fn ask(&mut self, at: Nanos, policy: &mut dyn Policy) -> Option<Repeat> {
        self.work.clear();
        self.left.clear();
        for item in &self.batches[0].items {
            let r = &self.requests[item.req().index()];
            // One step after the running one, by the requests that do not finish at its end.
            if r.next_token_is_last() {
                self.left.push((item.req(), r.generated + 1));
            } else {
                self.work.push(item.work(r, 1));
            }
        }
        policy.repeat_decode(&self.quiet_step(at))
    }

    /// What [`Policy::repeat_decode`] is told about the step in `self.work` starting at `at`.
    fn quiet_step(&self, at: Nanos) -> QuietStep<'_> {
        QuietStep {
            now: at,
            total_sms: self.cfg.num_sms,
            kv_total_tokens: self.cfg.kv.total_tokens(),
            work: &self.work,
            left: &self.left,
        }
    }

    /// The step of the quiet batch ended at `self.now`: what [`Engine::complete_step`], the policy's moment and
    /// [`Engine::start`] of `next` do, in the same order, without what cannot happen here (prefill items, a
    /// frontend, look-ahead, layer groups, admissions, a finish that does more than release KV). `self.work` holds
    /// the work of the step it starts ([`Engine::ask`]: the requests that did not finish); the work of the step
    /// after is left in `self.next_work`. Returns the end of the step it started and whether that step is quiet
    /// too ([`Engine::quiet_batch`]; the queues cannot have changed).
    fn restart_quiet(&mut self, next: Repeat, executor: &mut dyn Executor) -> Result<(Nanos, bool), SimError> {
        let now = self.now;
        let b = &self.batches[0];
        let (record, lane, decision, started) = (b.record, b.lane, b.decision, b.started);
        self.iterations[record - self.iter_base].end = now;
        let mut items = std::mem::take(&mut self.batches[0].items);
        if let Some(d) = decision {
            let rec = &mut self.decisions[d - self.dec_base];
            let took = Some((now - started).0);
            match lane {
                Lane::Whole => rec.whole_ns = took,
                Lane::Prefill => rec.prefill_ns = took,
                Lane::Decode => rec.decode_window_ns = took,
            }
        }
        // The policy's moment: it has read the history; its plan's decision is logged.
        self.trim_history();
        let decision = next.decision.map(|decision| {
            self.decisions.push(DecisionRecord {
                at: now,
                decision,
                whole_ns: None,
                prefill_ns: None,
                decode_window_ns: None,
            });
            self.dec_base + self.decisions.len() - 1
        });
        // Per request, in item order, the completion (it emits a token); then, as on the full path, the requests that
        // finished leave (their in-flight mark, their KV, the running list, in item order); then, as the batch
        // starts again, KV for each remaining request's next token. Completions touch only the request, its gaps and
        // the watch, and allocations only the pool and the request, so without a finish (`self.left`, filled when
        // this step was asked for, names who finishes at its end) one pass does both.
        let mut after = After::default();
        self.next_work.clear();
        if self.left.is_empty() {
            for item in &items {
                let finished = self.emit_quietly(item.req(), now);
                debug_assert!(!finished, "self.left names every request that finishes here");
                self.restart_item(item, &mut after);
            }
        } else {
            let mut finished = false;
            for item in &items {
                finished |= self.emit_quietly(item.req(), now);
            }
            if finished {
                for item in &items {
                    let r = &mut self.requests[item.req().index()];
                    if r.phase == Phase::Finished {
                        r.in_flight = false;
                        if r.blocks > 0 {
                            self.release_kv(item.req());
                        }
                    }
                }
                assert!(
                    self.waiting.is_empty(),
                    "a decoding request's release woke a request (see may_finish_quietly)"
                );
                let reqs = &self.requests;
                items.retain(|it| reqs[it.req().index()].phase != Phase::Finished);
                self.running.retain(|id| reqs[id.index()].phase != Phase::Finished);
            }
            self.left.clear();
            for item in &items {
                self.restart_item(item, &mut after);
            }
        }
        let n = items.len() as u32;
        let rec = IterationRecord::starting(next.lane, next.sms, now, n, n);
        debug_assert!(items.iter().zip(&self.work).all(|(it, w)| it.work(&self.requests[it.req().index()], 0) == *w));
        let switch = if self.switches_layout(next.lane, next.sms) { self.cfg.partition_switch_ns } else { 0 };
        let timing = executor.execute(&Step::new(now, next.sms, &self.work, Launch::Eager))?;
        let solo = timing.duration.max(Nanos(1)).0 + switch;
        let (demand, mem_fraction) = traffic(&timing, solo);
        self.iterations.push(rec);
        let id = self.next_batch;
        self.next_batch += 1;
        let b = &mut self.batches[0];
        b.id = id;
        b.lane = next.lane;
        b.sms = next.sms;
        b.items = items;
        b.step = 0;
        b.started = now;
        b.remaining = solo as f64;
        b.segment_solo = solo as f64;
        b.demand = demand;
        b.mem_fraction = mem_fraction;
        b.rate = 1.0;
        b.last_update = now;
        b.version = 0;
        b.dirty = true;
        b.pending = timing.pending;
        b.decision = decision;
        b.record = self.iter_base + self.iterations.len() - 1;
        debug_assert!(b.pending.is_none(), "a quiet batch is timed by the engine");
        self.peak_sms = self.peak_sms.max(next.sms);
        // Alone at rate 1, its step ends `solo` from now (what `rebalance` would schedule).
        let quiet = after.staying
            && (!after.finishing || self.may_finish_quietly())
            && after.need <= u64::from(self.free_blocks());
        Ok((now + Nanos(solo), quiet))
    }

    /// Request `id` emits its token at the end of a quiet step (its KV grows by that token): its gap goes to the
    /// pooled gaps and the watch. Returns whether it finished (`quiet_batch`: no held request to send, not a
    /// prefill role, `may_finish_quietly`).
    #[inline(always)]
    fn emit_quietly(&mut self, id: ReqId, now: Nanos) -> bool {
        let r = &mut self.requests[id.index()];
        r.kv_tokens += 1;
        let before = r.max_tbt;
        let e = r.emit_token(now);
        if let Some(gap) = e.gap {
            self.itl_ns.push(gap.0);
            if let Some(w) = &mut self.watch {
                w.gaps(gap.0, 1);
                w.largest_gap(before.0, r.max_tbt.0);
            }
        }
        if e.finished {
            self.finished += 1;
        }
        e.finished
    }

    /// As the quiet batch starts again: KV for `item`'s next token, and what the step after needs of it (`after`;
    /// its work to `next_work`, or its finish to `left`).
    #[inline(always)]
    fn restart_item(&mut self, item: &BatchItem, after: &mut After) {
        let i = item.req().index();
        let r = &self.requests[i];
        let extra = self.cfg.kv.blocks_beyond(r.blocks, r.kv_tokens + 1);
        if extra > 0 {
            assert!(self.alloc(extra), "a quiet batch's KV was checked");
            self.requests[i].blocks += extra;
        }
        let r = &self.requests[i];
        if r.next_token_is_last() {
            after.finishing = true;
            self.left.push((item.req(), r.generated + 1));
        } else {
            after.staying = true;
            after.need += u64::from(self.cfg.kv.blocks_beyond(r.blocks, r.kv_tokens + 2));
            self.next_work.push(item.work(r, 1));
        }
    }

    /// Leaps over layer-group boundaries: while the next event is, alone, the end of a layer group that is not its
    /// batch's last, no resize is pending, and every SM is held (the full path then consults no policy there: it
    /// only starts the next group, [`Engine::next_segment`]), the next group starts without its completion event
    /// being queued and popped. Every batch is re-timed at each boundary as on the full path.
    pub(super) fn glide(&mut self, horizon: Nanos, executor: &mut dyn Executor) -> Result<(), SimError> {
        let busy: u32 = self.batches.iter().map(|b| b.sms).sum();
        if busy < self.cfg.num_sms {
            return Ok(());
        }
        let batches = &self.batches;
        let boundary = |e: &Event| match *e {
            Event::StepDone { batch, version } => {
                batches.iter().any(|b| b.id == batch && b.version == version && Self::glides(b))
            }
            _ => false,
        };
        let Some((mut t, Event::StepDone { batch: id, .. })) =
            self.events.pop_sole_if(Nanos(horizon.0.saturating_sub(1)), boundary)
        else {
            return Ok(());
        };
        loop {
            self.now = t;
            let bi = self.batches.iter().position(|b| b.id == id).expect("the gliding batch runs");
            let record = self.batches[bi].record;
            self.iterations[record - self.iter_base].end = t;
            self.advance_segment(bi, executor)?;
            // Another batch re-timed: its event and this one's are queued in batch order.
            let Some((at, ev)) = self.rebalance_holding(Some(id)) else { return Ok(()) };
            let b = &self.batches[bi];
            if !Self::glides(b) || at >= horizon || self.events.next_time().is_some_and(|n| n <= at) {
                self.events.push(at, ev);
                return Ok(());
            }
            t = at;
        }
    }

    /// Whether the end of `b`'s current step is a layer-group boundary [`Engine::glide`] may leap over.
    fn glides(b: &super::InFlight) -> bool {
        b.segment + 1 < b.segments && b.pending_sms.is_none() && !b.device_ends && b.pending.is_none()
    }

    /// Whether the running batch is quiet: the only batch, one step in one piece, timed by the engine (virtual
    /// time), decoding every running request in admission order, nothing waiting, some request going on after its
    /// end and none finishing there unless finishes may happen in a leap ([`Engine::may_finish_quietly`]), and the
    /// blocks of every next token free.
    fn quiet_batch(&self) -> bool {
        let [b] = self.batches.as_slice() else { return false };
        if b.steps_total != 1
            || b.segments != 1
            || b.pending.is_some()
            || b.items.len() != self.running.len()
            || !self.waiting.is_empty()
        {
            return false;
        }
        let (mut need, mut finishing, mut staying) = (0u64, false, false);
        for (item, &id) in b.items.iter().zip(&self.running) {
            // Every running request, in admission order (the order of a policy's own decode batch).
            let BatchItem::Decode { req } = *item else { return false };
            if req != id {
                return false;
            }
            let r = &self.requests[req.index()];
            if r.next_token_is_last() {
                finishing = true;
                continue;
            }
            staying = true;
            // After this step the request holds `kv_tokens + 1` tokens; its next step needs room for one more.
            need += u64::from(self.cfg.kv.blocks_beyond(r.blocks, r.kv_tokens + 2));
        }
        staying && (!finishing || self.may_finish_quietly()) && need <= u64::from(self.free_blocks())
    }

    /// Whether a request may finish inside a leap: its finish then only releases its KV. Not with a client holding
    /// requests back (a finish sends the next) or on a prefill instance (a finish hands the request off). (With a
    /// prefix cache, a release wakes the requests waiting for blocks the request was still computing: a decoding
    /// request computed all of its prompt's, so none.)
    fn may_finish_quietly(&self) -> bool {
        !self.client.holds() && self.cfg.role != Role::Prefill
    }
}

/// What the step after a restarted quiet step needs ([`Engine::restart_item`]).
#[derive(Debug, Default)]
struct After {
    /// A request finishes at the step's end.
    finishing: bool,
    /// A request goes on after it.
    staying: bool,
    /// Blocks the staying requests need for the token after.
    need: u64,
}
