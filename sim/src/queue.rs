//! The event queue every driver loop runs on (the engine, the wall-clock mode, the cluster): events ordered by
//! (time, insertion sequence), so events at the same instant come out in the order they were pushed and runs are
//! deterministic. Time is integer nanoseconds.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::time::Nanos;

/// A min-queue of events keyed by (time, insertion sequence).
///
/// Two stores, merged by that key when popping: a FIFO run of events pushed no earlier than the last one in it
/// (already in key order: a trace's arrivals, queued up front, land here), and a binary heap for the rest (the
/// few events of work in flight). A pop compares the two fronts, so the order is exactly the one key order.
#[derive(Debug, Clone)]
pub struct EventQueue<E> {
    run: VecDeque<(Nanos, u64, E)>,
    heap: BinaryHeap<Reverse<(Nanos, u64, E)>>,
    seq: u64,
}

impl<E: Ord> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue { run: VecDeque::new(), heap: BinaryHeap::new(), seq: 0 }
    }
}

impl<E: Ord> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `ev` at `at`, after every event already queued at `at`.
    pub fn push(&mut self, at: Nanos, ev: E) {
        // Its sequence is the largest yet, so it extends the run whenever it is not earlier than the run's last.
        if self.run.back().is_none_or(|&(t, _, _)| at >= t) {
            self.run.push_back((at, self.seq, ev));
        } else {
            self.heap.push(Reverse((at, self.seq, ev)));
        }
        self.seq += 1;
    }

    /// Whether the next event is the run's (else the heap's); `None` when empty.
    fn next_in_run(&self) -> Option<bool> {
        match (self.run.front(), self.heap.peek()) {
            (Some(&(t, s, _)), Some(Reverse((ht, hs, _)))) => Some((t, s) < (*ht, *hs)),
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (None, None) => None,
        }
    }

    /// Time of the next event.
    pub fn next_time(&self) -> Option<Nanos> {
        match (self.run.front(), self.heap.peek()) {
            (Some(&(t, _, _)), Some(Reverse((ht, _, _)))) => Some(t.min(*ht)),
            (Some(&(t, _, _)), None) => Some(t),
            (None, Some(Reverse((ht, _, _)))) => Some(*ht),
            (None, None) => None,
        }
    }

    /// Removes the next event with its sequence number.
    fn pop(&mut self) -> Option<(Nanos, u64, E)> {
        if self.next_in_run()? { self.run.pop_front() } else { self.heap.pop().map(|Reverse(e)| e) }
    }

    /// Puts back an event just taken by [`EventQueue::pop`]: its key is below every other, so it heads the run.
    fn unpop(&mut self, e: (Nanos, u64, E)) {
        debug_assert!(self.run.front().is_none_or(|&(t, s, _)| (e.0, e.1) < (t, s)));
        self.run.push_front(e);
    }

    /// Removes and returns the next event if it is due by `by` (at or before).
    pub fn pop_due(&mut self, by: Nanos) -> Option<(Nanos, E)> {
        if self.next_time()? > by {
            return None;
        }
        self.pop().map(|(t, _, e)| (t, e))
    }

    /// The time of the next event if it is due by `by`, satisfies `pred`, and is the only event due by its time:
    /// what [`EventQueue::pop_sole_if`] would take, left in its place.
    pub fn peek_sole_if(&mut self, by: Nanos, pred: impl FnOnce(&E) -> bool) -> Option<Nanos> {
        let e = self.take_sole_if(by, pred)?;
        let t = e.0;
        self.unpop(e);
        Some(t)
    }

    /// Removes and returns the next event if it is due by `by`, satisfies `pred`, and is the only event due by
    /// its time (the one after it is strictly later); otherwise leaves the queue as it was (the event keeps its
    /// place in the (time, sequence) order).
    pub fn pop_sole_if(&mut self, by: Nanos, pred: impl FnOnce(&E) -> bool) -> Option<(Nanos, E)> {
        self.take_sole_if(by, pred).map(|(t, _, e)| (t, e))
    }

    /// [`EventQueue::pop_sole_if`] with the event's sequence number.
    fn take_sole_if(&mut self, by: Nanos, pred: impl FnOnce(&E) -> bool) -> Option<(Nanos, u64, E)> {
        let (t, seq, ev) = self.pop()?;
        if t > by || !pred(&ev) || self.next_time().is_some_and(|n| n <= t) {
            self.unpop((t, seq, ev));
            return None;
        }
        Some((t, seq, ev))
    }

    /// Events queued.
    pub fn len(&self) -> usize {
        self.run.len() + self.heap.len()
    }

    /// Whether none is queued.
    pub fn is_empty(&self) -> bool {
        self.run.is_empty() && self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_in_push_order() {
        let mut q = EventQueue::new();
        q.push(Nanos(20), 'c');
        q.push(Nanos(10), 'z');
        q.push(Nanos(20), 'a');
        q.push(Nanos(10), 'b');
        assert_eq!(q.next_time(), Some(Nanos(10)));
        assert_eq!(q.pop_due(Nanos(5)), None, "nothing due yet");
        let mut out = Vec::new();
        while let Some(e) = q.pop_due(Nanos(u64::MAX)) {
            out.push(e);
        }
        assert_eq!(out, [(Nanos(10), 'z'), (Nanos(10), 'b'), (Nanos(20), 'c'), (Nanos(20), 'a')]);
        assert!(q.is_empty() && q.next_time().is_none());
    }

    #[test]
    fn pop_sole_takes_the_next_event_only_when_nothing_else_is_due_by_its_time() {
        let mut q = EventQueue::new();
        q.push(Nanos(10), 'a');
        q.push(Nanos(10), 'b');
        q.push(Nanos(30), 'c');
        // 'a' shares its time with 'b': refused, and the order is kept.
        assert_eq!(q.pop_sole_if(Nanos(100), |_| true), None);
        assert_eq!(q.pop_due(Nanos(10)), Some((Nanos(10), 'a')));
        // 'b' is alone at 10 but fails the predicate, then is past `by`, then is taken.
        assert_eq!(q.pop_sole_if(Nanos(100), |&e| e == 'z'), None);
        assert_eq!(q.pop_sole_if(Nanos(9), |_| true), None);
        assert_eq!(q.pop_sole_if(Nanos(10), |&e| e == 'b'), Some((Nanos(10), 'b')));
        assert_eq!(q.pop_sole_if(Nanos(30), |_| true), Some((Nanos(30), 'c')));
        assert_eq!(q.pop_sole_if(Nanos(30), |_| true), None);
    }

    /// The obvious queue: a list scanned for the smallest (time, sequence).
    #[derive(Default)]
    struct Reference {
        items: Vec<(Nanos, u64, u32)>,
        seq: u64,
    }

    impl Reference {
        fn next(&self) -> Option<usize> {
            (0..self.items.len()).min_by_key(|&i| (self.items[i].0, self.items[i].1))
        }
    }

    proptest::proptest! {
        /// Any mix of pushes (in order, as arrivals are, or not), pops and refused or granted sole pops gives
        /// what a plain scan for the smallest (time, sequence) gives.
        #[test]
        fn same_order_as_a_plain_scan(ops in proptest::collection::vec((0u8..4, 0u64..40, 0u32..6), 1..200)) {
            let (mut q, mut r) = (EventQueue::new(), Reference::default());
            let mut clock = 0;
            for (op, x, v) in ops {
                match op {
                    // In order (no earlier than the last push), then anywhere.
                    0 => { clock += x % 3; q.push(Nanos(clock), v); r.items.push((Nanos(clock), r.seq, v)); r.seq += 1; }
                    1 => { q.push(Nanos(x), v); r.items.push((Nanos(x), r.seq, v)); r.seq += 1; }
                    2 => {
                        let want = r.next().filter(|&i| r.items[i].0 <= Nanos(x)).map(|i| r.items.remove(i));
                        proptest::prop_assert_eq!(q.pop_due(Nanos(x)), want.map(|(t, _, e)| (t, e)));
                    }
                    _ => {
                        let want = r.next().filter(|&i| {
                            let (t, _, e) = r.items[i];
                            t <= Nanos(x) && e % 2 == v % 2 && r.items.iter().filter(|o| o.0 <= t).count() == 1
                        });
                        let want = want.map(|i| r.items.remove(i)).map(|(t, _, e)| (t, e));
                        proptest::prop_assert_eq!(q.peek_sole_if(Nanos(x), |&e| e % 2 == v % 2), want.map(|(t, _)| t));
                        proptest::prop_assert_eq!(q.pop_sole_if(Nanos(x), |&e| e % 2 == v % 2), want);
                    }
                }
                proptest::prop_assert_eq!(q.len(), r.items.len());
                proptest::prop_assert_eq!(q.next_time(), r.next().map(|i| r.items[i].0));
            }
        }
    }
}
