//! `adaptive`'s choice of the decode partition (module docs of [`super`], rule 3): the bisection over the legal
//! sizes, the interim start on the free SMs, and the per-plan memo of predictions and bounds they share.

use super::Adaptive;
use crate::cost::{Launch, Pricer, PricerScratch, SeqWork, settled};
use crate::policy::{Lane, View};
use std::cell::{Cell, OnceCell, RefCell};

/// Decode step predictions of one plan (its decode work, priced once per legal decode size asked about).
pub(super) struct Memo<'c> {
    /// The work, priced lazily ([`crate::cost::CostModel::pricer`]).
    pricer: OnceCell<Pricer<'c>>,
    /// By index into the legal decode sizes: prices, and the O(1) bounds ([`Pricer::bounds_ns`]).
    prices: RefCell<Vec<Option<u64>>>,
    bounds: RefCell<Vec<Option<(u64, u64)>>>,
    /// The buffer the pricer is built in (the policy's, lent for one plan).
    scratch: Cell<PricerScratch>,
}

/// [`Memo`]'s buffers, kept by the policy between plans (no allocation per plan).
#[derive(Debug, Default)]
pub(super) struct Buffers {
    prices: Vec<Option<u64>>,
    bounds: Vec<Option<(u64, u64)>>,
    scratch: PricerScratch,
}

impl Memo<'_> {
    /// An empty memo for `sizes` legal decode sizes in `b`'s buffers.
    pub(super) fn new(mut b: Buffers, sizes: usize) -> Self {
        b.prices.clear();
        b.prices.resize(sizes, None);
        b.bounds.clear();
        b.bounds.resize(sizes, None);
        Memo {
            pricer: OnceCell::new(),
            prices: RefCell::new(b.prices),
            bounds: RefCell::new(b.bounds),
            scratch: Cell::new(b.scratch),
        }
    }

    /// The buffers, for the next plan's memo.
    pub(super) fn into_buffers(self) -> Buffers {
        let scratch = self.pricer.into_inner().map_or_else(|| self.scratch.into_inner(), Pricer::into_scratch);
        Buffers { prices: self.prices.into_inner(), bounds: self.bounds.into_inner(), scratch }
    }
}

impl Adaptive {
    /// Smallest legal decode partition expected to meet the step target `T'`; if none does (the occupancy bound
    /// is out of reach), the smallest expected to meet the TBT bound alone and the join-aware bound; else the
    /// largest legal one (the fastest). With its predicted (roofline) step time.
    pub(super) fn decode_partition<'s>(&'s self, memo: &Memo<'s>, work: &[SeqWork]) -> (u32, u64) {
        let (s, t, _) = self.choose(memo, work, self.decode_sizes.len());
        (s, t)
    }

    /// When the decode partition [`Adaptive::decode_partition`] wants needs SMs a running prefill holds (rule 3):
    /// whether to start on the `free` SMs now instead of waiting for the prefill to shrink at its next layer
    /// boundary. It waits when the wanted size meets `T'` or the join bound and the wait to that boundary plus the
    /// expected step still meets the join bound; otherwise it starts now on the smallest size that fits and meets
    /// `T'` or else the join bound, or, if none does and the wanted size misses the join bound too, on the largest
    /// that fits (waiting would only make the gap longer).
    pub(super) fn interim<'s>(
        &'s self,
        view: &View<'_>,
        memo: &Memo<'s>,
        work: &[SeqWork],
        free: u32,
    ) -> Option<(u32, u64)> {
        let fits = self.decode_sizes.partition_point(|&s| s <= free);
        if fits == 0 {
            return None;
        }
        let (_, t_want, want_meets) = self.choose(memo, work, self.decode_sizes.len());
        let boundary = view.on_lane(Lane::Prefill).map_or(view.now, |p| p.expected_end.max(view.now));
        if want_meets && (boundary - view.now).0 as f64 + t_want as f64 * self.ratio <= self.join_ns {
            return None;
        }
        let (s, t, meets) = self.choose(memo, work, fits);
        (meets || !want_meets).then_some((s, t))
    }

    /// Among the first `n` legal sizes: the smallest with `r x t_d <= T'`, else the smallest with
    /// `r x t_d <= join bound`, else the largest; with its predicted step and whether it met a bound.
    /// `memo` holds the predictions already made for this `work` (one plan's decode work), by size index.
    fn choose<'s>(&'s self, memo: &Memo<'s>, work: &[SeqWork], n: usize) -> (u32, u64, bool) {
        // Bisection (module docs, rule 3): O(log n) predictions instead of n, each made at most once.
        let sizes = &self.decode_sizes[..n];
        let pricer = memo.pricer.get_or_init(|| self.ctx.cost.pricer_in(work, Launch::Eager, memo.scratch.take()));
        let predict =
            |i: usize| -> u64 { *memo.prices.borrow_mut()[i].get_or_insert_with(|| pricer.predict_ns(sizes[i])) };
        // `r x t_d <= bound`, unpriced when the O(1) bounds of `t_d` settle it (`r` is positive).
        let meets = |i: usize, bound: f64| {
            let misses = |t: u64| t as f64 * self.ratio > bound;
            if let Some(t) = memo.prices.borrow()[i] {
                return !misses(t);
            }
            let bounds = *memo.bounds.borrow_mut()[i].get_or_insert_with(|| pricer.bounds_ns(sizes[i]));
            !settled(bounds, misses).unwrap_or_else(|| misses(predict(i)))
        };
        let last = n - 1;
        for bound in [self.step_ns(), self.join_ns] {
            if !meets(last, bound) {
                continue;
            }
            // Invariant: sizes[hi] meets the bound; every index below lo misses it.
            let (mut lo, mut hi) = (0, last);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if meets(mid, bound) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            return (sizes[hi], predict(hi), true);
        }
        (sizes[last], predict(last), false)
    }
}
