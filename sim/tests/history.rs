//! Runs that keep no full history (`SimConfig::keep_iterations` and `keep_decisions` false: `duet sim` without
//! `--out`, `duet bench`, sweep and capacity points) report exactly what runs that keep every record report: the
//! summary (`summary.json`'s values, the decision counts), the per-request records and gaps, and a cluster's
//! per-instance totals (iterations, tokens, busy time), while holding only a tail of the records.

mod common;

use duet_sim::cluster::{ClusterConfig, Layout};
use duet_sim::engine::HISTORY_TAIL;
use duet_sim::partition::Granularity;
use duet_sim::policy::{PolicyConfig, PolicyOptions};
use duet_sim::report::summary_json;
use duet_sim::{SimConfig, SimRun, simulate};

fn run(policy: &str, opts: &PolicyOptions, cluster: ClusterConfig, keep: bool) -> SimRun {
    let w = duet_traces::transform::scale_rate(duet_traces::bundled_default(), 2.0).unwrap();
    let cfg = SimConfig {
        granularity: Granularity::Green,
        cluster,
        keep_iterations: keep,
        keep_decisions: keep,
        ..common::sim_config("qwen3-8b", PolicyConfig::by_name(policy, opts).unwrap())
    };
    simulate(&w, &cfg).unwrap()
}

#[test]
fn a_trimmed_history_reports_what_a_full_one_does() {
    let duet = PolicyOptions { tbt_target_ms: Some(40.0), token_budget: Some(2048), ..Default::default() };
    let replicas = ClusterConfig { layout: Layout::Replicas(2), ..Default::default() };
    let mut decisions_trimmed = false;
    for (policy, opts, cluster, label) in [
        ("duet", duet.clone(), ClusterConfig::default(), "duet"),
        ("adaptive", PolicyOptions::default(), ClusterConfig::default(), "adaptive"),
        ("chunked", PolicyOptions::default(), ClusterConfig::default(), "chunked"),
        ("duet", duet, replicas, "duet, 2 replicas"),
    ] {
        let (full, trimmed) = (run(policy, &opts, cluster, true), run(policy, &opts, cluster, false));
        assert_eq!(summary_json(&full), summary_json(&trimmed), "{label}: summary");
        assert_eq!(full.output.stats, trimmed.output.stats, "{label}: counters");
        assert_eq!(full.output.requests, trimmed.output.requests, "{label}: requests");
        assert_eq!(full.output.itl_ns, trimmed.output.itl_ns, "{label}: gaps");
        assert_eq!(full.cluster, trimmed.cluster, "{label}: cluster report");
        let s = &full.output.stats;
        assert_eq!(s.decisions.total, full.output.decisions.len() as u64, "{label}: a full run keeps every decision");
        assert_eq!(s.iterations, full.output.iterations.len() as u64, "{label}");
        // The trimmed run held a tail only (per instance), yet counted everything.
        let instances: usize = if cluster.is_single() { 1 } else { 2 };
        assert!(
            s.iterations as usize > 2 * instances * HISTORY_TAIL,
            "{label}: long enough to trim ({})",
            s.iterations
        );
        let kept = trimmed.output.iterations.len();
        assert!(
            kept < s.iterations as usize && kept <= instances * 2 * HISTORY_TAIL,
            "{label}: {kept} iterations kept"
        );
        if s.decisions.total as usize > 2 * instances * HISTORY_TAIL {
            let kept = trimmed.output.decisions.len();
            assert!(kept <= instances * 2 * HISTORY_TAIL, "{label}: {kept} decisions kept");
            decisions_trimmed = true;
        }
    }
    assert!(decisions_trimmed, "no run made enough decisions to trim");
}
