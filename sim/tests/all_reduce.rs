//! The ring all-reduce model against the H100 all-reduce measurements of the Vidur project
//! (`../shared/kernel-profiles/vidur/h100/all_reduce.pairwise_nvlink.csv`); skips with a message when
//! `../shared` is not next to the checkout.

use std::path::PathBuf;

use duet_sim::cost::collective::{AllReduceSample, RingAllReduce, load_vidur_all_reduce};
use duet_sim::metrics::stats::percentile;

fn profile() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/kernel-profiles/vidur/h100/all_reduce.pairwise_nvlink.csv");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("SKIPPED: {} not found (../shared is not next to this checkout)", p.display());
        None
    }
}

/// Median and p90 absolute % error of `m` over `samples`.
fn errors(m: &RingAllReduce, samples: &[&AllReduceSample]) -> (f64, f64) {
    let mut e: Vec<f64> =
        samples.iter().map(|s| (m.time_s(s.bytes, s.workers) - s.seconds).abs() / s.seconds * 100.0).collect();
    e.sort_by(f64::total_cmp);
    (percentile(&e, 50.0), percentile(&e, 90.0))
}

#[test]
fn ring_model_fits_the_h100_all_reduce_measurements() {
    let Some(path) = profile() else { return };
    let samples = load_vidur_all_reduce(&path).unwrap();
    for workers in [2, 4] {
        let mine: Vec<AllReduceSample> = samples.iter().copied().filter(|s| s.workers == workers).collect();
        assert!(mine.len() > 900, "{workers} workers: {} rows", mine.len());
        let fit = RingAllReduce::fit(&mine).unwrap();
        let refs: Vec<&AllReduceSample> = mine.iter().collect();
        let (median, p90) = errors(&fit, &refs);
        eprintln!(
            "all-reduce, {workers} H100s: bus bandwidth {:.1} GB/s, step latency {:.2} us; median error {median:.1}%, \
             p90 {p90:.1}% over {} sizes",
            fit.bus_bandwidth / 1e9,
            fit.step_latency_s * 1e6,
            mine.len()
        );
        assert!(median < 6.0, "median error {median:.1}%");
        if workers == 2 {
            // The bundled constant is this fit.
            let (m2, _) = errors(&RingAllReduce::H100_NVLINK, &refs);
            assert!(m2 < 6.0 && (fit.bus_bandwidth / RingAllReduce::H100_NVLINK.bus_bandwidth - 1.0).abs() < 0.01);
        }
    }
}

#[test]
fn a_file_that_is_not_a_collective_profile_is_a_clear_error() {
    let p = std::env::temp_dir().join(format!("duet-allreduce-{}.csv", std::process::id()));
    std::fs::write(&p, "num_tokens,time\n1,2\n").unwrap();
    let e = load_vidur_all_reduce(&p).unwrap_err().to_string();
    assert!(e.contains("missing column") && e.contains("duet-allreduce"), "{e}");
    std::fs::remove_file(&p).unwrap();
}
