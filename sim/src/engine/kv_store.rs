//! The engine's KV component, behind one interface: a plain block pool, or a pool with a block-level prefix cache
//! ([`crate::prefix::PrefixCache`]). It owns allocation, release, admission (pinning cached prefixes) and the
//! cache's effect on queueing (a request waits while a block it matches is being computed), so the engine has no
//! cache branches of its own. Requests' block counts are updated here; the queue itself stays the engine's.

use crate::kv::BlockPool;
use crate::prefix::{Enqueued, PrefixCache, PrefixStats};
use crate::request::{ReqId, Request};

/// Paged KV blocks with an optional prefix cache.
#[derive(Debug)]
pub(crate) struct KvStore {
    pool: BlockPool,
    cache: Option<PrefixCache>,
}

impl KvStore {
    /// `total` blocks, shared through `cache` when given.
    pub(crate) fn new(total: u32, cache: Option<PrefixCache>) -> KvStore {
        KvStore { pool: BlockPool::new(total), cache }
    }

    /// Registers request `id`'s prefix hashes (ignored without a cache).
    pub(crate) fn add_request(&mut self, id: ReqId, hashes: Option<&[u64]>) {
        if let (Some(c), Some(h)) = (&mut self.cache, hashes) {
            c.add_request(id, h);
        }
    }

    /// Blocks a request may take now: free blocks plus evictable prefix-cache blocks.
    #[inline]
    pub(crate) fn free_blocks(&self) -> u32 {
        self.pool.free() + self.cache.as_ref().map_or(0, PrefixCache::evictable_blocks)
    }

    /// Takes `n` blocks (evicting unused prefix-cache entries if needed; queued requests whose cached prefix was
    /// evicted get their cached tokens recomputed). False when they do not fit.
    #[inline]
    pub(crate) fn alloc(&mut self, n: u32, requests: &mut [Request]) -> bool {
        match &mut self.cache {
            Some(c) => {
                let ok = c.allocate(&mut self.pool, n);
                for q in c.take_stale() {
                    c.refresh(q, &mut requests[q.index()]);
                }
                ok
            }
            None => self.pool.allocate(n),
        }
    }

    /// Gives back all KV of request `id` (shared prefix blocks stay in the cache); returns the requests that
    /// waited for a block it was computing (to [`KvStore::resume`]).
    #[inline]
    pub(crate) fn release(&mut self, id: ReqId, requests: &mut [Request]) -> Vec<ReqId> {
        let r = &mut requests[id.index()];
        match &mut self.cache {
            Some(c) => c.release(id, r, &mut self.pool),
            None => {
                self.pool.release(r.blocks);
                r.blocks = 0;
                Vec::new()
            }
        }
    }

    /// Whether request `id` may join the waiting queue now (false: it waits for a block another request is
    /// computing, and comes back through [`KvStore::resume`]).
    #[inline]
    pub(crate) fn enqueue(&mut self, id: ReqId, r: &mut Request) -> bool {
        match &mut self.cache {
            Some(c) => c.enqueue(id, r) == Enqueued::Ready,
            None => true,
        }
    }

    /// A request that waited for a prefix block extends its match; true when it may join the queue now.
    #[inline]
    pub(crate) fn resume(&mut self, id: ReqId, r: &mut Request) -> bool {
        match &mut self.cache {
            Some(c) => c.resume(id, r) == Enqueued::Ready,
            None => true,
        }
    }

    /// After request `id` computed prefill tokens: blocks it finished join the cache; returns the requests that
    /// waited for them.
    #[inline]
    pub(crate) fn progress(&mut self, id: ReqId, r: &mut Request) -> Vec<ReqId> {
        match &mut self.cache {
            Some(c) => c.on_progress(id, r),
            None => Vec::new(),
        }
    }

    /// Blocks that admitting `id` pins from the cache, counting each unreferenced entry once over `seen`.
    #[inline]
    pub(crate) fn pin_cost_once(&self, id: ReqId, seen: &mut Vec<u64>) -> u32 {
        self.cache.as_ref().map_or(0, |c| c.pin_cost_once(id, seen))
    }

    /// Admissions pin their cached prefixes before any allocation can evict them.
    #[inline]
    pub(crate) fn pin(&mut self, id: ReqId) {
        if let Some(c) = &mut self.cache {
            c.pin(id);
        }
    }

    /// Request `id` was admitted: it holds its matched prefix blocks.
    #[inline]
    pub(crate) fn on_admit(&mut self, id: ReqId, r: &Request) {
        if let Some(c) = &mut self.cache {
            c.on_admit(id, r);
        }
    }

    /// The prefix cache, for the policies' view.
    pub(crate) fn cache(&self) -> Option<&PrefixCache> {
        self.cache.as_ref()
    }

    /// The cache's counters (zeros without one).
    pub(crate) fn prefix_stats(&self) -> PrefixStats {
        self.cache.as_ref().map(PrefixCache::stats).unwrap_or_default()
    }

    /// Most blocks in use at once.
    pub(crate) fn peak(&self) -> u32 {
        self.pool.peak()
    }

    /// Blocks in the pool.
    pub(crate) fn total(&self) -> u32 {
        self.pool.total()
    }
}
