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
    let cfg = EngineConfig { client: ClientConfig { frontend_ns: 0, max_concurrency: Some(1) }, ..engine_cfg(100) };
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
    let cfg = EngineConfig { client: ClientConfig { frontend_ns: 3 * MS, max_concurrency: None }, ..engine_cfg(100) };
    let mut p = build_policy("vllm", &PolicyOptions::default());
    let out = engine::run(&w, p.as_mut(), &mut FixedExecutor(Nanos(10 * MS)), &cfg).unwrap();
    // Request 0 reaches the scheduler at 3 ms (first token 13 ms); request 1 at 6 ms, runs after the first
    // step (13-23 ms). Both arrived at 0.
    let r: Vec<(u64, u64, u64)> =
        out.requests.iter().map(|r| (r.arrival.0 / MS, r.first_scheduled.0 / MS, r.first_token.0 / MS)).collect();
    assert_eq!(r, [(0, 3, 13), (0, 13, 23)]);
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
