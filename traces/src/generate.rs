//! Seeded synthetic workloads: Poisson arrivals with fixed lengths or lengths sampled from another source.
//!
//! Random numbers come from ChaCha8 seeded with the caller's seed, so a (parameters, seed) pair always gives
//! the same workload on every platform.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::error::TraceError;
use crate::spec::{RequestSpec, Workload};

/// Where a generator takes request lengths from.
#[derive(Debug, Clone, PartialEq)]
pub enum Lengths {
    /// Every request has these lengths.
    Fixed {
        /// Prompt tokens (>= 1).
        input_tokens: u32,
        /// Generated tokens (>= 1).
        output_tokens: u32,
    },
    /// Each request draws one (input, output) pair uniformly, with replacement, from this list
    /// (the empirical distribution of a trace).
    Sampled(Vec<(u32, u32)>),
}

impl Lengths {
    /// The empirical length distribution of a workload.
    pub fn from_workload(w: &Workload) -> Self {
        Self::Sampled(w.requests.iter().map(|r| (r.input_tokens, r.output_tokens)).collect())
    }

    fn describe(&self) -> String {
        match self {
            Self::Fixed { input_tokens, output_tokens } => format!("fixed({input_tokens},{output_tokens})"),
            Self::Sampled(v) => format!("sampled({} pairs)", v.len()),
        }
    }
}

/// A uniform draw in `[0, 1)` with 53 random bits.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// `n` requests whose inter-arrival gaps are exponential with mean `1 / rate_per_s` (a Poisson process);
/// the first request arrives at 0.
pub fn poisson(n: usize, rate_per_s: f64, lengths: &Lengths, seed: u64) -> Result<Workload, TraceError> {
    if n == 0 {
        return Err(TraceError::InvalidParameter("number of requests must be >= 1".into()));
    }
    if !(rate_per_s.is_finite() && rate_per_s > 0.0) {
        return Err(TraceError::InvalidParameter(format!("rate must be > 0 req/s, got {rate_per_s}")));
    }
    match lengths {
        Lengths::Fixed { input_tokens, output_tokens } if *input_tokens == 0 || *output_tokens == 0 => {
            return Err(TraceError::InvalidParameter("fixed lengths must be >= 1 token".into()));
        }
        Lengths::Sampled(v) if v.is_empty() => {
            return Err(TraceError::InvalidParameter("cannot sample lengths from an empty source".into()));
        }
        _ => {}
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t_s = 0.0f64;
    let mut requests = Vec::with_capacity(n);
    for i in 0..n {
        if i > 0 {
            t_s += -(1.0 - unit(&mut rng)).ln() / rate_per_s;
        }
        let (input_tokens, output_tokens) = match lengths {
            Lengths::Fixed { input_tokens, output_tokens } => (*input_tokens, *output_tokens),
            Lengths::Sampled(v) => v[((rng.next_u64() as u128 * v.len() as u128) >> 64) as usize],
        };
        requests.push(RequestSpec {
            id: i as u32,
            arrival_ns: (t_s * 1e9).round() as u64,
            input_tokens,
            output_tokens,
        });
    }
    let source = format!("poisson(rate={rate_per_s},n={n},lengths={},seed={seed})", lengths.describe());
    Ok(Workload::from_unsorted(source, requests))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_workload_and_different_seed_differs() {
        let l = Lengths::Sampled(vec![(10, 2), (20, 3), (30, 4)]);
        let a = poisson(200, 5.0, &l, 7).unwrap();
        assert_eq!(a, poisson(200, 5.0, &l, 7).unwrap());
        assert_ne!(a.requests, poisson(200, 5.0, &l, 8).unwrap().requests);
    }

    #[test]
    fn mean_rate_is_close_to_requested() {
        let l = Lengths::Fixed { input_tokens: 100, output_tokens: 10 };
        let w = poisson(20_000, 8.0, &l, 1).unwrap();
        let rate = w.mean_rate().unwrap();
        // Standard error of the mean gap over 20k draws is 0.7%; 3% is over 4 sigma.
        assert!((rate - 8.0).abs() / 8.0 < 0.03, "rate {rate}");
        assert!(w.requests.iter().all(|r| r.input_tokens == 100 && r.output_tokens == 10));
    }

    #[test]
    fn sampled_lengths_come_from_the_source() {
        let src = vec![(10, 2), (20, 3)];
        let w = poisson(500, 1.0, &Lengths::Sampled(src.clone()), 3).unwrap();
        assert!(w.requests.iter().all(|r| src.contains(&(r.input_tokens, r.output_tokens))));
        assert!(w.requests.iter().any(|r| r.input_tokens == 10) && w.requests.iter().any(|r| r.input_tokens == 20));
    }

    #[test]
    fn rejects_bad_parameters() {
        let l = Lengths::Fixed { input_tokens: 1, output_tokens: 1 };
        assert!(poisson(0, 1.0, &l, 0).is_err());
        assert!(poisson(5, 0.0, &l, 0).is_err());
        assert!(poisson(5, f64::NAN, &l, 0).is_err());
        assert!(poisson(5, 1.0, &Lengths::Fixed { input_tokens: 0, output_tokens: 1 }, 0).is_err());
        assert!(poisson(5, 1.0, &Lengths::Sampled(vec![]), 0).is_err());
    }
}
