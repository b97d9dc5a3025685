//! Workload transforms. Each takes a workload and returns a new one with its prefix hashes kept consistent and
//! a note for anything it removed or changed.
//!
//! The CLI applies them in this order: rate change, time window, length filters, length caps, length shuffle,
//! first N.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::error::TraceError;
use crate::lengths::uniform_below;
use crate::spec::Workload;

/// Multiplies the arrival rate by `factor` (> 0): every arrival time is divided by `factor` (rounded to ns).
pub fn scale_rate(mut w: Workload, factor: f64) -> Result<Workload, TraceError> {
    if !(factor.is_finite() && factor > 0.0) {
        return Err(TraceError::InvalidParameter(format!("rate scale must be > 0, got {factor}")));
    }
    for (i, r) in w.requests.iter_mut().enumerate() {
        let scaled = (r.arrival_ns as f64 / factor).round();
        if scaled > crate::spec::MAX_ARRIVAL_NS as f64 {
            return Err(TraceError::InvalidParameter(format!(
                "scaling the arrival rate by {factor} moves request {i} (arriving at {:.3} s) to {:.3e} s, \
                 beyond the latest arrival duet simulates ({} s, 100 years): use a higher rate",
                r.arrival_ns as f64 / 1e9,
                scaled / 1e9,
                crate::spec::MAX_ARRIVAL_NS / 1_000_000_000
            )));
        }
        r.arrival_ns = scaled as u64;
    }
    w.source = format!("{} x rate {factor}", w.source);
    Ok(w)
}

/// Rescales arrival times so the mean rate ([`Workload::mean_rate`]) becomes `rate_per_s` (time compression).
pub fn rescale_to_rate(w: Workload, rate_per_s: f64) -> Result<Workload, TraceError> {
    if !(rate_per_s.is_finite() && rate_per_s > 0.0) {
        return Err(TraceError::InvalidParameter(format!("rate must be > 0 req/s, got {rate_per_s}")));
    }
    let current = w.mean_rate().ok_or_else(|| {
        TraceError::InvalidParameter(
            "cannot rescale the rate of a workload with fewer than 2 distinct arrival times".into(),
        )
    })?;
    scale_rate(w, rate_per_s / current)
}

/// Keeps requests arriving in `[start_ns, start_ns + duration_ns)` and shifts them to start at 0.
pub fn window(w: Workload, start_ns: u64, duration_ns: u64) -> Result<Workload, TraceError> {
    let end = start_ns.saturating_add(duration_ns);
    let keep: Vec<usize> = (0..w.len()).filter(|&i| (start_ns..end).contains(&w.requests[i].arrival_ns)).collect();
    if keep.is_empty() {
        return Err(TraceError::InvalidParameter(format!(
            "the window [{:.3} s, {:.3} s) holds no request (trace spans {:.3} s)",
            start_ns as f64 / 1e9,
            end as f64 / 1e9,
            w.span_ns() as f64 / 1e9
        )));
    }
    let dropped = w.len() - keep.len();
    let mut out = w.select(&keep);
    out.source = format!("{} window [{} s + {} s]", out.source, start_ns as f64 / 1e9, duration_ns as f64 / 1e9);
    if dropped > 0 {
        out.notes.push(format!("{dropped} request(s) outside the time window excluded"));
    }
    Ok(out)
}

/// Keeps the first `n` requests (all of them if there are fewer).
pub fn first_n(w: Workload, n: usize) -> Result<Workload, TraceError> {
    if n == 0 {
        return Err(TraceError::InvalidParameter("number of requests to keep must be >= 1".into()));
    }
    let keep: Vec<usize> = (0..w.len().min(n)).collect();
    Ok(w.select(&keep))
}

/// Keeps the requests for which `keep(input, output)` holds; `what` describes the filter in the note.
pub fn filter(w: Workload, what: &str, keep: impl Fn(u32, u32) -> bool) -> Result<Workload, TraceError> {
    let idx: Vec<usize> =
        (0..w.len()).filter(|&i| keep(w.requests[i].input_tokens, w.requests[i].output_tokens)).collect();
    if idx.is_empty() {
        return Err(TraceError::InvalidParameter(format!("the filter {what} excludes every request")));
    }
    let dropped = w.len() - idx.len();
    let mut out = w.select(&idx);
    if dropped > 0 {
        out.notes.push(format!("{dropped} request(s) excluded by the filter {what}"));
    }
    Ok(out)
}

/// Caps input and output lengths (`None` leaves a dimension alone); prefix hashes are cut to the capped prompt.
pub fn cap_lengths(mut w: Workload, max_input: Option<u32>, max_output: Option<u32>) -> Result<Workload, TraceError> {
    if max_input == Some(0) || max_output == Some(0) {
        return Err(TraceError::InvalidParameter("length caps must be >= 1 token".into()));
    }
    let mut capped = 0usize;
    for r in &mut w.requests {
        let (i, o) = (
            max_input.map_or(r.input_tokens, |m| r.input_tokens.min(m)),
            max_output.map_or(r.output_tokens, |m| r.output_tokens.min(m)),
        );
        capped += usize::from((i, o) != (r.input_tokens, r.output_tokens));
        (r.input_tokens, r.output_tokens) = (i, o);
    }
    if capped > 0 {
        w.trim_prefix_to_inputs();
        w.notes.push(format!("{capped} request(s) had their lengths capped"));
    }
    Ok(w)
}

/// Fits every request into a model context of `context` tokens (`input + output <= context`).
/// With `cap = false` any request that does not fit is an error that counts them; with `cap = true` such
/// requests keep their prompt up to `context - 1` tokens and their output is cut to what remains.
pub fn fit_context(mut w: Workload, context: u32, cap: bool) -> Result<Workload, TraceError> {
    let over = w
        .requests
        .iter()
        .filter(|r| u64::from(r.input_tokens) + u64::from(r.output_tokens) > u64::from(context))
        .count();
    if over == 0 {
        return Ok(w);
    }
    if !cap {
        let worst =
            w.requests.iter().map(|r| u64::from(r.input_tokens) + u64::from(r.output_tokens)).max().unwrap_or(0);
        return Err(TraceError::InvalidParameter(format!(
            "{over} request(s) exceed the model context of {context} tokens (input + output up to {worst}); \
             cap them with --cap-to-context or filter them out"
        )));
    }
    for r in &mut w.requests {
        if u64::from(r.input_tokens) + u64::from(r.output_tokens) > u64::from(context) {
            r.input_tokens = r.input_tokens.min(context.saturating_sub(1).max(1));
            r.output_tokens = context.saturating_sub(r.input_tokens).max(1);
        }
    }
    w.trim_prefix_to_inputs();
    w.notes.push(format!("{over} request(s) capped to the model context of {context} tokens"));
    Ok(w)
}

/// Shuffles (input, output, prefix) among requests with a seeded permutation, keeping the arrival times: the
/// same arrival process with the length order broken up.
pub fn shuffle_lengths(mut w: Workload, seed: u64) -> Workload {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(3);
    let n = w.len();
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        perm.swap(i, uniform_below(&mut rng, i as u64 + 1) as usize);
    }
    let old = w.requests.clone();
    for (r, &p) in w.requests.iter_mut().zip(&perm) {
        (r.input_tokens, r.output_tokens) = (old[p].input_tokens, old[p].output_tokens);
    }
    if let Some(prefix) = &w.prefix {
        let lists: Vec<Vec<u64>> = perm.iter().map(|&p| prefix.get(p).to_vec()).collect();
        w.prefix = Some(crate::spec::PrefixHashes::from_lists(prefix.block_tokens, &lists));
    }
    w.source = format!("{} shuffled(seed={seed})", w.source);
    w
}

/// Parses a duration such as `600s`, `10m`, `1.5h`, `250ms`, `90us`, `5ns` or a plain number of seconds into
/// integer nanoseconds.
pub fn parse_duration_ns(s: &str) -> Result<u64, TraceError> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "" | "s" => 1e9,
        "ms" => 1e6,
        "us" => 1e3,
        "ns" => 1.0,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => {
            return Err(TraceError::InvalidParameter(format!(
                "duration {s:?}: unknown unit {unit:?} (use ns, us, ms, s, m or h)"
            )));
        }
    };
    let v: f64 =
        num.parse().map_err(|_| TraceError::InvalidParameter(format!("duration {s:?} is not a number with a unit")))?;
    if !(v.is_finite() && v >= 0.0 && v * scale < 1.8e19) {
        return Err(TraceError::InvalidParameter(format!("duration {s:?} is out of range")));
    }
    Ok((v * scale).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RequestSpec;

    fn w(times: &[u64]) -> Workload {
        let reqs = times
            .iter()
            .enumerate()
            .map(|(i, &t)| RequestSpec { id: 0, arrival_ns: t, input_tokens: 600 + i as u32, output_tokens: 5 })
            .collect();
        let lists = times.iter().enumerate().map(|(i, _)| vec![i as u64, 100 + i as u64]).collect();
        Workload::from_unsorted_with_prefix("t".into(), reqs, Some((512, lists)))
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("600s").unwrap(), 600_000_000_000);
        assert_eq!(parse_duration_ns("10m").unwrap(), 600_000_000_000);
        assert_eq!(parse_duration_ns("1.5h").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_duration_ns("250ms").unwrap(), 250_000_000);
        assert_eq!(parse_duration_ns("42").unwrap(), 42_000_000_000);
        assert!(parse_duration_ns("5 parsecs").is_err());
        assert!(parse_duration_ns("-3s").is_err());
    }

    #[test]
    fn scaling_divides_times() {
        let out = scale_rate(w(&[0, 3_000, 9_000]), 3.0).unwrap();
        let t: Vec<_> = out.requests.iter().map(|r| r.arrival_ns).collect();
        assert_eq!(t, vec![0, 1_000, 3_000]);
        assert!(scale_rate(w(&[0, 1]), 0.0).is_err());
        assert!(scale_rate(w(&[0, 1]), -2.0).is_err());
    }

    #[test]
    fn a_rate_that_pushes_arrivals_past_the_limit_is_an_error_naming_the_request() {
        // 20 requests 10 s apart (0.1 req/s) rescaled to 1e-9 req/s: request i moves to i x 1e9 s, so request 4
        // (4e9 s, 127 years) is the first beyond the limit: refused, not saturated to u64::MAX.
        let times: Vec<u64> = (0..20).map(|i| i * 10_000_000_000).collect();
        let e = rescale_to_rate(w(&times), 1e-9).unwrap_err().to_string();
        assert!(e.contains("request 4 (arriving at 40.000 s) to 4.000e9 s") && e.contains("higher rate"), "{e}");
        let e = scale_rate(w(&[0, 1_000_000_000]), 1e-10).unwrap_err().to_string();
        assert!(e.contains("by 0.0000000001") || e.contains("by 1e-10"), "{e}");
        // The limit itself is fine.
        let at = scale_rate(w(&[0, crate::spec::MAX_ARRIVAL_NS]), 1.0).unwrap();
        assert_eq!(at.requests[1].arrival_ns, crate::spec::MAX_ARRIVAL_NS);
    }

    #[test]
    fn rescale_hits_target_rate() {
        // 3 requests over 4 s: mean rate 0.5 req/s; to 2 req/s the span becomes 1 s.
        let out = rescale_to_rate(w(&[0, 1_000_000_000, 4_000_000_000]), 2.0).unwrap();
        assert_eq!(out.span_ns(), 1_000_000_000);
        assert_eq!(out.mean_rate(), Some(2.0));
        assert!(rescale_to_rate(w(&[7]), 2.0).is_err());
    }

    #[test]
    fn window_first_n_and_filter_keep_prefixes_aligned() {
        let out = window(w(&[0, 10, 20, 30]), 10, 15).unwrap();
        assert_eq!(
            out.requests.iter().map(|r| (r.arrival_ns, r.input_tokens)).collect::<Vec<_>>(),
            vec![(0, 601), (10, 602)]
        );
        assert_eq!(out.prefix.as_ref().unwrap().get(1), &[2, 102]);
        assert_eq!(out.notes, vec!["2 request(s) outside the time window excluded".to_string()]);
        assert!(window(w(&[0, 10]), 100, 5).is_err());
        assert_eq!(first_n(w(&[0, 1, 2]), 2).unwrap().len(), 2);
        assert!(first_n(w(&[0]), 0).is_err());
        let f = filter(w(&[0, 1, 2]), "input <= 601", |i, _| i <= 601).unwrap();
        assert_eq!((f.len(), f.prefix.as_ref().unwrap().get(1)), (2, &[1u64, 101][..]));
    }

    #[test]
    fn caps_trim_prefix_blocks() {
        let out = cap_lengths(w(&[0, 1]), Some(512), Some(3)).unwrap();
        assert!(out.requests.iter().all(|r| r.input_tokens == 512 && r.output_tokens == 3));
        assert_eq!(out.prefix.as_ref().unwrap().get(0), &[0]);
        assert_eq!(out.notes, vec!["2 request(s) had their lengths capped".to_string()]);
    }

    #[test]
    fn context_limit_rejects_with_a_count_or_caps() {
        let e = fit_context(w(&[0, 1, 2]), 605, false).unwrap_err().to_string();
        assert!(e.contains("2 request(s) exceed the model context of 605 tokens"), "{e}");
        let out = fit_context(w(&[0, 1, 2]), 605, true).unwrap();
        assert!(out.requests.iter().all(|r| r.input_tokens + r.output_tokens <= 605));
        assert_eq!(out.requests[0].output_tokens, 5);
        assert_eq!(out.requests[2].output_tokens, 3);
    }

    #[test]
    fn shuffle_keeps_arrivals_and_the_multiset_of_lengths() {
        let a = w(&[0, 1, 2, 3, 4, 5, 6, 7]);
        let s = shuffle_lengths(a.clone(), 9);
        let times = |w: &Workload| w.requests.iter().map(|r| r.arrival_ns).collect::<Vec<_>>();
        assert_eq!(times(&a), times(&s));
        let (mut x, mut y) = (a.lengths(), s.lengths());
        assert_ne!(x, y);
        x.sort();
        y.sort();
        assert_eq!(x, y);
        for (i, r) in s.requests.iter().enumerate() {
            let orig = (r.input_tokens - 600) as u64;
            assert_eq!(s.prefix.as_ref().unwrap().get(i), &[orig, 100 + orig]);
        }
    }
}
