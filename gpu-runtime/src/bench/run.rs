//! Running the microbenchmarks on the GPU.
//!
//! Timing: CUDA events on the partition's stream around back-to-back launches. Two warm-up launches, one probe
//! launch sets how many launches a round holds (about 1 ms, at most 200), then `rounds` rounds; the record keeps
//! the median per-launch time of the rounds (mean, min, max, std beside it). Weights rotate through copies that
//! together exceed twice the L2 cache, KV caches through disjoint block sets, so no round reads from a warm L2;
//! all data is random (never zeros, which would make tensor cores and DRAM look faster).

use std::time::Instant;

use cudarc::driver::sys::{self, CUdeviceptr};
use duet_calibration::record::{OpClass, Record, TimeStats};
use duet_sim::model::ModelSpec;

use super::plan::{BenchPlan, Projection};
use super::records::{self as rec, BandwidthRow, CorunRow};
use super::stats::{launches_per_round, summarize};
use crate::driver::{DeviceBuffer, Event, Gpu};
use crate::error::{GpuError, check};
use crate::gemm::{Gemm, GemmShape};
use crate::green::{Partition, Partitions};
use crate::kernels::BLOCK_TOKENS;
use crate::ops::{DecodeScratch, Kernels, Ops, PagedKv, PrefillKernel, decode_split};

/// Bytes the rotating weight copies add up to (at least twice a 50 MB L2).
pub const ROTATE_BYTES: u64 = 256 << 20;

/// A partition with its bound kernels.
pub struct Bound<'a> {
    /// The partition.
    pub part: &'a Partition,
    /// Kernels bound to it.
    pub ops: Ops,
}

/// Everything a measurement needs.
pub struct Bench<'a> {
    /// The device.
    pub gpu: &'a Gpu,
    /// cuBLASLt.
    pub gemm: &'a Gemm,
    /// The model (per GPU).
    pub model: &'a ModelSpec,
    /// The plan.
    pub plan: &'a BenchPlan,
    /// One bound partition per SM count of the plan (same order as `plan.sm_counts`).
    pub parts: Vec<Bound<'a>>,
    /// Progress lines go here.
    pub log: &'a mut dyn FnMut(&str),
    /// Every record is appended here as it is measured.
    pub sink: &'a rec::Appender,
}

/// Binds the kernels on every SM count of `plan`.
pub fn bind_all<'a>(parts: &'a Partitions, kernels: &Kernels, plan: &BenchPlan) -> Result<Vec<Bound<'a>>, GpuError> {
    plan.sm_counts
        .iter()
        .map(|&s| {
            let part = parts.find(s).ok_or_else(|| GpuError::Invalid(format!("no partition of {s} SMs")))?;
            Ok(Bound { part, ops: kernels.bind(part)? })
        })
        .collect()
}

/// Times `f(i)` (the i-th launch) on `part`'s stream; see the module docs.
pub fn time(
    part: &Partition,
    rounds: u32,
    mut f: impl FnMut(usize) -> Result<(), GpuError>,
) -> Result<TimeStats, GpuError> {
    part.bind()?;
    let (e0, e1) = (Event::new()?, Event::new()?);
    let mut k = 0usize;
    for _ in 0..2 {
        f(k)?;
        k += 1;
    }
    e0.record(part.stream)?;
    f(k)?;
    k += 1;
    e1.record(part.stream)?;
    e1.synchronize()?;
    let n = launches_per_round(e0.elapsed_ms(&e1)?, 1.0, 200);
    let mut samples = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        e0.record(part.stream)?;
        for _ in 0..n {
            f(k)?;
            k += 1;
        }
        e1.record(part.stream)?;
        e1.synchronize()?;
        samples.push(e0.elapsed_ms(&e1)? / n as f64);
    }
    summarize(&samples).ok_or_else(|| GpuError::Unsupported(format!("non-positive timings {samples:?}")))
}

/// Rotating copies of one weight matrix.
struct Weights {
    buf: DeviceBuffer,
    copies: u64,
    bytes: u64,
}

impl Weights {
    fn new(ops: &Ops, d_in: u64, d_out: u64, seed: u64) -> Result<Weights, GpuError> {
        let bytes = d_in * d_out * 2;
        let copies = ROTATE_BYTES.div_ceil(bytes).clamp(1, 16);
        let buf = ops.random(d_in * d_out * copies, seed, 0.02)?;
        Ok(Weights { buf, copies, bytes })
    }

    fn ptr(&self, i: usize) -> CUdeviceptr {
        self.buf.ptr + (i as u64 % self.copies) * self.bytes
    }
}

impl Bench<'_> {
    fn whole(&self) -> &Bound<'_> {
        self.parts.last().expect("the plan has the whole GPU")
    }

    fn say(&mut self, s: &str) {
        (self.log)(s);
    }

    /// Projections over every token count and SM count.
    pub fn projections(&mut self) -> Result<Vec<Record>, GpuError> {
        let mut out = Vec::new();
        let max_t = *self.plan.tokens.iter().max().unwrap_or(&1);
        for p in self.plan.projections.clone() {
            self.gpu.bind()?;
            let whole = &self.whole().ops;
            let w = Weights::new(whole, p.d_in, p.d_out, 11)?;
            let tokens: Vec<u64> =
                if p.name == "lm_head" { self.plan.lm_head_tokens() } else { self.plan.tokens.clone() };
            let tmax = tokens.iter().copied().max().unwrap_or(1).min(max_t);
            let x = whole.random(tmax * p.d_in, 12, 1.0)?;
            let y = DeviceBuffer::alloc((tmax * p.d_out * 2) as usize)?;
            self.gpu.synchronize()?;
            for b in &self.parts {
                for &t in &tokens {
                    let plan = self.gemm.plan(GemmShape { tokens: t, d_in: p.d_in, d_out: p.d_out }, b.part.sms)?;
                    let stats = time(b.part, self.plan.rounds, |i| {
                        self.gemm.run(&plan, x.ptr, w.ptr(i), y.ptr, b.part.stream)
                    })?;
                    out.push(self.sink.keep(rec::linear(&p, t, b.part.sms, stats)));
                }
            }
            let best = out
                .iter()
                .filter(|r| r.name == p.name)
                .map(|r| r.work().flops / r.time_ms.median / 1e9)
                .fold(0.0, f64::max);
            self.say(&format!(
                "{}: {} -> {}, {} token counts x {} SM counts, best {:.1} TFLOP/s",
                p.name,
                p.d_in,
                p.d_out,
                tokens.len(),
                self.parts.len(),
                best
            ));
            self.gpu.bind()?;
        }
        Ok(out)
    }

    /// RMSNorm, residual add, SiLU-and-multiply and rotary over the token counts on every SM count.
    pub fn elementwise(&mut self) -> Result<Vec<Record>, GpuError> {
        let m = self.model;
        let (h, inter) = (m.hidden_size, m.intermediate_size);
        let heads = m.num_q_heads + m.num_kv_heads;
        let qkv_w = (m.num_q_heads + 2 * m.num_kv_heads) * m.head_dim;
        let tmax = *self.plan.tokens.iter().max().unwrap_or(&1);
        self.gpu.bind()?;
        let whole = &self.whole().ops;
        let (x, y, w) = (whole.random(tmax * h, 21, 1.0)?, whole.random(tmax * h, 22, 1.0)?, whole.random(h, 23, 1.0)?);
        let gu = whole.random(tmax * 2 * inter, 24, 2.0)?;
        let act = DeviceBuffer::alloc((tmax * inter * 2) as usize)?;
        let qkv = whole.random(tmax * qkv_w, 25, 1.0)?;
        let pos: Vec<i32> = (0..tmax as i32).collect();
        let pos = DeviceBuffer::from_slice(&pos)?;
        self.gpu.synchronize()?;
        let mut out = Vec::new();
        for b in &self.parts {
            for &t in &self.plan.tokens {
                let (o, s, tt) = (&b.ops, b.part.sms, t as u32);
                let r = self.plan.rounds;
                let st = time(b.part, r, |_| o.rmsnorm(y.ptr, x.ptr, w.ptr, tt, h as u32, 1e-6))?;
                out.push(self.sink.keep(rec::elementwise(OpClass::Rmsnorm, t, h, s, st)));
                let st = time(b.part, r, |_| o.residual_add(y.ptr, x.ptr, t * h))?;
                out.push(self.sink.keep(rec::elementwise(OpClass::Add, t, h, s, st)));
                let st = time(b.part, r, |_| o.silu_mul(act.ptr, gu.ptr, tt, inter as u32))?;
                out.push(self.sink.keep(rec::elementwise(OpClass::SiluMul, t, inter, s, st)));
                let st = time(b.part, r, |_| {
                    o.rotary(qkv.ptr, pos.ptr, tt, m.num_q_heads as u32, m.num_kv_heads as u32, 1e6)
                })?;
                out.push(self.sink.keep(rec::elementwise(OpClass::Rotary, t, heads * m.head_dim, s, st)));
            }
        }
        self.gpu.bind()?;
        self.say(&format!(
            "elementwise: 4 operators x {} token counts x {} SM counts",
            self.plan.tokens.len(),
            self.parts.len()
        ));
        Ok(out)
    }

    /// HBM read (1 GiB) and copy (512 MiB each way) bandwidth on every SM count.
    pub fn bandwidth(&mut self) -> Result<Vec<BandwidthRow>, GpuError> {
        const READ: u64 = 1 << 30;
        const COPY: u64 = 512 << 20;
        self.gpu.bind()?;
        let whole = &self.whole().ops;
        let src = whole.random(READ / 2, 31, 1.0)?;
        let dst = DeviceBuffer::alloc(COPY as usize)?;
        let sink = DeviceBuffer::alloc(4096)?;
        self.gpu.synchronize()?;
        let mut rows = Vec::new();
        for b in &self.parts {
            let rd = time(b.part, self.plan.rounds, |_| b.ops.read_bw(src.ptr, READ, sink.ptr))?;
            let cp = time(b.part, self.plan.rounds, |_| b.ops.copy_bw(dst.ptr, src.ptr, COPY))?;
            rows.push(BandwidthRow {
                sms: b.part.sms,
                read_gbps: READ as f64 / rd.median / 1e6,
                copy_gbps: 2.0 * COPY as f64 / cp.median / 1e6,
            });
        }
        self.gpu.bind()?;
        let last = rows.last().copied();
        if let Some(r) = last {
            self.say(&format!(
                "bandwidth on {} SMs: read {:.0} GB/s, copy {:.0} GB/s",
                r.sms, r.read_gbps, r.copy_gbps
            ));
        }
        Ok(rows)
    }

    /// Decode attention over the plan's (batch, context) cases on every SM count.
    pub fn decode_attention(&mut self) -> Result<Vec<Record>, GpuError> {
        let m = self.model;
        let (qh, kvh, d) = (m.num_q_heads as u32, m.num_kv_heads as u32, m.head_dim as u32);
        let bt = BLOCK_TOKENS;
        let pool_tokens: u64 = self
            .plan
            .decode
            .iter()
            .map(|c| c.batch as u64 * c.context as u64)
            .max()
            .unwrap_or(1)
            .max((ROTATE_BYTES * 4) / (kvh * d * 2) as u64);
        let pool_blocks = pool_tokens.div_ceil(bt as u64);
        let elems = pool_blocks * bt as u64 * (kvh * d) as u64;
        self.gpu.bind()?;
        let whole = &self.whole().ops;
        let (k, v) = (whole.random(elems, 41, 1.0)?, whole.random(elems, 42, 1.0)?);
        let max_batch = self.plan.decode.iter().map(|c| c.batch).max().unwrap_or(1);
        let qkv = whole.random(max_batch as u64 * ((qh + 2 * kvh) * d) as u64, 43, 1.0)?;
        let out = DeviceBuffer::alloc((max_batch * qh * d * 2) as usize)?;
        // More SMs mean more splits: size the scratch for the largest partition.
        let max_sms = self.parts.iter().map(|b| b.part.sms).max().unwrap_or(1);
        let max_parts = self
            .plan
            .decode
            .iter()
            .map(|c| c.batch * qh * decode_split(c.batch, kvh, c.context, max_sms).0)
            .max()
            .unwrap_or(1);
        let part_acc = DeviceBuffer::alloc((max_parts * d * 4) as usize)?;
        let part_ml = DeviceBuffer::alloc((max_parts * 2 * 4) as usize)?;
        let scratch = DecodeScratch { part_acc: part_acc.ptr, part_ml: part_ml.ptr };
        self.gpu.synchronize()?;
        let mut recs = Vec::new();
        for c in self.plan.decode.clone() {
            let (tables, sets, max_blocks) = rotating_tables(c.batch, c.context, pool_blocks as u32);
            let tables = DeviceBuffer::from_slice(&tables)?;
            let lens = DeviceBuffer::from_slice(&vec![c.context as i32; c.batch as usize])?;
            let set_bytes = (c.batch * max_blocks * 4) as u64;
            for b in &self.parts {
                let st = time(b.part, self.plan.rounds, |i| {
                    let kv = PagedKv {
                        k: k.ptr,
                        v: v.ptr,
                        tables: tables.ptr + (i as u64 % sets as u64) * set_bytes,
                        max_blocks: max_blocks as i32,
                    };
                    b.ops.decode_attention(out.ptr, qkv.ptr, &kv, lens.ptr, scratch, c.batch, c.context, qh, kvh)
                })?;
                recs.push(self.sink.keep(rec::decode(&c, m, b.part.sms, st)));
            }
            self.gpu.bind()?;
        }
        self.say(&format!("decode attention: {} cases x {} SM counts", self.plan.decode.len(), self.parts.len()));
        Ok(recs)
    }

    /// Prefill attention with `kernel` over the plan's (chunk, before) cases on every SM count.
    pub fn prefill_attention(&mut self, kernel: PrefillKernel) -> Result<Vec<Record>, GpuError> {
        let m = self.model;
        let (qh, kvh, d) = (m.num_q_heads as u32, m.num_kv_heads as u32, m.head_dim as u32);
        let max_ctx = self.plan.prefill.iter().map(|c| c.chunk + c.before).max().unwrap_or(1);
        let max_chunk = self.plan.prefill.iter().map(|c| c.chunk).max().unwrap_or(1);
        let blocks = max_ctx.div_ceil(BLOCK_TOKENS);
        let elems = (blocks * BLOCK_TOKENS * kvh * d) as u64;
        self.gpu.bind()?;
        let whole = &self.whole().ops;
        let (k, v) = (whole.random(elems, 51, 1.0)?, whole.random(elems, 52, 1.0)?);
        let qkv = whole.random((max_chunk * (qh + 2 * kvh) * d) as u64, 53, 1.0)?;
        let out = DeviceBuffer::alloc((max_chunk * qh * d * 2) as usize)?;
        let table: Vec<i32> = (0..blocks as i32).collect();
        let table = DeviceBuffer::from_slice(&table)?;
        let kv = PagedKv { k: k.ptr, v: v.ptr, tables: table.ptr, max_blocks: blocks as i32 };
        self.gpu.synchronize()?;
        let mut recs = Vec::new();
        for c in self.plan.prefill.clone() {
            let (qs, ql, cb) = (
                DeviceBuffer::from_slice(&[0i32])?,
                DeviceBuffer::from_slice(&[c.chunk as i32])?,
                DeviceBuffer::from_slice(&[c.before as i32])?,
            );
            for b in &self.parts {
                let st = time(b.part, self.plan.rounds, |_| {
                    b.ops.prefill_attention(kernel, out.ptr, qkv.ptr, &kv, qs.ptr, ql.ptr, cb.ptr, 1, c.chunk, qh, kvh)
                })?;
                recs.push(self.sink.keep(rec::prefill(&c, m, kernel.name(), b.part.sms, st)));
            }
            self.gpu.bind()?;
        }
        self.say(&format!("{}: {} cases x {} SM counts", kernel.name(), self.plan.prefill.len(), self.parts.len()));
        Ok(recs)
    }
}

/// Block tables for `batch` sequences of `context` tokens: as many disjoint sets as the pool holds (at most 8),
/// each set `batch x max_blocks` ints. Returns (tables, sets, max_blocks).
pub fn rotating_tables(batch: u32, context: u32, pool_blocks: u32) -> (Vec<i32>, u32, u32) {
    let max_blocks = context.div_ceil(BLOCK_TOKENS);
    let per_set = batch * max_blocks;
    let sets = (pool_blocks / per_set.max(1)).clamp(1, 8);
    let mut t = Vec::with_capacity((sets * per_set) as usize);
    for s in 0..sets {
        for i in 0..per_set {
            t.push(((s * per_set + i) % pool_blocks.max(1)) as i32);
        }
    }
    (t, sets, max_blocks)
}

/// Launch overheads: GPU time per empty kernel, host time to enqueue one, and the extra cost of alternating
/// between two green-context streams with a dependency between consecutive kernels.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Overheads {
    /// GPU-side time per back-to-back empty kernel (us).
    pub launch_gpu_us: f64,
    /// Host time to enqueue one kernel (us).
    pub launch_host_us: f64,
    /// Per-kernel wall time of a dependent chain on one stream (us).
    pub chain_same_stream_us: f64,
    /// Per-kernel wall time of a dependent chain alternating between two partitions' streams (us).
    pub chain_switching_us: f64,
}

/// Measures [`Overheads`] with `n` kernels; `a` and `b` are two partitions (a green pair).
pub fn overheads(whole: &Bound<'_>, a: &Bound<'_>, b: &Bound<'_>, n: usize) -> Result<Overheads, GpuError> {
    whole.part.bind()?;
    let (e0, e1) = (Event::new()?, Event::new()?);
    for _ in 0..10 {
        whole.ops.empty()?;
    }
    e0.record(whole.part.stream)?;
    let t = Instant::now();
    for _ in 0..n {
        whole.ops.empty()?;
    }
    let host = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    e1.record(whole.part.stream)?;
    e1.synchronize()?;
    let gpu = e0.elapsed_ms(&e1)? * 1e3 / n as f64;
    let chain = |alternate: bool| -> Result<f64, GpuError> {
        let evs = [sync_event()?, sync_event()?];
        let t = Instant::now();
        for i in 0..n {
            let x = if alternate && i % 2 == 1 { b } else { a };
            if i > 0 {
                // SAFETY: live stream and event handles.
                check("cuStreamWaitEvent", unsafe { sys::cuStreamWaitEvent(x.part.stream, evs[(i - 1) % 2], 0) })?;
            }
            x.part.bind()?;
            x.ops.empty()?;
            // SAFETY: live handles.
            check("cuEventRecord", unsafe { sys::cuEventRecord(evs[i % 2], x.part.stream) })?;
        }
        a.part.synchronize()?;
        b.part.synchronize()?;
        let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        for e in evs {
            // SAFETY: created above, destroyed once.
            unsafe { sys::cuEventDestroy_v2(e) };
        }
        Ok(us)
    };
    let same = chain(false)?;
    let switching = chain(true)?;
    Ok(Overheads {
        launch_gpu_us: gpu,
        launch_host_us: host,
        chain_same_stream_us: same,
        chain_switching_us: switching,
    })
}

fn sync_event() -> Result<sys::CUevent, GpuError> {
    let mut e = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    check("cuEventCreate", unsafe { sys::cuEventCreate(&mut e, sys::CUevent_flags::CU_EVENT_DISABLE_TIMING as u32) })?;
    Ok(e)
}

/// Co-running: a 32-token weight-streaming GEMM (decode-shaped) on the decode partition and a 4,096-token GEMM
/// (prefill-shaped) on the prefill partition, both `proj`, alone and together. Each side is timed while the
/// other side's queue covers at least twice its measured window.
pub fn contention(
    gemm: &Gemm,
    dec: &Bound<'_>,
    pre: &Bound<'_>,
    proj: &Projection,
    rounds: u32,
) -> Result<CorunRow, GpuError> {
    dec.part.bind()?;
    let wd = Weights::new(&dec.ops, proj.d_in, proj.d_out, 61)?;
    let xd = dec.ops.random(32 * proj.d_in, 63, 1.0)?;
    pre.part.bind()?;
    let wp = Weights::new(&pre.ops, proj.d_in, proj.d_out, 62)?;
    let xp = pre.ops.random(4096 * proj.d_in, 64, 1.0)?;
    let yd = DeviceBuffer::alloc((32 * proj.d_out * 2) as usize)?;
    let yp = DeviceBuffer::alloc((4096 * proj.d_out * 2) as usize)?;
    dec.part.synchronize()?;
    pre.part.synchronize()?;
    let pd = gemm.plan(GemmShape { tokens: 32, d_in: proj.d_in, d_out: proj.d_out }, dec.part.sms)?;
    let pp = gemm.plan(GemmShape { tokens: 4096, d_in: proj.d_in, d_out: proj.d_out }, pre.part.sms)?;
    let run_d = |i: usize| gemm.run(&pd, xd.ptr, wd.ptr(i), yd.ptr, dec.part.stream);
    let run_p = |i: usize| gemm.run(&pp, xp.ptr, wp.ptr(i), yp.ptr, pre.part.stream);
    let d_solo = time(dec.part, rounds, run_d)?;
    let p_solo = time(pre.part, rounds, run_p)?;
    // Background launches covering twice the measured side's expected window (rounds of ~1 ms plus warm-up).
    let window_ms = (rounds as f64 + 1.0) * 1.2 + 3.0 * d_solo.median.max(p_solo.median);
    let cover = |solo: f64| ((2.0 * window_ms / solo).ceil() as usize).clamp(2, 1000);
    pre.part.bind()?;
    for i in 0..cover(p_solo.median) {
        run_p(i)?;
    }
    let d_co = time(dec.part, rounds, run_d)?;
    pre.part.synchronize()?;
    dec.part.bind()?;
    for i in 0..cover(d_solo.median) {
        run_d(i)?;
    }
    let p_co = time(pre.part, rounds, run_p)?;
    dec.part.synchronize()?;
    Ok(CorunRow {
        decode_sms: dec.part.sms,
        prefill_sms: pre.part.sms,
        decode_solo_ms: d_solo.median,
        decode_corun_ms: d_co.median,
        prefill_solo_ms: p_solo.median,
        prefill_corun_ms: p_co.median,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotating_tables_are_disjoint_sets_within_the_pool() {
        let (t, sets, mb) = rotating_tables(4, 100, 1000);
        assert_eq!(mb, 7);
        assert_eq!(sets, 8);
        assert_eq!(t.len(), 8 * 4 * 7);
        let mut seen = t.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), t.len(), "sets share no block");
        assert!(t.iter().all(|&b| (0..1000).contains(&b)));
        // A case larger than the pool still gets one set (blocks wrap, reads stay in bounds).
        let (t, sets, _) = rotating_tables(256, 2048, 100);
        assert_eq!(sets, 1);
        assert!(t.iter().all(|&b| (0..100).contains(&b)));
    }
}
