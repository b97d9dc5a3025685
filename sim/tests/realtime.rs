//! Wall-clock mode on a fake device and clock: the same policies, unchanged, produce exactly the simulated run's
//! plans when the device takes the cost model's times; with other times the run still serves everything and the
//! recorded iterations carry the device's times.

mod common;

use std::sync::Arc;

use common::{build_policy, engine_cfg};
use duet_sim::cost::CostModel;
use duet_sim::engine::{self, EngineConfig};
use duet_sim::executor::SimExecutor;
use duet_sim::policy::PolicyOptions;
use duet_sim::realtime::{self, FakeExecutor};
use duet_sim::{GpuSpec, ModelSpec, Nanos};
use duet_traces::Workload;

fn cost() -> Arc<CostModel> {
    Arc::new(CostModel::new(
        ModelSpec::resolve("qwen3-8b").unwrap(),
        GpuSpec::by_name("h100-sxm").unwrap(),
        Default::default(),
    ))
}

fn workload(n: usize, rate_scale: f64) -> Workload {
    let w = duet_traces::bundled_default();
    duet_traces::transform::first_n(duet_traces::transform::scale_rate(w, rate_scale).unwrap(), n).unwrap()
}

/// On a GPU, contention and partition switches are inside the measured times.
fn device_cfg() -> EngineConfig {
    EngineConfig { contention: None, partition_switch_ns: 0, ..engine_cfg(4000) }
}

#[test]
fn fake_device_with_model_times_reproduces_the_simulated_plans_exactly() {
    let w = workload(300, 4.0);
    let cfg = device_cfg();
    let split = PolicyOptions { split: Some((100, 32)), ..Default::default() };
    // A 40 ms TBT target makes DuetServe split (and look ahead) on this load.
    let duet = PolicyOptions { tbt_target_ms: Some(40.0), ..Default::default() };
    for (name, opts) in [
        ("chunked", Default::default()),
        ("prefill-first", Default::default()),
        ("duet", duet),
        ("static-split", split),
        ("muxwise", Default::default()),
        ("adaptive", Default::default()),
    ] {
        let sim = engine::run(&w, build_policy(name, &opts).as_mut(), &mut SimExecutor::new(cost()), &cfg).unwrap();
        let mut dev = FakeExecutor::new(SimExecutor::new(cost()));
        let wall = realtime::run(&w, build_policy(name, &opts).as_mut(), &mut dev, &cfg).unwrap();
        assert_eq!(sim.iterations, wall.iterations, "{name}: iterations differ");
        assert_eq!(sim.decisions, wall.decisions, "{name}: decisions differ");
        assert_eq!(sim.requests, wall.requests, "{name}: request times differ");
        assert_eq!(sim.itl_ns, wall.itl_ns, "{name}: inter-token gaps differ");
        assert_eq!(dev.log.len(), sim.iterations.len(), "{name}: one device step per iteration");
        assert!(sim.iterations.len() > 100, "{name}: a real schedule ({} iterations)", sim.iterations.len());
        let split = sim.iterations.iter().filter(|i| i.lane != duet_sim::policy::Lane::Whole).count();
        let graphs = dev.log.iter().filter(|l| l.launch == duet_sim::cost::Launch::Graph).count();
        let groups = dev.log.iter().filter(|l| l.layer_groups > 1).count();
        println!(
            "{name}: {} iterations, {split} on partitions, {graphs} look-ahead graph steps, {groups} layer-group steps",
            sim.iterations.len()
        );
        match name {
            "duet" => assert!(split > 0 && graphs > 0, "duet: partitions and look-ahead exercised"),
            "static-split" => assert_eq!(split, sim.iterations.len(), "static-split: always partitioned"),
            "muxwise" | "adaptive" => assert!(groups > 0, "{name}: layer groups exercised"),
            _ => assert_eq!(groups, 0),
        }
    }
}

#[test]
fn other_device_times_are_what_the_iterations_record() {
    let w = workload(150, 2.0);
    let cfg = device_cfg();
    // The device is 10% slower than the model on every step, plus 3 us per step.
    let slower = |_: u64, d: Nanos| Nanos(d.0 + d.0 / 10 + 3_000);
    for name in ["chunked", "duet"] {
        let mut dev = FakeExecutor::with_durations(SimExecutor::new(cost()), Box::new(slower));
        let out = realtime::run(&w, build_policy(name, &Default::default()).as_mut(), &mut dev, &cfg).unwrap();
        assert!(out.requests.iter().all(|r| r.tokens_emitted == r.output_tokens), "{name}: every request served");
        assert!(out.requests.iter().all(|r| r.first_scheduled >= r.arrival), "{name}: nothing runs before it arrives");
        // Each iteration lasted what the device took for it (predicted x 1.1 + 3 us).
        let model = SimExecutor::new(cost());
        for (it, c) in out.iterations.iter().zip(&dev.log) {
            let predicted = model.cost_model().iteration_launched(c.sms, &c.work, c.launch).total;
            assert_eq!(it.end - it.start, slower(0, predicted), "{name}: {it:?}");
        }
        let sim =
            engine::run(&w, build_policy(name, &Default::default()).as_mut(), &mut SimExecutor::new(cost()), &cfg)
                .unwrap();
        assert!(out.stats.end > sim.stats.end, "{name}: a slower device finishes later");
    }
}

#[test]
fn modelled_contention_is_refused() {
    let w = workload(50, 8.0);
    let mut dev = FakeExecutor::new(SimExecutor::new(cost()));
    let e = realtime::run(&w, build_policy("chunked", &Default::default()).as_mut(), &mut dev, &engine_cfg(4000))
        .unwrap_err()
        .to_string();
    assert!(e.contains("contention from the device"), "{e}");
}

/// Records what the engine tells the executor: window announcements and each step's launch kind and SMs.
struct Recorder {
    inner: SimExecutor,
    events: Vec<(Option<u32>, u32, duet_sim::cost::Launch, Vec<duet_sim::cost::SeqWork>)>,
    announced: Option<u32>,
}

impl duet_sim::executor::Executor for Recorder {
    fn execute(
        &mut self,
        step: &duet_sim::executor::Step<'_>,
    ) -> Result<duet_sim::executor::StepTiming, duet_sim::executor::ExecutorError> {
        // A step opening a window announces it (what the CUDA executor enqueues at once).
        self.announced = (step.window > 1).then_some(step.window);
        self.events.push((self.announced.take(), step.sms, step.launch, step.work.to_vec()));
        self.inner.execute(step)
    }
}

#[test]
fn an_announced_window_is_followed_by_its_graph_steps_on_the_same_partition() {
    // What the CUDA executor relies on to enqueue a whole window at its first step.
    let w = workload(300, 4.0);
    let opts = PolicyOptions { tbt_target_ms: Some(40.0), ..Default::default() };
    let mut rec = Recorder { inner: SimExecutor::new(cost()), events: Vec::new(), announced: None };
    engine::run(&w, build_policy("duet", &opts).as_mut(), &mut rec, &device_cfg()).unwrap();
    let mut windows = 0;
    for (i, (announced, sms, launch, work)) in rec.events.iter().enumerate() {
        let Some(k) = *announced else { continue };
        windows += 1;
        assert_eq!(*launch, duet_sim::cost::Launch::Eager, "a window starts eagerly");
        assert!(work.iter().all(|x| x.new_tokens == 1 && x.cached_tokens > 0), "a window is decode only");
        // The next k - 1 steps on this partition are its graph steps, each one token further.
        let later: Vec<_> = rec.events[i + 1..].iter().filter(|e| e.1 == *sms).take(k as usize - 1).collect();
        assert_eq!(later.len(), k as usize - 1);
        for (j, e) in later.iter().enumerate() {
            assert_eq!((e.0, e.2), (None, duet_sim::cost::Launch::Graph), "step {} of a {k}-step window", j + 1);
            assert_eq!(e.3.len(), work.len(), "same sequences (finished ones keep their slots)");
            for (a, b) in e.3.iter().zip(work) {
                assert!(a.cached_tokens <= b.cached_tokens + j as u32 + 1 && a.cached_tokens >= b.cached_tokens);
            }
        }
    }
    assert!(windows > 0, "duet announced look-ahead windows");
}

#[test]
fn split_plans_dispatch_decode_before_prefill() {
    let w = workload(300, 4.0);
    let opts = PolicyOptions { tbt_target_ms: Some(40.0), ..Default::default() };
    let out =
        engine::run(&w, build_policy("duet", &opts).as_mut(), &mut SimExecutor::new(cost()), &device_cfg()).unwrap();
    use duet_sim::policy::Lane;
    let mut pairs = 0;
    for pair in out.iterations.windows(2) {
        if pair[0].start == pair[1].start && pair[0].lane != pair[1].lane {
            pairs += 1;
            assert!(pair[1].lane != Lane::Decode, "a prefill batch started before the decode batch of its plan");
        }
    }
    assert!(pairs > 0, "duet started split plans");
}

#[test]
fn the_fake_device_logs_every_look_ahead_window_it_was_announced() {
    let w = workload(300, 4.0);
    let duet = PolicyOptions { tbt_target_ms: Some(40.0), ..Default::default() };
    let mut dev = FakeExecutor::new(SimExecutor::new(cost()));
    realtime::run(&w, build_policy("duet", &duet).as_mut(), &mut dev, &device_cfg()).unwrap();
    assert!(!dev.windows.is_empty(), "duet looks ahead on this load");
    // Each window's first step is an eager step on the window's SMs with its sequences, followed on those SMs by
    // steps - 1 graph steps; no graph step lies outside a window.
    let graphs = dev.log.iter().filter(|l| l.launch == duet_sim::cost::Launch::Graph).count() as u32;
    let announced: u32 = dev.windows.iter().map(|w| w.2 - 1).sum();
    assert_eq!(graphs, announced);
    let mut firsts = dev.log.iter().enumerate().filter(|(i, l)| {
        l.launch == duet_sim::cost::Launch::Eager
            && dev.log[i + 1..]
                .iter()
                .find(|n| n.sms == l.sms)
                .is_some_and(|n| n.launch == duet_sim::cost::Launch::Graph)
    });
    for &(sms, seqs, steps) in &dev.windows {
        assert!(steps > 1);
        let (_, l) = firsts.next().expect("a first step per window");
        assert_eq!((l.sms, l.work.len() as u32), (sms, seqs));
    }
    assert!(firsts.next().is_none());
}
