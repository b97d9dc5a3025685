//! A batch in execution: its items, its look-ahead steps and layer groups, and its progress at a rate that
//! contention with co-running partitions changes ([`InFlight::contention_rate`], [`InFlight::retime`]), or, in
//! wall-clock mode, a step whose end the device reports.

use super::Contention;
use crate::executor::StepTiming;
use crate::policy::{BatchItem, Lane, RunningBatch};
use crate::time::Nanos;

/// A batch in execution.
pub(super) struct InFlight {
    pub(super) id: u64,
    pub(super) lane: Lane,
    pub(super) sms: u32,
    pub(super) items: Vec<BatchItem>,
    pub(super) steps_total: u32,
    pub(super) step: u32,
    /// Layer groups of the (single) step, and the one executing.
    pub(super) segments: u32,
    pub(super) segment: u32,
    /// SMs to switch to at the next layer-group boundary.
    pub(super) pending_sms: Option<u32>,
    /// Solo time of one layer group at the current SM count, ns (segmented batches).
    pub(super) segment_solo: f64,
    pub(super) started: Nanos,
    /// Solo-speed nanoseconds left in the current step.
    pub(super) remaining: f64,
    /// Average HBM demand of the current step, bytes/ns.
    pub(super) demand: f64,
    /// Memory-bound share of the current step.
    pub(super) mem_fraction: f64,
    pub(super) rate: f64,
    pub(super) last_update: Nanos,
    pub(super) version: u32,
    /// Whether a completion event must be (re)scheduled.
    pub(super) dirty: bool,
    /// The executor's ticket while the current step's end is not known yet (wall-clock mode, [`pending`]).
    pub(super) pending: Option<u64>,
    /// The executor reports this batch's step ends (wall-clock mode): each layer group of a segmented batch is
    /// then its own device call.
    pub(super) device_ends: bool,
    pub(super) decision: Option<usize>,
    pub(super) record: usize,
}

impl InFlight {
    /// The speed of this batch's current step relative to running alone, with `n` batches in flight whose HBM
    /// demands add up to `total_demand` (bytes/ns): 1 alone or without a contention model; fixed slowdowns per
    /// lane; or, for the bandwidth model, its memory-bound share stretched by the oversubscription of HBM times
    /// `1 + interference`.
    #[inline]
    pub(super) fn contention_rate(&self, contention: Option<Contention>, n: usize, total_demand: f64) -> f64 {
        match contention {
            Some(_) if n == 1 => 1.0,
            None => 1.0,
            Some(Contention::Fixed { decode_slowdown, prefill_slowdown }) => {
                1.0 / (1.0 + if self.lane == Lane::Decode { decode_slowdown } else { prefill_slowdown })
            }
            Some(Contention::Bandwidth { hbm_bandwidth, interference }) => {
                let stretch = (total_demand * 1e9 / hbm_bandwidth).max(1.0) * (1.0 + interference);
                1.0 / ((1.0 - self.mem_fraction) + self.mem_fraction * stretch)
            }
        }
    }

    /// Brings the progress of the current step up to `now` and moves to `rate`; returns the new end and the
    /// completion version to schedule when it changed (none while the device reports the end).
    #[inline]
    pub(super) fn retime(&mut self, now: Nanos, rate: f64) -> Option<(Nanos, u32)> {
        self.remaining = (self.remaining - (now - self.last_update).0 as f64 * self.rate).max(0.0);
        self.last_update = now;
        if self.pending.is_some() {
            // The end is reported by the executor (`step_finished`); nothing to schedule.
            self.dirty = false;
            return None;
        }
        if rate != self.rate || self.dirty {
            self.rate = rate;
            self.version += 1;
            self.dirty = false;
            return Some((now + Nanos((self.remaining / rate).ceil() as u64), self.version));
        }
        None
    }

    /// The batch as a policy sees it at `now`.
    #[inline]
    pub(super) fn as_running(&self, now: Nanos) -> RunningBatch {
        RunningBatch {
            lane: self.lane,
            sms: self.sms,
            started: self.started,
            expected_end: now + Nanos((self.remaining / self.rate).ceil() as u64),
            segments_left: self.segments - self.segment - 1,
            pending_sms: self.pending_sms,
        }
    }
}

/// HBM demand (bytes/ns) and memory-bound share of a step of `solo_ns` with timing `t`.
#[inline]
pub(super) fn traffic(t: &StepTiming, solo_ns: u64) -> (f64, f64) {
    let d = solo_ns.max(1) as f64;
    (t.hbm_bytes / d, (t.memory_ns / d).min(1.0))
}
