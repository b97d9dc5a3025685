//! The one event kernel every run goes through: [`drive`] advances a [`Driven`] simulation (one engine with its
//! policy, or a cluster of them behind a router) over a clock: virtual time ([`crate::executor::VirtualClock`],
//! which jumps to the next event) or a device's wall clock (wall-clock mode, where steps end when the device
//! says). Each round applies everything due by the clock, then waits for the next event or a step's end.

use crate::error::SimError;
use crate::executor::{AsyncExecutor, Executor};
use crate::time::Nanos;

/// Something [`drive`] can advance.
pub(crate) trait Driven {
    /// Time of its next event.
    fn next_time(&self) -> Option<Nanos>;
    /// Applies what is due by `now` (its events at the next event time, at most `now`), consulting policies;
    /// steps run on `executor` (single-instance runs; a cluster's instances have their own).
    fn advance_to(&mut self, now: Nanos, executor: &mut dyn Executor) -> Result<(), SimError>;
    /// Steps started whose end the device has not reported.
    fn pending_steps(&self) -> usize;
    /// The device reports that the step with `ticket` ended at `end`.
    fn step_finished(&mut self, ticket: u64, end: Nanos) -> Result<(), SimError>;
}

/// Runs `sim` until no event is left and no step is pending, on `clock`'s time.
pub(crate) fn drive<S: Driven + ?Sized, C: AsyncExecutor + ?Sized>(sim: &mut S, clock: &mut C) -> Result<(), SimError> {
    loop {
        while sim.next_time().is_some_and(|t| t <= clock.now()) {
            let now = clock.now();
            sim.advance_to(now, clock.as_executor())?;
        }
        let deadline = sim.next_time();
        if deadline.is_none() && sim.pending_steps() == 0 {
            return Ok(());
        }
        if let Some((ticket, end)) = clock.wait(deadline)? {
            sim.step_finished(ticket, end)?;
        }
    }
}
