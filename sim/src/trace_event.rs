//! Timelines for people to look at: runs written in the Chrome/Perfetto trace-event format (JSON object form,
//! `{"traceEvents": [...], "displayTimeUnit": "ms"}`), openable in <https://ui.perfetto.dev> or `chrome://tracing`.
//!
//! Layout: one process per source (`simulated`, `measured`), in that order (`pid` 1, 2, ...), each with one
//! thread (track) per SM partition lane: `whole GPU` (`tid` 1), `prefill partition` (2), `decode partition` (3),
//! and `requests` (4). A step is a complete event (`ph: "X"`) with `ts` and `dur` in microseconds, named by its
//! lane and SM count (`decode 32 SMs`), its work in `args`; a request's arrival and first token are instant events
//! (`ph: "i"`, thread scope) on the requests track. Names of processes and threads are metadata events
//! (`ph: "M"`), and `process_sort_index` keeps the sources in order, so predicted and measured steps lie one
//! above the other.

use serde_json::{Value, json};

use crate::engine::RequestRecord;
use crate::policy::{IterationRecord, Lane};

/// One step on a partition lane.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceStep {
    /// Lane (partition) it ran on.
    pub lane: Lane,
    /// SMs of the partition.
    pub sms: u32,
    /// Start, ns on the run's clock.
    pub start_ns: u64,
    /// Duration, ns.
    pub dur_ns: u64,
    /// Sequences in the step.
    pub seqs: u32,
    /// Prefill tokens in the step.
    pub prefill_tokens: u32,
    /// Decode tokens in the step.
    pub decode_tokens: u32,
}

/// A request's arrival and first token, ns on the run's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceRequest {
    /// Request id.
    pub id: u32,
    /// Arrival.
    pub arrival_ns: u64,
    /// First output token, when it came.
    pub first_token_ns: Option<u64>,
}

/// One source of steps and requests (a process in the trace).
#[derive(Debug, Clone, Default)]
pub struct TraceSource {
    /// Process name (`simulated`, `measured`).
    pub name: String,
    /// Steps.
    pub steps: Vec<TraceStep>,
    /// Requests.
    pub requests: Vec<TraceRequest>,
}

impl TraceSource {
    /// A simulated (or replayed) run's steps and requests, from its records.
    pub fn from_run(name: &str, iterations: &[IterationRecord], requests: &[RequestRecord]) -> TraceSource {
        TraceSource {
            name: name.to_string(),
            steps: iterations
                .iter()
                .map(|it| TraceStep {
                    lane: it.lane,
                    sms: it.sms,
                    start_ns: it.start.0,
                    dur_ns: it.end.0.saturating_sub(it.start.0),
                    seqs: it.num_seqs,
                    prefill_tokens: it.prefill_tokens,
                    decode_tokens: it.decode_tokens,
                })
                .collect(),
            requests: requests
                .iter()
                .map(|r| TraceRequest {
                    id: r.id,
                    arrival_ns: r.arrival.0,
                    first_token_ns: (r.tokens_emitted > 0).then_some(r.first_token.0),
                })
                .collect(),
        }
    }
}

/// Track (`tid`) of a lane.
pub fn lane_tid(lane: Lane) -> u32 {
    match lane {
        Lane::Whole => 1,
        Lane::Prefill => 2,
        Lane::Decode => 3,
    }
}

/// Track of the request events.
pub const REQUESTS_TID: u32 = 4;

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// The trace of `sources`, one process each, in order.
pub fn trace(sources: &[TraceSource]) -> Value {
    let mut events = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        let pid = i as u32 + 1;
        events.push(json!({ "ph": "M", "name": "process_name", "pid": pid, "tid": 0, "ts": 0,
                            "args": { "name": src.name } }));
        events.push(json!({ "ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "ts": 0,
                            "args": { "sort_index": pid } }));
        for (tid, name) in [
            (lane_tid(Lane::Whole), "whole GPU"),
            (lane_tid(Lane::Prefill), "prefill partition"),
            (lane_tid(Lane::Decode), "decode partition"),
            (REQUESTS_TID, "requests"),
        ] {
            events.push(json!({ "ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "ts": 0,
                                "args": { "name": name } }));
        }
        for s in &src.steps {
            events.push(json!({
                "ph": "X", "name": format!("{} {} SMs", s.lane.as_str(), s.sms), "cat": s.lane.as_str(),
                "pid": pid, "tid": lane_tid(s.lane), "ts": us(s.start_ns), "dur": us(s.dur_ns),
                "args": { "sms": s.sms, "seqs": s.seqs, "prefill_tokens": s.prefill_tokens,
                          "decode_tokens": s.decode_tokens },
            }));
        }
        for r in &src.requests {
            events.push(json!({ "ph": "i", "s": "t", "name": format!("arrival #{}", r.id), "cat": "request",
                                "pid": pid, "tid": REQUESTS_TID, "ts": us(r.arrival_ns) }));
            if let Some(t) = r.first_token_ns {
                events.push(json!({ "ph": "i", "s": "t", "name": format!("first token #{}", r.id),
                                    "cat": "request", "pid": pid, "tid": REQUESTS_TID, "ts": us(t) }));
            }
        }
    }
    json!({ "traceEvents": events, "displayTimeUnit": "ms" })
}

/// Checks `v` against the trace-event format's required fields: a `traceEvents` array whose every event has a
/// string `ph` and a `name`, numeric `ts` (microseconds), integer `pid` and `tid`; complete events (`X`) a
/// non-negative numeric `dur`; instant events (`i`) a scope `s` of `g`, `p` or `t` if any. Returns the first
/// violation.
pub fn check_trace(v: &Value) -> Result<(), String> {
    let events = v.get("traceEvents").and_then(Value::as_array).ok_or("no traceEvents array")?;
    for (i, e) in events.iter().enumerate() {
        let ph = e.get("ph").and_then(Value::as_str).ok_or(format!("event {i}: no string ph"))?;
        e.get("name").and_then(Value::as_str).ok_or(format!("event {i}: no string name"))?;
        e.get("ts").and_then(Value::as_f64).ok_or(format!("event {i}: no numeric ts"))?;
        for k in ["pid", "tid"] {
            e.get(k).and_then(Value::as_u64).ok_or(format!("event {i}: no integer {k}"))?;
        }
        match ph {
            "X" => {
                let d = e.get("dur").and_then(Value::as_f64).ok_or(format!("event {i}: complete event without dur"))?;
                if d < 0.0 {
                    return Err(format!("event {i}: negative dur {d}"));
                }
            }
            "i" | "I" => {
                if let Some(s) = e.get("s")
                    && !matches!(s.as_str(), Some("g" | "p" | "t"))
                {
                    return Err(format!("event {i}: instant scope {s} is not g, p or t"));
                }
            }
            "M" => {}
            other => return Err(format!("event {i}: phase {other:?} is not one this writer uses (X, i, M)")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str) -> TraceSource {
        TraceSource {
            name: name.into(),
            steps: vec![
                TraceStep {
                    lane: Lane::Prefill,
                    sms: 100,
                    start_ns: 1_500,
                    dur_ns: 2_000_000,
                    seqs: 1,
                    prefill_tokens: 512,
                    decode_tokens: 0,
                },
                TraceStep {
                    lane: Lane::Decode,
                    sms: 32,
                    start_ns: 2_000,
                    dur_ns: 7_000_000,
                    seqs: 4,
                    prefill_tokens: 0,
                    decode_tokens: 4,
                },
            ],
            requests: vec![
                TraceRequest { id: 7, arrival_ns: 0, first_token_ns: Some(2_001_500) },
                TraceRequest { id: 8, arrival_ns: 10, first_token_ns: None },
            ],
        }
    }

    #[test]
    fn steps_are_complete_events_in_microseconds_on_their_partition_track() {
        let v = trace(&[source("simulated"), source("measured")]);
        check_trace(&v).unwrap();
        let ev = v["traceEvents"].as_array().unwrap();
        let x: Vec<&Value> = ev.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(x.len(), 4);
        assert_eq!(x[0]["name"], "prefill 100 SMs");
        assert_eq!((x[0]["ts"].as_f64(), x[0]["dur"].as_f64()), (Some(1.5), Some(2000.0)));
        assert_eq!((x[0]["pid"].as_u64(), x[0]["tid"].as_u64()), (Some(1), Some(2)));
        assert_eq!((x[3]["pid"].as_u64(), x[3]["tid"].as_u64()), (Some(2), Some(3)));
        // Arrivals for both requests, a first token only for the one that got it.
        let inst: Vec<&str> =
            ev.iter().filter(|e| e["ph"] == "i" && e["pid"] == 1).map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(inst, ["arrival #7", "first token #7", "arrival #8"]);
        let names: Vec<&str> = ev
            .iter()
            .filter(|e| e["ph"] == "M" && e["name"] == "thread_name" && e["pid"] == 2)
            .map(|e| e["args"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["whole GPU", "prefill partition", "decode partition", "requests"]);
    }

    #[test]
    fn the_check_names_what_is_missing() {
        assert!(check_trace(&json!({})).unwrap_err().contains("traceEvents"));
        let e = |ev: Value| check_trace(&json!({ "traceEvents": [ev] })).unwrap_err();
        assert!(e(json!({"name": "a", "ts": 0, "pid": 1, "tid": 1})).contains("ph"));
        assert!(e(json!({"ph": "X", "name": "a", "pid": 1, "tid": 1})).contains("ts"));
        assert!(e(json!({"ph": "X", "name": "a", "ts": 1.5, "tid": 1})).contains("pid"));
        assert!(e(json!({"ph": "X", "name": "a", "ts": 1.5, "pid": 1, "tid": 1})).contains("dur"));
        assert!(e(json!({"ph": "X", "name": "a", "ts": 1.5, "pid": 1, "tid": 1, "dur": -1})).contains("negative"));
        assert!(e(json!({"ph": "i", "s": "x", "name": "a", "ts": 1, "pid": 1, "tid": 1})).contains("scope"));
    }
}
