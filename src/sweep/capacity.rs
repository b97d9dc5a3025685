//! `duet capacity`: the highest request rate at which a point still meets its limits, by bisection on the rate.
//!
//! A rate *meets* the limits when every `[capacity.max]` field of the run's `summary.json` is <= its limit and
//! every `[capacity.min]` field is >= its limit (e.g. `p99_ttft_ms <= 5000`, `p99_itl_ms <= 100`, or
//! `slo_attainment >= 0.9` with SLOs in `[base]`). The search assumes that meeting the limits is monotone in the
//! rate: it tests `low` and `high`, then halves the bracket `[highest rate that met, lowest rate that failed]`
//! until it is at most `tolerance` wide. The reported capacity is the highest rate that met the limits, so the
//! true boundary lies in `[capacity, capacity + tolerance]` when the assumption holds.

use std::path::Path;

use anyhow::{Result, bail};
use rayon::prelude::*;
use serde_json::{Map, Value};

use duet_sim::SimError;
use duet_sim::engine::StopLimits;

use super::run::{arg_keys, prepare, simulate_point};
use super::spec::{CapacitySpec, Point, SweepSpec};

/// Outcome of one bisection.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// Highest rate that met the limits (`None`: not even `low`).
    pub capacity: Option<f64>,
    /// Lowest rate that failed (`None`: even `high` met them).
    pub failing: Option<f64>,
    /// Every rate tried, with whether it met the limits, in order.
    pub tried: Vec<(f64, bool)>,
}

impl Search {
    /// `bracketed`, `below low` or `at least high`.
    pub fn status(&self) -> &'static str {
        match (self.capacity, self.failing) {
            (Some(_), Some(_)) => "bracketed",
            (None, _) => "below low",
            (Some(_), None) => "at least high",
        }
    }
}

/// Bisection for the highest rate in `[low, high]` where `meets` holds, to `tolerance` req/s.
pub fn bisect(low: f64, high: f64, tolerance: f64, mut meets: impl FnMut(f64) -> Result<bool>) -> Result<Search> {
    let mut tried = Vec::new();
    let mut test = |r: f64, tried: &mut Vec<(f64, bool)>| -> Result<bool> {
        let ok = meets(r)?;
        tried.push((r, ok));
        Ok(ok)
    };
    if !test(low, &mut tried)? {
        return Ok(Search { capacity: None, failing: Some(low), tried });
    }
    if test(high, &mut tried)? {
        return Ok(Search { capacity: Some(high), failing: None, tried });
    }
    let (mut lo, mut hi) = (low, high);
    while hi - lo > tolerance {
        let mid = 0.5 * (lo + hi);
        if test(mid, &mut tried)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(Search { capacity: Some(lo), failing: Some(hi), tried })
}

/// The `[capacity.max]` limits a run can stop on as soon as they are certain to fail (percentiles of TTFT, ITL and
/// TBT: [`StopLimits`]); the search's outcome is the same as if every run went to its end, since such a run would
/// report a failing percentile. `None` when no limit is of that kind.
pub fn stop_limits(c: &CapacitySpec) -> Option<StopLimits> {
    let mut limits = StopLimits::default();
    for (k, limit) in &c.max {
        limits.add_field(k, *limit);
    }
    limits.any().then_some(limits)
}

/// Whether `summary` meets the limits; an unknown or non-numeric field is an error naming it.
pub fn meets(summary: &Map<String, Value>, c: &CapacitySpec) -> Result<bool> {
    let field = |k: &str| -> Result<f64> {
        match summary.get(k) {
            Some(Value::Number(n)) => Ok(n.as_f64().unwrap_or(f64::NAN)),
            Some(Value::Null) => bail!(
                "capacity limit on `{k}`: the run reports null (slo_attainment and request_goodput need SLOs in \
                 [base], e.g. slo-tbt-ms)"
            ),
            Some(_) => bail!("capacity limit on `{k}`: not a numeric summary.json field"),
            None => bail!(
                "capacity limit on unknown summary.json field `{k}` (numeric fields: {})",
                summary.iter().filter(|(_, v)| v.is_number()).map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }
    };
    let mut ok = true;
    for (k, limit) in &c.max {
        ok &= field(k)? <= *limit;
    }
    for (k, limit) in &c.min {
        ok &= field(k)? >= *limit;
    }
    Ok(ok)
}

/// The `[capacity]` table of `spec`, which must have one and must leave `rate` to the search.
fn capacity_table(spec: &SweepSpec) -> Result<&CapacitySpec> {
    let Some(c) = &spec.capacity else {
        bail!(
            "{}: no [capacity] table (low, high, tolerance and [capacity.max]/[capacity.min] limits)",
            spec.path.display()
        )
    };
    if spec.points.iter().any(|p| p.get("rate").is_some()) {
        bail!(
            "{}: `rate` is what `duet capacity` searches: remove it from [base]/[axes]/[[policy]]",
            spec.path.display()
        );
    }
    Ok(c)
}

/// Checks `spec` as [`run`] does before searching (a `[capacity]` table, no `rate`, every point's options) and
/// loads each point's workload at the `low` rate; returns the number of requests of each.
pub fn check(spec: &SweepSpec) -> Result<Vec<usize>> {
    let c = capacity_table(spec)?;
    spec.points
        .iter()
        .map(|p| {
            let (args, cfg) = prepare(spec, &p.with("rate", c.low))?;
            Ok(duet_args::workload::build(&args.workload, cfg.model.max_context)?.requests.len())
        })
        .collect()
}

/// Runs the capacity search for every point of `spec` (in parallel across points) and returns one results row
/// per point: `point`, `label`, `group`, the `arg_*` options (without `rate`), `capacity_rps`, `failing_rps`,
/// `status`, `evaluations` and the limits.
pub fn run(spec: &SweepSpec, jobs: Option<usize>) -> Result<Vec<Map<String, Value>>> {
    let c = capacity_table(spec)?;
    for p in &spec.points {
        prepare(spec, &p.with("rate", c.low))?;
    }
    let stop = stop_limits(c);
    let search = |p: &Point| -> Result<Search> {
        bisect(c.low, c.high, c.tolerance, |r| {
            let q = p.with("rate", r);
            let (args, mut cfg) = prepare(spec, &q)?;
            cfg.stop = stop;
            match simulate_point(&args, &cfg, &[], Path::new(".")) {
                Ok(Value::Object(s)) => meets(&s, c),
                Ok(_) => unreachable!("summary_json returns an object"),
                // A percentile limit was certain to fail before the run ended.
                Err(e) if matches!(e.downcast_ref::<SimError>(), Some(SimError::LimitExceeded { .. })) => Ok(false),
                Err(e) => Err(e),
            }
        })
    };
    let work = || spec.points.par_iter().map(search).collect::<Vec<Result<Search>>>();
    let results = match jobs {
        Some(j) => rayon::ThreadPoolBuilder::new().num_threads(j.max(1)).build()?.install(work),
        None => work(),
    };
    let keys: Vec<String> = arg_keys(spec);
    let limits = c
        .max
        .iter()
        .map(|(k, v)| format!("{k} <= {v}"))
        .chain(c.min.iter().map(|(k, v)| format!("{k} >= {v}")))
        .collect::<Vec<_>>()
        .join(" and ");
    let mut rows = Vec::new();
    for (p, s) in spec.points.iter().zip(results) {
        let s = s?;
        let mut r = super::run::row(p, Map::new(), &keys);
        r.remove("point_id");
        r.insert("capacity_rps".into(), s.capacity.map_or(Value::Null, Value::from));
        r.insert("failing_rps".into(), s.failing.map_or(Value::Null, Value::from));
        r.insert("status".into(), Value::from(s.status()));
        r.insert("evaluations".into(), Value::from(s.tried.len()));
        r.insert("limits".into(), Value::from(limits.clone()));
        r.insert("tolerance_rps".into(), Value::from(c.tolerance));
        rows.push(r);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bisection_recovers_a_known_threshold_within_the_tolerance() {
        for threshold in [0.3, 3.7, 17.25, 63.9] {
            let s = bisect(0.25, 64.0, 0.01, |r| Ok(r <= threshold)).unwrap();
            let cap = s.capacity.unwrap();
            assert!(cap <= threshold && threshold - cap <= 0.01, "{threshold}: {cap}");
            assert!(s.failing.unwrap() - cap <= 0.01);
            assert_eq!(s.status(), "bracketed");
        }
        let below = bisect(1.0, 8.0, 0.1, |r| Ok(r < 0.5)).unwrap();
        assert_eq!((below.capacity, below.status(), below.tried.len()), (None, "below low", 1));
        let above = bisect(1.0, 8.0, 0.1, |_| Ok(true)).unwrap();
        assert_eq!((above.capacity, above.status()), (Some(8.0), "at least high"));
    }

    #[test]
    fn limits_compare_fields_and_name_unknown_ones() {
        let s: Map<String, Value> =
            serde_json::from_str(r#"{"p99_ttft_ms": 900.0, "slo_attainment": 0.95, "request_goodput": null}"#).unwrap();
        let spec = |max: &[(&str, f64)], min: &[(&str, f64)]| CapacitySpec {
            low: 1.0,
            high: 2.0,
            tolerance: 0.1,
            max: max.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            min: min.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        };
        assert!(meets(&s, &spec(&[("p99_ttft_ms", 1000.0)], &[("slo_attainment", 0.9)])).unwrap());
        assert!(!meets(&s, &spec(&[("p99_ttft_ms", 800.0)], &[])).unwrap());
        assert!(!meets(&s, &spec(&[], &[("slo_attainment", 0.99)])).unwrap());
        let e = meets(&s, &spec(&[("p99_tft_ms", 1.0)], &[])).unwrap_err().to_string();
        assert!(e.contains("`p99_tft_ms`") && e.contains("p99_ttft_ms"), "{e}");
        let e = meets(&s, &spec(&[], &[("request_goodput", 1.0)])).unwrap_err().to_string();
        assert!(e.contains("null"), "{e}");
    }
}
