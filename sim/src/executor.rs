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

/// Runs batches. `execute` returns the batch's timing; the engine schedules its completion.
pub trait Executor {
    /// Runs one iteration of `work` (one entry per sequence) on a partition of `sms` SMs starting at `now`,
    /// launched as `launch`; returns its timing when it runs alone.
    fn execute(&mut self, now: Nanos, sms: u32, work: &[SeqWork], launch: Launch) -> Result<StepTiming, ExecutorError>;

    /// The next `execute` starts a look-ahead window of `steps` decode steps (the first `Eager`, the rest
    /// `Graph`), each over the same sequences with one more cached token: a device executor may enqueue all of
    /// them at once. The default ignores it.
    fn begin_window(&mut self, steps: u32) {
        let _ = steps;
    }

    /// Runs layer group `group` (0-based) of `groups` of the step `work` on `sms` SMs: muxwise's layer-segmented
    /// prefill, whose SM count may change between groups. Returns the timing of the *whole* step running alone
    /// (the engine gives each group `1 / groups` of it); a device executor runs only that group's layers and
    /// reports its end through `pending`. The default runs the whole step through `execute` (enough where time
    /// is modelled).
    fn execute_group(
        &mut self,
        now: Nanos,
        sms: u32,
        work: &[SeqWork],
        group: u32,
        groups: u32,
    ) -> Result<StepTiming, ExecutorError> {
        let _ = (group, groups);
        self.execute(now, sms, work, Launch::Eager)
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
    fn execute(
        &mut self,
        _now: Nanos,
        sms: u32,
        work: &[SeqWork],
        launch: Launch,
    ) -> Result<StepTiming, ExecutorError> {
        let c = self.cost.iteration_launched(sms, work, launch);
        Ok(StepTiming { duration: c.total, hbm_bytes: c.hbm_bytes, memory_ns: c.memory_s * 1e9, pending: None })
    }
}
