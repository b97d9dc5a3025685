//! Start-up graph capture, the CPU side: the (decode partition, bucket) keys a replay captures before it starts
//! come from the same run on the cost model's clock, and cover every look-ahead window of that run.

use clap::Parser;
use duet_args::SimArgs;
use duet_gpu::lookahead::{bucket_for, graph_buckets};
use duet_gpu::replay::run::{MAX_SEQS, startup_graphs};
use duet_sim::executor::SimExecutor;
use duet_sim::partition::Granularity;
use duet_sim::realtime::FakeExecutor;
use duet_sim::run;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    sim: SimArgs,
}

fn setup(args: &[&str]) -> (duet_traces::Workload, run::SimConfig) {
    let cli = Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied())).unwrap();
    let cfg = run::device_config(duet_args::config(&cli.sim).unwrap());
    let w = duet_args::load_workload(&cli.sim, &cfg).unwrap();
    (w, cfg)
}

#[test]
fn startup_keys_cover_every_window_of_the_predicted_run() {
    // A 40 ms TBT target makes DuetServe split and look ahead on this load (sim/tests/realtime.rs).
    let (w, cfg) = setup(&[
        "--policy",
        "duet",
        "--granularity",
        "green",
        "--tbt-target-ms",
        "40",
        "--rate-scale",
        "4",
        "--num-requests",
        "300",
    ]);
    let keys = startup_graphs(&w, &cfg, run::cost_model(&cfg).unwrap()).unwrap();
    let mut fake = FakeExecutor::new(SimExecutor::new(run::cost_model(&cfg).unwrap()));
    run::run_wall_clock(&w, &cfg, &mut fake).unwrap();
    let windows: Vec<_> = fake.windows.iter().filter(|w| w.2 > 1).collect();
    assert!(!windows.is_empty(), "the run looks ahead");
    let b = graph_buckets(MAX_SEQS);
    for &&(sms, seqs, _) in &windows {
        let bucket = bucket_for(&b, seqs).unwrap();
        assert!(keys.contains(&(sms, bucket)), "window on {sms} SMs with {seqs} sequences has no start-up graph");
        assert!(Granularity::Green.allows(sms, cfg.num_sms) && sms < cfg.num_sms, "{sms} SMs is a decode partition");
    }
    // Far fewer graphs than every decode partition x bucket.
    let all = Granularity::Green.splits(cfg.num_sms).len() * b.len();
    assert!(keys.len() < all / 4, "{} keys of {all}", keys.len());
    println!("{} windows need {} start-up graphs (of {all} partition x bucket pairs)", windows.len(), keys.len());
}

#[test]
fn policies_without_look_ahead_capture_nothing() {
    for policy in [&["--policy", "chunked"][..], &["--policy", "static-split", "--split", "100:32"]] {
        let args: Vec<&str> = policy.iter().copied().chain(["--rate-scale", "4", "--num-requests", "100"]).collect();
        let (w, cfg) = setup(&args);
        assert_eq!(startup_graphs(&w, &cfg, run::cost_model(&cfg).unwrap()).unwrap(), Vec::new(), "{policy:?}");
    }
}
