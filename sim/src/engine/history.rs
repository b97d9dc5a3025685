//! The iteration history a run keeps: every record (the default), or, for long runs that do not need them all,
//! only running steps' records and the recent tail that policies read (`View::history`), with the records trimmed
//! from the front handed to a sink (`iterations.csv` written as the run goes) so that peak memory follows the
//! requests in flight, not the run's length.

use duet_traces::Workload;

use super::{Engine, EngineConfig, IterationRecord};
use crate::error::SimError;
use crate::executor::{Executor, VirtualClock};
use crate::policy::Policy;
use crate::time::Nanos;

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

/// The length of the union of intervals `[start, end)` added in order of their starts (one pass, exact integers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusyUnion {
    total: u64,
    cur: Option<(Nanos, Nanos)>,
}

impl BusyUnion {
    /// Adds `[start, end)`; `start` must not be before the previous interval's.
    pub fn add(&mut self, start: Nanos, end: Nanos) {
        self.cur = match self.cur {
            Some((cs, ce)) if start <= ce => {
                debug_assert!(start >= cs, "intervals out of start order");
                Some((cs, ce.max(end)))
            }
            Some((cs, ce)) => {
                self.total += (ce - cs).0;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }

    /// The union's length, ns.
    pub fn total(&self) -> u64 {
        self.total + self.cur.map_or(0, |(s, e)| (e - s).0)
    }
}

/// What a cluster reports of one instance's iteration records ([`Engine::iteration_totals`]): their number, summed
/// prefill and decode tokens, and the union of their busy intervals. Kept as records leave a trimmed history, so an
/// instance need not keep every record for its report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IterationTotals {
    /// Records.
    pub count: usize,
    /// Prefill tokens over the records.
    pub prefill_tokens: u64,
    /// Decode tokens over the records.
    pub decode_tokens: u64,
    /// Union of the records' `[start, end)`.
    pub busy: BusyUnion,
}

impl IterationTotals {
    /// Adds a finished record (records come in start order).
    pub fn add(&mut self, r: &IterationRecord) {
        self.count += 1;
        self.prefill_tokens += u64::from(r.prefill_tokens);
        self.decode_tokens += u64::from(r.decode_tokens);
        self.busy.add(r.start, r.end);
    }
}

impl Engine {
    /// Totals over every record of the run so far: those trimmed from the history and those kept (the run has
    /// ended, or the kept records' ends are provisional).
    pub(crate) fn iteration_totals(&self) -> IterationTotals {
        let mut t = self.trimmed;
        for r in &self.iterations {
            t.add(r);
        }
        t
    }

    /// Drops old records when `keep_iterations` (iteration records) or `keep_decisions` (decision records) is
    /// false: those before the oldest running step's and before the last [`HISTORY_TAIL`], once the kept vector is
    /// twice the tail (amortised).
    pub(super) fn trim_history(&mut self) {
        if !self.cfg.keep_decisions && self.decisions.len() >= 2 * HISTORY_TAIL {
            let oldest_running = self.batches.iter().filter_map(|b| b.decision).min().unwrap_or(usize::MAX);
            let cut = (self.dec_base + self.decisions.len() - HISTORY_TAIL).min(oldest_running);
            if cut > self.dec_base {
                let n = cut - self.dec_base;
                for d in &self.decisions[..n] {
                    self.dec_trimmed.add(&d.decision);
                }
                self.decisions.drain(..n);
                self.dec_base = cut;
            }
        }
        if self.cfg.keep_iterations || self.iterations.len() < 2 * HISTORY_TAIL {
            return;
        }
        let oldest_running = self.batches.iter().map(|b| b.record).min().unwrap_or(usize::MAX);
        let cut = (self.iter_base + self.iterations.len() - HISTORY_TAIL).min(oldest_running);
        if cut > self.iter_base {
            let n = cut - self.iter_base;
            for r in &self.iterations[..n] {
                self.trimmed.add(r);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_union_by_hand() {
        let mut u = BusyUnion::default();
        assert_eq!(u.total(), 0);
        // [0, 10) and [5, 12) overlap: 12; [20, 25) contains [21, 22): 5 more; [20, 20) adds nothing.
        for (s, e) in [(0, 10), (5, 12), (20, 25), (21, 22), (25, 25)] {
            u.add(Nanos(s), Nanos(e));
        }
        assert_eq!(u.total(), 17);
    }
}
