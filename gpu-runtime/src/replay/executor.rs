//! The CUDA executor: the simulator's `Executor` (and `AsyncExecutor`) on an H100. Each step the engine plans
//! runs the model's layers on the partition of the requested SM count (the whole GPU or a green context),
//! asynchronously; CUDA events time it, and `wait` reports ends on the run's clock. Policies are the
//! simulator's, unchanged; the engine runs in wall-clock mode (`duet_sim::realtime`).
//!
//! Two buffer sets hold activations and metadata, so a prefill batch and a decode batch can run at once on the
//! two sides of a split. Look-ahead steps (`Launch::Graph`) of a decode batch replay a CUDA graph captured for
//! the partition and the padded batch size, at start-up for the keys given ([`CudaExecutor::capture_startup`]),
//! otherwise on first use, before the step's start event (capture time never counts as GPU time); metadata goes
//! in by asynchronous copies from page-locked memory before each replay. Graph steps take buffer set 0 when it is
//! free (the set the start-up graphs were captured with), eager steps set 1. When the engine announces a window of `k`
//! decode steps (a step with `window = k`), all `k` graph replays are enqueued back to back at the first step, with the
//! metadata of every step staged ahead in its own region of page-locked memory, and no host synchronisation inside the
//! window; the engine's later `Graph` steps take the tickets already in flight. A layer group of a segmented step (a
//! step with `group = (g, n)`, muxwise) runs only its layers, on the buffer set its step holds throughout.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::sys::{self, CUdeviceptr, CUgraphExec};
use duet_sim::Nanos;
use duet_sim::cost::{CostModel, Launch, SeqWork};
use duet_sim::executor::{Executor, ExecutorError, Step, StepCall, StepTiming};
use duet_sim::realtime::AsyncExecutor;

use super::layout::{StepLayout, is_decode, layer_group};
use super::model::DeviceModel;
use crate::device::Setup;
use crate::driver::Event;
use crate::error::{GpuError, check};
use crate::gemm::{GemmPlan, GemmShape};
use crate::green::Partition;
use crate::lookahead::{bucket_for, graph_buckets};
use crate::ops::{DecodeScratch, Ops, PagedKv, PrefillKernel};

mod buffers;
mod graphs;
mod progress;

use buffers::Buffers;
pub use buffers::{buffer_bytes, buffer_sizes};
pub use progress::{PROGRESS_HEADER, progress_line};

/// Sizes and switches of the executor.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Most token rows in a step (the policy's token budget plus running decodes).
    pub max_tokens: u32,
    /// Most sequences in a step.
    pub max_seqs: u32,
    /// Longest context (prompt plus output).
    pub max_context: u32,
    /// KV cache blocks (the engine's capacity).
    pub kv_blocks: u32,
    /// Replay look-ahead steps from CUDA graphs.
    pub graphs: bool,
    /// Prefill-attention kernel.
    pub prefill_kernel: PrefillKernel,
    /// Seed of the synthetic weights.
    pub seed: u64,
    /// Graphs to capture at start-up: (decode partition SMs, bucket).
    pub startup_graphs: Vec<(u32, u32)>,
}

/// Counters of a replay.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ExecStats {
    /// Steps launched kernel by kernel.
    pub eager_steps: u64,
    /// Steps replayed from a graph.
    pub graph_steps: u64,
    /// Graphs captured at start-up.
    pub startup_captures: u64,
    /// Wall time of the start-up captures, ms.
    pub startup_capture_ms: f64,
    /// Graphs captured during the run (keys the start-up list missed, or buffer set 1 when set 0 was busy).
    pub late_captures: u64,
    /// Captures that failed; those steps ran eagerly (and are logged as eager steps).
    pub capture_failures: u64,
    /// Eager warm-up passes run before a partition's first capture.
    pub warmups: u64,
}

/// Most steps of a look-ahead window enqueued at once (staging regions per buffer set).
pub const MAX_WINDOW: u32 = 16;

struct InFlight {
    ticket: u64,
    set: usize,
    start: Event,
    end: Event,
}

/// The executor.
pub struct CudaExecutor<'a> {
    setup: &'a Setup,
    model: DeviceModel,
    cost: Arc<CostModel>,
    cfg: ExecutorConfig,
    bound: HashMap<u32, (&'a Partition, Ops)>,
    plans: HashMap<(u64, u64, u64, u32), GemmPlan>,
    sets: Vec<Buffers>,
    in_flight: Vec<InFlight>,
    graphs: HashMap<(u32, u32, usize), CUgraphExec>,
    buckets: Vec<u32>,
    table_stride: u32,
    t0_wall: Instant,
    next_ticket: u64,
    /// Counters.
    pub stats: ExecStats,
    /// Per step (by ticket): GPU time between the events around it, ns.
    pub gpu_ns: Vec<u64>,
    /// The engine's calls, in call order.
    pub log: Vec<StepCall>,
    /// The ticket of each call in `log` (a window's later steps were enqueued, and ticketed, at its first call,
    /// so tickets need not follow call order).
    pub log_tickets: Vec<u64>,
    /// Per partition (SMs): tickets of window steps already enqueued, for the engine's coming `Graph` steps.
    queued: HashMap<u32, VecDeque<u64>>,
    /// Buffer set holding the activations of a segmented step between its layer groups.
    held: Option<usize>,
    /// (partition SMs, buffer set) pairs that ran a warm-up pass before their first capture.
    warmed: std::collections::HashSet<(u32, usize)>,
    /// Graph keys (partition SMs, rows) whose capture failed: their steps run eagerly.
    failed_graphs: std::collections::HashSet<(u32, u32)>,
    /// Why captures failed, one line per failure (`replay.json`).
    pub capture_errors: Vec<String>,
    /// Per ticket: whether the step was replayed from a graph.
    pub ticket_graph: Vec<bool>,
    /// Per ticket: the partition's SMs.
    ticket_sms: Vec<u32>,
    /// Completed steps are appended here as they end (`steps.partial.csv`), so a run cut short keeps them.
    progress: Option<std::fs::File>,
}

fn err(e: GpuError) -> ExecutorError {
    ExecutorError(e.to_string())
}

impl<'a> CudaExecutor<'a> {
    /// Loads the model (synthetic weights) and KV cache, allocates two buffer sets; `cost` gives the estimates
    /// policies see while a step runs.
    pub fn new(setup: &'a Setup, cost: Arc<CostModel>, cfg: ExecutorConfig) -> Result<CudaExecutor<'a>, GpuError> {
        setup.gpu.bind()?;
        let whole = setup.kernels.bind(&setup.parts.whole)?;
        let (free, _) = setup.gpu.mem_info()?;
        let spec = cost.model().clone();
        let model = DeviceModel::new(&spec, cfg.kv_blocks, &whole, free as u64, cfg.seed)?;
        let table_stride = buffers::table_stride(&cfg);
        let sets = (0..2)
            .map(|_| Self::buffers(&spec, &cfg, table_stride, setup.parts.whole.sms))
            .collect::<Result<_, _>>()?;
        setup.gpu.synchronize()?;
        let mut bound = HashMap::new();
        bound.insert(setup.parts.whole.sms, (&setup.parts.whole, whole));
        Ok(CudaExecutor {
            setup,
            model,
            cost,
            buckets: graph_buckets(cfg.max_seqs),
            cfg,
            bound,
            plans: HashMap::new(),
            sets,
            in_flight: Vec::new(),
            graphs: HashMap::new(),
            table_stride,
            t0_wall: Instant::now(),
            next_ticket: 0,
            stats: ExecStats::default(),
            gpu_ns: Vec::new(),
            log: Vec::new(),
            log_tickets: Vec::new(),
            queued: HashMap::new(),
            held: None,
            warmed: Default::default(),
            failed_graphs: Default::default(),
            capture_errors: Vec::new(),
            ticket_graph: Vec::new(),
            ticket_sms: Vec::new(),
            progress: None,
        })
    }

    /// Appends each completed step to `path` (`steps.partial.csv`, [`PROGRESS_HEADER`]) as it ends.
    pub fn log_progress_to(&mut self, path: &std::path::Path) -> Result<(), GpuError> {
        use std::io::Write;
        let io = |source| GpuError::Io { path: path.to_path_buf(), source };
        let mut f = std::fs::File::create(path).map_err(io)?;
        f.write_all(PROGRESS_HEADER.as_bytes()).map_err(io)?;
        self.progress = Some(f);
        Ok(())
    }

    /// Restarts the run's clock (after the start-up captures, so that they are not in the first step's time).
    pub fn start_clock(&mut self) {
        self.t0_wall = Instant::now();
    }

    /// The partition of `sms` SMs, its kernels bound on first use.
    fn partition(&mut self, sms: u32) -> Result<&'a Partition, GpuError> {
        if !self.bound.contains_key(&sms) {
            let part = self
                .setup
                .parts
                .find(sms)
                .ok_or_else(|| GpuError::Invalid(format!("no partition of {sms} SMs on this GPU")))?;
            let ops = self.setup.kernels.bind(part)?;
            self.bound.insert(sms, (part, ops));
        }
        Ok(self.bound[&sms].0)
    }

    /// Binds partition `sms` and picks a free buffer set: set 0 first for graph steps, set 1 first otherwise.
    fn ops(&mut self, sms: u32, graph: bool) -> Result<(&'a Partition, usize), GpuError> {
        let part = self.partition(sms)?;
        let order = if graph { [0, 1] } else { [1, 0] };
        let set = order.into_iter().find(|&i| self.sets[i].users == 0).ok_or_else(|| {
            GpuError::Invalid("more than two steps in flight (the engine runs at most a prefill and a decode)".into())
        })?;
        Ok((part, set))
    }

    fn plan(&mut self, tokens: u64, d_in: u64, d_out: u64, sms: u32) -> Result<(), GpuError> {
        if !self.plans.contains_key(&(tokens, d_in, d_out, sms)) {
            let p = self.setup.gemm.plan(GemmShape { tokens, d_in, d_out }, sms)?;
            self.plans.insert((tokens, d_in, d_out, sms), p);
        }
        Ok(())
    }

    /// Every GEMM plan a step of `t` rows emitting `e` tokens needs on `sms` SMs.
    fn plans_for(&mut self, t: u64, e: u64, sms: u32) -> Result<(), GpuError> {
        let m = self.cost.model().clone();
        let (h, i) = (m.hidden_size, m.intermediate_size);
        let qkv = (m.num_q_heads + 2 * m.num_kv_heads) * m.head_dim;
        self.plan(t, h, qkv, sms)?;
        self.plan(t, m.num_q_heads * m.head_dim, h, sms)?;
        self.plan(t, h, 2 * i, sms)?;
        self.plan(t, i, h, sms)?;
        if e > 0 {
            self.plan(e, h, m.vocab_size, sms)?;
        }
        Ok(())
    }

    /// `y = x W^T` with the plan for `(tokens, d_in, d_out)` on `sms` SMs.
    fn gemm(
        &self,
        shape: (u64, u64, u64),
        sms: u32,
        x: CUdeviceptr,
        w: CUdeviceptr,
        y: CUdeviceptr,
        stream: sys::CUstream,
    ) -> Result<(), GpuError> {
        let p = &self.plans[&(shape.0, shape.1, shape.2, sms)];
        self.setup.gemm.run(p, x, w, y, stream)
    }

    /// Enqueues layers `layers` of one step of `l` on partition `sms` with buffer set `set` (metadata already
    /// copied in): the embedding when they start at layer 0, the LM head when they end at the last layer.
    fn forward(
        &self,
        l: &StepLayout,
        sms: u32,
        set: usize,
        decode_max_len: u32,
        layers: Range<usize>,
    ) -> Result<(), GpuError> {
        let (part, ops) = &self.bound[&sms];
        let b = &self.sets[set];
        let m = &self.model.spec;
        let (h, i, v) = (m.hidden_size, m.intermediate_size, m.vocab_size);
        let (hq, hkv, d) = (m.num_q_heads, m.num_kv_heads, m.head_dim);
        let width = (hq + 2 * hkv) * d;
        let (t, e) = (l.tokens as u64, l.emit_rows.len() as u64);
        let s = part.stream;
        part.bind()?;
        if layers.start == 0 {
            ops.embed(b.x.ptr, self.model.embed.ptr, b.ids.ptr, t as u32, h as u32)?;
        }
        let stride = self.table_stride;
        let last = layers.end == self.model.layers.len();
        for (li, w) in self.model.layers.iter().enumerate().take(layers.end).skip(layers.start) {
            ops.rmsnorm(b.xn.ptr, b.x.ptr, w.attn_norm.ptr, t as u32, h as u32, 1e-6)?;
            self.gemm((t, h, width), sms, b.xn.ptr, w.qkv.ptr, b.qkv.ptr, s)?;
            ops.rotary(b.qkv.ptr, b.positions.ptr, t as u32, hq as u32, hkv as u32, 1e6)?;
            let kv = PagedKv {
                k: self.model.k_cache[li].ptr,
                v: self.model.v_cache[li].ptr,
                tables: b.tables.ptr,
                max_blocks: stride as i32,
            };
            ops.kv_append(&kv, b.qkv.ptr, b.slot_of.ptr, t as u32, hq as u32, hkv as u32)?;
            if l.prefill_seqs() > 0 {
                let k = self.cfg.prefill_kernel;
                ops.prefill_attention(
                    k,
                    b.attn.ptr,
                    b.qkv.ptr,
                    &kv,
                    b.q_start.ptr,
                    b.q_len.ptr,
                    b.ctx_before.ptr,
                    l.prefill_seqs(),
                    l.max_q,
                    hq as u32,
                    hkv as u32,
                )?;
            }
            if l.decode_seqs() > 0 {
                let p = l.prefill_tokens as u64;
                let dkv = PagedKv { tables: b.tables.ptr + (l.prefill_seqs() * stride * 4) as u64, ..kv };
                let scratch = DecodeScratch { part_acc: b.part_acc.ptr, part_ml: b.part_ml.ptr };
                ops.decode_attention(
                    b.attn.ptr + p * hq * d * 2,
                    b.qkv.ptr + p * width * 2,
                    &dkv,
                    b.decode_ctx.ptr,
                    scratch,
                    l.decode_seqs(),
                    decode_max_len,
                    hq as u32,
                    hkv as u32,
                )?;
            }
            self.gemm((t, hq * d, h), sms, b.attn.ptr, w.o.ptr, b.tmp.ptr, s)?;
            ops.residual_add(b.x.ptr, b.tmp.ptr, t * h)?;
            ops.rmsnorm(b.xn.ptr, b.x.ptr, w.mlp_norm.ptr, t as u32, h as u32, 1e-6)?;
            self.gemm((t, h, 2 * i), sms, b.xn.ptr, w.gate_up.ptr, b.gu.ptr, s)?;
            ops.silu_mul(b.act.ptr, b.gu.ptr, t as u32, i as u32)?;
            self.gemm((t, i, h), sms, b.act.ptr, w.down.ptr, b.tmp.ptr, s)?;
            ops.residual_add(b.x.ptr, b.tmp.ptr, t * h)?;
        }
        if e > 0 && last {
            // Gather the emitting rows, final norm, LM head, greedy token.
            ops.embed(b.gathered.ptr, b.x.ptr, b.emit_rows.ptr, e as u32, h as u32)?;
            ops.rmsnorm(b.xn.ptr, b.gathered.ptr, self.model.final_norm.ptr, e as u32, h as u32, 1e-6)?;
            self.gemm((e, h, v), sms, b.xn.ptr, self.model.lm_head.ptr, b.logits.ptr, s)?;
            ops.argmax_rows(b.sampled.ptr, b.logits.ptr, e as u32, v as u32)?;
        }
        Ok(())
    }

    fn upload(&mut self, l: &StepLayout, set: usize, region: usize, stream: sys::CUstream) -> Result<(), GpuError> {
        let vocab = self.model.spec.vocab_size as i32;
        let ids: Vec<i32> = l.positions.iter().map(|p| p % vocab).collect();
        let mut tables = l.tables.clone();
        // Re-stride the block tables to the executor's fixed row length (kernels and graphs take it).
        if l.max_blocks != self.table_stride {
            tables = l
                .tables
                .chunks(l.max_blocks as usize)
                .flat_map(|r| {
                    let mut row = r.to_vec();
                    row.resize(self.table_stride as usize, r[0]);
                    row
                })
                .collect();
        }
        let b = &mut self.sets[set];
        let parts: [(&[i32], CUdeviceptr); 9] = [
            (&ids, b.ids.ptr),
            (&l.positions, b.positions.ptr),
            (&l.slot_of, b.slot_of.ptr),
            (&l.q_start, b.q_start.ptr),
            (&l.q_len, b.q_len.ptr),
            (&l.ctx_before, b.ctx_before.ptr),
            (&tables, b.tables.ptr),
            (&l.decode_ctx, b.decode_ctx.ptr),
            (&l.emit_rows, b.emit_rows.ptr),
        ];
        let offset = region * b.region;
        b.staging.upload_async_at(offset, &parts, stream)
    }

    fn check_fits(&self, l: &StepLayout) -> Result<(), GpuError> {
        let seqs = l.prefill_seqs() + l.decode_seqs();
        if l.tokens > self.cfg.max_tokens.max(self.cfg.max_seqs)
            || seqs > self.cfg.max_seqs
            || l.max_blocks > self.table_stride
        {
            return Err(GpuError::Invalid(format!(
                "step of {} tokens, {seqs} sequences, {} blocks per sequence exceeds the executor's {} tokens, {} \
                 sequences, {} blocks",
                l.tokens, l.max_blocks, self.cfg.max_tokens, self.cfg.max_seqs, self.table_stride
            )));
        }
        Ok(())
    }

    /// Enqueues `steps` steps of `work` on partition `sms` (one unless a look-ahead window was announced); the
    /// `j`-th step runs every sequence over `j` more cached tokens. `group = (g, n)` runs only layer group `g` of
    /// `n` (eagerly; `(0, 1)` is the whole step): the groups of a step share a buffer set, held from the first
    /// group's launch to the last one's. Returns the steps' tickets in order.
    fn launch(
        &mut self,
        sms: u32,
        work: &[SeqWork],
        launch: Launch,
        steps: u32,
        group: (u32, u32),
    ) -> Result<Vec<u64>, GpuError> {
        let all_decode = work.iter().all(is_decode);
        let bucket = bucket_for(&self.buckets, work.len() as u32);
        // Graph replays: every step of an announced window, and lone look-ahead steps.
        let mut graph_rows = (self.cfg.graphs && all_decode && group.1 == 1 && (steps > 1 || launch == Launch::Graph))
            .then_some(bucket)
            .flatten()
            .filter(|&rows| !self.failed_graphs.contains(&(sms, rows)));
        // A whole step (group (0, 1)) may run while a segmented step holds its set (muxwise: decode steps on one
        // partition between a layered prefill's groups on the other); ops() then gives it the other set.
        let (part, set) = match (group.0, self.held) {
            (0, None) => self.ops(sms, graph_rows.is_some())?,
            (0, Some(_)) if group.1 == 1 => self.ops(sms, graph_rows.is_some())?,
            (g, Some(set)) if g > 0 => (self.partition(sms)?, set),
            _ => {
                return Err(GpuError::Invalid(format!(
                    "layer group {} of {} out of order (one segmented step at a time, groups in order)",
                    group.0, group.1
                )));
            }
        };
        let layers = layer_group(group.0, group.1, self.model.layers.len() as u32);
        if let Some(rows) = graph_rows
            && !self.graphs.contains_key(&(sms, rows, set))
        {
            // Captured before the step's start event: capture time is host time, not the step's. A capture that
            // fails leaves this key to eager steps from now on.
            let l = self.graph_layout(work, 0, rows, sms)?;
            if self.capture_or_fall_back(&l, sms, rows, set) {
                self.stats.late_captures += 1;
            } else {
                graph_rows = None;
            }
        }
        let steps = if graph_rows.is_some() { steps.clamp(1, MAX_WINDOW) } else { 1 };
        let stream = part.stream;
        part.bind()?;
        let mut tickets = Vec::with_capacity(steps as usize);
        for j in 0..steps {
            let (l, decode_max_len) = match graph_rows {
                Some(rows) => (self.graph_layout(work, j, rows, sms)?, self.cfg.max_context),
                None => {
                    let mut l = StepLayout::new(work, self.model.kv_blocks)?;
                    self.check_fits(&l)?;
                    l.max_blocks = l.max_blocks.min(self.table_stride);
                    self.plans_for(l.tokens as u64, l.emit_rows.len() as u64, sms)?;
                    let max = l.max_decode_ctx;
                    (l, max)
                }
            };
            // Stream order keeps step j's metadata copy behind step j - 1's kernels; each step stages its
            // metadata in its own host region, so nothing is overwritten before it is copied.
            self.upload(&l, set, j as usize, stream)?;
            let (start, end) = (Event::new()?, Event::new()?);
            start.record(stream)?;
            match graph_rows {
                Some(rows) => {
                    let key = (sms, rows, set);
                    // SAFETY: a live graph captured on this partition's stream.
                    check("cuGraphLaunch", unsafe { sys::cuGraphLaunch(self.graphs[&key], stream) })?;
                    self.stats.graph_steps += 1;
                }
                None => {
                    self.forward(&l, sms, set, decode_max_len, layers.clone())?;
                    self.stats.eager_steps += 1;
                }
            }
            end.record(stream)?;
            let ticket = self.next_ticket;
            self.next_ticket += 1;
            self.sets[set].users += 1;
            self.in_flight.push(InFlight { ticket, set, start, end });
            self.gpu_ns.push(0);
            self.ticket_graph.push(graph_rows.is_some());
            self.ticket_sms.push(sms);
            tickets.push(ticket);
        }
        if group.1 > 1 && group.0 == 0 {
            // Hold the set: the activations stay there between this step's groups.
            self.sets[set].users += 1;
            self.held = Some(set);
        }
        if group.1 > 1 && group.0 + 1 == group.1 {
            self.sets[set].users -= 1;
            self.held = None;
        }
        Ok(tickets)
    }
}

impl Executor for CudaExecutor<'_> {
    fn execute(&mut self, step: &Step<'_>) -> Result<StepTiming, ExecutorError> {
        let (now, sms, work, launch) = (step.now, step.sms, step.work, step.launch);
        // The whole step's estimate (what policies see while it runs; the engine gives a layer group its share).
        let estimate = self.cost.iteration_launched(sms, work, launch);
        let (group, groups) = step.group;
        let queued = match launch {
            Launch::Graph => self.queued.get_mut(&sms).and_then(VecDeque::pop_front),
            Launch::Eager => None,
        };
        let ticket = match queued {
            // A later step of a window already in flight on this partition.
            Some(t) => t,
            None if groups > 1 => self.launch(sms, work, Launch::Eager, 1, (group, groups)).map_err(err)?[0],
            None => {
                let mut t = self.launch(sms, work, launch, step.window.max(1), (0, 1)).map_err(err)?;
                let first = t.remove(0);
                if !t.is_empty() {
                    self.queued.insert(sms, t.into());
                }
                first
            }
        };
        // A look-ahead step whose graph could not be captured ran eagerly: logged as what ran.
        let ran = if self.ticket_graph[ticket as usize] { Launch::Graph } else { Launch::Eager };
        self.log.push(StepCall { now, sms, work: work.to_vec(), launch: ran, layer_groups: groups });
        self.log_tickets.push(ticket);
        Ok(StepTiming { duration: estimate.total, hbm_bytes: 0.0, memory_ns: 0.0, pending: Some(ticket) })
    }
}

impl AsyncExecutor for CudaExecutor<'_> {
    fn now(&self) -> Nanos {
        Nanos(self.t0_wall.elapsed().as_nanos() as u64)
    }

    fn wait(&mut self, deadline: Option<Nanos>) -> Result<Option<(u64, Nanos)>, ExecutorError> {
        if deadline.is_none() && self.in_flight.is_empty() {
            return Err(ExecutorError("nothing to wait for: no step in flight and no deadline".into()));
        }
        loop {
            for k in 0..self.in_flight.len() {
                // SAFETY: a live event recorded after the step.
                let status = unsafe { sys::cuEventQuery(self.in_flight[k].end.0) };
                if status == sys::CUresult::CUDA_SUCCESS {
                    // The end on the run clock is when the host sees it (as a server would); the GPU time between
                    // the step's own events is kept for the per-step comparison.
                    let end = self.now();
                    let f = self.in_flight.remove(k);
                    self.sets[f.set].users -= 1;
                    let ms = f.start.elapsed_ms(&f.end).map_err(err)?;
                    self.gpu_ns[f.ticket as usize] = (ms * 1e6).round() as u64;
                    if let Some(p) = self.progress.as_mut() {
                        use std::io::Write;
                        let sms = self.ticket_sms[f.ticket as usize];
                        let line = progress_line(f.ticket, sms, self.ticket_graph[f.ticket as usize], end, ms);
                        // Unbuffered: a run killed at its deadline keeps every step that ended before.
                        if p.write_all(line.as_bytes()).is_err() {
                            self.progress = None;
                        }
                    }
                    return Ok(Some((f.ticket, end)));
                }
                if status != sys::CUresult::CUDA_ERROR_NOT_READY {
                    return Err(err(GpuError::Driver { call: "cuEventQuery", code: format!("{status:?}") }));
                }
            }
            if deadline.is_some_and(|d| self.now() >= d) {
                return Ok(None);
            }
            std::thread::yield_now();
        }
    }

    fn as_executor(&mut self) -> &mut dyn Executor {
        self
    }
}
