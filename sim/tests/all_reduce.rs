//! The ring all-reduce model against the all-reduce measurements of the Vidur project
//! (`../shared/kernel-profiles/vidur/{h100,a100}/all_reduce.pairwise_nvlink.csv`); skips with a message when
//! `../shared` is not next to the checkout.

use std::path::PathBuf;

use duet_sim::cost::collective::{AllReduceSample, RingAllReduce, load_vidur_all_reduce};
use duet_sim::metrics::stats::percentile;

fn profile() -> Option<PathBuf> {
    profile_of("h100")
}

fn profile_of(gpu: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../shared/kernel-profiles/vidur/{gpu}/all_reduce.pairwise_nvlink.csv"));
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

/// The A100 ring (`RingAllReduce::A100_NVLINK`): per GPU count, fitted on every other size of Vidur's A100 NVLink
/// measurements (sorted by size) and its error reported on the sizes left out; the bundled constant is the fit
/// on pairs (as for the H100, one ring serves every tensor-parallel degree).
#[test]
fn a100_ring_is_fitted_on_half_the_sizes_and_checked_on_the_other_half() {
    let Some(path) = profile_of("a100") else { return };
    let samples = load_vidur_all_reduce(&path).unwrap();
    for workers in [2, 4] {
        let mut all: Vec<AllReduceSample> = samples.iter().copied().filter(|s| s.workers == workers).collect();
        assert!(all.len() > 100, "{workers} workers: {} rows", all.len());
        all.sort_by(|a, b| a.bytes.total_cmp(&b.bytes).then(a.seconds.total_cmp(&b.seconds)));
        let (fit_on, held): (Vec<_>, Vec<_>) = all.iter().enumerate().partition(|(i, _)| i % 2 == 0);
        let fit_on: Vec<AllReduceSample> = fit_on.into_iter().map(|(_, s)| *s).collect();
        let held: Vec<&AllReduceSample> = held.into_iter().map(|(_, s)| s).collect();
        let fit = RingAllReduce::fit(&fit_on).unwrap();
        let (median, p90) = errors(&fit, &held);
        let (b_median, b_p90) = errors(&RingAllReduce::A100_NVLINK, &held);
        let (h_median, h_p90) = errors(&RingAllReduce::H100_NVLINK, &held);
        eprintln!(
            "all-reduce, {workers} A100s: fitted on {} sizes: bus bandwidth {:.1} GB/s, step latency {:.2} us; on \
             the {} held-out sizes median error {median:.1}%, p90 {p90:.1}%; the bundled A100 ring there: median \
             {b_median:.1}%, p90 {b_p90:.1}%; the H100 ring: median {h_median:.1}%, p90 {h_p90:.1}%",
            fit_on.len(),
            fit.bus_bandwidth / 1e9,
            fit.step_latency_s * 1e6,
            held.len()
        );
        assert!(median < 10.0, "median error {median:.1}%");
        if workers == 2 {
            assert!(b_median < h_median, "the A100's own ring must beat the H100's on A100 pairs");
            let c = RingAllReduce::A100_NVLINK;
            assert!((fit.bus_bandwidth / c.bus_bandwidth - 1.0).abs() < 0.01, "{fit:?} vs {c:?}");
            assert!((fit.step_latency_s / c.step_latency_s - 1.0).abs() < 0.01, "{fit:?} vs {c:?}");
        }
    }
}

#[test]
fn each_gpu_gets_its_own_ring() {
    use duet_sim::GpuSpec;
    let ring = |g: &str| RingAllReduce::for_gpu(&GpuSpec::by_name(g).unwrap());
    assert_eq!(ring("a100-80gb"), RingAllReduce::A100_NVLINK);
    assert_eq!(ring("h100-sxm"), RingAllReduce::H100_NVLINK);
    assert_eq!(ring("h200"), RingAllReduce::H100_NVLINK);
}

#[test]
fn a_file_that_is_not_a_collective_profile_is_a_clear_error() {
    let p = std::env::temp_dir().join(format!("duet-allreduce-{}.csv", std::process::id()));
    std::fs::write(&p, "num_tokens,time\n1,2\n").unwrap();
    let e = load_vidur_all_reduce(&p).unwrap_err().to_string();
    assert!(e.contains("missing column") && e.contains("duet-allreduce"), "{e}");
    std::fs::remove_file(&p).unwrap();
}
