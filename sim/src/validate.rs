//! Checking the simulator against a run on a device (`duet validate`).
//!
//! A device run (`duet-gpu replay`, or any [`crate::realtime`] run) writes `steps.csv`: one row per executed step
//! with its lane, SMs, launch kind (eager or CUDA-graph look-ahead step), the number of layer groups it is one of
//! (1 for a whole step; `n` for a layer group of muxwise's segmented prefill), the exact work of every sequence
//! and the measured time. Two comparisons follow:
//!
//! - **per step**: the cost model's prediction for the same work on the same SMs (divided by the layer groups,
//!   as the simulator divides it) against the measured time,
//!   `error = (predicted - measured) / measured`; median, p90 and max of `|error|` overall and per kind
//!   (`whole`, `prefill`, `decode`, `decode-graph`), and the mean signed error (bias);
//! - **per run**: the simulator's `summary.json` for the same trace window, model and policy against the device
//!   run's, for TTFT, ITL and TBT (mean, median, P99) and throughput, `relative error = (sim - device) / device`.
//!
//! The work of a step is written as `new+cached` per sequence, `*` when the sequence emits a token, separated by
//! `;` (e.g. `512+0*;1+300*`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::cost::{CostModel, Launch, SeqWork};
use crate::engine::IterationRecord;
use crate::error::ConfigError;
use crate::executor::StepCall;
use crate::policy::Lane;

/// Header of `steps.csv`.
pub const STEPS_HEADER: &str =
    "step,lane,sms,launch,num_seqs,prefill_tokens,decode_tokens,start_ns,measured_ns,layer_groups,work";

/// One executed step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// Lane.
    pub lane: Lane,
    /// SMs it ran on.
    pub sms: u32,
    /// Eager launch or a CUDA-graph look-ahead step.
    pub launch: Launch,
    /// Start on the run's clock, ns.
    pub start_ns: u64,
    /// Measured time, ns.
    pub measured_ns: u64,
    /// 1 for a whole step; `n` for one of the `n` layer groups of a segmented step.
    pub layer_groups: u32,
    /// Every sequence's work.
    pub work: Vec<SeqWork>,
}

impl StepRecord {
    /// (prefill tokens, decode tokens): one-token items count as decode, longer ones as prefill chunks.
    pub fn token_counts(&self) -> (u32, u32) {
        let prefill = self.work.iter().filter(|w| w.new_tokens > 1).map(|w| w.new_tokens).sum();
        let decode = self.work.iter().filter(|w| w.new_tokens == 1).count() as u32;
        (prefill, decode)
    }
}

/// Kind of a step in the reports: its lane, and `decode-graph` for a look-ahead step replayed from a graph.
pub fn step_kind(s: &StepRecord) -> &'static str {
    match (s.lane, s.launch) {
        (Lane::Decode, Launch::Graph) => "decode-graph",
        (l, _) => l.as_str(),
    }
}

/// `new+cached[*]` per sequence, `;`-separated.
pub fn format_work(work: &[SeqWork]) -> String {
    let mut s = String::new();
    for (i, w) in work.iter().enumerate() {
        let sep = if i == 0 { "" } else { ";" };
        let _ = write!(s, "{sep}{}+{}{}", w.new_tokens, w.cached_tokens, if w.emits_token { "*" } else { "" });
    }
    s
}

/// Parses [`format_work`]'s text.
pub fn parse_work(s: &str) -> Result<Vec<SeqWork>, String> {
    s.split(';')
        .map(|item| {
            let (body, emits) = match item.strip_suffix('*') {
                Some(b) => (b, true),
                None => (item, false),
            };
            let (n, c) = body.split_once('+').ok_or_else(|| format!("{item:?} is not new+cached"))?;
            let new_tokens = n.parse().map_err(|_| format!("{item:?}: bad new-token count"))?;
            let cached_tokens = c.parse().map_err(|_| format!("{item:?}: bad cached-token count"))?;
            if new_tokens == 0 {
                return Err(format!("{item:?}: a sequence processes at least one token"));
            }
            Ok(SeqWork { new_tokens, cached_tokens, emits_token: emits })
        })
        .collect()
}

/// `steps.csv` text.
pub fn steps_csv(steps: &[StepRecord]) -> String {
    let mut s = format!("{STEPS_HEADER}\n");
    for (i, st) in steps.iter().enumerate() {
        let (prefill, decode) = st.token_counts();
        let launch = match st.launch {
            Launch::Eager => "eager",
            Launch::Graph => "graph",
        };
        let _ = writeln!(
            s,
            "{i},{},{},{launch},{},{prefill},{decode},{},{},{},{}",
            st.lane.as_str(),
            st.sms,
            st.work.len(),
            st.start_ns,
            st.measured_ns,
            st.layer_groups,
            format_work(&st.work)
        );
    }
    s
}

/// Reads `steps.csv`; errors name the file and line.
pub fn read_steps(path: &Path) -> Result<Vec<StepRecord>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
    let bad = |line: usize, why: String| ConfigError::Invalid(format!("{}:{line}: {why}", path.display()));
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(STEPS_HEADER) {
        return Err(bad(1, format!("expected the header {STEPS_HEADER:?}")));
    }
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.splitn(11, ',').collect();
        if f.len() != 11 {
            return Err(bad(n, format!("expected 11 fields, found {}", f.len())));
        }
        let lane = match f[1] {
            "whole" => Lane::Whole,
            "prefill" => Lane::Prefill,
            "decode" => Lane::Decode,
            other => return Err(bad(n, format!("unknown lane {other:?}"))),
        };
        let launch = match f[3] {
            "eager" => Launch::Eager,
            "graph" => Launch::Graph,
            other => return Err(bad(n, format!("unknown launch {other:?}"))),
        };
        let num =
            |j: usize, what: &str| f[j].parse::<u64>().map_err(|_| bad(n, format!("{what}: expected an integer")));
        let sms = num(2, "sms")? as u32;
        let measured_ns = num(8, "measured_ns")?;
        if sms == 0 || measured_ns == 0 {
            return Err(bad(n, "sms and measured_ns must be positive".into()));
        }
        let layer_groups = num(9, "layer_groups")? as u32;
        if layer_groups == 0 {
            return Err(bad(n, "layer_groups must be positive".into()));
        }
        let work = parse_work(f[10]).map_err(|e| bad(n, e))?;
        if work.len() as u64 != num(4, "num_seqs")? {
            return Err(bad(n, "num_seqs does not match the work".into()));
        }
        out.push(StepRecord { lane, sms, launch, start_ns: num(7, "start_ns")?, measured_ns, layer_groups, work });
    }
    Ok(out)
}

/// Steps of a device run: its iterations (in start order) paired with the calls the executor was given for each,
/// measured time = end - start.
pub fn steps_from_run(iterations: &[IterationRecord], log: &[StepCall]) -> Vec<StepRecord> {
    iterations
        .iter()
        .zip(log)
        .map(|(it, c)| StepRecord {
            lane: it.lane,
            sms: c.sms,
            launch: c.launch,
            start_ns: it.start.0,
            measured_ns: (it.end - it.start).0.max(1),
            layer_groups: c.layer_groups,
            work: c.work.clone(),
        })
        .collect()
}

/// Share of the decode lane's span (first decode step's start to the last one's end) during which no decode step
/// ran: the GPU idle time between decode steps that look-ahead is meant to remove. `None` without decode steps.
pub fn decode_idle_fraction(iterations: &[IterationRecord]) -> Option<f64> {
    let mut d: Vec<(u64, u64)> =
        iterations.iter().filter(|i| i.lane == Lane::Decode).map(|i| (i.start.0, i.end.0)).collect();
    if d.is_empty() {
        return None;
    }
    d.sort_unstable();
    let (first, mut covered_to, mut busy) = (d[0].0, d[0].0, 0u64);
    for &(s, e) in &d {
        let s = s.max(covered_to);
        if e > s {
            busy += e - s;
            covered_to = e;
        }
    }
    let span = covered_to - first;
    Some(if span == 0 { 0.0 } else { 1.0 - busy as f64 / span as f64 })
}

pub use crate::compare::ErrorStats;

/// Per-step comparison.
#[derive(Debug, Clone, Serialize)]
pub struct StepComparison {
    /// All steps.
    pub overall: ErrorStats,
    /// Per kind: `whole`, `prefill`, `decode`, `decode-graph`.
    pub by_kind: BTreeMap<String, ErrorStats>,
    /// Each step's (measured, predicted) ns, in order.
    pub pairs: Vec<(f64, f64)>,
}

/// The cost model's prediction for every step against its measured time.
pub fn compare_steps(steps: &[StepRecord], cost: &CostModel) -> StepComparison {
    let mut kinds: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut pairs = Vec::with_capacity(steps.len());
    for s in steps {
        let predicted = cost.iteration_launched(s.sms, &s.work, s.launch).total.0 as f64 / f64::from(s.layer_groups);
        let pair = (s.measured_ns as f64, predicted);
        kinds.entry(step_kind(s).to_string()).or_default().push(pair);
        pairs.push(pair);
    }
    StepComparison {
        overall: ErrorStats::of_pairs(&pairs),
        by_kind: kinds.iter().map(|(k, v)| (k.clone(), ErrorStats::of_pairs(v))).collect(),
        pairs,
    }
}

/// `summary.json` keys compared between the simulator and the device run.
pub const METRIC_KEYS: [&str; 11] = [
    "mean_ttft_ms",
    "median_ttft_ms",
    "p99_ttft_ms",
    "mean_itl_ms",
    "median_itl_ms",
    "p99_itl_ms",
    "mean_tbt_ms",
    "median_tbt_ms",
    "p99_tbt_ms",
    "request_throughput",
    "output_throughput",
];

/// One run-level metric, simulated and measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricComparison {
    /// `summary.json` key.
    pub key: String,
    /// Simulator's value.
    pub simulated: f64,
    /// Device run's value.
    pub measured: f64,
    /// `(simulated - measured) / measured` (NaN when the measured value is 0).
    pub rel_err: f64,
}

/// [`METRIC_KEYS`] of two `summary.json` objects; a key missing from either is an error.
pub fn compare_summaries(simulated: &Value, measured: &Value) -> Result<Vec<MetricComparison>, ConfigError> {
    METRIC_KEYS
        .iter()
        .map(|&key| {
            let get = |v: &Value, which: &str| {
                v.get(key)
                    .and_then(Value::as_f64)
                    .ok_or_else(|| ConfigError::Invalid(format!("the {which} summary.json has no number {key:?}")))
            };
            let (s, m) = (get(simulated, "simulated")?, get(measured, "measured")?);
            Ok(MetricComparison { key: key.into(), simulated: s, measured: m, rel_err: (s - m) / m })
        })
        .collect()
}

/// The validation report as Markdown.
pub fn table(steps: &StepComparison, metrics: &[MetricComparison]) -> String {
    let mut s = String::from("| steps | count | median abs err % | p90 abs err % | max abs err % | bias % |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|\n");
    let row = |s: &mut String, name: &str, e: &ErrorStats| {
        let _ = writeln!(
            s,
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {:+.1} |",
            e.count, e.median_abs_pct, e.p90_abs_pct, e.max_abs_pct, e.mean_signed_pct
        );
    };
    row(&mut s, "all", &steps.overall);
    for (k, e) in &steps.by_kind {
        row(&mut s, k, e);
    }
    s.push_str("\n| metric | simulated | measured | rel. error % |\n|---|---:|---:|---:|\n");
    for m in metrics {
        let _ = writeln!(s, "| {} | {:.3} | {:.3} | {:+.1} |", m.key, m.simulated, m.measured, 100.0 * m.rel_err);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Nanos;

    #[test]
    fn steps_round_trip_and_a_layer_group_is_predicted_as_its_share() {
        let cost = CostModel::new(
            crate::ModelSpec::resolve("qwen3-8b").unwrap(),
            crate::GpuSpec::by_name("h100-sxm").unwrap(),
            Default::default(),
        );
        let work = vec![SeqWork { new_tokens: 2048, cached_tokens: 0, emits_token: true }];
        let whole = cost.iteration_launched(100, &work, Launch::Eager).total.0;
        let step = |layer_groups: u32| StepRecord {
            lane: Lane::Prefill,
            sms: 100,
            launch: Launch::Eager,
            start_ns: 7,
            measured_ns: whole / 4,
            layer_groups,
            work: work.clone(),
        };
        let steps = vec![step(1), step(4)];
        let dir = std::env::temp_dir().join(format!("duet-steps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("steps.csv");
        std::fs::write(&path, steps_csv(&steps)).unwrap();
        assert_eq!(read_steps(&path).unwrap(), steps);
        // A quarter of the step measured: 300% under the whole step's prediction, exact for one of 4 groups.
        let c = compare_steps(&steps, &cost);
        assert!((c.pairs[0].1 - whole as f64).abs() < 1e-9 && (c.pairs[1].1 - whole as f64 / 4.0).abs() < 1e-9);
        assert!(c.by_kind["prefill"].max_abs_pct > 299.0);
        std::fs::write(&path, steps_csv(&steps).replace(",4,2048+0*", ",0,2048+0*")).unwrap();
        let e = read_steps(&path).unwrap_err().to_string();
        assert!(e.contains("steps.csv:3: layer_groups must be positive"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn work_round_trips_and_bad_text_is_refused() {
        let w = vec![
            SeqWork { new_tokens: 512, cached_tokens: 0, emits_token: true },
            SeqWork { new_tokens: 1, cached_tokens: 300, emits_token: false },
        ];
        assert_eq!(format_work(&w), "512+0*;1+300");
        assert_eq!(parse_work("512+0*;1+300").unwrap(), w);
        for bad in ["512", "a+1", "1+b", "0+5", ""] {
            assert!(parse_work(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decode_idle_fraction_by_hand() {
        let it = |lane: Lane, s: u64, e: u64| IterationRecord {
            lane,
            sms: 32,
            start: Nanos(s),
            end: Nanos(e),
            num_seqs: 1,
            prefill_tokens: 0,
            decode_tokens: 1,
            instance: 0,
        };
        // Decode steps 0-10, 12-20, 30-40 (a prefill step in between does not count): 12 idle of 40.
        let its =
            [it(Lane::Decode, 0, 10), it(Lane::Prefill, 5, 35), it(Lane::Decode, 12, 20), it(Lane::Decode, 30, 40)];
        assert!((decode_idle_fraction(&its).unwrap() - 12.0 / 40.0).abs() < 1e-12);
        assert_eq!(decode_idle_fraction(&[it(Lane::Whole, 0, 5)]), None);
    }

    #[test]
    fn error_stats_by_hand() {
        // Predictions 10% over, 20% under, exact, 5% over.
        let e = ErrorStats::of_pairs(&[(100.0, 110.0), (100.0, 80.0), (50.0, 50.0), (200.0, 210.0)]);
        assert_eq!(e.count, 4);
        assert!((e.max_abs_pct - 20.0).abs() < 1e-9);
        assert!((e.mean_signed_pct - (10.0 - 20.0 + 0.0 + 5.0) / 4.0).abs() < 1e-9);
        // Sorted |errors| 0, 5, 10, 20, numpy's linear rule: median 7.5; p90 at rank 2.7: 10 + 0.7 x 10 = 17.
        assert!((e.median_abs_pct - 7.5).abs() < 1e-9 && (e.p90_abs_pct - 17.0).abs() < 1e-9, "{e:?}");
    }

    #[test]
    fn summaries_compare_by_key() {
        let mut sim = serde_json::Map::new();
        let mut dev = serde_json::Map::new();
        for (i, k) in METRIC_KEYS.iter().enumerate() {
            sim.insert(k.to_string(), serde_json::json!(1.1 * (i + 1) as f64));
            dev.insert(k.to_string(), serde_json::json!((i + 1) as f64));
        }
        let c = compare_summaries(&Value::Object(sim.clone()), &Value::Object(dev.clone())).unwrap();
        assert!(c.iter().all(|m| (m.rel_err - 0.1).abs() < 1e-9));
        dev.remove("p99_tbt_ms");
        let e = compare_summaries(&Value::Object(sim), &Value::Object(dev)).unwrap_err().to_string();
        assert!(e.contains("measured summary.json has no number \"p99_tbt_ms\""), "{e}");
    }
}
