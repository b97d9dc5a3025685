//! Wall-clock mode: the same engine and policies driving an executor that enqueues steps on a device and reports
//! their ends later (the CUDA executor), with arrivals released at their trace times on the executor's clock.
//!
//! [`run`] drives the engine's one loop (`Engine::drive`, the same as a simulation's) on the device's clock:
//! apply every event due by the executor's clock ([`AsyncExecutor::now`]) and consult the policy; then wait
//! ([`AsyncExecutor::wait`]) until the next event is due or a step ends, and tell the engine when it ended. Token times
//! are the engine's clock when the end was seen (a real server emits a token only when the host sees the step finish).
//! Contention is not modelled here: the device's times include it.
//!
//! [`FakeExecutor`] stands in for a device: it asks another executor (the cost model) for each step's duration,
//! ends the step exactly then on a clock that jumps from event to event, so a wall-clock run over it reproduces
//! the simulated run's plans, iterations and request times exactly (`tests/realtime.rs`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use duet_traces::Workload;

use crate::engine::{Engine, EngineConfig, SimOutput};
use crate::error::{ConfigError, SimError};
use crate::executor::{Executor, ExecutorError, Step, StepCall, StepTiming};
use crate::policy::Policy;
use crate::time::Nanos;

pub use crate::executor::AsyncExecutor;

/// Runs `workload` to completion in wall-clock mode. `cfg.contention` must be `None`.
pub fn run(
    workload: &Workload,
    policy: &mut dyn Policy,
    executor: &mut dyn AsyncExecutor,
    cfg: &EngineConfig,
) -> Result<SimOutput, SimError> {
    if cfg.contention.is_some() {
        return Err(ConfigError::Invalid(
            "wall-clock runs take contention from the device; the engine must not model it".into(),
        )
        .into());
    }
    let mut engine = Engine::for_workload(workload, cfg)?;
    engine.drive(policy, executor)?;
    engine.check_finished(policy)?;
    Ok(engine.into_output())
}

/// A stand-in device: each step takes what `inner` says (optionally transformed), ends exactly then, and the
/// clock jumps to the next thing that happens.
pub struct FakeExecutor<E: Executor> {
    inner: E,
    clock: Nanos,
    next_ticket: u64,
    ends: BinaryHeap<Reverse<(Nanos, u64)>>,
    /// Maps (step index, predicted duration) to the duration the fake device takes.
    scale: Box<dyn FnMut(u64, Nanos) -> Nanos>,
    /// Steps started, with their SMs and the work.
    pub log: Vec<StepCall>,
    /// Look-ahead windows announced: (SMs, sequences of the window's first step, steps).
    pub windows: Vec<(u32, u32, u32)>,
}

impl<E: Executor> FakeExecutor<E> {
    /// A fake device taking exactly `inner`'s durations.
    pub fn new(inner: E) -> Self {
        Self::with_durations(inner, Box::new(|_, d| d))
    }

    /// A fake device taking `f(step index, inner's duration)` for each step.
    pub fn with_durations(inner: E, f: Box<dyn FnMut(u64, Nanos) -> Nanos>) -> Self {
        Self {
            inner,
            clock: Nanos(0),
            next_ticket: 0,
            ends: BinaryHeap::new(),
            scale: f,
            log: Vec::new(),
            windows: Vec::new(),
        }
    }
}

impl<E: Executor> FakeExecutor<E> {
    /// Enqueues a call whose whole step takes `t` (scaled); a layer group takes `1 / groups` of it, rounded up
    /// as the engine rounds a group's share.
    fn enqueue(&mut self, mut t: StepTiming, call: StepCall) -> StepTiming {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        // The engine gives every step at least 1 ns; so does the fake device.
        let mut took = (self.scale)(ticket, t.duration).max(Nanos(1));
        if call.layer_groups > 1 {
            took = Nanos((took.0 as f64 / f64::from(call.layer_groups)).ceil() as u64);
        }
        self.ends.push(Reverse((self.clock.max(call.now) + took, ticket)));
        self.log.push(call);
        t.pending = Some(ticket);
        t
    }
}

impl<E: Executor> Executor for FakeExecutor<E> {
    fn execute(&mut self, step: &Step<'_>) -> Result<StepTiming, ExecutorError> {
        let t = self.inner.execute(step)?;
        if step.window > 1 {
            self.windows.push((step.sms, step.work.len() as u32, step.window));
        }
        let call = StepCall {
            now: step.now,
            sms: step.sms,
            work: step.work.to_vec(),
            launch: step.launch,
            layer_groups: step.group.1,
        };
        Ok(self.enqueue(t, call))
    }
}

impl<E: Executor> AsyncExecutor for FakeExecutor<E> {
    fn now(&self) -> Nanos {
        self.clock
    }

    fn wait(&mut self, deadline: Option<Nanos>) -> Result<Option<(u64, Nanos)>, ExecutorError> {
        if let Some(&Reverse((end, ticket))) = self.ends.peek()
            && deadline.is_none_or(|d| end <= d)
        {
            self.ends.pop();
            self.clock = self.clock.max(end);
            return Ok(Some((ticket, end)));
        }
        match deadline {
            Some(d) => {
                self.clock = self.clock.max(d);
                Ok(None)
            }
            None => Err(ExecutorError("nothing to wait for: no pending step and no deadline".into())),
        }
    }

    fn as_executor(&mut self) -> &mut dyn Executor {
        self
    }
}
