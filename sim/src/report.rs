//! Writes a run's results: `summary.json` (vLLM's key names plus duet's), `requests.csv`, and a short table.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::cluster::{ClusterConfig, Layout};
use crate::engine::{DecisionRecord, RequestRecord};
use crate::metrics::{self, stats::Dist};
use crate::run::SimRun;

/// The `summary.json` object: vLLM `bench serve` keys (`completed`, `duration`, `request_throughput`,
/// `mean_ttft_ms`, `p99_itl_ms`, ...) followed by duet's (`*_tbt_ms`, `*_queue_ms`, `slo_attainment`, run
/// parameters). Key order is fixed, so equal runs give identical bytes.
pub fn summary_json(run: &SimRun) -> Value {
    let m = &run.metrics;
    let mut o = Map::new();
    let mut put = |k: &str, v: Value| {
        o.insert(k.to_string(), v);
    };
    put("completed", json!(m.completed));
    put("failed", json!(run.output.requests.len() - m.completed));
    put("duration", json!(m.duration));
    put("total_input_tokens", json!(m.total_input_tokens));
    put("total_output_tokens", json!(m.total_output_tokens));
    put("request_throughput", json!(m.request_throughput));
    put("request_goodput", json!(m.request_goodput));
    put("output_throughput", json!(m.output_throughput));
    put("total_token_throughput", json!(m.total_token_throughput));
    let mut dist = |name: &str, d: &Dist, with_p90_std: bool| {
        put(&format!("mean_{name}_ms"), json!(d.mean));
        put(&format!("median_{name}_ms"), json!(d.median));
        if with_p90_std {
            put(&format!("std_{name}_ms"), json!(d.std));
            put(&format!("p90_{name}_ms"), json!(d.p90));
        }
        put(&format!("p99_{name}_ms"), json!(d.p99));
    };
    dist("ttft", &m.ttft_ms, true);
    dist("tpot", &m.tpot_ms, true);
    dist("itl", &m.itl_ms, true);
    dist("e2el", &m.e2el_ms, true);
    dist("tbt", &m.tbt_ms, true);
    dist("queue", &m.queue_ms, false);
    let meta = &run.meta;
    let s = &run.output.stats;
    put("slo_attainment", json!(m.slo_attainment));
    put("slo_ttft_ms", json!(meta.slo.ttft_ms));
    put("slo_tbt_ms", json!(meta.slo.tbt_ms));
    put("slo_tpot_ms", json!(meta.slo.tpot_ms));
    put("preemptions", json!(s.preemptions));
    put("iterations", json!(run.output.stats.iterations));
    put("kv_capacity_tokens", json!(meta.kv_capacity_tokens));
    put("peak_kv_utilization", json!(f64::from(s.peak_kv_blocks) / f64::from(s.total_kv_blocks.max(1))));
    // Prefix cache: block hit rate (hit hash blocks / hash blocks), token hit rate (prompt tokens served from
    // the cache / prompt tokens), both at first admission; null without a cache.
    let cache = s.prefix_cache.then_some(&s.prefix);
    put("prefix_cache", json!(s.prefix_cache));
    put("prefix_cache_hit_rate", json!(cache.map(|p| p.hit_rate())));
    put("prefix_cache_token_hit_rate", json!(cache.map(|p| p.token_hit_rate())));
    put("prefix_cache_hit_blocks", json!(cache.map(|p| p.hit_blocks)));
    put("prefix_cache_lookup_blocks", json!(cache.map(|p| p.lookup_blocks)));
    // Hits and lookups count the trace's hash blocks (Mooncake: 512 tokens); evictions free KV blocks (16 tokens).
    put("prefix_cache_evicted_kv_blocks", json!(cache.map(|p| p.evicted_blocks)));
    put("policy", json!(meta.policy));
    put("token_budget", json!(meta.token_budget));
    put("granularity", json!(meta.granularity.to_string()));
    put("profile", json!(meta.profile));
    put("split_decisions", json!(s.decisions.split));
    put("peak_sms_in_use", json!(s.peak_sms));
    cluster_keys(run, &mut put);
    put("model", json!(meta.model));
    put("gpu", json!(meta.gpu));
    put("num_sms", json!(meta.num_sms));
    put("trace", json!(meta.trace));
    put("trace_notes", json!(meta.trace_notes));
    put("num_requests", json!(run.output.requests.len()));
    put("seed", json!(meta.seed));
    put("duet_version", json!(env!("CARGO_PKG_VERSION")));
    Value::Object(o)
}

/// Cluster keys: layout, GPUs, routing, KV transfers (time from the end of prefill to KV reservation on the
/// decode instance, `kv_wait`, and from reservation to arrival, `kv_transfer`), and one object per instance.
fn cluster_keys(run: &SimRun, put: &mut dyn FnMut(&str, Value)) {
    let c = run.cluster.as_ref().map(|c| c.config).unwrap_or(ClusterConfig { tp: run.meta.tp, ..Default::default() });
    put("layout", json!(c.layout.label()));
    put("instances", json!(c.layout.instances()));
    put("tp", json!(c.tp));
    put("gpus", json!(c.gpus_needed()));
    let Some(report) = &run.cluster else {
        for k in ["router", "kv_link", "mean_kv_wait_ms", "p99_kv_wait_ms", "mean_kv_transfer_ms", "p99_kv_transfer_ms"]
        {
            put(k, Value::Null);
        }
        put("instance_stats", Value::Null);
        return;
    };
    put("router", json!(c.router.as_str()));
    let disagg = matches!(c.layout, Layout::Disaggregated { .. });
    put("kv_link", if disagg { json!(c.link.to_string()) } else { Value::Null });
    let t = &report.transfers;
    let to_ms = |ns: u64| ns as f64 / 1e6;
    let wait = Dist::of(&mut t.iter().map(|x| to_ms((x.reserved - x.prefilled).0)).collect::<Vec<_>>());
    let moved = Dist::of(&mut t.iter().map(|x| to_ms((x.arrived - x.reserved).0)).collect::<Vec<_>>());
    let some = |v: f64| if disagg && !t.is_empty() { json!(v) } else { Value::Null };
    put("mean_kv_wait_ms", some(wait.mean));
    put("p99_kv_wait_ms", some(wait.p99));
    put("mean_kv_transfer_ms", some(moved.mean));
    put("p99_kv_transfer_ms", some(moved.p99));
    let inst: Vec<Value> = report
        .instances
        .iter()
        .map(|i| {
            json!({
                "index": i.index,
                "role": i.role.as_str(),
                "requests": i.requests,
                "busy_fraction": i.busy_fraction,
                "peak_kv_utilization": i.peak_kv_utilization,
                "iterations": i.iterations,
                "prefill_tokens": i.prefill_tokens,
                "decode_tokens": i.decode_tokens,
                "preemptions": i.preemptions,
                "prefix_cache_hit_rate": i.prefix_hit_rate,
            })
        })
        .collect();
    put("instance_stats", Value::Array(inst));
}

/// Formats integer nanoseconds as milliseconds with all 6 decimals (exact).
fn ms(ns: u64) -> String {
    format!("{}.{:06}", ns / 1_000_000, ns % 1_000_000)
}

/// `requests.csv`: one row per request, times in ms.
pub fn requests_csv(records: &[RequestRecord]) -> String {
    rows_to_string(REQUESTS_HEADER, records, request_row)
}

const REQUESTS_HEADER: &str =
    "id,arrival_ms,input_tokens,output_tokens,queue_ms,ttft_ms,e2el_ms,tpot_ms,max_tbt_ms,preemptions\n";

fn request_row(s: &mut String, r: &RequestRecord) {
    let tpot = metrics::tpot_ms(r).map_or(String::new(), |v| format!("{v:.6}"));
    let tbt = if r.output_tokens > 1 { ms(r.max_tbt.0) } else { String::new() };
    let _ = writeln!(
        s,
        "{},{},{},{},{},{},{},{tpot},{tbt},{}",
        r.id,
        ms(r.arrival.0),
        r.input_tokens,
        r.output_tokens,
        ms((r.first_scheduled - r.arrival).0),
        ms((r.first_token - r.arrival).0),
        ms((r.finish - r.arrival).0),
        r.preemptions
    );
}

/// A CSV of `records` as one string: `header`, then `row` for each record.
fn rows_to_string<T>(header: &str, records: &[T], row: fn(&mut String, &T)) -> String {
    let mut s = String::from(header);
    for r in records {
        row(&mut s, r);
    }
    s
}

/// The same bytes as [`rows_to_string`], streamed to `path` a megabyte at a time (a run's CSVs can be hundreds of
/// megabytes; holding each whole in memory doubled the peak of long runs).
fn write_rows<T>(path: &Path, header: &str, records: &[T], row: fn(&mut String, &T)) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut s = String::from(header);
    for r in records {
        row(&mut s, r);
        if s.len() >= 1 << 20 {
            f.write_all(s.as_bytes())?;
            s.clear();
        }
    }
    f.write_all(s.as_bytes())?;
    f.flush()
}

/// `decisions.csv`: one row per policy decision: time, mode, SM split, look-ahead, predicted and simulated
/// times (ms; empty where the decision started no such batch).
pub fn decisions_csv(records: &[DecisionRecord]) -> String {
    rows_to_string(DECISIONS_HEADER, records, decision_row)
}

const DECISIONS_HEADER: &str = "time_ms,mode,prefill_sms,decode_sms,lookahead,predicted_mixed_ms,predicted_prefill_ms,predicted_decode_step_ms,\
     simulated_whole_ms,simulated_prefill_ms,simulated_decode_window_ms\n";

fn decision_row(s: &mut String, r: &DecisionRecord) {
    let opt = |v: Option<u64>| v.map_or(String::new(), ms);
    let nz = |v: u64| if v == 0 { String::new() } else { ms(v) };
    let d = &r.decision;
    let _ = writeln!(
        s,
        "{},{},{},{},{},{},{},{},{},{},{}",
        ms(r.at.0),
        d.mode.as_str(),
        d.prefill_sms,
        d.decode_sms,
        d.lookahead,
        nz(d.predicted_mixed_ns),
        nz(d.predicted_prefill_ns),
        nz(d.predicted_decode_step_ns),
        opt(r.whole_ns),
        opt(r.prefill_ns),
        opt(r.decode_window_ns)
    );
}

/// `iterations.csv`: one row per executed step (or layer group of a segmented prefill): lane, SMs, start and end
/// (ms, exact to the ns), sequences, prefill tokens and decode tokens.
pub fn iterations_csv(records: &[crate::engine::IterationRecord]) -> String {
    rows_to_string(ITERATIONS_HEADER, records, iteration_row)
}

const ITERATIONS_HEADER: &str = "lane,sms,start_ms,end_ms,num_seqs,prefill_tokens,decode_tokens,instance\n";

fn iteration_row(s: &mut String, r: &crate::engine::IterationRecord) {
    let lane = r.lane.as_str();
    let _ = writeln!(
        s,
        "{lane},{},{},{},{},{},{},{}",
        r.sms,
        ms(r.start.0),
        ms(r.end.0),
        r.num_seqs,
        r.prefill_tokens,
        r.decode_tokens,
        r.instance
    );
}

/// `iterations.csv` at `path` written as a run goes: the header now, then the rows of every batch of records the
/// sink is handed ([`crate::run::simulate_streaming`]); the same bytes as [`iterations_csv`] of all of them.
pub fn iterations_csv_sink(path: &Path) -> std::io::Result<crate::engine::IterationSink> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(ITERATIONS_HEADER.as_bytes())?;
    Ok(Box::new(move |records| {
        let mut s = String::with_capacity(64 * records.len());
        for r in records {
            iteration_row(&mut s, r);
        }
        f.write_all(s.as_bytes())?;
        f.flush()
    }))
}

/// Writes `summary.json`, `requests.csv`, `decisions.csv` and `iterations.csv` into `dir` (created if missing).
pub fn write_dir(run: &SimRun, dir: &Path) -> std::io::Result<()> {
    write_dir_with(run, dir, true)
}

/// [`write_dir`] without `iterations.csv` when `iterations` is false (a run that streamed it already).
pub fn write_dir_with(run: &SimRun, dir: &Path, iterations: bool) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut text = serde_json::to_string_pretty(&summary_json(run)).expect("JSON values serialise");
    text.push('\n');
    std::fs::write(dir.join("summary.json"), text)?;
    write_rows(&dir.join("requests.csv"), REQUESTS_HEADER, &run.output.requests, request_row)?;
    write_rows(&dir.join("decisions.csv"), DECISIONS_HEADER, &run.output.decisions, decision_row)?;
    if iterations {
        write_rows(&dir.join("iterations.csv"), ITERATIONS_HEADER, &run.output.iterations, iteration_row)?;
    }
    if let Some(c) = run.cluster.as_ref().filter(|c| !c.transfers.is_empty()) {
        std::fs::write(dir.join("transfers.csv"), transfers_csv(&c.transfers))?;
    }
    Ok(())
}

/// `transfers.csv` (disaggregation): one row per KV transfer, times in ms after the first arrival.
pub fn transfers_csv(records: &[crate::cluster::TransferRecord]) -> String {
    let mut s = String::from("id,from_instance,to_instance,prefilled_ms,reserved_ms,arrived_ms,bytes_per_gpu\n");
    for t in records {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{}",
            t.request,
            t.from,
            t.to,
            ms(t.prefilled.0),
            ms(t.reserved.0),
            ms(t.arrived.0),
            t.bytes
        );
    }
    s
}

/// Notes on a run that the numbers alone would hide: preemption thrash, when the KV discarded by preemptions
/// (recompute mode: computed again after readmission) exceeds twice the prompt tokens of the whole trace, naming the
/// most-preempted requests. The engine keeps its rule (another issue calibrates it); the note says what it cost.
pub fn run_notes(run: &SimRun) -> Vec<String> {
    let mut notes = Vec::new();
    let s = &run.output.stats;
    let prompt: u64 = run.output.requests.iter().map(|r| u64::from(r.input_tokens)).sum();
    if s.preemptions > 0 && s.recomputed_tokens > 2 * prompt {
        let mut worst: Vec<&crate::engine::RequestRecord> =
            run.output.requests.iter().filter(|r| r.preemptions > 0).collect();
        worst.sort_by(|a, b| b.preemptions.cmp(&a.preemptions).then(a.id.cmp(&b.id)));
        let names: Vec<String> = worst
            .iter()
            .take(3)
            .map(|r| format!("#{} ({} times, {} prompt tokens)", r.id, r.preemptions, r.input_tokens))
            .collect();
        notes.push(format!(
            "preemption thrash: {} preemptions discarded {} KV tokens to recompute, {:.1}x the trace's {} prompt \
             tokens; most preempted: {}. A larger KV cache or a smaller --max-num-seqs avoids it",
            s.preemptions,
            s.recomputed_tokens,
            s.recomputed_tokens as f64 / prompt.max(1) as f64,
            prompt,
            names.join(", ")
        ));
    }
    notes
}

/// A short human-readable table of the main results.
pub fn table(run: &SimRun) -> String {
    let m = &run.metrics;
    let meta = &run.meta;
    let mut s = String::new();
    let _ = writeln!(s, "{:=^68}", " duet sim ");
    let _ = writeln!(s, "{:<34}{}", "Trace:", meta.trace);
    let _ = writeln!(
        s,
        "{:<34}{} on {} ({} SMs, profile {})",
        "Model / GPU:", meta.model, meta.gpu, meta.num_sms, meta.profile
    );
    let _ = writeln!(s, "{:<34}{} (token budget {})", "Policy:", meta.policy, meta.token_budget);
    if let Some(c) = &run.cluster {
        let cc = &c.config;
        let link = match cc.layout {
            Layout::Disaggregated { .. } => format!(", KV link {}", cc.link),
            Layout::Replicas(_) => String::new(),
        };
        let _ = writeln!(
            s,
            "{:<34}{} x TP {} = {} GPUs, router {}{link}",
            "Cluster:",
            cc.layout.label(),
            cc.tp,
            cc.gpus_needed(),
            cc.router.as_str()
        );
        let busy: Vec<String> = c
            .instances
            .iter()
            .map(|i| format!("{}{} {:.0}%", &i.role.as_str()[..1], i.index, i.busy_fraction * 100.0))
            .collect();
        let _ = writeln!(s, "{:<34}{}", "Instance busy time:", busy.join(", "));
    } else if run.meta.tp > 1 {
        let _ = writeln!(s, "{:<34}1 instance x TP {}", "Cluster:", run.meta.tp);
    }
    if run.output.stats.prefix_cache {
        let p = &run.output.stats.prefix;
        let _ = writeln!(
            s,
            "{:<34}{:.1}% of hash blocks, {:.1}% of prompt tokens ({} KV blocks evicted)",
            "Prefix cache hits:",
            p.hit_rate() * 100.0,
            p.token_hit_rate() * 100.0,
            p.evicted_blocks
        );
    }
    // A real choice: a decision with both prefill and decode work (decode-only steps have nothing to split).
    let counts = run.output.stats.decisions;
    let (splits, choices) = (counts.split, counts.with_both);
    if counts.total > 0 {
        let _ = writeln!(
            s,
            "{:<34}{} of {} decisions split the GPU ({} of the {} with both prefill and decode work; {} granularity)",
            "Partitioning:",
            splits,
            counts.total,
            if choices > 0 { format!("{:.0}%", 100.0 * splits as f64 / choices as f64) } else { "none".into() },
            choices,
            meta.granularity
        );
    }
    let _ = writeln!(s, "{:<34}{}", "Completed requests:", m.completed);
    let _ = writeln!(s, "{:<34}{:.2}", "Duration (s):", m.duration);
    let _ = writeln!(s, "{:<34}{:.2}", "Request throughput (req/s):", m.request_throughput);
    let _ = writeln!(s, "{:<34}{:.1}", "Output token throughput (tok/s):", m.output_throughput);
    let _ = writeln!(s, "{:<34}{:.1}", "Total token throughput (tok/s):", m.total_token_throughput);
    if let (Some(g), Some(a)) = (m.request_goodput, m.slo_attainment) {
        let _ = writeln!(s, "{:<34}{:.2} ({:.1}% of requests meet the SLO)", "Request goodput (req/s):", g, a * 100.0);
    }
    let _ = writeln!(s, "{:<20}{:>12}{:>12}{:>12}{:>12}", "Latency (ms)", "mean", "median", "p90", "p99");
    for (name, d) in [
        ("TTFT", &m.ttft_ms),
        ("TPOT", &m.tpot_ms),
        ("ITL", &m.itl_ms),
        ("TBT (max/request)", &m.tbt_ms),
        ("E2EL", &m.e2el_ms),
        ("Queueing", &m.queue_ms),
    ] {
        let _ = writeln!(s, "{name:<20}{:>12.2}{:>12.2}{:>12.2}{:>12.2}", d.mean, d.median, d.p90, d.p99);
    }
    let st = &run.output.stats;
    let _ = writeln!(
        s,
        "{:<34}{} iterations, {} preemptions, peak KV {:.1}%",
        "Engine:",
        run.output.stats.iterations,
        st.preemptions,
        100.0 * f64::from(st.peak_kv_blocks) / f64::from(st.total_kv_blocks.max(1))
    );
    let _ = write!(s, "{:=<68}", "");
    s
}
