//! Block-level prefix cache keyed by a trace's prefix hash ids (Mooncake's `hash_ids`), living inside the KV
//! block pool of one instance.
//!
//! Model. A request's prompt is covered by *hash blocks* of `H` tokens (512 in Mooncake; the last one may be
//! partial); hash block `i` covers prompt tokens `[iH, min((i + 1)H, input))` and holds `floor(len_i / b)` full
//! KV blocks of `b` tokens (`H` must be a multiple of `b`; a partial block's last, partly filled KV block stays
//! private, as in vLLM, which caches full blocks only). A cache entry is one hash block:
//! - **Pending**: claimed by the request that will compute it (the first queued request that needed it and
//!   found it absent). A later request whose next needed block is pending *waits* for it (it is withheld from
//!   the queue the policy sees) instead of computing it a second time.
//! - **Ready**: computed; its KV blocks belong to the cache. Requests that use it hold a reference; with no
//!   reference it is *evictable* and counts as free KV (as vLLM's free-block queue does). Allocation evicts
//!   the least recently used evictable entries first; an entry with a reference is never evicted.
//!
//! When a request joins the queue (arrival, or again after a preemption) it *matches* the longest prefix of its
//! hash blocks that is ready: those tokens count as already in its KV cache, so its prefill computes only the
//! rest (the cached tokens still count in attention context). At least one prompt token is always computed (the
//! next token needs logits), so the cached tokens are capped at the largest multiple of `b` below
//! `input + generated`. A queued request holds no reference (queued requests never pin memory); if an entry it
//! matched is evicted, its match shrinks to the blocks before it. Admission takes the references; admitting a
//! request whose matched entries are unreferenced takes those blocks out of the evictable pool, so its KV cost
//! at admission is its new blocks plus those ([`PrefixCache::pin_cost`], as vLLM counts "evictable computed
//! blocks"). Blocks become ready when the owner's prefill has covered them; references are dropped when the
//! request finishes or is preempted.
//!
//! Hit rate: `prefix_cache_hit_rate = hit blocks / hash blocks`, counted once per request at its first
//! admission (recomputations after a preemption reuse the cache but are not counted). With a cache that never
//! evicts, every hash block whose hash occurred earlier in the trace is a hit, so the hit rate equals the
//! trace's block reuse ratio `1 - distinct / total` (for traces whose hashes are prefix-chained, as Mooncake's).

use std::collections::{BTreeSet, HashMap};

use crate::kv::BlockPool;
use crate::request::{ReqId, Request};

/// One hash block in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Claimed by `owner`, not computed yet.
    Pending { owner: ReqId },
    /// Computed: `kv_blocks` KV blocks held by the cache, `refs` requests using it, last touched at `tick`.
    Ready { kv_blocks: u32, refs: u32, tick: u64 },
}

/// Counters reported in `summary.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrefixStats {
    /// Hash blocks of requests at their first admission.
    pub lookup_blocks: u64,
    /// Of those, blocks found in the cache (or waited for while another request computed them).
    pub hit_blocks: u64,
    /// Prompt tokens of requests at their first admission.
    pub prompt_tokens: u64,
    /// Of those, tokens served from the cache (not prefilled).
    pub hit_tokens: u64,
    /// Entries evicted.
    pub evicted_entries: u64,
    /// KV blocks freed by eviction.
    pub evicted_blocks: u64,
    /// Requests that waited for a block another request was computing.
    pub waited: u64,
}

impl PrefixStats {
    /// `hit_blocks / lookup_blocks` (0 without lookups).
    pub fn hit_rate(&self) -> f64 {
        if self.lookup_blocks == 0 { 0.0 } else { self.hit_blocks as f64 / self.lookup_blocks as f64 }
    }

    /// `hit_tokens / prompt_tokens` (0 without prompts).
    pub fn token_hit_rate(&self) -> f64 {
        if self.prompt_tokens == 0 { 0.0 } else { self.hit_tokens as f64 / self.prompt_tokens as f64 }
    }

    /// Adds another instance's counters.
    pub fn merge(&mut self, o: &PrefixStats) {
        self.lookup_blocks += o.lookup_blocks;
        self.hit_blocks += o.hit_blocks;
        self.prompt_tokens += o.prompt_tokens;
        self.hit_tokens += o.hit_tokens;
        self.evicted_entries += o.evicted_entries;
        self.evicted_blocks += o.evicted_blocks;
        self.waited += o.waited;
    }
}

/// Where a request stands after joining the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Schedulable now.
    Ready,
    /// Waiting for a block another request is computing.
    Waiting,
}

/// Per-request bookkeeping.
#[derive(Debug, Clone, Default)]
struct Track {
    hashes: Box<[u64]>,
    /// Hash blocks matched (a ready prefix) so far.
    matched: u32,
    /// Entries this request holds a reference to (empty while queued).
    refs: Vec<u64>,
    /// Whether it holds references to its matched prefix (admitted).
    pinned: bool,
    /// Waiting for a pending block (it then holds no claim: owners never wait, so waits never form a cycle).
    deferred: bool,
    /// Next hash block whose completion to check while prefilling.
    next_ready: u32,
    counted: bool,
}

/// The prefix cache of one instance (module docs).
#[derive(Debug, Clone)]
pub struct PrefixCache {
    hash_tokens: u32,
    kv_block: u32,
    entries: HashMap<u64, Entry>,
    /// Evictable entries by (last touch, hash): the first is the least recently used.
    lru: BTreeSet<(u64, u64)>,
    evictable_blocks: u32,
    tick: u64,
    /// Requests waiting for a pending block, by hash, in the order they started waiting.
    waiters: HashMap<u64, Vec<ReqId>>,
    /// Queued requests that matched a ready entry, by hash (may hold stale ids; checked on use).
    soft: HashMap<u64, Vec<ReqId>>,
    /// Queued requests whose match shrank because an entry was evicted (the caller refreshes them).
    stale: Vec<ReqId>,
    tracks: Vec<Track>,
    stats: PrefixStats,
}

impl PrefixCache {
    /// A cache for hash blocks of `hash_tokens` tokens over KV blocks of `kv_block` tokens; `None` unless
    /// `hash_tokens` is a positive multiple of `kv_block`.
    pub fn new(hash_tokens: u32, kv_block: u32) -> Option<Self> {
        (kv_block > 0 && hash_tokens >= kv_block && hash_tokens.is_multiple_of(kv_block)).then(|| Self {
            hash_tokens,
            kv_block,
            entries: HashMap::new(),
            lru: BTreeSet::new(),
            evictable_blocks: 0,
            tick: 0,
            waiters: HashMap::new(),
            soft: HashMap::new(),
            stale: Vec::new(),
            tracks: Vec::new(),
            stats: PrefixStats::default(),
        })
    }

    /// Registers the hash list of request `id` (ids are dense, in the order requests are added).
    pub fn add_request(&mut self, id: ReqId, hashes: &[u64]) {
        let i = id.index();
        if self.tracks.len() <= i {
            self.tracks.resize_with(i + 1, Track::default);
        }
        self.tracks[i] = Track { hashes: hashes.into(), ..Track::default() };
    }

    /// Counters so far.
    pub fn stats(&self) -> PrefixStats {
        self.stats
    }

    /// KV blocks held by entries that no request uses (free to the scheduler: allocation evicts them).
    pub fn evictable_blocks(&self) -> u32 {
        self.evictable_blocks
    }

    /// Tokens of hash block `i` of a prompt of `input` tokens.
    fn block_len(&self, i: u32, input: u32) -> u32 {
        input.saturating_sub(i * self.hash_tokens).min(self.hash_tokens)
    }

    fn touch(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// Request `id` (not holding any KV) joins the queue: matches the ready prefix of its blocks, sets its
    /// cached tokens, and claims the blocks nobody has. Returns whether it may be scheduled now or
    /// waits for a pending block.
    pub fn enqueue(&mut self, id: ReqId, r: &mut Request) -> Enqueued {
        debug_assert_eq!(r.blocks, 0);
        let t = &mut self.tracks[id.index()];
        t.matched = 0;
        t.next_ready = 0;
        t.pinned = false;
        self.extend(id, r)
    }

    /// KV blocks that admitting queued request `id` takes out of the evictable pool (its matched entries that
    /// no request references), on top of its new blocks.
    pub fn pin_cost(&self, id: ReqId) -> u32 {
        self.pin_cost_once(id, &mut Vec::new())
    }

    /// As [`PrefixCache::pin_cost`], not counting entries in `seen` (already pinned by an earlier item of the
    /// same plan), and adding the counted ones to `seen`.
    pub fn pin_cost_once(&self, id: ReqId, seen: &mut Vec<u64>) -> u32 {
        let t = &self.tracks[id.index()];
        if t.pinned {
            return 0;
        }
        let mut cost = 0;
        for h in &t.hashes[..t.matched as usize] {
            if let Some(Entry::Ready { kv_blocks, refs: 0, .. }) = self.entries.get(h)
                && !seen.contains(h)
            {
                seen.push(*h);
                cost += kv_blocks;
            }
        }
        cost
    }

    /// Admission of queued request `id`: takes references to its matched prefix (those entries can no longer
    /// be evicted).
    pub fn pin(&mut self, id: ReqId) {
        let i = id.index();
        if self.tracks[i].pinned {
            return;
        }
        self.tracks[i].pinned = true;
        for k in 0..self.tracks[i].matched as usize {
            let h = self.tracks[i].hashes[k];
            let Some(Entry::Ready { kv_blocks, refs, tick }) = self.entries.get(&h).copied() else {
                unreachable!("a matched entry is ready (evictions shrink matches)");
            };
            if refs == 0 {
                self.lru.remove(&(tick, h));
                self.evictable_blocks -= kv_blocks;
            }
            let now = self.touch();
            self.entries.insert(h, Entry::Ready { kv_blocks, refs: refs + 1, tick: now });
            self.tracks[i].refs.push(h);
        }
    }

    /// Queued requests whose match shrank since the last call; refresh each with [`PrefixCache::refresh`].
    pub fn take_stale(&mut self) -> Vec<ReqId> {
        std::mem::take(&mut self.stale)
    }

    /// Recomputes the cached tokens of a queued request after its match shrank, and claims the blocks it now
    /// lacks that nobody has.
    pub fn refresh(&mut self, id: ReqId, r: &mut Request) {
        let t = &self.tracks[id.index()];
        if !t.deferred {
            for &h in &t.hashes[t.matched as usize..] {
                self.entries.entry(h).or_insert(Entry::Pending { owner: id });
            }
        }
        self.set_cached(id, r);
    }

    /// Extends the ready prefix of queued request `id` as far as it goes; claims or waits at its end.
    fn extend(&mut self, id: ReqId, r: &mut Request) -> Enqueued {
        let i = id.index();
        let len = self.tracks[i].hashes.len() as u32;
        let mut m = self.tracks[i].matched;
        while m < len {
            let h = self.tracks[i].hashes[m as usize];
            match self.entries.get(&h).copied() {
                Some(Entry::Ready { kv_blocks, .. }) => {
                    self.soft.entry(h).or_default().push(id);
                    m += 1;
                    if kv_blocks * self.kv_block < self.hash_tokens {
                        break; // a partial last block ends the prefix
                    }
                }
                Some(Entry::Pending { owner }) if owner != id => {
                    self.tracks[i].matched = m;
                    self.tracks[i].deferred = true;
                    self.set_cached(id, r);
                    self.waiters.entry(h).or_default().push(id);
                    if !self.tracks[i].counted {
                        self.stats.waited += 1;
                    }
                    return Enqueued::Waiting;
                }
                _ => break,
            }
        }
        self.tracks[i].matched = m;
        self.tracks[i].next_ready = m;
        self.tracks[i].deferred = false;
        // Claim every later block that nobody has (others' blocks are computed again, privately).
        for k in m..len {
            let h = self.tracks[i].hashes[k as usize];
            self.entries.entry(h).or_insert(Entry::Pending { owner: id });
        }
        self.set_cached(id, r);
        Enqueued::Ready
    }

    /// Sets `kv_tokens`, `blocks` and `shared_blocks` of a queued request from its matched prefix.
    fn set_cached(&mut self, id: ReqId, r: &mut Request) {
        let t = &self.tracks[id.index()];
        let mut tokens = 0u32;
        for k in 0..t.matched {
            let full = self.block_len(k, r.spec.input_tokens) / self.kv_block * self.kv_block;
            tokens += full;
        }
        // Leave at least one token to compute (the next token needs logits), block-aligned.
        let cap = (r.prefill_target - 1) / self.kv_block * self.kv_block;
        let cached = tokens.min(cap);
        r.kv_tokens = cached;
        r.blocks = cached / self.kv_block;
        r.shared_blocks = r.blocks;
    }

    /// Admission of request `id`: pins its matched prefix ([`PrefixCache::pin`]) and, the first time, counts
    /// its lookups.
    pub fn on_admit(&mut self, id: ReqId, r: &Request) {
        self.pin(id);
        let t = &mut self.tracks[id.index()];
        if t.counted {
            return;
        }
        t.counted = true;
        self.stats.lookup_blocks += t.hashes.len() as u64;
        self.stats.hit_blocks += u64::from(t.matched);
        self.stats.prompt_tokens += u64::from(r.spec.input_tokens);
        self.stats.hit_tokens += u64::from(r.kv_tokens);
    }

    /// After a prefill step of request `id`: every block it claimed and has now computed becomes ready (its
    /// full KV blocks pass from the request to the cache). Returns waiting requests that may be re-queued
    /// (the caller calls [`PrefixCache::resume`] for each).
    pub fn on_progress(&mut self, id: ReqId, r: &mut Request) -> Vec<ReqId> {
        let i = id.index();
        let len = self.tracks[i].hashes.len() as u32;
        let mut released = Vec::new();
        while self.tracks[i].next_ready < len {
            let k = self.tracks[i].next_ready;
            let end = (k * self.hash_tokens + self.block_len(k, r.spec.input_tokens)).min(r.spec.input_tokens);
            if r.kv_tokens < end {
                break;
            }
            self.tracks[i].next_ready += 1;
            let h = self.tracks[i].hashes[k as usize];
            if self.entries.get(&h) != Some(&Entry::Pending { owner: id }) {
                continue; // computed privately: someone else had it
            }
            let kv_blocks = self.block_len(k, r.spec.input_tokens) / self.kv_block;
            let tick = self.touch();
            self.entries.insert(h, Entry::Ready { kv_blocks, refs: 1, tick });
            self.tracks[i].refs.push(h);
            r.shared_blocks += kv_blocks;
            if let Some(w) = self.waiters.remove(&h) {
                released.extend(w);
            }
        }
        released
    }

    /// A waiting request whose block became ready: extends its prefix; `Ready` when it may join the queue.
    pub fn resume(&mut self, id: ReqId, r: &mut Request) -> Enqueued {
        self.extend(id, r)
    }

    /// Request `id` gives its KV back (finished or preempted): its private blocks return to the pool, its
    /// references are dropped (entries without references become evictable), and its claims on blocks it has
    /// not computed are withdrawn. Returns the requests that waited for those blocks (the caller calls
    /// [`PrefixCache::resume`] for each: one of them claims the block instead).
    pub fn release(&mut self, id: ReqId, r: &mut Request, pool: &mut BlockPool) -> Vec<ReqId> {
        let mut woken = Vec::new();
        let hashes = std::mem::take(&mut self.tracks[id.index()].hashes);
        for h in &hashes[self.tracks[id.index()].next_ready.min(hashes.len() as u32) as usize..] {
            if self.entries.get(h) == Some(&Entry::Pending { owner: id }) {
                self.entries.remove(h);
                woken.extend(self.waiters.remove(h).unwrap_or_default());
            }
        }
        self.tracks[id.index()].hashes = hashes;
        pool.release(r.blocks - r.shared_blocks);
        let refs = std::mem::take(&mut self.tracks[id.index()].refs);
        for h in refs {
            if let Some(Entry::Ready { kv_blocks, refs, tick }) = self.entries.get(&h).copied() {
                let refs = refs - 1;
                let tick = if refs == 0 {
                    let now = self.touch();
                    self.lru.insert((now, h));
                    self.evictable_blocks += kv_blocks;
                    now
                } else {
                    tick
                };
                self.entries.insert(h, Entry::Ready { kv_blocks, refs, tick });
            }
        }
        let t = &mut self.tracks[id.index()];
        t.matched = 0;
        t.next_ready = 0;
        t.pinned = false;
        r.blocks = 0;
        r.shared_blocks = 0;
        woken
    }

    /// Takes `n` blocks from `pool`, evicting least recently used unreferenced entries as needed; `false` (and
    /// nothing evicted) if even eviction cannot free enough.
    pub fn allocate(&mut self, pool: &mut BlockPool, n: u32) -> bool {
        if n > pool.free() + self.evictable_blocks {
            return false;
        }
        while pool.free() < n {
            let (tick, h) = self.lru.pop_first().expect("evictable blocks cover the shortfall");
            let Some(Entry::Ready { kv_blocks, refs: 0, .. }) = self.entries.remove(&h) else {
                unreachable!("only unreferenced ready entries are evictable (entry {h} at tick {tick})");
            };
            self.evictable_blocks -= kv_blocks;
            pool.release(kv_blocks);
            for q in self.soft.remove(&h).unwrap_or_default() {
                let t = &mut self.tracks[q.index()];
                if t.pinned {
                    continue; // stale: admitted since (and then released: it matched again afresh)
                }
                if let Some(p) = t.hashes[..t.matched as usize].iter().position(|&x| x == h) {
                    t.matched = p as u32;
                    t.next_ready = t.next_ready.min(p as u32);
                    self.stale.push(q);
                }
            }
            self.stats.evicted_entries += 1;
            self.stats.evicted_blocks += u64::from(kv_blocks);
        }
        pool.allocate(n)
    }

    /// KV blocks held by ready entries (used or not); `pool.used() - this` is what requests hold privately.
    pub fn cached_blocks(&self) -> u64 {
        self.entries
            .values()
            .map(|e| match e {
                Entry::Ready { kv_blocks, .. } => u64::from(*kv_blocks),
                Entry::Pending { .. } => 0,
            })
            .sum()
    }

    /// Whether entry `h` is ready and referenced (in use).
    pub fn in_use(&self, h: u64) -> bool {
        matches!(self.entries.get(&h), Some(Entry::Ready { refs, .. }) if *refs > 0)
    }
}

#[cfg(test)]
mod tests;
