//! A batch in execution: its items, its look-ahead steps and layer groups, and its progress at a rate that
//! contention with co-running partitions changes ([`Contention`], [`InFlight::contention_rate`],
//! [`InFlight::retime`], and the engine's re-timing of every running batch, [`Engine::rebalance`]), or, in
//! wall-clock mode, a step whose end the device reports.

use super::{Engine, Event};
use crate::executor::StepTiming;
use crate::policy::{BatchItem, Lane, RunningBatch};
use crate::time::Nanos;

/// How co-running partitions slow each other down (SM partitions share HBM and L2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Contention {
    /// Bandwidth sharing. Each running step has an average HBM demand `d_i = bytes_i / duration_i` and a
    /// memory-bound share `f_i = min(1, memory_time_i / duration_i)` (its bytes at its partition's own bandwidth
    /// over its duration). While two or more steps overlap, their memory-bound parts stretch by
    /// `s = max(1, sum_j d_j / hbm_bandwidth) x (1 + interference)`, and step `i` progresses at
    /// `1 / ((1 - f_i) + f_i s)`. `interference` stands for L2 and memory-controller interference below HBM
    /// saturation. Limits: demand is averaged over a step (a step's memory-bound phases are not resolved in time),
    /// and compute-bound parts never slow down.
    Bandwidth {
        /// Achievable HBM bandwidth of the whole GPU, bytes/s.
        hbm_bandwidth: f64,
        /// Extra stretch of memory-bound parts while partitions overlap.
        interference: f64,
    },
    /// Fixed slowdowns: a step runs at `1 / (1 + s)` while another runs, `s = decode_slowdown` on the decode
    /// lane and `prefill_slowdown` otherwise (MuxWise reports 0-30% decode slowdown when co-running).
    Fixed {
        /// Slowdown of a decode step.
        decode_slowdown: f64,
        /// Slowdown of a prefill or whole-GPU step.
        prefill_slowdown: f64,
    },
}

impl Contention {
    /// The bandwidth model for a GPU delivering `hbm_bandwidth` bytes/s, with 10% interference (an assumption
    /// until measured).
    pub fn bandwidth(hbm_bandwidth: f64) -> Self {
        Contention::Bandwidth { hbm_bandwidth, interference: 0.1 }
    }
}

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
            return Some((now + Nanos::ceil(self.remaining / rate), self.version));
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
            expected_end: now + Nanos::ceil(self.remaining / self.rate),
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

impl Engine {
    /// Brings every running batch's progress up to `now`, recomputes rates under contention, and (re)schedules
    /// completion events whose estimate changed.
    pub(super) fn rebalance(&mut self) {
        let held = self.rebalance_holding(None);
        debug_assert!(held.is_none());
    }

    /// [`Engine::rebalance`], except that the completion event of batch `hold` is returned instead of queued, as
    /// long as no later batch queues one (then it is queued first, in batch order, and `None` is returned).
    pub(super) fn rebalance_holding(&mut self, hold: Option<u64>) -> Option<(Nanos, Event)> {
        let now = self.now;
        let n = self.batches.len();
        let total_demand: f64 = self.batches.iter().map(|b| b.demand).sum();
        let mut held = None;
        for b in &mut self.batches {
            let rate = b.contention_rate(self.cfg.contention, n, total_demand);
            if let Some((at, version)) = b.retime(now, rate) {
                let ev = Event::StepDone { batch: b.id, version };
                if hold == Some(b.id) {
                    held = Some((at, ev));
                } else {
                    if let Some((t, e)) = held.take() {
                        self.events.push(t, e);
                    }
                    self.events.push(at, ev);
                }
            }
        }
        held
    }
}
