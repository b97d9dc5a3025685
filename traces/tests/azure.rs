//! The Azure loader on the real published traces (skipped with a message when `../shared` is absent) and a
//! property test that arbitrary input never panics the parser.

use std::path::{Path, PathBuf};

use duet_traces::{azure, load_path};
use proptest::prelude::*;

fn shared(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces").join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIPPED: {} not found (../shared is not next to this checkout)", p.display());
        None
    }
}

#[test]
fn full_azure_traces_load_with_published_statistics() {
    // Published in shared/traces/README.md: conv 19,366 rows over 3,502 s (5.53 req/s), code 8,819 over 3,436 s.
    for (file, rows, rate) in [
        ("azure2023/AzureLLMInferenceTrace_conv.csv", 19_366, 5.53),
        ("azure2023/AzureLLMInferenceTrace_code.csv", 8_819, 2.57),
    ] {
        let Some(p) = shared(file) else { return };
        let w = load_path(&p).unwrap();
        assert_eq!(w.len(), rows, "{file}");
        let got = w.mean_rate().unwrap();
        assert!((got - rate).abs() < 0.01, "{file}: {got}");
        assert!(w.requests.windows(2).all(|p| p[0].arrival_ns <= p[1].arrival_ns));
    }
}

#[test]
fn bundled_excerpt_is_the_head_of_the_published_trace() {
    let Some(p) = shared("azure2023/AzureLLMInferenceTrace_conv.csv") else { return };
    let full = load_path(&p).unwrap();
    let excerpt = duet_traces::bundled_default();
    assert_eq!(&full.requests[..1000], &excerpt.requests[..]);
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parser_never_panics(body in "[0-9,:. \\-a-zA-Z\\n]{0,300}") {
        let text = format!("{}\n{body}", azure::HEADER);
        let _ = azure::parse(Path::new("fuzz.csv"), &text);
    }

    #[test]
    fn valid_rows_round_trip(rows in prop::collection::vec((0u64..86_399, 0u32..10_000_000, 1u32..100_000, 1u32..5_000), 1..50)) {
        let mut text = String::from(azure::HEADER);
        for (s, frac, i, o) in &rows {
            text.push_str(&format!("\n2023-11-16 {:02}:{:02}:{:02}.{:07},{i},{o}", s / 3600, s / 60 % 60, s % 60, frac));
        }
        let w = azure::parse(Path::new("gen.csv"), &text).unwrap();
        prop_assert_eq!(w.len(), rows.len());
        let mut times: Vec<u64> = rows.iter().map(|(s, f, _, _)| s * 1_000_000_000 + u64::from(*f) * 100).collect();
        times.sort();
        let t0 = times[0];
        let got: Vec<u64> = w.requests.iter().map(|r| r.arrival_ns).collect();
        prop_assert_eq!(got, times.iter().map(|t| t - t0).collect::<Vec<_>>());
    }
}
