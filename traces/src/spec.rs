//! The request spec every trace source produces, and the workload that holds them.

/// Latest arrival time a workload may hold, ns: 100 years (365-day years). Every loader and transform refuses a
/// later one with an error naming it, so simulated time (arrival + service, in `u64` ns up to 584 years) cannot
/// overflow.
pub const MAX_ARRIVAL_NS: u64 = 100 * 365 * 86_400 * 1_000_000_000;

/// Checks one request's prefix hashes: one per `block`-token block of its prompt, the last one partial
/// (`ceil(input / block)`), and no id twice (ids hash the whole prefix up to their block, so a repeat would be a
/// prompt that contains itself; read as cache hits it would invent reuse).
pub fn check_hash_ids(hashes: &[u64], input_tokens: u32, block: u32) -> Result<(), String> {
    let want = input_tokens.div_ceil(block.max(1)) as usize;
    if hashes.len() != want {
        return Err(format!(
            "hash_ids: {} blocks for {input_tokens} input tokens, expected {want} (one per {block}-token block, the \
             last one partial)",
            hashes.len()
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(hashes.len());
    if let Some((i, h)) = hashes.iter().enumerate().find(|&(_, h)| !seen.insert(*h)) {
        return Err(format!("hash_ids: id {h} appears twice (again at block {i}); each block's id must be distinct"));
    }
    Ok(())
}

/// One request as the workload describes it: when it arrives and how long its prompt and answer are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSpec {
    /// Position in the workload (0-based, in arrival order after sorting).
    pub id: u32,
    /// Arrival time in nanoseconds after the workload's first arrival.
    pub arrival_ns: u64,
    /// Prompt length in tokens (>= 1).
    pub input_tokens: u32,
    /// Tokens the request generates, the first one included (>= 1).
    pub output_tokens: u32,
}

/// Prefix-cache block hashes per request (Mooncake's `hash_ids`): request `i`'s prompt is covered by blocks of
/// `block_tokens` tokens whose content hashes are `get(i)`; equal hashes mean equal prefix content.
/// Stored flat (one offsets array, one id array) so that a 12k-request trace costs two allocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixHashes {
    /// Tokens per hashed block (512 in Mooncake).
    pub block_tokens: u32,
    offsets: Vec<usize>,
    ids: Vec<u64>,
}

impl PrefixHashes {
    /// Builds the table from one list per request.
    pub fn from_lists(block_tokens: u32, lists: &[Vec<u64>]) -> Self {
        let mut offsets = Vec::with_capacity(lists.len() + 1);
        offsets.push(0);
        let mut ids = Vec::with_capacity(lists.iter().map(Vec::len).sum());
        for l in lists {
            ids.extend_from_slice(l);
            offsets.push(ids.len());
        }
        Self { block_tokens, offsets, ids }
    }

    /// Hashes of request `i`.
    pub fn get(&self, i: usize) -> &[u64] {
        &self.ids[self.offsets[i]..self.offsets[i + 1]]
    }

    /// Number of requests covered.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// True when no request is covered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All hashes of all requests, in request order.
    pub fn all(&self) -> &[u64] {
        &self.ids
    }

    /// The table for the requests at `indices`, in that order, with each list cut to `keep[k]` blocks.
    fn select(&self, indices: &[usize], keep: impl Fn(usize) -> usize) -> Self {
        let lists: Vec<Vec<u64>> = indices
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let h = self.get(i);
                h[..h.len().min(keep(k))].to_vec()
            })
            .collect();
        Self::from_lists(self.block_tokens, &lists)
    }
}

/// A list of requests sorted by arrival time (ties keep source order), with ids `0..len` in that order, the
/// first arrival at 0, and optional prefix hashes aligned with the requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Where the requests came from, for reports (`azure:<file>`, `poisson(rate=..)`, ...).
    pub source: String,
    /// The requests, sorted by `arrival_ns`.
    pub requests: Vec<RequestSpec>,
    /// Prefix block hashes, one list per request, when the source has them.
    pub prefix: Option<PrefixHashes>,
    /// What loading or transforming did that a user should know (rows excluded, lengths capped, ...).
    pub notes: Vec<String>,
}

impl Workload {
    /// Builds a workload from unsorted requests: sorts them stably by arrival, shifts times so the first
    /// arrival is at 0, and renumbers ids in the new order.
    pub fn from_unsorted(source: String, requests: Vec<RequestSpec>) -> Self {
        Self::from_unsorted_with_prefix(source, requests, None)
    }

    /// As [`Workload::from_unsorted`], with per-request prefix hash lists `(block_tokens, lists)` that follow
    /// their requests through the sort.
    pub fn from_unsorted_with_prefix(
        source: String,
        requests: Vec<RequestSpec>,
        prefix: Option<(u32, Vec<Vec<u64>>)>,
    ) -> Self {
        let mut order: Vec<usize> = (0..requests.len()).collect();
        order.sort_by_key(|&i| requests[i].arrival_ns);
        let sorted: Vec<RequestSpec> = order.iter().map(|&i| requests[i]).collect();
        let prefix = prefix.map(|(block, lists)| {
            let sorted_lists: Vec<Vec<u64>> = order.iter().map(|&i| lists[i].clone()).collect();
            PrefixHashes::from_lists(block, &sorted_lists)
        });
        let mut w = Self { source, requests: sorted, prefix, notes: Vec::new() };
        w.normalise();
        w
    }

    /// Shifts arrivals so the first is at 0 and renumbers ids `0..len`.
    fn normalise(&mut self) {
        let t0 = self.requests.first().map_or(0, |r| r.arrival_ns);
        for (i, r) in self.requests.iter_mut().enumerate() {
            r.arrival_ns -= t0;
            r.id = i as u32;
        }
    }

    /// Keeps the requests at `indices` (ascending), with their prefix hashes; shifts the first arrival to 0.
    pub fn select(mut self, indices: &[usize]) -> Self {
        debug_assert!(indices.windows(2).all(|p| p[0] < p[1]));
        self.prefix = self.prefix.map(|p| p.select(indices, |_| usize::MAX));
        self.requests = indices.iter().map(|&i| self.requests[i]).collect();
        self.normalise();
        self
    }

    /// Cuts each request's prefix hash list to the blocks its (possibly shortened) prompt still covers.
    pub(crate) fn trim_prefix_to_inputs(&mut self) {
        if let Some(p) = &self.prefix {
            let all: Vec<usize> = (0..self.requests.len()).collect();
            let reqs = &self.requests;
            let trimmed = p.select(&all, |k| reqs[k].input_tokens.div_ceil(p.block_tokens) as usize);
            self.prefix = Some(trimmed);
        }
    }

    /// Number of requests.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// True when there is no request.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Time from the first to the last arrival, in nanoseconds.
    pub fn span_ns(&self) -> u64 {
        self.requests.last().map_or(0, |r| r.arrival_ns)
    }

    /// Mean arrival rate in requests per second, defined as `(n - 1) / span` (the inverse of the mean
    /// inter-arrival gap). `None` for fewer than two requests or a zero span.
    pub fn mean_rate(&self) -> Option<f64> {
        let span = self.span_ns();
        (self.len() >= 2 && span > 0).then(|| (self.len() - 1) as f64 / (span as f64 / 1e9))
    }

    /// (input, output) lengths of every request, in order.
    pub fn lengths(&self) -> Vec<(u32, u32)> {
        self.requests.iter().map(|r| (r.input_tokens, r.output_tokens)).collect()
    }
}

/// A trace that has request lengths but no arrival times (ShareGPT statistics and similar): it needs an
/// arrival process before it can be simulated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LengthTable {
    /// Where the lengths came from.
    pub source: String,
    /// (input tokens, output tokens) per row, in file order.
    pub pairs: Vec<(u32, u32)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(arrival_ns: u64, input: u32) -> RequestSpec {
        RequestSpec { id: 99, arrival_ns, input_tokens: input, output_tokens: 1 }
    }

    #[test]
    fn from_unsorted_sorts_stably_shifts_and_renumbers() {
        let w = Workload::from_unsorted("t".into(), vec![spec(30, 1), spec(10, 2), spec(30, 3), spec(20, 4)]);
        let got: Vec<_> = w.requests.iter().map(|r| (r.id, r.arrival_ns, r.input_tokens)).collect();
        assert_eq!(got, vec![(0, 0, 2), (1, 10, 4), (2, 20, 1), (3, 20, 3)]);
    }

    #[test]
    fn prefix_hashes_follow_their_requests() {
        let lists = vec![vec![1, 2], vec![3], vec![4, 5, 6]];
        let w = Workload::from_unsorted_with_prefix(
            "t".into(),
            vec![spec(30, 1), spec(10, 2), spec(20, 3)],
            Some((512, lists)),
        );
        let p = w.prefix.as_ref().unwrap();
        assert_eq!((p.get(0), p.get(1), p.get(2)), (&[3u64][..], &[4u64, 5, 6][..], &[1u64, 2][..]));
        let kept = w.select(&[1, 2]);
        let p = kept.prefix.as_ref().unwrap();
        assert_eq!((p.len(), p.get(0), p.get(1)), (2, &[4u64, 5, 6][..], &[1u64, 2][..]));
        assert_eq!(kept.requests[0].arrival_ns, 0);
    }

    #[test]
    fn mean_rate_is_inverse_mean_gap() {
        let w = Workload::from_unsorted("t".into(), vec![spec(0, 1), spec(500_000_000, 1), spec(1_000_000_000, 1)]);
        assert_eq!(w.mean_rate(), Some(2.0));
        let one = Workload::from_unsorted("t".into(), vec![spec(5, 1)]);
        assert_eq!(one.mean_rate(), None);
    }
}
