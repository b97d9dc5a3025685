//! The graph-launch microbenchmark: a step of `nodes` empty kernels on one partition, launched eagerly (one
//! launch per kernel) and replayed from a captured CUDA graph, `steps` steps back to back each way. CUDA events
//! give the GPU time per step, the host clock the time to enqueue one. Both ways are timed as enqueued, so an
//! eager step of tiny kernels is bounded below by its host time (as an engine's eager step is).
//! `graph.csv` (`duet_calibration::launch::graph_csv`) holds one row per (partition, nodes); `duet calibrate fit`
//! turns it into the cost model's `graph_launch_ns` (`duet_calibration::launch`).

use std::time::Instant;

use cudarc::driver::sys;
use duet_calibration::launch::GraphLaunchSample;

use super::run::Bound;
use crate::driver::{Event, capture_graph};
use crate::error::{GpuError, check};

/// Kernels per measured step: a small model, and about a decode step of a 36-layer model (13 kernels a layer).
pub const GRAPH_NODES: [u32; 3] = [32, 128, 512];

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
    capture_graph(b.part.stream, || (0..nodes).try_for_each(|_| b.ops.empty())).map(Exec)
}

/// Measures one `graph.csv` row on `b` with `steps` steps each way (module docs).
pub fn graph_launch(b: &Bound<'_>, nodes: u32, steps: usize) -> Result<GraphLaunchSample, GpuError> {
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
    Ok(GraphLaunchSample { sms: b.part.sms, nodes, eager_step_us, eager_host_us, graph_step_us, graph_host_us })
}
