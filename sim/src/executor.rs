//! Executors run a batch and say how long it took: the simulated executor asks the cost model (virtual time);
//! the GPU executor (a later crate) runs kernels and measures. The engine does not know which one it drives.

use std::sync::Arc;

use crate::cost::{CostModel, Launch, SeqWork};
use crate::time::Nanos;

/// How long a step takes when it runs alone, and the HBM traffic that contention acts on.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepTiming {
    /// Duration when running alone.
    pub duration: Nanos,
    /// Bytes moved to or from HBM.
    pub hbm_bytes: f64,
    /// Nanoseconds those bytes take at the partition's own bandwidth (<= duration for a roofline model).
    pub memory_ns: f64,
    /// `Some(ticket)` when the step was only enqueued on a device: `duration` is then an estimate (what policies
    /// see as the batch's expected end) and the real end is reported later through
    /// [`crate::realtime::AsyncExecutor::wait`]. `None` for a step whose duration is known (simulated).
    pub pending: Option<u64>,
}

impl StepTiming {
    /// A step with no HBM traffic information (contention leaves it alone).
    pub fn opaque(duration: Nanos) -> Self {
        Self { duration, hbm_bytes: 0.0, memory_ns: 0.0, pending: None }
    }
}

/// One step the engine hands an executor, as a value: what runs (every sequence's work), where (SMs), how it is
/// launched, whether it opens a look-ahead window, and which layer group of a segmented step it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step<'a> {
    /// Engine time of the call.
    pub now: Nanos,
    /// SMs of the partition.
    pub sms: u32,
    /// One entry per sequence.
    pub work: &'a [SeqWork],
    /// Eager launch, or a step replayed from a CUDA graph (the later steps of a look-ahead window).
    pub launch: Launch,
    /// Decode steps of the look-ahead window this (eager) step opens, itself included; 1: none. The rest follow
    /// as `Graph` steps over the same sequences with one more cached token each, so a device executor may
    /// enqueue the whole window now.
    pub window: u32,
    /// `(g, n)`: layer group `g` (0-based) of the `n` groups of a segmented step (muxwise's prefill, whose SMs may
    /// change between groups); `(0, 1)`: the whole step. The timing returned is the whole step's running alone
    /// (the engine gives a group `1 / n` of it); a device executor runs only that group's layers.
    pub group: (u32, u32),
}

impl<'a> Step<'a> {
    /// A whole step, opening no window.
    pub fn new(now: Nanos, sms: u32, work: &'a [SeqWork], launch: Launch) -> Step<'a> {
        Step { now, sms, work, launch, window: 1, group: (0, 1) }
    }
}

/// Runs steps. `execute` returns the step's timing; the engine schedules its completion (or, for a step only
/// enqueued on a device, waits for the end the device reports).
pub trait Executor {
    /// Runs `step`; returns its timing when it runs alone.
    fn execute(&mut self, step: &Step<'_>) -> Result<StepTiming, ExecutorError>;
}

/// An executor whose steps end asynchronously, with the clock the run follows.
pub trait AsyncExecutor: Executor {
    /// Time since the run started.
    fn now(&self) -> Nanos;

    /// Blocks until the earliest pending step ends (returns its ticket and end time) or the clock reaches
    /// `deadline` (returns `None`). With no pending step it waits for the deadline; with neither it fails.
    fn wait(&mut self, deadline: Option<Nanos>) -> Result<Option<(u64, Nanos)>, ExecutorError>;

    /// This executor as a plain [`Executor`] (for the engine).
    fn as_executor(&mut self) -> &mut dyn Executor;
}

/// The simulated clock over an executor whose steps' durations are known at once ([`SimExecutor`], test
/// executors): waiting jumps the clock to the deadline, so the engine's loop ([`crate::engine::run`]) runs in
/// virtual time.
pub struct VirtualClock<'a> {
    exec: &'a mut dyn Executor,
    now: Nanos,
}

impl<'a> VirtualClock<'a> {
    /// The clock at 0 over `exec`.
    pub fn new(exec: &'a mut dyn Executor) -> VirtualClock<'a> {
        VirtualClock { exec, now: Nanos::ZERO }
    }
}

impl Executor for VirtualClock<'_> {
    fn execute(&mut self, step: &Step<'_>) -> Result<StepTiming, ExecutorError> {
        self.exec.execute(step)
    }
}

impl AsyncExecutor for VirtualClock<'_> {
    fn now(&self) -> Nanos {
        self.now
    }

    fn wait(&mut self, deadline: Option<Nanos>) -> Result<Option<(u64, Nanos)>, ExecutorError> {
        let d = deadline.ok_or_else(|| ExecutorError("nothing to wait for: no pending step and no deadline".into()))?;
        assert!(d >= self.now, "time went backwards: {d:?} < {:?}", self.now);
        self.now = d;
        Ok(None)
    }

    fn as_executor(&mut self) -> &mut dyn Executor {
        self
    }
}

/// A step as a device executor was asked to run it (device logs, `steps.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct StepCall {
    /// Engine time of the call.
    pub now: Nanos,
    /// SMs.
    pub sms: u32,
    /// Every sequence's work.
    pub work: Vec<SeqWork>,
    /// Eager launch or a CUDA-graph look-ahead step.
    pub launch: Launch,
    /// 1 for a whole step; `n` for one of the `n` layer groups of a segmented step.
    pub layer_groups: u32,
}

pub use crate::error::ExecutorError;

/// Virtual-time executor: a batch takes exactly what the roofline cost model predicts.
#[derive(Debug)]
pub struct SimExecutor {
    cost: Arc<CostModel>,
}

impl SimExecutor {
    /// An executor over `cost` (shared with policies that predict with it).
    pub fn new(cost: Arc<CostModel>) -> Self {
        Self { cost }
    }

    /// The cost model it uses.
    pub fn cost_model(&self) -> &CostModel {
        &self.cost
    }
}

impl Executor for SimExecutor {
    fn execute(&mut self, step: &Step<'_>) -> Result<StepTiming, ExecutorError> {
        let c = self.cost.iteration_launched(step.sms, step.work, step.launch);
        Ok(StepTiming { duration: c.total, hbm_bytes: c.hbm_bytes, memory_ns: c.memory_s * 1e9, pending: None })
    }
}
