//! Several GPUs: replicas behind a router, disaggregated prefill/decode with KV transfer, tensor parallelism.

mod common;

use duet_sim::cluster::{ClusterConfig, KvLink, Layout, Router};
use duet_sim::policy::{ChunkedConfig, PolicyConfig};
use duet_sim::{SimConfig, SimRun, report, simulate};
use duet_traces::Workload;

fn config(model: &str, cluster: ClusterConfig) -> SimConfig {
    SimConfig { cluster, ..common::sim_config(model, PolicyConfig::new(ChunkedConfig::default())) }
}

fn disagg(prefill: u32, decode: u32) -> ClusterConfig {
    ClusterConfig { layout: Layout::Disaggregated { prefill, decode }, ..Default::default() }
}

/// 40 requests, one every 50 ms, prompts 1,000-1,390 tokens, 20-59 output tokens.
fn steady() -> Workload {
    let reqs: Vec<(u64, u32, u32)> =
        (0..40u64).map(|i| (i * 50_000_000, 1_000 + 10 * i as u32, 20 + i as u32)).collect();
    common::workload(&reqs)
}

#[test]
fn transfer_bytes_and_time_by_hand() {
    // One request of 1,000 prompt tokens. Qwen3-8B KV: 2 x 36 layers x 8 KV heads x 128 x 2 B = 147,456 B per
    // token -> 147,456,000 B; over 450 GB/s: 327,680 ns, plus 10 us latency = 337,680 ns.
    let w = common::workload(&[(0, 1_000, 8)]);
    let run = simulate(&w, &config("qwen3-8b", disagg(1, 1))).unwrap();
    let t = &run.cluster.as_ref().unwrap().transfers;
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].bytes, 147_456_000);
    assert_eq!((t[0].arrived - t[0].reserved).0, 337_680);
    // Qwen3-14B over TP 2: each GPU sends its half of the KV heads (4 of 8): 1,000 x 2 x 40 x 4 x 128 x 2 B.
    let tp2 = ClusterConfig { tp: 2, ..disagg(1, 1) };
    let run = simulate(&w, &config("qwen3-14b", tp2)).unwrap();
    assert_eq!(run.cluster.unwrap().transfers[0].bytes, 81_920_000);
}

fn check_no_early_decode(run: &SimRun) {
    let c = run.cluster.as_ref().unwrap();
    assert_eq!(c.transfers.len(), run.output.requests.iter().filter(|r| r.output_tokens > 1).count());
    for t in &c.transfers {
        let r = &run.output.requests[t.request as usize];
        assert!(t.prefilled <= t.reserved && t.reserved < t.arrived, "{t:?}");
        // The first token reaches the user when the KV has arrived; the next one is decoded after that.
        assert_eq!(r.first_token, t.arrived, "request {}", r.id);
        assert!(r.finish > t.arrived, "request {} decoded before its KV arrived", r.id);
        assert!(r.first_scheduled < t.prefilled);
    }
}

#[test]
fn no_request_decodes_before_its_kv_has_arrived() {
    let w = steady();
    check_no_early_decode(&simulate(&w, &config("qwen3-8b", disagg(1, 1))).unwrap());
    // A slow link (1 GB/s: ~150 ms per transfer) queues transfers; TTFT includes them.
    let slow = ClusterConfig { link: KvLink::parse("1:100").unwrap(), ..disagg(2, 1) };
    let run = simulate(&w, &config("qwen3-8b", slow)).unwrap();
    check_no_early_decode(&run);
    let transfers = &run.cluster.as_ref().unwrap().transfers;
    for t in transfers {
        // At 1 GB/s a byte takes 1 ns: the transfer alone is 100 us + bytes ns, all inside TTFT.
        let r = &run.output.requests[t.request as usize];
        assert!((r.first_token - r.arrival).0 >= 100_000 + t.bytes);
    }
    assert!(transfers.iter().any(|t| (t.arrived - t.reserved).0 > 100_000 + t.bytes), "transfers queue on a link");
}

#[test]
fn decode_admits_only_with_kv_room_and_the_wait_counts_in_ttft() {
    // The decode instance holds 300 blocks (4,800 tokens): about three requests at a time.
    let w = steady();
    let mut cfg = config("qwen3-8b", disagg(1, 1));
    cfg.kv.total_blocks_override = Some(300);
    let run = simulate(&w, &cfg).unwrap();
    check_no_early_decode(&run);
    let c = run.cluster.as_ref().unwrap();
    assert!(c.transfers.iter().any(|t| t.reserved > t.prefilled), "some request waited for decode KV");
    assert!(c.instances.iter().all(|i| i.peak_kv_utilization <= 1.0));
    assert!(run.output.requests.iter().all(|r| r.tokens_emitted == r.output_tokens));
}

#[test]
fn replicas_share_the_load_and_runs_are_deterministic() {
    let w = steady();
    let rr = ClusterConfig { layout: Layout::Replicas(2), router: Router::RoundRobin, ..Default::default() };
    let run = simulate(&w, &config("qwen3-8b", rr)).unwrap();
    let c = run.cluster.as_ref().unwrap();
    assert_eq!(c.instances.iter().map(|i| i.requests).collect::<Vec<_>>(), vec![20, 20]);
    assert!(run.output.iterations.iter().any(|it| it.instance == 1));
    // Same inputs, same bytes: summary and per-request CSV, for replicas and for disaggregation.
    for cluster in [rr, ClusterConfig { layout: Layout::Replicas(3), ..Default::default() }, disagg(2, 1)] {
        let a = simulate(&w, &config("qwen3-8b", cluster)).unwrap();
        let b = simulate(&w, &config("qwen3-8b", cluster)).unwrap();
        assert_eq!(report::summary_json(&a).to_string(), report::summary_json(&b).to_string());
        assert_eq!(report::requests_csv(&a.output.requests), report::requests_csv(&b.output.requests));
        assert_eq!(a.metrics.completed, 40);
    }
}

#[test]
fn tensor_parallel_shards_memory_and_pays_for_all_reduces() {
    let w = steady();
    let one = simulate(&w, &config("qwen3-14b", ClusterConfig::default())).unwrap();
    let tp2 = simulate(&w, &config("qwen3-14b", ClusterConfig { tp: 2, ..Default::default() })).unwrap();
    // Half the weights and half the KV bytes per token on each GPU: more than twice the KV tokens.
    assert!(tp2.meta.kv_capacity_tokens > 2 * one.meta.kv_capacity_tokens);
    // Decode steps are weight-bound: half the weights per GPU makes them faster despite the all-reduces.
    assert!(tp2.metrics.tpot_ms.median < one.metrics.tpot_ms.median);
    let e = simulate(&w, &config("qwen3-8b", ClusterConfig { tp: 3, ..Default::default() })).unwrap_err();
    assert!(e.to_string().contains("--tp 3 does not divide the 32 attention heads"), "{e}");
}
