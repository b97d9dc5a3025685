//! Engine behaviour end to end: a hand-computed timeline, preemption under KV starvation, plan validation,
//! stall detection, and executor independence.

mod common;

use common::{FixedExecutor, MS, ReplayExecutor, engine_cfg, workload};
use duet_sim::engine;
use duet_sim::metrics::{self, Slo};
use duet_sim::policy::{BatchItem, Chunked, ChunkedConfig, Plan, Policy, PrefillFirst, View};
use duet_sim::request::ReqId;
use duet_sim::{Nanos, SimError};

fn chunked() -> Chunked {
    Chunked::new(ChunkedConfig::default())
}

#[test]
fn three_requests_hand_computed_timeline_and_metrics() {
    // A: t=0, 4 in, 3 out; B: t=5 ms, 2 in, 1 out; C: t=25 ms, 3 in, 2 out. Every batch takes 10 ms.
    // 0-10: A prefill -> A tok1 @10.  10-20: A decode + B prefill -> A tok2, B tok1 (done) @20.
    // 20-30: A decode -> A tok3 (done) @30.  30-40: C prefill -> C tok1 @40.  40-50: C decode -> C tok2 @50.
    let w = workload(&[(0, 4, 3), (5 * MS, 2, 1), (25 * MS, 3, 2)]);
    let cfg = engine_cfg(100);
    let out = engine::run(&w, &mut chunked(), &mut FixedExecutor(Nanos(10 * MS)), &cfg).unwrap();
    let r = &out.requests;
    let times =
        |i: usize| (r[i].first_scheduled.0 / MS, r[i].first_token.0 / MS, r[i].finish.0 / MS, r[i].max_tbt.0 / MS);
    assert_eq!(times(0), (0, 10, 30, 10));
    assert_eq!(times(1), (10, 20, 20, 0));
    assert_eq!(times(2), (30, 40, 50, 10));
    assert_eq!(out.itl_ns.to_vec(), vec![10 * MS; 3]);
    assert_eq!(out.iterations.len(), 5);

    let m = metrics::compute(&out, &Slo { ttft_ms: Some(12.0), ..Slo::default() });
    assert_eq!(m.completed, 3);
    assert_eq!(m.duration, 0.05);
    assert!((m.request_throughput - 60.0).abs() < 1e-9);
    assert!((m.output_throughput - 120.0).abs() < 1e-9);
    assert!((m.total_token_throughput - 300.0).abs() < 1e-9);
    // TTFT = [10, 15, 15]; TPOT only for A and C: (30-10)/2 = 10, (25-15)/1 = 10; E2EL = [30, 15, 25].
    assert!((m.ttft_ms.mean - 40.0 / 3.0).abs() < 1e-9);
    assert_eq!((m.ttft_ms.median, m.ttft_ms.p99), (15.0, 15.0));
    assert_eq!((m.tpot_ms.mean, m.tpot_ms.std), (10.0, 0.0));
    assert_eq!((m.e2el_ms.mean, m.e2el_ms.median), (70.0 / 3.0, 25.0));
    assert_eq!((m.itl_ms.mean, m.tbt_ms.mean), (10.0, 10.0));
    // Queueing: A 0, B 5, C 5.
    assert_eq!(m.queue_ms.median, 5.0);
    // Only A meets TTFT <= 12 ms.
    assert_eq!(m.slo_attainment, Some(1.0 / 3.0));
    assert!((m.request_goodput.unwrap() - 20.0).abs() < 1e-9);
}

#[test]
fn kv_starvation_preempts_and_still_finishes_everything() {
    // 8 requests of 64 + 64 tokens at once; each needs up to 127 tokens = 8 blocks; the cache has 16 blocks.
    let w = workload(&[(0, 64, 64); 8]);
    let cfg = engine_cfg(16);
    for name in ["chunked", "prefill-first", "duet", "muxwise"] {
        let mut p = common::build_policy(name, &Default::default());
        let out = engine::run(&w, p.as_mut(), &mut FixedExecutor(Nanos(MS)), &cfg).unwrap();
        assert!(out.stats.preemptions > 0, "{}: no preemption", p.name());
        assert!(out.stats.peak_kv_blocks <= 16);
        assert!(out.requests.iter().all(|r| r.tokens_emitted == 64));
        assert_eq!(out.requests.iter().map(|r| u64::from(r.preemptions)).sum::<u64>(), out.stats.preemptions);
        // A preempted request's stream stalls while it is recomputed: its worst gap exceeds one iteration.
        let victim = out.requests.iter().find(|r| r.preemptions > 0).unwrap();
        assert!(victim.max_tbt > Nanos(MS), "{}", p.name());
    }
}

#[test]
fn request_larger_than_the_cache_is_a_clear_error() {
    let w = workload(&[(0, 10, 5), (1, 300, 20)]);
    let cfg = engine_cfg(16);
    let e = engine::run(&w, &mut chunked(), &mut FixedExecutor(Nanos(MS)), &cfg).unwrap_err().to_string();
    assert!(e.contains("1 request(s) can never fit") && e.contains("request 1 needs input + output - 1 = 319"), "{e}");
}

/// Plans whatever the closure returns.
struct Rogue<F: FnMut(&View<'_>) -> Plan>(F);

impl<F: FnMut(&View<'_>) -> Plan> Policy for Rogue<F> {
    fn name(&self) -> &'static str {
        "rogue"
    }
    fn plan(&mut self, view: &View<'_>) -> Plan {
        (self.0)(view)
    }
}

fn batch(view: &View<'_>, items: Vec<BatchItem>) -> Plan {
    let batch = duet_sim::policy::Batch::new(duet_sim::policy::Lane::Whole, view.total_sms, items);
    Plan { batches: vec![batch], ..Plan::default() }
}

/// A planning function under test.
type PlanFn = Box<dyn FnMut(&View<'_>) -> Plan>;

#[test]
fn engine_refuses_invalid_plans() {
    let w = workload(&[(0, 40, 4), (0, 40, 4)]);
    let cfg = engine_cfg(4);
    let cases: Vec<(&str, PlanFn)> = vec![
        ("Decode", Box::new(|v| batch(v, vec![BatchItem::Decode { req: ReqId(0) }]))),
        ("41 tokens, 40 remain", Box::new(|v| batch(v, vec![BatchItem::Prefill { req: ReqId(0), tokens: 41 }]))),
        (
            "appears twice",
            Box::new(|v| {
                batch(
                    v,
                    vec![
                        BatchItem::Prefill { req: ReqId(0), tokens: 1 },
                        BatchItem::Prefill { req: ReqId(0), tokens: 1 },
                    ],
                )
            }),
        ),
        (
            "needs 6 KV blocks, 4 free",
            Box::new(|v| {
                batch(
                    v,
                    vec![
                        BatchItem::Prefill { req: ReqId(0), tokens: 40 },
                        BatchItem::Prefill { req: ReqId(1), tokens: 40 },
                    ],
                )
            }),
        ),
        ("preempt: request 1 is Queued", Box::new(|_| Plan { preempt: vec![ReqId(1)], ..Plan::default() })),
    ];
    for (needle, f) in cases {
        let e = engine::run(&w, &mut Rogue(f), &mut FixedExecutor(Nanos(MS)), &cfg).unwrap_err();
        assert!(matches!(e, SimError::InvalidPlan { .. }), "{e}");
        assert!(e.to_string().contains(needle), "{needle}: {e}");
    }
}

#[test]
fn a_policy_that_plans_nothing_is_reported_as_a_stall() {
    let w = workload(&[(0, 10, 2), (MS, 10, 2)]);
    let cfg = engine_cfg(100);
    let e = engine::run(&w, &mut Rogue(|_| Plan::default()), &mut FixedExecutor(Nanos(MS)), &cfg).unwrap_err();
    assert!(matches!(e, SimError::Stalled { waiting: 2, running: 0, .. }), "{e}");
}

#[test]
fn same_durations_from_another_executor_give_the_same_schedule() {
    // The engine depends on the executor only through durations: replaying the simulated executor's durations
    // through a different executor must reproduce every batch exactly.
    let w = duet_traces::bundled_default();
    let w = duet_traces::transform::first_n(duet_traces::transform::scale_rate(w, 4.0).unwrap(), 300).unwrap();
    let m = duet_sim::ModelSpec::resolve("qwen3-8b").unwrap();
    let g = duet_sim::GpuSpec::by_name("h100-sxm").unwrap();
    let cfg = engine_cfg(3000);
    let mut sim_exec = duet_sim::executor::SimExecutor::new(std::sync::Arc::new(duet_sim::cost::CostModel::new(
        m,
        g,
        Default::default(),
    )));
    let a = engine::run(&w, &mut PrefillFirst::new(Default::default()), &mut sim_exec, &cfg).unwrap();
    let durations = a.iterations.iter().map(|it| it.end - it.start).collect();
    let b = engine::run(&w, &mut PrefillFirst::new(Default::default()), &mut ReplayExecutor(durations), &cfg).unwrap();
    assert_eq!(a.iterations, b.iterations);
    assert_eq!(a.requests, b.requests);
}

/// Every step takes 10 ms alone, drawing `demand` of the HBM bandwidth on average, memory-bound for `mem` of it.
struct TrafficExecutor {
    demand: f64,
    mem: f64,
}

impl duet_sim::executor::Executor for TrafficExecutor {
    fn execute(
        &mut self,
        _: &duet_sim::executor::Step<'_>,
    ) -> Result<duet_sim::executor::StepTiming, duet_sim::executor::ExecutorError> {
        let d = 10.0 * MS as f64;
        Ok(duet_sim::executor::StepTiming {
            duration: Nanos(10 * MS),
            hbm_bytes: self.demand * HBM * d / 1e9,
            memory_ns: self.mem * d,
            pending: None,
        })
    }
}

const HBM: f64 = 1e12;

fn two_lanes(v: &View<'_>) -> Plan {
    use duet_sim::policy::{Batch, Lane};
    let mut batches = Vec::new();
    for (i, &id) in v.waiting.iter().enumerate() {
        let lane = if i == 0 { Lane::Prefill } else { Lane::Decode };
        if v.on_lane(lane).is_none() {
            batches.push(Batch::new(lane, 66, vec![BatchItem::Prefill { req: id, tokens: 10 }]));
        }
    }
    Plan { batches, ..Plan::default() }
}

#[test]
fn bandwidth_contention_stretches_only_overlapping_memory_bound_work() {
    let cfg = duet_sim::engine::EngineConfig {
        contention: Some(duet_sim::engine::Contention::Bandwidth { hbm_bandwidth: HBM, interference: 0.0 }),
        partition_switch_ns: 0,
        ..engine_cfg(100)
    };
    let ends = |w: &duet_traces::Workload, demand: f64, mem: f64| {
        let out = engine::run(w, &mut Rogue(two_lanes), &mut TrafficExecutor { demand, mem }, &cfg).unwrap();
        out.iterations.iter().map(|i| i.end.0).collect::<Vec<_>>()
    };
    // Alone: no stretch.
    assert_eq!(ends(&workload(&[(0, 10, 1)]), 0.6, 1.0), vec![10 * MS]);
    // Not overlapping in time: no stretch either.
    assert_eq!(ends(&workload(&[(0, 10, 1), (20 * MS, 10, 1)]), 0.6, 1.0), vec![10 * MS, 30 * MS]);
    // Two fully memory-bound steps each drawing 0.6 of HBM: demand 1.2 -> both stretch to 12 ms.
    assert_eq!(ends(&workload(&[(0, 10, 1), (0, 10, 1)]), 0.6, 1.0), vec![12 * MS, 12 * MS]);
    // Half memory-bound: only that half stretches by 1.2 -> 0.5 + 0.5 x 1.2 = 1.1 -> 11 ms.
    assert_eq!(ends(&workload(&[(0, 10, 1), (0, 10, 1)]), 0.6, 0.5), vec![11 * MS, 11 * MS]);
    // Below saturation (demand 0.8 in total): nothing stretches.
    assert_eq!(ends(&workload(&[(0, 10, 1), (0, 10, 1)]), 0.4, 1.0), vec![10 * MS, 10 * MS]);
}
