//! CUDA graphs of look-ahead decode steps: the padded layout a graph is captured for, capture on a partition's
//! stream, the start-up captures, and their destruction with the executor.

use std::time::Instant;

use cudarc::driver::sys::{self, CUgraphExec};
use duet_sim::cost::SeqWork;

use super::CudaExecutor;
use crate::driver::capture_graph;
use crate::error::GpuError;
use crate::replay::layout::StepLayout;

impl CudaExecutor<'_> {
    /// Layout of step `j` of a window of `work` replayed from the graph of `rows` rows: every sequence `j` tokens
    /// further, padded to the bucket with one-token decodes on the spare KV block ([`StepLayout::padded`]); every
    /// row goes through the LM head, so the captured shapes never change. Plans its GEMMs on `sms` SMs.
    pub(super) fn graph_layout(
        &mut self,
        work: &[SeqWork],
        j: u32,
        rows: u32,
        sms: u32,
    ) -> Result<StepLayout, GpuError> {
        let ahead: Vec<SeqWork> =
            work.iter().map(|w| SeqWork { cached_tokens: w.cached_tokens + j, emits_token: true, ..*w }).collect();
        let mut l = StepLayout::padded(&ahead, rows, self.model.kv_blocks)?;
        self.check_fits(&l)?;
        l.max_blocks = l.max_blocks.min(self.table_stride);
        self.plans_for(l.tokens as u64, l.emit_rows.len() as u64, sms)?;
        Ok(l)
    }

    /// Captures the graphs of `cfg.startup_graphs` on buffer set 0 before the run starts (cuBLASLt plans
    /// included), so that windows replay without capturing; returns how many were captured. A capture that fails
    /// is counted (`capture_failures`) and its windows run eagerly; it does not stop the replay.
    pub fn capture_startup(&mut self) -> Result<u64, GpuError> {
        let t0 = Instant::now();
        if !self.cfg.graphs {
            return Ok(0);
        }
        for (sms, rows) in self.cfg.startup_graphs.clone() {
            if self.graphs.contains_key(&(sms, rows, 0)) {
                continue;
            }
            let (_, set) = self.ops(sms, true)?;
            debug_assert_eq!(set, 0, "nothing runs at start-up");
            let l = self.graph_layout(&[], 0, rows, sms)?;
            if self.capture_or_fall_back(&l, sms, rows, set) {
                self.stats.startup_captures += 1;
            }
        }
        self.setup.gpu.synchronize()?;
        self.stats.startup_capture_ms = t0.elapsed().as_secs_f64() * 1e3;
        Ok(self.stats.startup_captures)
    }

    /// Captures the graph of `rows` rows on partition `sms` with buffer set `set` from layout `l`; true when
    /// captured. A failure is counted and its error kept, and that (partition, rows) runs eagerly from then on.
    pub(super) fn capture_or_fall_back(&mut self, l: &StepLayout, sms: u32, rows: u32, set: usize) -> bool {
        match self.capture(l, sms, set, self.cfg.max_context) {
            Ok(exec) => {
                self.graphs.insert((sms, rows, set), exec);
                true
            }
            Err(e) => {
                self.stats.capture_failures += 1;
                self.failed_graphs.insert((sms, rows));
                self.capture_errors.push(format!("{rows} rows on {sms} SMs: {e}"));
                false
            }
        }
    }

    /// Captures one graph step of layout `l` on partition `sms` with buffer set `set`. The first capture of a
    /// (partition, set) pair is preceded by the same step run eagerly and waited for (warm-up: lazily loaded
    /// code, cuBLASLt's workspace for the stream and its first-call set-up happen outside the capture).
    fn capture(&mut self, l: &StepLayout, sms: u32, set: usize, decode_max_len: u32) -> Result<CUgraphExec, GpuError> {
        let part = self.bound[&sms].0;
        let stream = part.stream;
        if !self.warmed.contains(&(sms, set)) {
            self.upload(l, set, 0, stream)?;
            self.forward(l, sms, set, decode_max_len, 0..self.model.layers.len())?;
            part.synchronize()?;
            self.warmed.insert((sms, set));
            self.stats.warmups += 1;
        }
        self.setup.gemm.prepare(stream)?;
        capture_graph(stream, || self.forward(l, sms, set, decode_max_len, 0..self.model.layers.len()))
    }
}

impl Drop for CudaExecutor<'_> {
    fn drop(&mut self) {
        let _ = self.setup.gpu.synchronize();
        for (_, g) in self.graphs.drain() {
            // SAFETY: instantiated by `capture`, destroyed once.
            unsafe {
                sys::cuGraphExecDestroy(g);
            }
        }
    }
}
