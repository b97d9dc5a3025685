//! The graph-launch microbenchmark: a step of `nodes` empty kernels on one partition, launched eagerly (one
//! launch per kernel) and replayed from a captured CUDA graph, `steps` steps back to back each way. CUDA events
//! give the GPU time per step, the host clock the time to enqueue one. Both ways are timed as enqueued, so an
//! eager step of tiny kernels is bounded below by its host time (as an engine's eager step is).
//! `graph.csv` ([`GRAPH_HEADER`]) holds one row per (partition, nodes); `duet calibrate fit` turns it into the cost
//! model's `graph_launch_ns` (`duet_calibration::launch`).

use std::time::Instant;

use cudarc::driver::sys;
use duet_calibration::launch::GRAPH_HEADER;
use serde::Serialize;

use super::run::Bound;
use crate::driver::Event;
use crate::error::{GpuError, check};

/// Kernels per measured step: a small model, and about a decode step of a 36-layer model (13 kernels a layer).
pub const GRAPH_NODES: [u32; 3] = [32, 128, 512];

/// One row of `graph.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GraphRow {
    /// SMs of the partition.
    pub sms: u32,
    /// Kernels per step.
    pub nodes: u32,
    /// GPU time per eager step (us).
    pub eager_step_us: f64,
    /// Host time to enqueue an eager step (us).
    pub eager_host_us: f64,
    /// GPU time per graph replay (us).
    pub graph_step_us: f64,
    /// Host time of one `cuGraphLaunch` (us).
    pub graph_host_us: f64,
}

/// `graph.csv` text.
pub fn graph_csv(rows: &[GraphRow]) -> String {
    let mut s = format!("{GRAPH_HEADER}\n");
    for r in rows {
        s.push_str(&format!(
            "{},{},{:.3},{:.3},{:.3},{:.3}\n",
            r.sms, r.nodes, r.eager_step_us, r.eager_host_us, r.graph_step_us, r.graph_host_us
        ));
    }
    s
}

/// An instantiated graph, destroyed on drop.
struct Exec(sys::CUgraphExec);

impl Drop for Exec {
    fn drop(&mut self) {
        // SAFETY: instantiated by `capture`, destroyed once.
        unsafe {
            sys::cuGraphExecDestroy(self.0);
        }
    }
}

fn capture(b: &Bound<'_>, nodes: u32) -> Result<Exec, GpuError> {
    let stream = b.part.stream;
    let mut graph = std::ptr::null_mut();
    let mut exec = std::ptr::null_mut();
    // SAFETY: the stream is live; capture ends, and the graph is destroyed, on every path below.
    unsafe {
        check(
            "cuStreamBeginCapture",
            sys::cuStreamBeginCapture_v2(stream, sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED),
        )?;
        let mut r = Ok(());
        for _ in 0..nodes {
            r = b.ops.empty();
            if r.is_err() {
                break;
            }
        }
        let end = check("cuStreamEndCapture", sys::cuStreamEndCapture(stream, &mut graph));
        r?;
        end?;
        let inst = check("cuGraphInstantiate", sys::cuGraphInstantiateWithFlags(&mut exec, graph, 0));
        sys::cuGraphDestroy(graph);
        inst?;
    }
    Ok(Exec(exec))
}

/// Measures one [`GraphRow`] on `b` with `steps` steps each way (module docs).
pub fn graph_launch(b: &Bound<'_>, nodes: u32, steps: usize) -> Result<GraphRow, GpuError> {
    b.part.bind()?;
    let (e0, e1) = (Event::new()?, Event::new()?);
    let steps = steps.max(1);
    for _ in 0..nodes {
        b.ops.empty()?;
    }
    e0.record(b.part.stream)?;
    let t = Instant::now();
    for _ in 0..steps {
        for _ in 0..nodes {
            b.ops.empty()?;
        }
    }
    let eager_host_us = t.elapsed().as_secs_f64() * 1e6 / steps as f64;
    e1.record(b.part.stream)?;
    e1.synchronize()?;
    let eager_step_us = e0.elapsed_ms(&e1)? * 1e3 / steps as f64;

    let exec = capture(b, nodes)?;
    // SAFETY: a live graph and stream.
    let launch = || check("cuGraphLaunch", unsafe { sys::cuGraphLaunch(exec.0, b.part.stream) });
    // Warm-up: the first replay uploads the graph.
    launch()?;
    b.part.synchronize()?;
    e0.record(b.part.stream)?;
    let t = Instant::now();
    for _ in 0..steps {
        launch()?;
    }
    let graph_host_us = t.elapsed().as_secs_f64() * 1e6 / steps as f64;
    e1.record(b.part.stream)?;
    e1.synchronize()?;
    let graph_step_us = e0.elapsed_ms(&e1)? * 1e3 / steps as f64;
    Ok(GraphRow { sms: b.part.sms, nodes, eager_step_us, eager_host_us, graph_step_us, graph_host_us })
}

#[cfg(test)]
mod tests {
    use duet_calibration::launch::{fit_graph_launch_ns, read_graph};

    use super::*;

    #[test]
    fn graph_csv_is_what_the_calibration_reader_takes() {
        let rows = [
            GraphRow {
                sms: 132,
                nodes: 32,
                eager_step_us: 80.0,
                eager_host_us: 90.0,
                graph_step_us: 70.0,
                graph_host_us: 4.0,
            },
            GraphRow {
                sms: 66,
                nodes: 512,
                eager_step_us: 1200.0,
                eager_host_us: 1500.0,
                graph_step_us: 1210.5,
                graph_host_us: 5.0,
            },
        ];
        let dir = std::env::temp_dir().join(format!("duet-gpu-graph-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("graph.csv");
        std::fs::write(&p, graph_csv(&rows)).unwrap();
        let s = read_graph(&p).unwrap();
        assert_eq!((s[1].sms, s[1].nodes, s[1].graph_step_us), (66, 512, 1210.5));
        // Extras -10 and +10.5 us: the median 0.25 us, 250 ns.
        assert_eq!(fit_graph_launch_ns(&p, &s).unwrap().graph_launch_ns, 250);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
