//! vLLM V1's scheduling rule and the client in front of the engine (frontend time, closed loop), on hand-sized
//! workloads with a fixed step time.

mod common;

use common::{FixedExecutor, MS, build_policy, engine_cfg, workload};
use duet_sim::Nanos;
use duet_sim::engine::{self, ClientConfig, EngineConfig};
use duet_sim::policy::PolicyOptions;

fn budget(tokens: u32) -> PolicyOptions {
    PolicyOptions { token_budget: Some(tokens), ..PolicyOptions::default() }
}

#[test]
fn a_closed_loop_sends_the_next_request_when_one_finishes() {
    // Three requests at t = 0, 1 at a time, every step 10 ms: prefill (1 token) + 1 decode = 20 ms each.
    let w = workload(&[(0, 16, 2), (0, 16, 2), (0, 16, 2)]);
    let cfg = EngineConfig {
        client: ClientConfig { max_concurrency: Some(1), ..ClientConfig::default() },
        ..engine_cfg(100)
    };
    let mut p = build_policy("vllm", &PolicyOptions::default());
    let out = engine::run(&w, p.as_mut(), &mut FixedExecutor(Nanos(10 * MS)), &cfg).unwrap();
    let r: Vec<(u64, u64, u64)> =
        out.requests.iter().map(|r| (r.arrival.0 / MS, r.first_token.0 / MS, r.finish.0 / MS)).collect();
    // Each request is sent when the previous one finishes; its TTFT counts from then.
    assert_eq!(r, [(0, 10, 20), (20, 30, 40), (40, 50, 60)]);
}

#[test]
fn the_frontend_delays_when_the_engine_sees_requests_not_when_they_arrived() {
    let w = workload(&[(0, 16, 1), (0, 16, 1)]);
    let cfg =
        EngineConfig { client: ClientConfig { frontend_ns: 3 * MS, ..ClientConfig::default() }, ..engine_cfg(100) };
    let mut p = build_policy("vllm", &PolicyOptions::default());
    let out = engine::run(&w, p.as_mut(), &mut FixedExecutor(Nanos(10 * MS)), &cfg).unwrap();
    // Input jobs end at 3 and 6 ms; request 0's hand-off queues behind request 1's input job, so both reach
    // the scheduler at 6 ms and share the first step (6-16 ms). Both arrived at 0.
    let r: Vec<(u64, u64, u64)> =
        out.requests.iter().map(|r| (r.arrival.0 / MS, r.first_scheduled.0 / MS, r.first_token.0 / MS)).collect();
    assert_eq!(r, [(0, 6, 16), (0, 6, 16)]);
}

#[test]
fn tokens_reach_the_client_through_the_frontend_and_a_closed_loop_waits_for_them() {
    // Two requests, one at a time; 1 ms per input job, 2 ms per output token, steps of 10 ms.
    let w = workload(&[(0, 16, 2), (0, 16, 2)]);
    let client = ClientConfig { frontend_ns: MS, output_ns: 2 * MS, max_concurrency: Some(1) };
    let cfg = EngineConfig { client, ..engine_cfg(100) };
    let mut p = build_policy("vllm", &PolicyOptions::default());
    let out = engine::run(&w, p.as_mut(), &mut FixedExecutor(Nanos(10 * MS)), &cfg).unwrap();
    let r: Vec<(u64, u64, u64, u64)> = out
        .requests
        .iter()
        .map(|r| (r.arrival.0 / MS, r.first_scheduled.0 / MS, r.first_token.0 / MS, r.finish.0 / MS))
        .collect();
    // Request 0: engine at 1 ms, tokens made at 11 and 21 ms, delivered at 13 and 23 ms. Request 1 is sent
    // when the client has request 0's last token (23 ms): engine at 24, tokens made at 34 and 44, seen at
    // 36 and 46.
    assert_eq!(r, [(0, 1, 13, 23), (23, 24, 36, 46)]);
    // Client-side gaps: 10 ms each; the run lasts until the last delivery.
    assert_eq!(out.itl_ns.to_vec(), [10 * MS, 10 * MS]);
    assert_eq!(out.requests.iter().map(|r| r.max_tbt.0 / MS).collect::<Vec<_>>(), [10, 10]);
}

#[test]
fn vllm_preempts_a_chunk_that_does_not_fit_where_chunked_shrinks_it() {
    // 10 blocks = 160 tokens. A: 100-token prompt, 20 outputs; B: 100-token prompt. Budget 64.
    // chunked trickles B in with whatever fits; vllm asks B's full next chunk, finds too few blocks and
    // preempts B (the newest), so B waits until A is done and never runs beside A's last decodes.
    let w = workload(&[(0, 100, 20), (0, 100, 4)]);
    let run = |name: &str| {
        let mut p = build_policy(name, &budget(64));
        engine::run(&w, p.as_mut(), &mut FixedExecutor(Nanos(MS)), &engine_cfg(10)).unwrap()
    };
    let (c, v) = (run("chunked"), run("vllm"));
    // Step 1: A 64. Step 2: A 36 + B 28 (one block left free). Step 3: A decodes; chunked gives B the 20
    // tokens that fit in that block, vllm asks for B's 63 and preempts B instead.
    let shape = |o: &engine::SimOutput| -> Vec<(u32, u32)> {
        o.iterations.iter().map(|i| (i.decode_tokens, i.prefill_tokens)).take(3).collect()
    };
    assert_eq!(shape(&c), [(0, 64), (0, 64), (1, 20)]);
    assert_eq!(shape(&v), [(0, 64), (0, 64), (1, 0)]);
    assert_eq!(v.stats.preemptions, 1);
    // B then waits: its next chunk needs 4 blocks, which are free only once A has finished.
    assert!(v.requests[1].first_token > v.requests[0].finish, "{:?}", v.requests);
    for out in [&c, &v] {
        assert!(out.requests.iter().all(|r| r.tokens_emitted == r.output_tokens));
    }
}
