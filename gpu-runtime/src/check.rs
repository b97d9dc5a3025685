//! Correctness of every kernel against the float64 references on small random shapes (with the model's head
//! size and grouping), outputs poisoned with NaN first so that an unwritten value fails. Decode attention is
//! checked on the whole GPU and on the smallest green partition, where it splits contexts differently.
//!
//! A [`Checker`] prints each result as it completes; a device error inside a check (a launch that fails, a
//! kernel that faults) comes back as [`GpuError::Check`] naming the kernel, its shape and the partition.

use serde::Serialize;

use crate::driver::DeviceBuffer;
use crate::error::GpuError;
use crate::gemm::{Gemm, GemmShape};
use crate::ops::{DecodeScratch, Ops, PagedKv, PrefillKernel};
use crate::reference::{self as r, AttnShape, ErrorStats, TOLERANCE};

/// One kernel check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Kernel.
    pub kernel: String,
    /// Shape.
    pub case: String,
    /// Where it ran (`whole GPU (132 SMs)`, `green group of 8 SMs`).
    pub partition: String,
    /// Error against the reference.
    pub error: ErrorStats,
    /// Whether it is within [`TOLERANCE`] with no NaN (exactly equal for kernels that copy, generate or pick).
    pub passed: bool,
}

/// Model shapes the checks use (sharded for tensor parallelism where relevant).
#[derive(Debug, Clone, Copy)]
pub struct CheckShapes {
    /// Hidden size.
    pub hidden: u32,
    /// MLP intermediate size.
    pub inter: u32,
    /// Query heads.
    pub q_heads: u32,
    /// Key/value heads.
    pub kv_heads: u32,
    /// Head size.
    pub head_dim: u32,
    /// Longest context the model takes (positions of the rotary check stay below it).
    pub max_context: u32,
}

/// Positions the rotary check uses: the first ones, a few inside, and the last position of the model's context
/// (`max_context - 1`); all distinct and below `max_context`.
pub fn rotary_positions(max_context: u32) -> Vec<i32> {
    let last = max_context.max(1) - 1;
    let mut p: Vec<i32> = [0, 1, 37, 4095, last].into_iter().filter(|&x| x <= last).map(|x| x as i32).collect();
    p.dedup();
    p
}

/// Collects check results, printing each as it completes, and names the kernel, shape and partition of a check
/// whose device calls fail.
pub struct Checker<'a> {
    /// Results so far.
    pub out: Vec<CheckResult>,
    partition: String,
    log: &'a mut dyn FnMut(&str),
}

impl<'a> Checker<'a> {
    /// A checker for runs on `partition` (a label), printing to `log`.
    pub fn new(partition: String, log: &'a mut dyn FnMut(&str)) -> Checker<'a> {
        Checker { out: Vec::new(), partition, log }
    }

    /// Runs the device part of a check; an error comes back naming `kernel`, `case` and the partition.
    pub fn at<T>(&self, kernel: &str, case: &str, f: impl FnOnce() -> Result<T, GpuError>) -> Result<T, GpuError> {
        f().map_err(|e| GpuError::Check {
            kernel: kernel.into(),
            case: case.into(),
            partition: self.partition.clone(),
            source: Box::new(e),
        })
    }

    /// Compares `got` with `want`, prints the result and keeps it.
    pub fn add(&mut self, kernel: &str, case: String, got: &[f64], want: &[f64]) {
        let error = r::compare(got, want);
        let tol = if EXACT.contains(&kernel) { 0.0 } else { TOLERANCE };
        let partition = self.partition.clone();
        let r = CheckResult { kernel: kernel.into(), case, partition, passed: error.passes(tol), error };
        (self.log)(&r.line());
        self.out.push(r);
    }
}

impl CheckResult {
    /// One line: kernel, shape, partition, errors and the verdict.
    pub fn line(&self) -> String {
        format!(
            "check {:<20} {:<52} on {}: max abs err {:.3e}, rel {:.2e}, non-finite {} -> {}",
            self.kernel,
            self.case,
            self.partition,
            self.error.max_abs,
            self.error.rel_to_max,
            self.error.non_finite,
            if self.passed { "ok" } else { "FAILED" }
        )
    }
}

fn upload_bf16(v: &[u16]) -> Result<DeviceBuffer, GpuError> {
    DeviceBuffer::from_slice(v)
}

fn output(bytes: usize) -> Result<DeviceBuffer, GpuError> {
    let b = DeviceBuffer::alloc(bytes)?;
    b.poison()?;
    Ok(b)
}

/// Kernels that only move or generate values must match their reference exactly.
const EXACT: [&str; 4] = ["fill_uniform", "kv_append", "embed", "argmax_rows"];

fn read_bf16(b: &DeviceBuffer, n: usize) -> Result<Vec<f64>, GpuError> {
    Ok(r::widen(&b.download::<u16>(n)?))
}

/// Elementwise kernels, GEMMs and sampling on `ops`'s partition.
pub fn check_dense(c: &mut Checker, ops: &Ops, gemm: &Gemm, s: CheckShapes, seed: u64) -> Result<(), GpuError> {
    let (t, h, inter) = (5usize, s.hidden as usize, s.inter as usize);

    // fill_uniform: the device stream equals the host's bit for bit.
    let n = 10_007usize;
    let case = format!("{n} values");
    let got = c.at("fill_uniform", &case, || {
        let b = output(n * 2)?;
        ops.fill_uniform(b.ptr, n as u64, seed, 0.75)?;
        ops.synchronize()?;
        read_bf16(&b, n)
    })?;
    c.add("fill_uniform", case, &got, &r::widen(&r::fill_uniform(n, seed, 0.75)));

    // rmsnorm, then residual_add (in place) on the same input
    let x = r::fill_uniform(t * h, seed + 1, 1.0);
    let w = r::fill_uniform(h, seed + 2, 1.0);
    let case = format!("{t} x {h}");
    let (dx, got) = c.at("rmsnorm", &case, || {
        let (dx, dw, y) = (upload_bf16(&x)?, upload_bf16(&w)?, output(t * h * 2)?);
        ops.rmsnorm(y.ptr, dx.ptr, dw.ptr, t as u32, h as u32, 1e-6)?;
        ops.synchronize()?;
        Ok((dx, read_bf16(&y, t * h)?))
    })?;
    c.add("rmsnorm", case.clone(), &got, &r::rmsnorm(&r::widen(&x), &r::widen(&w), h, 1e-6));
    let yv = r::fill_uniform(t * h, seed + 3, 1.0);
    let got = c.at("residual_add", &case, || {
        let dy = upload_bf16(&yv)?;
        ops.residual_add(dx.ptr, dy.ptr, (t * h) as u64)?;
        ops.synchronize()?;
        read_bf16(&dx, t * h)
    })?;
    let want: Vec<f64> = r::widen(&x).iter().zip(r::widen(&yv)).map(|(a, b)| a + b).collect();
    c.add("residual_add", case, &got, &want);

    // silu_mul
    let gu = r::fill_uniform(t * 2 * inter, seed + 4, 4.0);
    let case = format!("{t} x {inter}");
    let got = c.at("silu_mul", &case, || {
        let (dgu, o) = (upload_bf16(&gu)?, output(t * inter * 2)?);
        ops.silu_mul(o.ptr, dgu.ptr, t as u32, inter as u32)?;
        ops.synchronize()?;
        read_bf16(&o, t * inter)
    })?;
    c.add("silu_mul", case, &got, &r::silu_mul(&r::widen(&gu), inter));

    // rotary (in place) at scattered positions inside the model's context
    let (qh, kvh, d) = (s.q_heads as usize, s.kv_heads as usize, s.head_dim as usize);
    let width = (qh + 2 * kvh) * d;
    let pos = rotary_positions(s.max_context);
    let tr = pos.len();
    let qkv = r::fill_uniform(tr * width, seed + 5, 1.0);
    let theta = 1_000_000.0;
    let case = format!("{tr} tokens at {pos:?}, {qh}+{kvh} heads");
    let got = c.at("rotary", &case, || {
        let (dq, dp) = (upload_bf16(&qkv)?, DeviceBuffer::from_slice(&pos)?);
        ops.rotary(dq.ptr, dp.ptr, tr as u32, qh as u32, kvh as u32, theta)?;
        ops.synchronize()?;
        read_bf16(&dq, tr * width)
    })?;
    let mut want = r::widen(&qkv);
    r::rotary(&mut want, &pos, qh, kvh, d, theta as f64);
    c.add("rotary", case, &got, &want);

    // GEMM: a small odd shape and a model-shaped QKV projection
    for (tok, din, dout) in [(7u64, 256u64, 384u64), (4, s.hidden as u64, width as u64)] {
        let shape = GemmShape { tokens: tok, d_in: din, d_out: dout };
        let xs = r::fill_uniform((tok * din) as usize, seed + 6, 1.0);
        let ws = r::fill_uniform((din * dout) as usize, seed + 7, 0.05);
        let case = format!("{tok} x {din} -> {dout}");
        let got = c.at("gemm", &case, || {
            let (dx, dw, y) = (upload_bf16(&xs)?, upload_bf16(&ws)?, output((tok * dout * 2) as usize)?);
            let plan = gemm.plan(shape, ops.sms)?;
            gemm.run(&plan, dx.ptr, dw.ptr, y.ptr, ops.stream)?;
            ops.synchronize()?;
            read_bf16(&y, (tok * dout) as usize)
        })?;
        let want = r::linear(&r::widen(&xs), &r::widen(&ws), tok as usize, din as usize, dout as usize);
        c.add("gemm", case, &got, &want);
    }

    // embed and argmax
    let vocab = 3001usize;
    let table = r::fill_uniform(vocab * h, seed + 8, 1.0);
    let ids: Vec<i32> = vec![0, 3000, 17, 17, 1234];
    let case = format!("{t} ids of {vocab}");
    let got = c.at("embed", &case, || {
        let (dt, di, e) = (upload_bf16(&table)?, DeviceBuffer::from_slice(&ids)?, output(t * h * 2)?);
        ops.embed(e.ptr, dt.ptr, di.ptr, t as u32, h as u32)?;
        ops.synchronize()?;
        read_bf16(&e, t * h)
    })?;
    let want: Vec<f64> = ids.iter().flat_map(|&i| r::widen(&table[i as usize * h..(i as usize + 1) * h])).collect();
    c.add("embed", case, &got, &want);
    let logits = r::fill_uniform(t * vocab, seed + 9, 1.0);
    let case = format!("{t} x {vocab}");
    let got = c.at("argmax_rows", &case, || {
        let (dl, am) = (upload_bf16(&logits)?, output(t * 4)?);
        ops.argmax_rows(am.ptr, dl.ptr, t as u32, vocab as u32)?;
        ops.synchronize()?;
        Ok(am.download::<i32>(t)?.iter().map(|&v| v as f64).collect::<Vec<f64>>())
    })?;
    let want: Vec<f64> = r::argmax_rows(&r::widen(&logits), vocab).iter().map(|&v| v as f64).collect();
    c.add("argmax_rows", case, &got, &want);
    Ok(())
}

/// A random paged cache of `blocks` blocks and block tables that give each sequence a shuffled set of blocks.
struct CacheCase {
    shape: AttnShape,
    k: Vec<u16>,
    v: Vec<u16>,
    tables: Vec<i32>,
}

impl CacheCase {
    fn new(s: CheckShapes, seqs: usize, max_len: usize, seed: u64) -> CacheCase {
        let bt = crate::kernels::BLOCK_TOKENS as usize;
        let max_blocks = max_len.div_ceil(bt);
        let blocks = seqs * max_blocks;
        let shape = AttnShape {
            q_heads: s.q_heads as usize,
            kv_heads: s.kv_heads as usize,
            head_dim: s.head_dim as usize,
            block_tokens: bt,
            max_blocks,
        };
        let n = blocks * bt * shape.kv_heads * shape.head_dim;
        // A seeded permutation of the blocks (so tables are not the identity).
        let mut perm: Vec<i32> = (0..blocks as i32).collect();
        for i in (1..perm.len()).rev() {
            let j = (r::mix64(seed ^ i as u64) % (i as u64 + 1)) as usize;
            perm.swap(i, j);
        }
        CacheCase { shape, k: r::fill_uniform(n, seed, 1.0), v: r::fill_uniform(n, seed + 1, 1.0), tables: perm }
    }

    fn upload(&self) -> Result<(DeviceBuffer, DeviceBuffer, DeviceBuffer), GpuError> {
        Ok((upload_bf16(&self.k)?, upload_bf16(&self.v)?, DeviceBuffer::from_slice(&self.tables)?))
    }
}

/// KV append, decode attention and prefill attention on `ops`'s partition.
pub fn check_attention(c: &mut Checker, ops: &Ops, s: CheckShapes, seed: u64) -> Result<(), GpuError> {
    let (qh, kvh, d) = (s.q_heads as usize, s.kv_heads as usize, s.head_dim as usize);
    let width = (qh + 2 * kvh) * d;
    let scale = 1.0 / (d as f64).sqrt();

    // kv_append: every slot of a small cache written once, in a shuffled order.
    let case = CacheCase::new(s, 2, 48, seed);
    let slots = case.tables.iter().flat_map(|b| (0..16).map(move |o| b * 16 + o)).collect::<Vec<i32>>();
    let tok = slots.len();
    let qkv = r::fill_uniform(tok * width, seed + 2, 1.0);
    let n = case.k.len();
    let label = format!("{tok} tokens, {kvh} KV heads");
    let got = c.at("kv_append", &label, || {
        let (kc, vc) = (output(n * 2)?, output(n * 2)?);
        let (dq, ds) = (upload_bf16(&qkv)?, DeviceBuffer::from_slice(&slots)?);
        let kv = PagedKv { k: kc.ptr, v: vc.ptr, tables: 0, max_blocks: 0 };
        ops.kv_append(&kv, dq.ptr, ds.ptr, tok as u32, qh as u32, kvh as u32)?;
        ops.synchronize()?;
        let mut got = read_bf16(&kc, n)?;
        got.extend(read_bf16(&vc, n)?);
        Ok(got)
    })?;
    let (mut wk, mut wv) = (vec![0.0; n], vec![0.0; n]);
    r::kv_append(&mut wk, &mut wv, &r::widen(&qkv), &slots, &case.shape);
    wk.extend(wv);
    c.add("kv_append", label, &got, &wk);

    // decode attention: contexts from 1 token to several splits' worth; once with the slices sized for the
    // longest of them, once sized for a far longer maximum (as a CUDA graph captured for any context is).
    let lens: Vec<i32> = vec![1, 17, 300, 2100];
    let case = CacheCase::new(s, lens.len(), 2112, seed + 3);
    let q = r::fill_uniform(lens.len() * width, seed + 4, 1.0);
    let seqs = lens.len();
    let want = r::decode_attention(
        &r::widen(&q),
        &r::widen(&case.k),
        &r::widen(&case.v),
        &case.tables,
        &lens,
        &case.shape,
        scale,
    );
    for max_len in [2100u32, 40_960] {
        let (splits, _) = crate::ops::decode_split(seqs as u32, kvh as u32, max_len, ops.sms);
        let label = format!("contexts {lens:?}, {splits} splits (sized for {max_len})");
        let got = c.at("decode_attention", &label, || {
            let (k, v, tables) = case.upload()?;
            let kv = PagedKv { k: k.ptr, v: v.ptr, tables: tables.ptr, max_blocks: case.shape.max_blocks as i32 };
            let (dq, dl) = (upload_bf16(&q)?, DeviceBuffer::from_slice(&lens)?);
            let part_acc = DeviceBuffer::alloc(seqs * qh * splits as usize * d * 4)?;
            let part_ml = DeviceBuffer::alloc(seqs * qh * splits as usize * 2 * 4)?;
            let o = output(seqs * qh * d * 2)?;
            let scratch = DecodeScratch { part_acc: part_acc.ptr, part_ml: part_ml.ptr };
            ops.decode_attention(o.ptr, dq.ptr, &kv, dl.ptr, scratch, seqs as u32, max_len, qh as u32, kvh as u32)?;
            ops.synchronize()?;
            read_bf16(&o, seqs * qh * d)
        })?;
        c.add("decode_attention", label, &got, &want);
    }

    // prefill attention over cached context: fresh prompt, chunk after context, short tail, long chunk
    // (several query tiles of either kernel, tiles not aligned with the cached context).
    let q_len: Vec<i32> = vec![37, 64, 5, 150];
    let before: Vec<i32> = vec![0, 50, 200, 13];
    let q_start: Vec<i32> = vec![0, 37, 101, 106];
    let tokens = 256usize;
    let case = CacheCase::new(s, 4, 208, seed + 5);
    let q = r::fill_uniform(tokens * width, seed + 6, 1.0);
    let want = r::prefill_attention(
        &r::widen(&q),
        &r::widen(&case.k),
        &r::widen(&case.v),
        &case.tables,
        &q_start,
        &q_len,
        &before,
        &case.shape,
        scale,
    );
    for kernel in [PrefillKernel::Simt, PrefillKernel::TensorCore] {
        let label = format!("chunks {q_len:?} after {before:?} cached");
        let got = c.at(kernel.name(), &label, || {
            let (k, v, tables) = case.upload()?;
            let kv = PagedKv { k: k.ptr, v: v.ptr, tables: tables.ptr, max_blocks: case.shape.max_blocks as i32 };
            let dq = upload_bf16(&q)?;
            let (a, b, cb) = (
                DeviceBuffer::from_slice(&q_start)?,
                DeviceBuffer::from_slice(&q_len)?,
                DeviceBuffer::from_slice(&before)?,
            );
            let o = output(tokens * qh * d * 2)?;
            ops.prefill_attention(kernel, o.ptr, dq.ptr, &kv, a.ptr, b.ptr, cb.ptr, 4, 150, qh as u32, kvh as u32)?;
            ops.synchronize()?;
            read_bf16(&o, tokens * qh * d)
        })?;
        c.add(kernel.name(), label, &got, &want);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotary_positions_stay_inside_the_context() {
        assert_eq!(rotary_positions(40_960), vec![0, 1, 37, 4095, 40_959]);
        assert_eq!(rotary_positions(131_072), vec![0, 1, 37, 4095, 131_071]);
        assert_eq!(rotary_positions(2048), vec![0, 1, 37, 2047]);
        assert_eq!(rotary_positions(1), vec![0]);
        for (m, _) in duet_sim::model::ModelSpec::bundled() {
            let ctx = m.max_context.unwrap_or(32_768);
            assert!(rotary_positions(ctx).iter().all(|&p| (p as u32) < ctx), "{}", m.name);
        }
    }

    #[test]
    fn a_checker_prints_each_result_and_names_the_failing_check() {
        let mut lines = Vec::new();
        let mut log = |l: &str| lines.push(l.to_string());
        let mut c = Checker::new("green group of 8 SMs".into(), &mut log);
        c.add("rmsnorm", "5 x 4096".into(), &[1.0, 2.0], &[1.0, 2.0]);
        c.add("embed", "5 ids".into(), &[1.0, 2.5], &[1.0, 2.0]);
        let e = c
            .at("decode_attention", "contexts [1, 17]", || -> Result<(), GpuError> {
                Err(GpuError::Driver { call: "cuStreamSynchronize", code: "CUDA_ERROR_ILLEGAL_ADDRESS".into() })
            })
            .unwrap_err()
            .to_string();
        assert_eq!(c.out.len(), 2);
        assert!(c.out[0].passed && !c.out[1].passed);
        assert_eq!(c.out[1].partition, "green group of 8 SMs");
        drop(c);
        assert_eq!(lines.len(), 2, "printed as they complete");
        assert!(lines[0].contains("rmsnorm") && lines[0].ends_with("-> ok"), "{}", lines[0]);
        assert!(lines[1].contains("on green group of 8 SMs") && lines[1].ends_with("FAILED"), "{}", lines[1]);
        for want in ["decode_attention", "contexts [1, 17]", "green group of 8 SMs", "CUDA_ERROR_ILLEGAL_ADDRESS"] {
            assert!(e.contains(want), "{want} missing from {e}");
        }
    }
}
