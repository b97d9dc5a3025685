//! `steps.partial.csv`: each step appended as it ends, so that a replay killed at its deadline keeps every step
//! measured before (`CudaExecutor::log_progress_to`).

use duet_sim::Nanos;

/// Header of `steps.partial.csv`: one row per step as it completes (ticket order is launch order).
pub const PROGRESS_HEADER: &str = "ticket,sms,graph,end_ms,gpu_ms\n";

/// One row of `steps.partial.csv` ([`PROGRESS_HEADER`]): a step's ticket, partition, whether it was replayed from
/// a graph, its end on the run's clock and its GPU time, both in ms.
pub fn progress_line(ticket: u64, sms: u32, graph: bool, end: Nanos, gpu_ms: f64) -> String {
    format!("{ticket},{sms},{},{:.6},{gpu_ms:.6}\n", u8::from(graph), end.0 as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_rows_match_their_header() {
        let row = progress_line(7, 32, true, Nanos(12_345_678), 0.25);
        assert_eq!(row, "7,32,1,12.345678,0.250000\n");
        assert_eq!(row.split(',').count(), PROGRESS_HEADER.split(',').count());
    }
}
