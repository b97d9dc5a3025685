//! The event queue every driver loop runs on (the engine, the wall-clock mode, the cluster): events ordered by
//! (time, insertion sequence), so events at the same instant come out in the order they were pushed and runs are
//! deterministic. Time is integer nanoseconds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::time::Nanos;

/// A min-queue of events keyed by (time, insertion sequence).
#[derive(Debug, Clone)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<(Nanos, u64, E)>>,
    seq: u64,
}

impl<E: Ord> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue { heap: BinaryHeap::new(), seq: 0 }
    }
}

impl<E: Ord> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `ev` at `at`, after every event already queued at `at`.
    pub fn push(&mut self, at: Nanos, ev: E) {
        self.heap.push(Reverse((at, self.seq, ev)));
        self.seq += 1;
    }

    /// Time of the next event.
    pub fn next_time(&self) -> Option<Nanos> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Removes and returns the next event if it is due by `by` (at or before).
    pub fn pop_due(&mut self, by: Nanos) -> Option<(Nanos, E)> {
        if self.next_time()? > by {
            return None;
        }
        self.heap.pop().map(|Reverse((t, _, e))| (t, e))
    }

    /// Removes and returns the next event if it is due by `by`, satisfies `pred`, and is the only event due by
    /// its time (the one after it is strictly later); otherwise leaves the queue as it was (the event keeps its
    /// place in the (time, sequence) order).
    pub fn pop_sole_if(&mut self, by: Nanos, pred: impl FnOnce(&E) -> bool) -> Option<(Nanos, E)> {
        let Reverse((t, seq, ev)) = self.heap.pop()?;
        if t > by || !pred(&ev) || self.next_time().is_some_and(|n| n <= t) {
            self.heap.push(Reverse((t, seq, ev)));
            return None;
        }
        Some((t, ev))
    }

    /// Events queued.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether none is queued.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
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
}
