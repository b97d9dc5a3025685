//! Headline numbers derived from the measurements (pure functions, tested here): peak throughput per SM count,
//! where decode attention saturates HBM, and the summary table.

use serde::Serialize;

/// The smallest SM count whose value reaches `frac` of the largest value among `points` (SM count, value).
pub fn saturation_sms(points: &[(u32, f64)], frac: f64) -> Option<u32> {
    let max = points.iter().map(|p| p.1).fold(f64::NAN, f64::max);
    if !max.is_finite() || max <= 0.0 {
        return None;
    }
    points.iter().filter(|p| p.1 >= frac * max).map(|p| p.0).min()
}

/// Per SM count: the best value of each series.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SmRow {
    /// SMs.
    pub sms: u32,
    /// Best projection throughput (TFLOP/s).
    pub gemm_tflops: f64,
    /// HBM read bandwidth (GB/s).
    pub read_gbps: f64,
    /// Copy bandwidth, read plus written (GB/s).
    pub copy_gbps: f64,
    /// Best decode-attention bandwidth (GB/s of KV read).
    pub decode_attn_gbps: f64,
    /// Best prefill-attention throughput (TFLOP/s).
    pub prefill_attn_tflops: f64,
}

/// The summary table in Markdown.
pub fn table(rows: &[SmRow]) -> String {
    let mut s = String::from(
        "| SMs | GEMM TFLOP/s | read GB/s | copy GB/s | decode attn GB/s | prefill attn TFLOP/s |\n|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {:.1} | {:.0} | {:.0} | {:.0} | {:.1} |\n",
            r.sms, r.gemm_tflops, r.read_gbps, r.copy_gbps, r.decode_attn_gbps, r.prefill_attn_tflops
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_by_hand() {
        let pts = [(8, 800.0), (16, 1500.0), (32, 2100.0), (64, 2480.0), (132, 2500.0)];
        assert_eq!(saturation_sms(&pts, 0.9), Some(64));
        assert_eq!(saturation_sms(&pts, 0.8), Some(32));
        assert_eq!(saturation_sms(&[], 0.9), None);
        assert_eq!(saturation_sms(&[(8, 0.0)], 0.9), None);
    }

    #[test]
    fn table_has_one_line_per_row() {
        let t = table(&[SmRow { sms: 8, gemm_tflops: 55.72, ..Default::default() }]);
        assert!(t.lines().nth(2).unwrap().starts_with("| 8 | 55.7 |"), "{t}");
        assert_eq!(t.lines().count(), 3);
    }
}
