//! The prefix cache on the Mooncake conversation trace (`../shared/traces/mooncake/conversation_trace.jsonl`):
//! with a cache that never evicts, the block hit rate equals the trace's block reuse ratio, computed here
//! independently from the JSONL; with the H100's real KV capacity it is lower and blocks are evicted. Skips
//! with a message when `../shared` is not next to the checkout.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use duet_sim::cost::{CostConfig, CostModel};
use duet_sim::engine::{self, EngineConfig, SimOutput};
use duet_sim::executor::SimExecutor;
use duet_sim::kv::KvCapacity;
use duet_sim::policy::{Chunked, ChunkedConfig};
use duet_sim::{GpuSpec, ModelSpec};
use duet_traces::{LoadOptions, TraceData, Workload, load_path};

fn trace() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces/mooncake/conversation_trace.jsonl");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("SKIPPED: {} not found (../shared is not next to this checkout)", p.display());
        None
    }
}

/// (hash blocks, blocks whose hash occurred earlier), read straight from the JSONL.
fn reuse_by_hand(path: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut rows: Vec<(u64, Vec<u64>)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let hashes = v["hash_ids"].as_array().unwrap().iter().map(|h| h.as_u64().unwrap()).collect();
            (v["timestamp"].as_u64().unwrap(), hashes)
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    let mut seen = HashSet::new();
    let (mut total, mut repeated) = (0, 0);
    for (_, hashes) in rows {
        for h in hashes {
            total += 1;
            if !seen.insert(h) {
                repeated += 1;
            }
        }
    }
    (total, repeated)
}

fn run(w: &Workload, blocks: u32) -> SimOutput {
    let model = ModelSpec::resolve("qwen3-8b").unwrap();
    let gpu = GpuSpec::by_name("h100-sxm").unwrap();
    let cost = Arc::new(CostModel::new(model.clone(), gpu.clone(), CostConfig::default()));
    let kv = KvCapacity { total_blocks: blocks, ..KvCapacity::compute(&model, &gpu, &Default::default()).unwrap() };
    let cfg = EngineConfig::new(kv, 132);
    let mut policy = Chunked::new(ChunkedConfig::default());
    engine::run(w, &mut policy, &mut SimExecutor::new(cost), &cfg).unwrap()
}

fn workload(path: &Path) -> Workload {
    match load_path(path, &LoadOptions::default()).unwrap() {
        TraceData::Timed(w) => w,
        TraceData::Lengths(_) => panic!("Mooncake is timed"),
    }
}

#[test]
fn unbounded_cache_hit_rate_equals_the_trace_block_reuse() {
    let Some(path) = trace() else { return };
    let (total, repeated) = reuse_by_hand(&path);
    let out = run(&workload(&path), 20_000_000);
    let p = out.stats.prefix;
    eprintln!(
        "Mooncake conversation: {repeated} of {total} blocks repeat ({:.4}); unbounded cache: {} of {} hit ({:.4})",
        repeated as f64 / total as f64,
        p.hit_blocks,
        p.lookup_blocks,
        p.hit_rate()
    );
    assert!(out.stats.prefix_cache);
    assert_eq!((p.lookup_blocks, p.hit_blocks), (total, repeated));
    assert_eq!(p.evicted_blocks, 0);
    assert!((p.hit_rate() - 0.366).abs() < 0.001, "{}", p.hit_rate());
}

#[test]
fn bounded_cache_hits_less_and_evicts() {
    let Some(path) = trace() else { return };
    let (total, repeated) = reuse_by_hand(&path);
    // The H100's real capacity for Qwen3-8B (24,770 blocks), at the trace's own (overloading) rate.
    let out = run(&workload(&path), 24_770);
    let p = out.stats.prefix;
    eprintln!("bounded cache (24,770 blocks): hit rate {:.4}, {} blocks evicted", p.hit_rate(), p.evicted_blocks);
    assert_eq!(p.lookup_blocks, total);
    assert!(p.hit_blocks < repeated && p.hit_blocks > 0, "{} of {repeated}", p.hit_blocks);
    assert!(p.evicted_blocks > 0);
    assert!(out.stats.peak_kv_blocks <= 24_770);
    assert!(out.requests.iter().all(|r| r.tokens_emitted == r.output_tokens));
}
