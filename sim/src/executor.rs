//! Executors run a batch and say how long it took: the simulated executor asks the cost model (virtual time);
//! the GPU executor (a later crate) runs kernels and measures. The engine does not know which one it drives.

use crate::cost::{CostModel, SeqWork};
use crate::time::Nanos;

/// Runs batches. `execute` returns the batch's duration; the engine schedules its completion.
pub trait Executor {
    /// Runs `work` (one entry per sequence) on a partition of `sms` SMs starting at `now`.
    fn execute(&mut self, now: Nanos, sms: u32, work: &[SeqWork]) -> Result<Nanos, ExecutorError>;
}

/// An executor failure (the GPU executor's errors; the simulated executor never fails).
#[derive(Debug, thiserror::Error)]
#[error("executor failed: {0}")]
pub struct ExecutorError(pub String);

/// Virtual-time executor: a batch takes exactly what the roofline cost model predicts.
#[derive(Debug)]
pub struct SimExecutor {
    cost: CostModel,
}

impl SimExecutor {
    /// An executor over `cost`.
    pub fn new(cost: CostModel) -> Self {
        Self { cost }
    }

    /// The cost model it uses.
    pub fn cost_model(&self) -> &CostModel {
        &self.cost
    }
}

impl Executor for SimExecutor {
    fn execute(&mut self, _now: Nanos, sms: u32, work: &[SeqWork]) -> Result<Nanos, ExecutorError> {
        Ok(self.cost.iteration(sms, work).total)
    }
}
