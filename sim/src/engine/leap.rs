//! Leaping over quiet decode steps: while one whole-GPU batch decodes every running request, nothing waits, no
//! request finishes and the KV for the next token is free, a policy that declares it
//! ([`crate::policy::Policy::repeats_decode`]) would plan the very same batch again. The engine then completes the
//! step and starts the next one itself, without the kernel round, the view, the policy's plan and its
//! validation: the same code as the full path ([`Engine::complete_step`], [`Engine::start`]), the same cost
//! function for each step's time, the same order of state changes, so every output is byte-identical (a test runs
//! each policy and layout both ways).
//!
//! A leap stops before a step whose end is not strictly the next event (an arrival, a frontend or cluster event
//! at or before it), reaches `horizon` (the next time something outside the engine may read or change it: a
//! cluster's arrivals and transfers), finishes a request, or needs blocks that are not free (the policy would
//! preempt); that step then goes through the full path.

use super::{Engine, Event};
use crate::error::SimError;
use crate::executor::Executor;
use crate::policy::{Batch, BatchItem, Lane};
use crate::time::Nanos;

impl Engine {
    /// Completes and restarts the running decode batch while its steps are quiet (module docs) and end before
    /// `horizon`.
    pub(super) fn leap(&mut self, horizon: Nanos, executor: &mut dyn Executor) -> Result<(), SimError> {
        if self.client.cfg.has_frontend() {
            return Ok(());
        }
        while let Some(sms) = self.quiet_batch() {
            let (id, version) = (self.batches[0].id, self.batches[0].version);
            let due = |e: &Event| *e == Event::StepDone { batch: id, version };
            let Some((t, _)) = self.events.pop_sole_if(Nanos(horizon.0.saturating_sub(1)), due) else {
                return Ok(());
            };
            // What the full path does at `t`: the step's completion, the policy's moment (the history is trimmed
            // after it reads it), and the batch it plans, started and timed.
            self.now = t;
            let items = self.batches[0].items.clone();
            self.complete_step(0, executor)?;
            self.trim_history();
            self.start(Batch::new(Lane::Whole, sms, items), None, executor)?;
            self.rebalance();
        }
        Ok(())
    }

    /// The SMs of the running batch if the policy would plan it again when its step ends: the only batch, on the
    /// whole GPU, one step in one piece, timed by the engine (virtual time), no decision record, decoding every
    /// running request with none finishing at its end, nothing waiting, and the blocks of every request's next
    /// token free.
    fn quiet_batch(&self) -> Option<u32> {
        let [b] = self.batches.as_slice() else { return None };
        if b.lane != Lane::Whole
            || b.steps_total != 1
            || b.segments != 1
            || b.pending.is_some()
            || b.decision.is_some()
            || b.items.len() != self.running.len()
            || !self.waiting.is_empty()
        {
            return None;
        }
        let mut need = 0u64;
        for item in &b.items {
            let BatchItem::Decode { req } = *item else { return None };
            let r = &self.requests[req.index()];
            if r.generated + 1 >= r.spec.output_tokens {
                return None;
            }
            // After this step the request holds `kv_tokens + 1` tokens; its next step needs room for one more.
            need += u64::from(self.cfg.kv.blocks_for(r.kv_tokens + 2).saturating_sub(r.blocks));
        }
        (need <= u64::from(self.free_blocks())).then_some(b.sms)
    }
}
