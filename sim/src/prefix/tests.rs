//! Unit tests of the prefix cache: hand cases and properties.

use duet_traces::RequestSpec;

use super::*;

fn req(id: u32, input: u32) -> Request {
    Request::new(RequestSpec { id, arrival_ns: 0, input_tokens: input, output_tokens: 4 })
}

/// Hash blocks of 32 tokens over KV blocks of 16.
fn cache() -> PrefixCache {
    PrefixCache::new(32, 16).unwrap()
}

#[test]
fn rejects_block_sizes_that_do_not_tile() {
    assert!(PrefixCache::new(24, 16).is_none());
    assert!(PrefixCache::new(8, 16).is_none());
    assert!(PrefixCache::new(512, 16).is_some());
}

#[test]
fn second_request_reuses_the_computed_prefix() {
    let mut c = cache();
    let mut pool = BlockPool::new(100);
    let (a, b) = (ReqId(0), ReqId(1));
    let mut ra = req(0, 80); // blocks [1, 2, 3]: 32 + 32 + 16 tokens
    let mut rb = req(1, 70); // blocks [1, 2, 9]
    c.add_request(a, &[1, 2, 3]);
    c.add_request(b, &[1, 2, 9]);
    assert_eq!(c.enqueue(a, &mut ra), Enqueued::Ready);
    assert_eq!(ra.kv_tokens, 0);
    // b's first block is pending (claimed by a): b waits.
    assert_eq!(c.enqueue(b, &mut rb), Enqueued::Waiting);
    // a prefills all 80 tokens (5 KV blocks).
    assert!(c.allocate(&mut pool, 5));
    ra.blocks = 5;
    ra.kv_tokens = 80;
    let released = c.on_progress(a, &mut ra);
    assert_eq!(released, vec![b]);
    // Entries: 2 + 2 + 1 KV blocks; all of a's KV is now shared.
    assert_eq!(ra.shared_blocks, 5);
    assert_eq!(c.resume(b, &mut rb), Enqueued::Ready);
    assert_eq!((rb.kv_tokens, rb.blocks, rb.shared_blocks), (64, 4, 4));
    c.on_admit(b, &rb);
    assert_eq!(c.stats().hit_blocks, 2);
    assert_eq!(c.stats().lookup_blocks, 3);
    // Admission pinned b's two entries (4 KV blocks): they are no longer evictable.
    assert_eq!(c.pin_cost(b), 0);
    // a finishes: nothing returns to the pool (its blocks are the cache's), block 3 becomes evictable.
    c.release(a, &mut ra, &mut pool);
    assert_eq!(pool.used(), 5);
    assert_eq!(c.evictable_blocks(), 1);
    assert!(c.in_use(1) && c.in_use(2) && !c.in_use(3));
}

#[test]
fn eviction_is_lru_and_spares_entries_in_use() {
    let mut c = cache();
    let mut pool = BlockPool::new(8);
    let mut rs: Vec<Request> = (0..3).map(|i| req(i, 64)).collect();
    for (i, h) in [[10, 11], [20, 21], [30, 31]].iter().enumerate() {
        c.add_request(ReqId(i as u32), h);
    }
    for (i, r) in rs.iter_mut().enumerate().take(2) {
        let id = ReqId(i as u32);
        assert_eq!(c.enqueue(id, r), Enqueued::Ready);
        assert!(c.allocate(&mut pool, 4));
        r.blocks = 4;
        r.kv_tokens = 64;
        c.on_progress(id, r);
    }
    c.release(ReqId(0), &mut rs[0], &mut pool); // entries 10, 11 unreferenced (least recently used)
    assert_eq!((c.evictable_blocks(), pool.free()), (4, 0));
    assert_eq!(c.enqueue(ReqId(2), &mut rs[2]), Enqueued::Ready);
    // Request 2 needs 4 blocks: evicts 10 and 11, never 20 or 21 (request 1 uses them).
    assert!(c.allocate(&mut pool, 4));
    assert_eq!((c.stats().evicted_entries, c.stats().evicted_blocks), (2, 4));
    assert!(c.in_use(20) && c.in_use(21));
    assert!(!c.allocate(&mut pool, 1), "everything left is in use");
    assert_eq!(c.cached_blocks(), 4);
}

#[test]
fn eviction_shrinks_the_match_of_a_queued_request() {
    let mut c = cache();
    let mut pool = BlockPool::new(4);
    let (mut ra, mut rb, mut rc) = (req(0, 64), req(1, 80), req(2, 64));
    c.add_request(ReqId(0), &[1, 2]);
    c.add_request(ReqId(1), &[1, 2, 3]);
    c.add_request(ReqId(2), &[7, 8]);
    c.enqueue(ReqId(0), &mut ra);
    assert!(c.allocate(&mut pool, 4));
    ra.blocks = 4;
    ra.kv_tokens = 64;
    c.on_progress(ReqId(0), &mut ra);
    c.release(ReqId(0), &mut ra, &mut pool);
    // b matches both entries softly (no reference): they stay evictable, admitting b would pin 4 blocks.
    c.enqueue(ReqId(1), &mut rb);
    assert_eq!((rb.kv_tokens, c.evictable_blocks(), c.pin_cost(ReqId(1))), (64, 4, 4));
    // c needs 2 blocks: the least recently used entry (1) goes, and b's match shrinks to nothing.
    c.enqueue(ReqId(2), &mut rc);
    assert!(c.allocate(&mut pool, 2));
    assert_eq!(c.take_stale(), vec![ReqId(1)]);
    c.refresh(ReqId(1), &mut rb);
    assert_eq!((rb.kv_tokens, rb.blocks, rb.remaining_prefill()), (0, 0, 80));
}

#[test]
fn a_fully_cached_prompt_still_computes_a_token() {
    let mut c = cache();
    let mut pool = BlockPool::new(10);
    let (mut ra, mut rb) = (req(0, 64), req(1, 64));
    c.add_request(ReqId(0), &[5, 6]);
    c.add_request(ReqId(1), &[5, 6]);
    c.enqueue(ReqId(0), &mut ra);
    assert!(c.allocate(&mut pool, 4));
    ra.blocks = 4;
    ra.kv_tokens = 64;
    c.on_progress(ReqId(0), &mut ra);
    assert_eq!(c.enqueue(ReqId(1), &mut rb), Enqueued::Ready);
    // 64 tokens cached, capped at the largest multiple of 16 below 64: 48.
    assert_eq!((rb.kv_tokens, rb.remaining_prefill(), rb.shared_blocks), (48, 16, 3));
    c.on_admit(ReqId(1), &rb);
    assert_eq!((c.stats().hit_blocks, c.stats().hit_tokens), (2, 48));
}

mod props {
    use duet_traces::RequestSpec;
    use proptest::prelude::*;

    use super::*;

    /// One step of a random schedule over a few requests that share prefixes.
    #[derive(Debug, Clone)]
    enum Op {
        Enqueue(usize),
        Admit(usize),
        Prefill(usize, u32),
        Release(usize),
        Allocate(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..6usize).prop_map(Op::Enqueue),
            (0..6usize).prop_map(Op::Admit),
            (0..6usize, 1..80u32).prop_map(|(i, t)| Op::Prefill(i, t)),
            (0..6usize).prop_map(Op::Release),
            (1..6u32).prop_map(Op::Allocate),
        ]
    }

    proptest! {
        /// Under any order of operations: eviction never frees an entry a running request uses, the pool
        /// holds exactly the requests' private blocks plus the cache's, and a cached prefix never exceeds
        /// the prompt minus one token.
        #[test]
        fn eviction_never_frees_a_block_in_use(ops in prop::collection::vec(op(), 1..120)) {
            // Hash blocks of 32 tokens over KV blocks of 16; prompts of 96 tokens sharing 1-2 leading blocks.
            let lists: [[u64; 3]; 6] = [[1, 2, 3], [1, 2, 4], [1, 5, 6], [1, 2, 3], [7, 8, 9], [7, 8, 10]];
            let mut c = PrefixCache::new(32, 16).unwrap();
            let mut pool = BlockPool::new(24);
            let mut rs: Vec<Request> = (0..6)
                .map(|i| Request::new(RequestSpec { id: i, arrival_ns: 0, input_tokens: 96, output_tokens: 2 }))
                .collect();
            // 0 idle, 1 queued, 2 waiting for a block, 3 admitted.
            let mut state = [0u8; 6];
            let mut private = [0u32; 6];
            for (i, l) in lists.iter().enumerate() {
                c.add_request(ReqId(i as u32), l);
            }
            for op in ops {
                match op {
                    Op::Enqueue(i) if state[i] == 0 => {
                        state[i] = match c.enqueue(ReqId(i as u32), &mut rs[i]) {
                            Enqueued::Ready => 1,
                            Enqueued::Waiting => 2,
                        };
                    }
                    Op::Admit(i) if state[i] == 1 && c.pin_cost(ReqId(i as u32)) <= pool.free() + c.evictable_blocks() => {
                        c.on_admit(ReqId(i as u32), &rs[i]);
                        state[i] = 3;
                    }
                    Op::Prefill(i, t) if state[i] == 3 && rs[i].remaining_prefill() > 0 => {
                        let r = &mut rs[i];
                        let t = t.min(r.remaining_prefill());
                        let extra = (r.kv_tokens + t).div_ceil(16) - r.blocks;
                        if c.allocate(&mut pool, extra) {
                            for q in c.take_stale() {
                                c.refresh(q, &mut rs[q.index()]);
                            }
                            let r = &mut rs[i];
                            r.blocks += extra;
                            r.kv_tokens += t;
                            private[i] += extra;
                            let before = r.shared_blocks;
                            for w in c.on_progress(ReqId(i as u32), r) {
                                if state[w.index()] == 2 && c.resume(w, &mut rs[w.index()]) == Enqueued::Ready {
                                    state[w.index()] = 1;
                                }
                            }
                            private[i] -= rs[i].shared_blocks - before;
                        }
                    }
                    Op::Release(i) if state[i] == 3 => {
                        for w in c.release(ReqId(i as u32), &mut rs[i], &mut pool) {
                            if state[w.index()] == 2 && c.resume(w, &mut rs[w.index()]) == Enqueued::Ready {
                                state[w.index()] = 1;
                            }
                        }
                        private[i] = 0;
                        state[i] = 0;
                    }
                    Op::Allocate(n) => {
                        // Someone else's allocation: evicts, and is returned at once.
                        if c.allocate(&mut pool, n) {
                            pool.release(n);
                        }
                        for q in c.take_stale() {
                            c.refresh(q, &mut rs[q.index()]);
                        }
                    }
                    _ => {}
                }
                for (i, r) in rs.iter().enumerate() {
                    if state[i] == 3 {
                        for &h in &lists[i][..r.shared_blocks.div_ceil(2) as usize] {
                            prop_assert!(c.in_use(h), "request {i} lost entry {h}");
                        }
                    }
                    prop_assert!(r.kv_tokens < r.prefill_target || r.kv_tokens == 96);
                }
                let held: u64 = private.iter().map(|&p| u64::from(p)).sum();
                prop_assert_eq!(u64::from(pool.used()), held + c.cached_blocks());
            }
        }
    }
}
