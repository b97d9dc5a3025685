//! DuetServe's optimiser against a brute-force search, and a hand-built scenario where the aggregated mixed batch
//! misses the TBT target and the split does not.

mod common;

use std::sync::Arc;

use common::{MS, engine_cfg, workload};
use duet_sim::cost::{CostConfig, CostModel, Launch, SeqWork};
use duet_sim::engine;
use duet_sim::executor::SimExecutor;
use duet_sim::metrics::{self, Slo};
use duet_sim::partition::Granularity;
use duet_sim::policy::{Duet, DuetConfig, Mode, PolicyConfig, PolicyContext, PolicyOptions};
use duet_sim::{GpuSpec, ModelSpec};

fn cost() -> Arc<CostModel> {
    Arc::new(CostModel::new(
        ModelSpec::resolve("qwen3-8b").unwrap(),
        GpuSpec::by_name("h100-sxm").unwrap(),
        CostConfig::default(),
    ))
}

#[test]
fn optimiser_matches_brute_force() {
    let cm = cost();
    let tau = 40 * MS;
    // A 2048-token prefill chunk and 16 decodes over 1000 cached tokens each.
    let prefill = vec![SeqWork { new_tokens: 2048, cached_tokens: 0, emits_token: false }];
    let decode = vec![SeqWork { new_tokens: 1, cached_tokens: 1000, emits_token: true }; 16];
    let mut mixed = prefill.clone();
    mixed.extend(&decode);
    let t_mixed = cm.iteration(132, &mixed).total.0;
    assert!(t_mixed > tau, "premise: the mixed batch misses the target ({t_mixed} ns)");

    for granularity in [Granularity::Tpc, Granularity::Green] {
        let ctx = PolicyContext { cost: Arc::clone(&cm), total_sms: 132, granularity };
        let duet =
            Duet::new(DuetConfig { tbt_target_ns: tau, max_lookahead: 8, ..DuetConfig::default() }, ctx).unwrap();
        let got = duet.choose_split(&prefill, &decode, 8).expect("some decode partition meets 40 ms");

        // Brute force: every legal split, every k, the objective written out again.
        let mut best: Option<(f64, u32, u32)> = None;
        for (d, p) in granularity.splits(132) {
            let t_d = cm.iteration_launched(d, &decode, Launch::Eager).total.0 as f64;
            if t_d > tau as f64 {
                continue;
            }
            let t_g = cm.iteration_launched(d, &decode, Launch::Graph).total.0 as f64;
            let t_p = cm.iteration_launched(p, &prefill, Launch::Eager).total.0 as f64;
            for k in 1..=8u32 {
                let obj = (f64::from(k) * 16.0 + 2048.0) / (t_d + f64::from(k - 1) * t_g).max(t_p);
                if best.is_none_or(|b| obj > b.0) {
                    best = Some((obj, d, k));
                }
            }
        }
        let (obj, d, k) = best.unwrap();
        assert_eq!((got.decode_sms, got.k), (d, k), "{granularity}");
        assert!((got.objective - obj).abs() < 1e-12);
        assert!(got.t_decode_ns <= tau && got.decode_sms + got.prefill_sms == 132);
        println!(
            "{granularity}: mixed {:.1} ms -> decode {} SMs x k={} ({:.1} ms/step), prefill {} SMs ({:.1} ms)",
            t_mixed as f64 / 1e6,
            got.decode_sms,
            got.k,
            got.t_decode_ns as f64 / 1e6,
            got.prefill_sms,
            got.t_prefill_ns as f64 / 1e6
        );
    }
    // A target no partition can meet: no split (the policy falls back to aggregated and logs it).
    let ctx = PolicyContext { cost: Arc::clone(&cm), total_sms: 132, granularity: Granularity::Tpc };
    let strict = Duet::new(DuetConfig { tbt_target_ns: MS, ..DuetConfig::default() }, ctx).unwrap();
    assert!(strict.choose_split(&prefill, &decode, 8).is_none());
}

fn run(name: &str, w: &duet_traces::Workload) -> duet_sim::engine::SimOutput {
    let cm = cost();
    let opts = PolicyOptions { tbt_target_ms: Some(40.0), ..Default::default() };
    let ctx = PolicyContext { cost: Arc::clone(&cm), total_sms: 132, granularity: Granularity::Tpc };
    let mut p = PolicyConfig::by_name(name, &opts).unwrap().build(&ctx).unwrap();
    engine::run(w, p.as_mut(), &mut SimExecutor::new(cm), &engine_cfg(20_000)).unwrap()
}

#[test]
fn long_prompt_among_decodes_triggers_a_split_that_protects_tbt() {
    // 16 chats decoding, then a 16k-token prompt arrives: chunked mixes 2048-token chunks into every decode step.
    let mut reqs = vec![(0, 500, 200); 16];
    reqs.push((300 * MS, 16_000, 10));
    let w = workload(&reqs);
    let chunked = run("chunked", &w);
    let duet = run("duet", &w);
    let splits: Vec<_> = duet.decisions.iter().filter(|d| d.decision.mode == Mode::Split).collect();
    assert!(!splits.is_empty(), "duet never split");
    assert!(chunked.decisions.is_empty());
    let worst_tbt = |o: &duet_sim::engine::SimOutput| o.requests[..16].iter().map(|r| r.max_tbt.0).max().unwrap();
    let (c, d) = (worst_tbt(&chunked), worst_tbt(&duet));
    println!(
        "worst TBT of the 16 chats: chunked {:.1} ms, duet {:.1} ms ({} split decisions)",
        c as f64 / 1e6,
        d as f64 / 1e6,
        splits.len()
    );
    assert!(c > 40 * MS, "premise: chunked misses the 40 ms target ({c})");
    assert!(d < c, "duet {d} vs chunked {c}");
    // Everyone finishes under both.
    for o in [&chunked, &duet] {
        assert_eq!(metrics::compute(o, &Slo::default()).completed, 17);
    }
}

#[test]
fn muxwise_resizes_running_prefills_at_layer_boundaries() {
    let w = duet_traces::transform::scale_rate(duet_traces::bundled_default(), 2.0).unwrap();
    let out = run("muxwise", &w);
    // Layer groups of one prefill batch follow each other on the Prefill lane with no new tokens counted;
    // a change of SM count between consecutive groups is a resize at a layer boundary.
    let prefill: Vec<_> = out.iterations.iter().filter(|i| i.lane == duet_sim::policy::Lane::Prefill).collect();
    let resizes = prefill
        .windows(2)
        .filter(|p| p[1].prefill_tokens == 0 && p[1].start == p[0].end && p[1].sms != p[0].sms)
        .count();
    let shrinks = prefill
        .windows(2)
        .filter(|p| p[1].prefill_tokens == 0 && p[1].start == p[0].end && p[1].sms < p[0].sms)
        .count();
    println!("{} prefill layer groups, {resizes} resizes ({shrinks} shrinks)", prefill.len());
    assert!(shrinks > 0 && resizes > shrinks, "expected both shrinks and growths");
    assert_eq!(metrics::compute(&out, &Slo::default()).completed, 1000);
}
