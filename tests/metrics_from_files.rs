//! Property: for random small workloads (arrival processes with ties and bursts, random lengths) under every
//! policy and two granularities, the metrics in `summary.json` equal the same metrics recomputed from
//! `requests.csv` (exact to the nanosecond there), and every request appears exactly once.

mod common;

use duet_sim::stats::percentile;
use proptest::prelude::*;

fn column(text: &str, name: &str) -> Vec<Option<f64>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let i = header.iter().position(|h| *h == name).unwrap();
    lines.map(|l| l.split(',').nth(i).filter(|v| !v.is_empty()).map(|v| v.parse().unwrap())).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

const POLICIES: &[&[&str]] = &[
    &["--policy", "chunked"],
    &["--policy", "prefill-first"],
    &["--policy", "duet", "--tbt-target-ms", "40"],
    &["--policy", "static-split", "--split", "100:32"],
    &["--policy", "muxwise"],
    &["--policy", "vllm"],
    &["--policy", "adaptive"],
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 28, ..ProptestConfig::default() })]
    #[test]
    fn summary_metrics_equal_those_recomputed_from_requests_csv(
        n in 1usize..60,
        seed in 0u64..1000,
        arrivals in 0usize..3,
        policy in 0usize..7,
        green in any::<bool>(),
        input in 1u32..3000,
        output in 1u32..300,
    ) {
        let dir = common::tmp("metrics", &format!("{n}-{seed}-{arrivals}-{policy}-{green}-{input}-{output}"));
        let out = dir.join("out");
        let n_s = n.to_string();
        let seed_s = seed.to_string();
        let input_s = format!("uniform:1,{input}");
        let output_s = format!("uniform:1,{output}");
        let mut args = vec!["sim", "--synthetic", &n_s, "--seed", &seed_s, "--rate", "20",
            "--arrivals", ["poisson", "burst", "gamma:cv=4"][arrivals],
            "--input-len", &input_s, "--output-len", &output_s,
            "--granularity", if green { "green" } else { "tpc" }, "--out", out.to_str().unwrap()];
        args.extend_from_slice(POLICIES[policy]);
        let o = common::duet(&args);
        prop_assert!(o.status.success(), "{args:?}: {}", common::stderr(&o));
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        let csv = std::fs::read_to_string(out.join("requests.csv")).unwrap();
        let ids: Vec<u64> = column(&csv, "id").into_iter().map(|v| v.unwrap() as u64).collect();
        let mut sorted_ids = ids.clone();
        sorted_ids.sort_unstable();
        sorted_ids.dedup();
        prop_assert_eq!(sorted_ids.len(), n, "every request exactly once");
        prop_assert_eq!(summary["completed"].as_u64(), Some(n as u64));
        for (metric, col) in [("ttft", "ttft_ms"), ("e2el", "e2el_ms")] {
            let mut v: Vec<f64> = column(&csv, col).into_iter().map(Option::unwrap).collect();
            v.sort_by(f64::total_cmp);
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            for (key, want) in [
                (format!("mean_{metric}_ms"), mean),
                (format!("median_{metric}_ms"), percentile(&v, 50.0)),
                (format!("p99_{metric}_ms"), percentile(&v, 99.0)),
            ] {
                let got = summary[&key].as_f64().unwrap();
                prop_assert!(close(got, want), "{key}: summary {got}, from requests.csv {want}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
