//! `duet trace stats` numbers against the table in `../shared/traces/README.md` (skipped with a message when
//! `../shared` is absent), and the bundled excerpt's statistics against an independent computation.

use std::path::PathBuf;

use duet_traces::stats::{self, TraceStats};
use duet_traces::{TraceData, load_path};

fn shared(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces").join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIPPED: {} not found (../shared is not next to this checkout)", p.display());
        None
    }
}

fn stats_of(rel: &str) -> Option<TraceStats> {
    let data = load_path(&shared(rel)?, &Default::default()).unwrap();
    Some(match data {
        TraceData::Timed(w) => stats::of_workload(&w),
        TraceData::Lengths(t) => stats::of_lengths(&t.pairs),
    })
}

/// `got` rounds to `shown` at the precision `unit` (1 for integers, 0.01 for two decimals, ...).
fn shown(got: f64, shown: f64, unit: f64, what: &str) {
    assert!((got - shown).abs() <= unit / 2.0 + 1e-9, "{what}: {got} does not round to {shown}");
}

struct Row {
    file: &'static str,
    rows: usize,
    span_rate: Option<(f64, f64)>,
    input: (f64, f64, f64),
    output: (f64, f64, f64),
    output_mean_unit: f64,
    /// Rounding unit for the output p99 (see the Azure code row).
    output_p99_unit: f64,
}

#[test]
fn stats_reproduce_the_shared_readme() {
    let table = [
        Row {
            file: "azure2023/AzureLLMInferenceTrace_code.csv",
            rows: 8_819,
            span_rate: Some((3_436.0, 2.57)),
            input: (2_048.0, 1_469.0, 7_436.0),
            output: (27.9, 13.0, 252.0),
            output_mean_unit: 0.1,
            // The README's 252 does not follow from numpy's default (linear) p99, which gives 251.46; no single
            // standard definition (Hyndman-Fan R4-R9, nearest rank) gives this 252 together with Mooncake's
            // 85,400 and 1,119 below, so this one value is checked to within one unit.
            output_p99_unit: 2.0,
        },
        Row {
            file: "azure2023/AzureLLMInferenceTrace_conv.csv",
            rows: 19_366,
            span_rate: Some((3_502.0, 5.53)),
            input: (1_155.0, 1_020.0, 4_142.0),
            output: (211.0, 129.0, 601.0),
            output_mean_unit: 1.0,
            output_p99_unit: 1.0,
        },
        Row {
            file: "mooncake/conversation_trace.jsonl",
            rows: 12_031,
            span_rate: Some((3_537.0, 3.40)),
            input: (12_035.0, 6_909.0, 85_400.0),
            output: (343.0, 350.0, 1_119.0),
            output_mean_unit: 1.0,
            output_p99_unit: 1.0,
        },
        Row {
            file: "sharegpt/sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
            rows: 30_731,
            span_rate: None,
            input: (2_340.0, 1_730.0, 7_434.0),
            output: (439.0, 415.0, 998.0),
            output_mean_unit: 1.0,
            output_p99_unit: 1.0,
        },
    ];
    for r in table {
        let Some(s) = stats_of(r.file) else { return };
        assert_eq!(s.rows, r.rows, "{}", r.file);
        match r.span_rate {
            Some((span, rate)) => {
                shown(s.span_s.unwrap(), span, 1.0, r.file);
                shown(s.mean_rate.unwrap(), rate, 0.01, r.file);
            }
            None => assert!(s.span_s.is_none() && s.mean_rate.is_none()),
        }
        shown(s.input_tokens.mean, r.input.0, 1.0, r.file);
        shown(s.input_tokens.median, r.input.1, 1.0, r.file);
        shown(s.input_tokens.p99, r.input.2, 1.0, r.file);
        shown(s.output_tokens.mean, r.output.0, r.output_mean_unit, r.file);
        shown(s.output_tokens.median, r.output.1, 1.0, r.file);
        shown(s.output_tokens.p99, r.output.2, r.output_p99_unit, r.file);
    }
    // Inter-arrival CV as stated there: code 13.2, conv 1.09.
    if let Some(s) = stats_of("azure2023/AzureLLMInferenceTrace_code.csv") {
        shown(s.interarrival_cv.unwrap(), 13.2, 0.1, "code CV");
    }
    if let Some(s) = stats_of("azure2023/AzureLLMInferenceTrace_conv.csv") {
        shown(s.interarrival_cv.unwrap(), 1.09, 0.01, "conv CV");
    }
}

#[test]
fn bundled_excerpt_stats_match_an_independent_computation() {
    // Re-read the shipped CSV with the simplest possible code (no shared helpers) and recompute everything.
    let text = include_str!("../data/azure_conv_excerpt.csv");
    let mut times = Vec::new();
    let (mut input, mut output) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (date, clock) = f[0].split_once(' ').unwrap();
        assert_eq!(date, "2023-11-16");
        let mut hms = clock.split(':');
        let h: f64 = hms.next().unwrap().parse().unwrap();
        let m: f64 = hms.next().unwrap().parse().unwrap();
        let s: f64 = hms.next().unwrap().parse().unwrap();
        times.push(h * 3600.0 + m * 60.0 + s);
        input.push(f[1].parse::<f64>().unwrap());
        output.push(f[2].parse::<f64>().unwrap());
    }
    let n = times.len();
    let span = times[n - 1] - times[0];
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        let k = p / 100.0 * (v.len() - 1) as f64;
        v[k.floor() as usize] + (v[k.ceil() as usize] - v[k.floor() as usize]) * k.fract()
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let s = stats::of_workload(&duet_traces::bundled_default());
    assert_eq!(s.rows, 1000);
    assert!((s.span_s.unwrap() - span).abs() < 1e-6);
    assert!((s.mean_rate.unwrap() - n as f64 / span).abs() < 1e-9);
    for (got, v) in [(s.input_tokens, &mut input), (s.output_tokens, &mut output)] {
        assert!((got.mean - mean(v)).abs() < 1e-9);
        assert_eq!(got.median, pct(v, 50.0));
        assert!((got.p90 - pct(v, 90.0)).abs() < 1e-9 && (got.p99 - pct(v, 99.0)).abs() < 1e-9);
        assert_eq!(f64::from(got.max), *v.last().unwrap());
    }
    let gaps: Vec<f64> = times.windows(2).map(|p| p[1] - p[0]).collect();
    let gm = mean(&gaps);
    let cv = (gaps.iter().map(|g| (g - gm).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt() / gm;
    assert!((s.interarrival_cv.unwrap() - cv).abs() < 1e-6, "{} vs {cv}", s.interarrival_cv.unwrap());
    let mut bins = std::collections::HashMap::new();
    for t in &times {
        *bins.entry(((t - times[0]) / 60.0).floor() as i64).or_insert(0usize) += 1;
    }
    assert_eq!(s.peak_per_minute, bins.values().copied().max());
}

#[test]
fn bundled_excerpt_is_the_head_of_the_published_trace() {
    let Some(p) = shared("azure2023/AzureLLMInferenceTrace_conv.csv") else { return };
    let TraceData::Timed(full) = load_path(&p, &Default::default()).unwrap() else { panic!("timed") };
    assert_eq!(&full.requests[..1000], &duet_traces::bundled_default().requests[..]);
}
