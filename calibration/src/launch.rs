//! The graph-launch time of a look-ahead decode step (`CostConfig::graph_launch_ns` in the simulator) from
//! measurements.
//!
//! `duet-gpu calibrate` times, on one partition, a step of `nodes` empty kernels launched two ways, each step
//! enqueued back to back with the next: eagerly (one launch per kernel) and as one replay of a captured CUDA graph.
//! A row of `graph.csv` ([`GRAPH_HEADER`]; times in us) holds the GPU time per step of each (`eager_step_us`,
//! `graph_step_us`, from CUDA events) and the host time to enqueue one step (`eager_host_us`, `graph_host_us`).
//!
//! The cost model prices a step as the sum of its kernels' times, and those come from records timed eagerly back
//! to back, so they already carry the eager per-kernel gap. A graph step's extra time over that is
//! `graph_step_us - eager_step_us`; the fitted `graph_launch_ns` is the median over rows, times 1000, and 0 when
//! the median is negative (a graph replay is then no slower than the eager kernels the records timed; the
//! simulator has no term that makes a step cheaper than its kernels).

use std::path::Path;

use crate::error::CalibrationError;
use crate::table::{self, Least};

/// Header of `graph.csv`.
pub const GRAPH_HEADER: &str = "sms,nodes,eager_step_us,eager_host_us,graph_step_us,graph_host_us";

/// One row of `graph.csv` (module docs).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GraphLaunchSample {
    /// SMs of the partition.
    pub sms: u32,
    /// Kernels per step.
    pub nodes: u32,
    /// GPU time per eagerly launched step, us.
    pub eager_step_us: f64,
    /// Host time to enqueue an eager step, us.
    pub eager_host_us: f64,
    /// GPU time per graph-replayed step, us.
    pub graph_step_us: f64,
    /// Host time of one `cuGraphLaunch`, us.
    pub graph_host_us: f64,
}

/// `graph.csv` text for `rows` (what [`read_graph`] reads).
pub fn graph_csv(rows: &[GraphLaunchSample]) -> String {
    let mut s = format!("{GRAPH_HEADER}\n");
    for r in rows {
        s.push_str(&format!(
            "{},{},{:.3},{:.3},{:.3},{:.3}\n",
            r.sms, r.nodes, r.eager_step_us, r.eager_host_us, r.graph_step_us, r.graph_host_us
        ));
    }
    s
}

/// Whether `path` is a `graph.csv` (its first line is [`GRAPH_HEADER`]).
pub fn is_graph(path: &Path) -> bool {
    table::has_header(path, GRAPH_HEADER)
}

/// Reads a `graph.csv`; a field that is not a positive finite number (SMs and nodes: a whole one) is an error
/// naming the file, line, field and value.
pub fn read_graph(path: &Path) -> Result<Vec<GraphLaunchSample>, CalibrationError> {
    let rows = table::read_rows::<6>(path, GRAPH_HEADER, |name| match name {
        "sms" | "nodes" => Least::WholePositive,
        _ => Least::Positive,
    })?;
    Ok(rows
        .into_iter()
        .map(|v| GraphLaunchSample {
            sms: v[0] as u32,
            nodes: v[1] as u32,
            eager_step_us: v[2],
            eager_host_us: v[3],
            graph_step_us: v[4],
            graph_host_us: v[5],
        })
        .collect())
}

/// What [`fit_graph_launch_ns`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphLaunchFit {
    /// Median of `graph_step_us - eager_step_us` over the rows, us (may be negative).
    pub median_extra_us: f64,
    /// The fitted `graph_launch_ns`: `max(0, median_extra_us) x 1000`, rounded to whole ns.
    pub graph_launch_ns: u64,
}

/// Fits `graph_launch_ns` from `samples` of `source` (module docs); an error when there is none.
pub fn fit_graph_launch_ns(source: &Path, samples: &[GraphLaunchSample]) -> Result<GraphLaunchFit, CalibrationError> {
    if samples.is_empty() {
        return Err(CalibrationError::invalid(source, 0, "no graph-launch samples to fit graph_launch_ns from"));
    }
    let mut extra: Vec<f64> = samples.iter().map(|s| s.graph_step_us - s.eager_step_us).collect();
    extra.sort_by(f64::total_cmp);
    let k = extra.len();
    let median = if k % 2 == 1 { extra[k / 2] } else { (extra[k / 2 - 1] + extra[k / 2]) / 2.0 };
    Ok(GraphLaunchFit { median_extra_us: median, graph_launch_ns: (median.max(0.0) * 1000.0).round() as u64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(nodes: u32, eager: f64, graph: f64) -> GraphLaunchSample {
        GraphLaunchSample {
            sms: 132,
            nodes,
            eager_step_us: eager,
            eager_host_us: 2.0 * eager,
            graph_step_us: graph,
            graph_host_us: 3.0,
        }
    }

    #[test]
    fn the_fit_is_the_median_extra_and_never_negative() {
        // Extras 4, 6 and 50 us: the median 6 us, so a 50 us outlier does not move it.
        let s = [row(64, 100.0, 104.0), row(256, 400.0, 406.0), row(512, 800.0, 850.0)];
        let f = fit_graph_launch_ns(Path::new("g.csv"), &s).unwrap();
        assert_eq!((f.median_extra_us, f.graph_launch_ns), (6.0, 6000));
        // Graph replays faster than the eager kernels: the extra is reported, the fitted time is 0.
        let f = fit_graph_launch_ns(Path::new("g"), &[row(64, 100.0, 80.0), row(64, 100.0, 90.0)]).unwrap();
        assert_eq!((f.median_extra_us, f.graph_launch_ns), (-15.0, 0));
        assert!(fit_graph_launch_ns(Path::new("g.csv"), &[]).unwrap_err().to_string().contains("no graph-launch"));
    }

    #[test]
    fn graph_csv_round_trips_and_names_bad_fields() {
        let dir = std::env::temp_dir().join(format!("duet-graph-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("graph.csv");
        // What the writer writes, the reader reads back.
        let rows = [row(64, 100.0, 104.0), row(512, 1200.0, 1210.5)];
        std::fs::write(&p, graph_csv(&rows)).unwrap();
        assert!(is_graph(&p));
        assert_eq!(read_graph(&p).unwrap(), rows);
        std::fs::write(&p, format!("{GRAPH_HEADER}\n132,64,100,200,104,3\n\n")).unwrap();
        assert_eq!(read_graph(&p).unwrap(), [row(64, 100.0, 104.0)]);
        std::fs::write(&p, format!("{GRAPH_HEADER}\n132,64.5,100,200,104,3\n")).unwrap();
        let e = read_graph(&p).unwrap_err().to_string();
        assert!(e.contains("graph.csv:2") && e.contains("nodes must be a whole number > 0, got \"64.5\""), "{e}");
        std::fs::write(&p, format!("{GRAPH_HEADER}\n132,64,100,200,nan,3\n")).unwrap();
        assert!(read_graph(&p).unwrap_err().to_string().contains("graph_step_us must be > 0"));
        std::fs::write(&p, format!("{GRAPH_HEADER}\n132,64\n")).unwrap();
        assert!(read_graph(&p).unwrap_err().to_string().contains("expected 6 fields, got 2"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
