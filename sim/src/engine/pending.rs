//! Steps whose end the executor reports later (wall-clock mode): the engine keeps them running with the
//! executor's estimate as their expected end (what policies see) and schedules their completion only when
//! [`Engine::step_finished`] says when they ended. Driven by the event kernel (`crate::kernel::drive`).

use super::{Engine, Event};
use crate::error::SimError;
use crate::executor::{Executor, ExecutorError};
use crate::policy::Policy;
use crate::time::Nanos;

impl Engine {
    /// Steps started whose end is not known yet.
    pub(crate) fn pending_steps(&self) -> usize {
        self.batches.iter().filter(|b| b.pending.is_some()).count()
    }

    /// The step with `ticket` ended at `at` (clamped to the engine's clock): its completion event is scheduled.
    pub(crate) fn step_finished(&mut self, ticket: u64, at: Nanos) -> Result<(), SimError> {
        let Some(b) = self.batches.iter_mut().find(|b| b.pending == Some(ticket)) else {
            return Err(ExecutorError(format!("the executor reported an unknown step (ticket {ticket})")).into());
        };
        b.pending = None;
        b.remaining = 0.0;
        b.rate = 1.0;
        b.version += 1;
        b.dirty = false;
        let at = at.max(self.now);
        b.last_update = at;
        self.events.push(at, Event::StepDone { batch: b.id, version: b.version });
        Ok(())
    }

    /// Applies every event due by `wall` (the clock: virtual, stopping at each event time, or a device's), with the
    /// engine's clock set to `wall`, then consults the policy once if anything changed. Quiet decode steps that
    /// end before `horizon` (the next time something outside the engine may look at or change it) may be leapt
    /// over ([`super::leap`]).
    pub(crate) fn advance_to(
        &mut self,
        wall: Nanos,
        horizon: Nanos,
        policy: &mut dyn Policy,
        executor: &mut dyn Executor,
    ) -> Result<(), SimError> {
        self.now = self.now.max(wall);
        self.apply_due(horizon, policy, executor)
    }
}
