//! The iteration history a run keeps: every record (the default), or, for long runs that do not need them all,
//! only running steps' records and the recent tail that policies read (`View::history`), with the records trimmed
//! from the front handed to a sink (`iterations.csv` written as the run goes) so that peak memory follows the
//! requests in flight, not the run's length.

use duet_traces::Workload;

use super::{Engine, EngineConfig, IterationRecord};
use crate::error::SimError;
use crate::executor::{Executor, VirtualClock};
use crate::policy::Policy;

use super::records::SimOutput;

/// Iteration records kept besides running steps' when [`EngineConfig::keep_iterations`] is false.
pub const HISTORY_TAIL: usize = 4096;

/// Where every iteration record goes, in order, when the engine does not keep them all (`iterations.csv` written
/// as the run goes): records trimmed from the history during the run, the rest at its end.
pub type IterationSink = Box<dyn FnMut(&[IterationRecord]) -> std::io::Result<()>>;

fn sink_error(e: std::io::Error) -> SimError {
    SimError::Output(format!("writing iteration records: {e}"))
}

/// [`run`] with `keep_iterations: false`, handing every iteration record to `sink` in order: those trimmed from
/// the history as the run goes, the rest at its end (they also stay in the output's `iterations`).
pub fn run_streaming(
    workload: &Workload,
    policy: &mut dyn Policy,
    executor: &mut dyn Executor,
    cfg: &EngineConfig,
    sink: IterationSink,
) -> Result<SimOutput, SimError> {
    let cfg = EngineConfig { keep_iterations: false, ..*cfg };
    let mut engine = Engine::for_workload(workload, &cfg)?;
    engine.sink = Some(sink);
    engine.drive(policy, &mut VirtualClock::new(executor))?;
    engine.check_finished(policy)?;
    let mut sink = engine.sink.take().expect("set above");
    if let Some(e) = engine.sink_error.take() {
        return Err(e);
    }
    sink(&engine.iterations).map_err(sink_error)?;
    Ok(engine.into_output())
}

impl Engine {
    /// Drops old records when `keep_iterations` is false: those before the oldest running step's and before the
    /// last [`HISTORY_TAIL`], once the kept vector is twice the tail (amortised).
    pub(super) fn trim_history(&mut self) {
        if self.cfg.keep_iterations || self.iterations.len() < 2 * HISTORY_TAIL {
            return;
        }
        let oldest_running = self.batches.iter().map(|b| b.record).min().unwrap_or(usize::MAX);
        let cut = (self.iter_base + self.iterations.len() - HISTORY_TAIL).min(oldest_running);
        if cut > self.iter_base {
            let n = cut - self.iter_base;
            if let Some(sink) = self.sink.as_mut()
                && self.sink_error.is_none()
                && let Err(e) = sink(&self.iterations[..n])
            {
                self.sink_error = Some(sink_error(e));
            }
            self.iterations.drain(..n);
            self.iter_base = cut;
        }
    }
}
