//! Accuracy of a profile against measurements: every prediction beside its measurement, and absolute % error
//! statistics per operator class and overall.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use duet_sim::cost::{DeviceCurves, Elementwise};
use serde::Serialize;

use crate::profile::Profile;
use crate::record::{OpClass, Record};

/// One prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Index of the record.
    pub index: usize,
    /// Operator class.
    pub op: OpClass,
    /// Measured median, ms.
    pub measured_ms: f64,
    /// Predicted, ms.
    pub predicted_ms: f64,
}

impl Prediction {
    /// `100 x (predicted - measured) / measured` ([`duet_sim::compare::pct_error`]).
    pub fn pct(&self) -> f64 {
        duet_sim::compare::pct_error(self.measured_ms, self.predicted_ms)
    }

    /// `|predicted - measured| / measured x 100`.
    pub fn abs_pct(&self) -> f64 {
        self.pct().abs()
    }
}

/// Error statistics of a set of predictions: duet's one comparison summary ([`duet_sim::compare::ErrorStats`]).
pub type ClassStats = duet_sim::compare::ErrorStats;

/// The accuracy report (`duet calibrate check --json` prints it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Over all predictions.
    pub overall: ClassStats,
    /// Per operator class.
    pub by_class: BTreeMap<String, ClassStats>,
}

fn elementwise(op: OpClass) -> Option<Elementwise> {
    Some(match op {
        OpClass::Linear | OpClass::AllReduce | OpClass::AttentionPrefill | OpClass::AttentionDecode => return None,
        OpClass::Rmsnorm => Elementwise::RmsNorm,
        OpClass::SiluMul => Elementwise::SiluMul,
        OpClass::Rotary => Elementwise::Rotary,
        OpClass::Embedding => Elementwise::Embedding,
        OpClass::Add => Elementwise::Add,
    })
}

/// Predicted time in ms of one record under `curves`.
pub fn predict_ms(curves: &dyn DeviceCurves, r: &Record) -> f64 {
    let w = r.work();
    let s = match (r.op, elementwise(r.op)) {
        (OpClass::AttentionPrefill, _) => curves.attention_time(r.sms, w, false) * r.batch.unwrap_or(1) as f64,
        (OpClass::AttentionDecode, _) => curves.attention_time(r.sms, w, true) * r.batch.unwrap_or(1) as f64,
        (_, None) => curves.gemm_time(r.sms, r.tokens, r.d_out, w),
        (_, Some(e)) => curves.elementwise_time(r.sms, e, w),
    };
    s * 1e3
}

/// Predicted time in ms of one record under `profile` (all-reduce uses the profile's ring model).
pub fn predict_record_ms(profile: &Profile, curves: &dyn DeviceCurves, r: &Record) -> f64 {
    match r.op {
        OpClass::AllReduce => profile.allreduce.time_s(r.work().bytes, r.workers.unwrap_or(2)) * 1e3,
        _ => predict_ms(curves, r),
    }
}

/// Predictions of `profile` for every record.
pub fn predict(profile: &Profile, records: &[Record]) -> Vec<Prediction> {
    let curves = profile.curves();
    records
        .iter()
        .enumerate()
        .map(|(index, r)| Prediction {
            index,
            op: r.op,
            measured_ms: r.time_ms.median,
            predicted_ms: predict_record_ms(profile, &curves, r),
        })
        .collect()
}

/// Statistics per class and overall.
pub fn report(preds: &[Prediction]) -> Report {
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for p in preds {
        by.entry(p.op.as_str().to_string()).or_default().push(p.pct());
    }
    Report {
        overall: ClassStats::of(&preds.iter().map(Prediction::pct).collect::<Vec<_>>()),
        by_class: by.into_iter().map(|(k, v)| (k, ClassStats::of(&v))).collect(),
    }
}

/// CSV of every prediction beside its measurement.
pub fn predictions_csv(records: &[Record], preds: &[Prediction]) -> String {
    let mut s = String::from("name,op,tokens,d_in,d_out,sms,measured_ms,predicted_ms,abs_pct_error\n");
    for p in preds {
        let r = &records[p.index];
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{:.6},{:.6},{:.3}",
            r.name,
            r.op.as_str(),
            r.tokens,
            r.d_in,
            r.d_out,
            r.sms,
            p.measured_ms,
            p.predicted_ms,
            p.abs_pct()
        );
    }
    s
}

/// A short table of `report` and the `worst` largest errors.
pub fn table(report: &Report, records: &[Record], preds: &[Prediction], worst: usize) -> String {
    let mut s = format!("{:<12} {:>6} {:>10} {:>9} {:>9}\n", "class", "count", "median %", "p90 %", "max %");
    for (k, c) in report.by_class.iter().map(|(k, c)| (k.as_str(), c)).chain([("overall", &report.overall)]) {
        let _ = writeln!(
            s,
            "{k:<12} {:>6} {:>10.1} {:>9.1} {:>9.1}",
            c.count, c.median_abs_pct, c.p90_abs_pct, c.max_abs_pct
        );
    }
    let mut idx: Vec<&Prediction> = preds.iter().collect();
    idx.sort_by(|a, b| b.abs_pct().total_cmp(&a.abs_pct()));
    let _ = writeln!(s, "worst {worst}:");
    for p in idx.into_iter().take(worst) {
        let r = &records[p.index];
        let _ = writeln!(
            s,
            "  {:<28} tokens {:>6}  measured {:>9.4} ms  predicted {:>9.4} ms  ({:+.1}%)",
            r.name,
            r.tokens,
            p.measured_ms,
            p.predicted_ms,
            (p.predicted_ms / p.measured_ms - 1.0) * 100.0
        );
    }
    s
}
