//! Seeded synthetic workloads: an arrival process at a rate, and a length source.
//!
//! Arrivals and lengths use separate ChaCha8 streams of the same seed, so changing the length source leaves the
//! arrival times unchanged (and vice versa); the same parameters and seed always give the same workload.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::arrivals::ArrivalProcess;
use crate::error::TraceError;
pub use crate::lengths::{LengthDist, Lengths};
use crate::spec::{RequestSpec, Workload};

/// Everything that defines a synthetic workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthetic {
    /// Number of requests (>= 1).
    pub n: usize,
    /// Mean arrival rate, requests/s (ignored by `burst`).
    pub rate_per_s: f64,
    /// Arrival process.
    pub arrivals: ArrivalProcess,
    /// Length source.
    pub lengths: Lengths,
    /// Seed.
    pub seed: u64,
}

/// Generates the workload `spec` describes.
pub fn generate(spec: &Synthetic) -> Result<Workload, TraceError> {
    if spec.n == 0 {
        return Err(TraceError::InvalidParameter("number of requests must be >= 1".into()));
    }
    spec.lengths.validate()?;
    let mut arrival_rng = ChaCha8Rng::seed_from_u64(spec.seed);
    arrival_rng.set_stream(1);
    let mut length_rng = ChaCha8Rng::seed_from_u64(spec.seed);
    length_rng.set_stream(2);
    let times = spec.arrivals.times_ns(spec.n, spec.rate_per_s, &mut arrival_rng)?;
    let requests = times
        .into_iter()
        .enumerate()
        .map(|(i, arrival_ns)| {
            let (input_tokens, output_tokens) = spec.lengths.draw(i, &mut length_rng);
            RequestSpec { id: i as u32, arrival_ns, input_tokens, output_tokens }
        })
        .collect();
    let source = format!(
        "{}(rate={},n={},{},seed={})",
        spec.arrivals,
        spec.rate_per_s,
        spec.n,
        spec.lengths.describe(),
        spec.seed
    );
    Ok(Workload::from_unsorted(source, requests))
}

/// `n` Poisson arrivals at `rate_per_s` with lengths from `lengths`.
pub fn poisson(n: usize, rate_per_s: f64, lengths: &Lengths, seed: u64) -> Result<Workload, TraceError> {
    generate(&Synthetic { n, rate_per_s, arrivals: ArrivalProcess::Poisson, lengths: lengths.clone(), seed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_workload_and_different_seed_differs() {
        let l = Lengths::Empirical(vec![(10, 2), (20, 3), (30, 4)]);
        let a = poisson(200, 5.0, &l, 7).unwrap();
        assert_eq!(a, poisson(200, 5.0, &l, 7).unwrap());
        assert_ne!(a.requests, poisson(200, 5.0, &l, 8).unwrap().requests);
    }

    #[test]
    fn arrivals_do_not_depend_on_the_length_source() {
        let a = poisson(100, 5.0, &Lengths::fixed(1, 1), 3).unwrap();
        let b = poisson(100, 5.0, &Lengths::Empirical(vec![(9, 9), (4, 4)]), 3).unwrap();
        let times = |w: &Workload| w.requests.iter().map(|r| r.arrival_ns).collect::<Vec<_>>();
        assert_eq!(times(&a), times(&b));
    }

    #[test]
    fn sampled_and_sequential_lengths_come_from_the_source() {
        let src = vec![(10, 2), (20, 3)];
        let w = poisson(500, 1.0, &Lengths::Empirical(src.clone()), 3).unwrap();
        assert!(w.requests.iter().all(|r| src.contains(&(r.input_tokens, r.output_tokens))));
        assert!(w.requests.iter().any(|r| r.input_tokens == 10) && w.requests.iter().any(|r| r.input_tokens == 20));
        let s = poisson(3, 1.0, &Lengths::Sequential(src), 3).unwrap();
        assert_eq!(s.lengths(), vec![(10, 2), (20, 3), (10, 2)]);
    }

    #[test]
    fn rejects_bad_parameters() {
        let l = Lengths::fixed(1, 1);
        assert!(poisson(0, 1.0, &l, 0).is_err());
        assert!(poisson(5, 0.0, &l, 0).is_err());
        assert!(poisson(5, f64::NAN, &l, 0).is_err());
        assert!(poisson(5, 1.0, &Lengths::fixed(0, 1), 0).is_err());
        assert!(poisson(5, 1.0, &Lengths::Empirical(vec![]), 0).is_err());
    }
}
