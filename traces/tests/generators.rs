//! Statistical checks of the arrival generators over several seeds, and determinism.

use duet_traces::arrivals::ArrivalProcess;
use duet_traces::generate::{Lengths, Synthetic, generate};

fn gaps_stats(process: ArrivalProcess, rate: f64, seed: u64) -> (f64, f64) {
    let w =
        generate(&Synthetic { n: 100_000, rate_per_s: rate, arrivals: process, lengths: Lengths::fixed(1, 1), seed })
            .unwrap();
    let gaps: Vec<f64> = w.requests.windows(2).map(|p| (p[1].arrival_ns - p[0].arrival_ns) as f64 / 1e9).collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
    (1.0 / mean, sd / mean)
}

#[test]
fn poisson_rate_within_2_percent_and_cv_within_005_of_1() {
    for seed in 0..5 {
        let (rate, cv) = gaps_stats(ArrivalProcess::Poisson, 8.0, seed);
        assert!((rate - 8.0).abs() / 8.0 < 0.02, "seed {seed}: rate {rate}");
        assert!((cv - 1.0).abs() < 0.05, "seed {seed}: cv {cv}");
    }
}

#[test]
fn gamma_hits_the_requested_cv_within_005() {
    for cv_req in [0.5, 2.0] {
        for seed in 0..5 {
            let (rate, cv) = gaps_stats(ArrivalProcess::Gamma { cv: cv_req }, 8.0, seed);
            assert!((cv - cv_req).abs() < 0.05, "cv {cv_req}, seed {seed}: got {cv}");
            assert!((rate - 8.0).abs() / 8.0 < 0.02, "cv {cv_req}, seed {seed}: rate {rate}");
        }
    }
}

#[test]
fn same_seed_same_output() {
    let spec = Synthetic {
        n: 1000,
        rate_per_s: 3.0,
        arrivals: ArrivalProcess::Gamma { cv: 3.0 },
        lengths: Lengths::Independent {
            input: "lognormal:mean=800,cv=1".parse().unwrap(),
            output: "zipf:max=500,s=1.1".parse().unwrap(),
        },
        seed: 11,
    };
    assert_eq!(generate(&spec).unwrap(), generate(&spec).unwrap());
    let other = Synthetic { seed: 12, ..spec.clone() };
    assert_ne!(generate(&spec).unwrap().requests, generate(&other).unwrap().requests);
}
