//! The attention-aware roofline cost model: the latency of one iteration (one batch) on `S` SMs.
//!
//! For a batch of sequences, sequence `r` processing `q_r` new tokens over `c_r` cached ones, with
//! `n = sum q_r` tokens and `m` sequences that emit a token this iteration:
//!
//! ```text
//! t(S) = L x [ t_lin(QKV) + t_lin(O) + t_lin(gate/up) + t_lin(down)
//!              + t_mem(2 x RMSNorm) + t_mem(SiLU-mul) + t_mem(rotary)
//!              + sum_r t_attn(q_r, c_r) ]
//!        + t_mem(embedding of n) + t_mem(final RMSNorm of n) + t_lin(LM head, m tokens)
//!        + overhead
//! t_lin(op)  = max(F / Pi(S, rows, cols), B / BW(S))          (linear layers: compute or memory bound)
//! t_attn(r)  = max(F_r / Pi_attn(S), B_r / BW(S))             (each request's own roofline, summed)
//! t_mem(op)  = B / BW(S)                                      (elementwise: FLOPs are negligible)
//! ```
//!
//! QKV is `h -> (h_q + 2 h_kv) d_h`, O is `h_q d_h -> h`, gate/up is fused `h -> 2 I`, down is `I -> h`, the LM
//! head `h -> V`. FLOPs and bytes of each operator are in [`ops`]; `Pi` and `BW` come from [`DeviceCurves`].
//! `overhead` is the per-iteration CPU scheduling and kernel-launch time ([`CostConfig::iteration_overhead_ns`],
//! plus [`CostConfig::per_seq_overhead_ns`] per sequence),
//! or the CUDA-graph launch time ([`CostConfig::graph_launch_ns`]) for later steps of a look-ahead window.
//! Tensor parallelism ([`CostConfig::tensor_parallel`]): the model passed in is one GPU's shard
//! ([`ModelSpec::shard`]), and each iteration adds `t_comm = (2 L + 1) x t_ar(n h s)`: two ring all-reduces of
//! the `n x h` activations per layer (after the attention output projection and after the MLP down
//! projection) and one after the vocabulary-parallel embedding ([`collective::RingAllReduce`]). The all-reduces
//! are not overlapped with compute and run at the same speed on any SM partition (NCCL's own channels); the
//! logits gather of the LM head is not modelled.
//! Not modelled here: writing new K/V into the cache (included neither in FLOPs nor bytes; under 1% of the QKV
//! bytes). Contention between partitions running at the same time is applied by the
//! engine ([`crate::engine::Contention`]), not here.

mod attention;
pub mod check;
pub mod collective;
pub mod curves;
pub mod efficiency;
mod memo;
pub mod ops;
mod pricer;

use std::sync::Arc;

use crate::gpu::GpuSpec;
use crate::model::ModelSpec;
use crate::time::Nanos;
pub use curves::{AttentionRates, DefaultCurves, DeviceCurves, Elementwise, LinearSmScaling};
pub use efficiency::{EngineCurves, KernelEfficiency};
use ops::Work;
pub use pricer::{Pricer, PricerScratch, settled};

/// Settings of the cost model that are not properties of the model or GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct CostConfig {
    /// Host time of an eagerly launched iteration (CPU scheduling, input preparation, kernel launches), in ns.
    /// Every batch a policy starts pays it once. Default 1 ms: an assumption for a vLLM/SGLang-class engine,
    /// pending calibration.
    pub iteration_overhead_ns: u64,
    /// Launch time of one decode step replayed from a captured CUDA graph inside a look-ahead window (the
    /// window's host work is paid once, by its first step). Default 30 us: an assumption (graph launches are
    /// reported well under 0.5 ms), pending calibration.
    pub graph_launch_ns: u64,
    /// Host time per sequence of an eagerly launched iteration (input preparation, sampling, output
    /// processing that grow with the batch), in ns: an eager batch of `m` sequences pays
    /// `iteration_overhead_ns + m x per_seq_overhead_ns`. Default 0 (an engine preset calibrates it).
    pub per_seq_overhead_ns: u64,
    /// Tensor parallelism of the instance (`None`: one GPU).
    pub tensor_parallel: Option<TensorParallel>,
    /// Extra attention time of each decoding request in a *mixed* iteration (one that also carries a prefill
    /// chunk), as a fraction `p` of its roofline time: attention kernels run less efficiently on mixed
    /// prefill+decode batches than on uniform ones (DuetServe's motivation), so each decode's attention there
    /// takes `(1 + p) x max(F_r / Pi, B_r / BW)`; its traffic is unchanged. Default 0 (no penalty) until measured:
    /// a profile's fitted value ([`CostModel`] callers set it from `Overheads::mixed_attention_penalty`), or
    /// `--mixed-attention-penalty`.
    pub mixed_attention_penalty: f64,
}

impl Default for CostConfig {
    fn default() -> Self {
        Self {
            iteration_overhead_ns: 1_000_000,
            graph_launch_ns: 30_000,
            per_seq_overhead_ns: 0,
            tensor_parallel: None,
            mixed_attention_penalty: 0.0,
        }
    }
}

/// Tensor parallelism of an instance: its degree and the all-reduce model of its interconnect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorParallel {
    /// GPUs per instance.
    pub degree: u32,
    /// All-reduce time model.
    pub all_reduce: collective::RingAllReduce,
}

/// How an iteration's kernels are launched, which sets its host overhead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// Scheduled and launched by the host: pays [`CostConfig::iteration_overhead_ns`].
    Eager,
    /// A later step of a look-ahead window, replayed from a CUDA graph: pays [`CostConfig::graph_launch_ns`].
    Graph,
}

/// One sequence's share of an iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqWork {
    /// New tokens processed (prefill chunk length, or 1 for a decode step).
    pub new_tokens: u32,
    /// Tokens already in the KV cache before this iteration.
    pub cached_tokens: u32,
    /// Whether the sequence samples a token at the end of the iteration (decode, or the last prefill chunk).
    pub emits_token: bool,
}

/// An iteration's predicted latency, split by operator class (seconds) plus the total in ns.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IterationCost {
    /// Linear layers (QKV, O, gate/up, down) over all layers.
    pub linear_s: f64,
    /// Attention over all layers and requests.
    pub attention_s: f64,
    /// Norms, activation, rotary, embedding.
    pub elementwise_s: f64,
    /// LM head.
    pub lm_head_s: f64,
    /// Tensor-parallel all-reduces.
    pub comm_s: f64,
    /// Fixed per-iteration overhead.
    pub overhead_s: f64,
    /// Bytes moved to or from HBM.
    pub hbm_bytes: f64,
    /// Time the bytes take at the partition's bandwidth alone (the memory-bound share used by contention).
    pub memory_s: f64,
    /// Sum of the above, rounded to the nearest nanosecond.
    pub total: Nanos,
}

/// The roofline cost model for one model on one GPU.
#[derive(Debug)]
pub struct CostModel {
    /// Identity for the GEMM memo ([`memo`]): unique per constructed model, never 0.
    id: u64,
    model: ModelSpec,
    gpu: GpuSpec,
    curves: Arc<dyn DeviceCurves>,
    config: CostConfig,
    /// The highest arithmetic intensity (FLOPs / byte) of one decoding request's attention over every context
    /// ([`attention::decode_intensity`]).
    decode_intensity: f64,
}

impl CostModel {
    /// A cost model with the default analytic curves of `gpu`.
    pub fn new(model: ModelSpec, gpu: GpuSpec, config: CostConfig) -> Self {
        let curves = Arc::new(DefaultCurves::new(gpu.clone()));
        Self::with_curves(model, gpu, curves, config)
    }

    /// A cost model with custom SM-scaling curves (e.g. a fitted profile).
    pub fn with_curves(model: ModelSpec, gpu: GpuSpec, curves: Arc<dyn DeviceCurves>, config: CostConfig) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let decode_intensity = attention::decode_intensity(&model);
        Self { id, model, gpu, curves, config, decode_intensity }
    }

    /// The model this cost model describes.
    pub fn model(&self) -> &ModelSpec {
        &self.model
    }

    /// The GPU this cost model describes.
    pub fn gpu(&self) -> &GpuSpec {
        &self.gpu
    }

    /// Time in seconds of a linear layer `d_in -> d_out` on `n` tokens on `sms` SMs (the curves' GEMM time;
    /// `max(F / Pi, B / BW)` with the default curves).
    pub fn linear_time(&self, sms: u32, n: u64, d_in: u64, d_out: u64) -> f64 {
        self.linear(sms, n, d_in, d_out, &mut Tally::default())
    }

    fn linear(&self, sms: u32, n: u64, d_in: u64, d_out: u64, t: &mut Tally) -> f64 {
        if n == 0 {
            return 0.0;
        }
        let w = ops::linear(n, d_in, d_out, self.model.dtype_bytes);
        t.add(w, self.curves.bandwidth(sms));
        memo::gemm_time(self.id, sms, n, d_in, d_out, || self.curves.gemm_time(sms, n, d_out, w))
    }

    fn elementwise(&self, sms: u32, op: Elementwise, w: Work, t: &mut Tally) -> f64 {
        t.add(w, self.curves.bandwidth(sms));
        self.curves.elementwise_time(sms, op, w)
    }

    /// A batch's new tokens and the sequences that emit a token.
    #[inline]
    fn counts(batch: &[SeqWork]) -> (u64, u64) {
        let n = batch.iter().map(|w| u64::from(w.new_tokens)).sum();
        (n, batch.iter().filter(|w| w.emits_token).count() as u64)
    }

    /// Predicted latency of one eagerly launched iteration running `batch` on `sms` SMs (module docs).
    pub fn iteration(&self, sms: u32, batch: &[SeqWork]) -> IterationCost {
        self.iteration_launched(sms, batch, Launch::Eager)
    }

    /// Host overhead of a launch kind, in ns.
    pub fn launch_overhead_ns(&self, launch: Launch) -> u64 {
        match launch {
            Launch::Eager => self.config.iteration_overhead_ns,
            Launch::Graph => self.config.graph_launch_ns,
        }
    }

    /// Predicted latency of one iteration running `batch` on `sms` SMs, launched as `launch`.
    pub fn iteration_launched(&self, sms: u32, batch: &[SeqWork], launch: Launch) -> IterationCost {
        self.iteration_with::<true>(sms, batch, launch)
    }

    /// [`CostModel::iteration_launched`]'s `total` in ns (the same value), without tallying the traffic that only
    /// the executor's contention model reads: what the policies' predictions use.
    pub fn predict_ns(&self, sms: u32, batch: &[SeqWork], launch: Launch) -> u64 {
        self.iteration_with::<false>(sms, batch, launch).total.0
    }

    /// An iteration's cost; with `TALLY` false, attention's traffic is left out of `hbm_bytes` and `memory_s`
    /// (`total` is the same either way).
    #[inline(always)]
    fn iteration_with<const TALLY: bool>(&self, sms: u32, batch: &[SeqWork], launch: Launch) -> IterationCost {
        let (n, emitting) = Self::counts(batch);
        // Everything but attention and overhead depends on (SMs, n, emitting) only: from the memo.
        let mut fixed = self.fixed_part(sms, n, emitting);
        // Each request's attention ([`CostModel::attention_time`]), its traffic tallied in batch order.
        let bandwidth = self.curves.bandwidth(sms);
        let pass = self.attention_pass(sms, self.curves.attention_rates(sms), self.mixed_factor(batch));
        // A memory-bound decode's time is its traffic's time at `bandwidth` too when the bandwidths are the same.
        let same_bw = pass.decode_bandwidth() == Some(bandwidth);
        let attention: f64 = batch
            .iter()
            .filter(|w| w.new_tokens > 0)
            .map(|w| {
                let q = u64::from(w.new_tokens);
                let (work, solo, t) = pass.time(self, q, u64::from(w.cached_tokens));
                if TALLY {
                    if same_bw && q == 1 {
                        fixed.per_layer.add_timed(work.bytes, solo);
                    } else {
                        fixed.per_layer.add(work, bandwidth);
                    }
                }
                t
            })
            .sum();
        self.assemble(&fixed, attention, n, batch.len(), launch)
    }

    /// The fixed part of an iteration ([`CostModel::fixed`]), from the memo when it is there.
    #[inline]
    fn fixed_part(&self, sms: u32, n: u64, emitting: u64) -> memo::Fixed {
        memo::fixed(self.id, sms, n, emitting, || self.fixed(sms, n, emitting))
    }

    /// An iteration's cost from its fixed part (with attention's traffic tallied in, or not), its summed
    /// per-layer attention time, its `n` tokens and `seqs` sequences.
    #[inline(always)]
    fn assemble(&self, fixed: &memo::Fixed, attention: f64, n: u64, seqs: usize, launch: Launch) -> IterationCost {
        let m = &self.model;
        let layers = m.num_layers as f64;
        let memo::Fixed { linear, per_layer_mem, per_layer, once_mem, once, lm_head_s } = *fixed;
        let overhead_ns = match launch {
            Launch::Eager => self.config.iteration_overhead_ns + self.config.per_seq_overhead_ns * seqs as u64,
            Launch::Graph => self.config.graph_launch_ns,
        };
        let overhead_s = overhead_ns as f64 * 1e-9;
        let comm_s = match self.config.tensor_parallel {
            Some(tp) if n > 0 => {
                (2.0 * layers + 1.0) * tp.all_reduce.time_s((n * m.hidden_size * m.dtype_bytes) as f64, tp.degree)
            }
            _ => 0.0,
        };
        let mut cost = IterationCost {
            linear_s: layers * linear,
            attention_s: layers * attention,
            elementwise_s: layers * per_layer_mem + once_mem,
            lm_head_s,
            comm_s,
            overhead_s,
            hbm_bytes: layers * per_layer.bytes + once.bytes,
            memory_s: layers * per_layer.memory_s + once.memory_s,
            total: Nanos::ZERO,
        };
        let sum = cost.linear_s + cost.attention_s + cost.elementwise_s + cost.lm_head_s + cost.comm_s;
        cost.total = Nanos::from_secs_f64(sum) + Nanos(overhead_ns);
        cost
    }
}

impl CostModel {
    /// The part of an iteration of `n` tokens (`emitting` of which sample) on `sms` SMs that does not depend on
    /// the sequences' contexts: linear and elementwise operators of a layer with their traffic (attention's
    /// traffic is added to that tally afterwards, in batch order), and the embedding, final norm and LM head.
    fn fixed(&self, sms: u32, n: u64, emitting: u64) -> memo::Fixed {
        let m = &self.model;
        let s = m.dtype_bytes;
        let qkv_width = (m.num_q_heads + 2 * m.num_kv_heads) * m.head_dim;
        // Per-layer traffic is tallied once and multiplied by the layer count.
        let mut per_layer = Tally::default();
        let linear = self.linear(sms, n, m.hidden_size, qkv_width, &mut per_layer)
            + self.linear(sms, n, m.num_q_heads * m.head_dim, m.hidden_size, &mut per_layer)
            + self.linear(sms, n, m.hidden_size, 2 * m.intermediate_size, &mut per_layer)
            + self.linear(sms, n, m.intermediate_size, m.hidden_size, &mut per_layer);
        let per_layer_mem = if n > 0 {
            2.0 * self.elementwise(sms, Elementwise::RmsNorm, ops::rmsnorm(n, m.hidden_size, s), &mut per_layer)
                + self.elementwise(sms, Elementwise::SiluMul, ops::silu_mul(n, m.intermediate_size, s), &mut per_layer)
                + self.elementwise(
                    sms,
                    Elementwise::Rotary,
                    ops::rotary(n, m.num_q_heads, m.num_kv_heads, m.head_dim, s),
                    &mut per_layer,
                )
        } else {
            0.0
        };
        // The second norm of each layer moves bytes too.
        if n > 0 {
            per_layer.add(ops::rmsnorm(n, m.hidden_size, s), self.curves.bandwidth(sms));
        }
        let mut once = Tally::default();
        let once_mem = if n > 0 {
            self.elementwise(sms, Elementwise::Embedding, ops::embedding(n, m.hidden_size, s), &mut once)
                + self.elementwise(sms, Elementwise::RmsNorm, ops::rmsnorm(n, m.hidden_size, s), &mut once)
        } else {
            0.0
        };
        let lm_head_s = self.linear(sms, emitting, m.hidden_size, m.vocab_size, &mut once);
        memo::Fixed { linear, per_layer_mem, per_layer, once_mem, once, lm_head_s }
    }
}

/// Bytes an iteration moves and the time they take at the partition's bandwidth.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    bytes: f64,
    memory_s: f64,
}

impl Tally {
    fn add(&mut self, w: Work, bandwidth: f64) {
        self.bytes += w.bytes;
        self.memory_s += w.bytes / bandwidth;
    }

    /// [`Tally::add`] of `bytes` whose time at the bandwidth, `bytes / bandwidth`, is `time` already.
    fn add_timed(&mut self, bytes: f64, time: f64) {
        self.bytes += bytes;
        self.memory_s += time;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Round-number hardware: 1e12 FLOP/s for GEMMs and attention, 1e9 B/s, on any SM count.
    #[derive(Debug)]
    struct Flat;
    impl DeviceCurves for Flat {
        fn gemm_flops(&self, _: u32, _: u64, _: u64) -> f64 {
            1e12
        }
        fn attention_flops(&self, _: u32) -> f64 {
            1e12
        }
        fn bandwidth(&self, _: u32) -> f64 {
            1e9
        }
    }

    fn tiny() -> ModelSpec {
        ModelSpec::from_json(
            "tiny",
            r#"{"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
                "head_dim":16,"intermediate_size":128,"vocab_size":100,"tie_word_embeddings":true}"#,
        )
        .unwrap()
    }

    /// A mixed-batch penalty `p` adds `p` times the decodes' attention to a mixed iteration (every layer), and
    /// leaves decode-only and prefill-only iterations, and every iteration at `p = 0`, as they were.
    #[test]
    fn the_mixed_penalty_slows_only_the_decodes_of_mixed_batches() {
        let (m, gpu) = (ModelSpec::resolve("qwen3-8b").unwrap(), GpuSpec::by_name("h100-sxm").unwrap());
        let with = |p: f64| {
            CostModel::new(m.clone(), gpu.clone(), CostConfig { mixed_attention_penalty: p, ..CostConfig::default() })
        };
        let (plain, slowed) = (with(0.0), with(0.25));
        let seq = |q, c| SeqWork { new_tokens: q, cached_tokens: c, emits_token: q == 1 };
        let decodes: Vec<SeqWork> = (0..40).map(|i| seq(1, 2000 + 97 * i)).collect();
        let chunk = seq(512, 1000);
        let mixed: Vec<SeqWork> = decodes.iter().copied().chain([chunk]).collect();
        for sms in [16, 66, 132] {
            for batch in [&decodes[..], &[chunk][..]] {
                assert_eq!(slowed.iteration(sms, batch), plain.iteration(sms, batch), "{sms} SMs, uniform batch");
            }
            let (a, b) = (plain.iteration(sms, &mixed), slowed.iteration(sms, &mixed));
            let decode_attention: f64 =
                decodes.iter().map(|w| plain.attention_time(sms, 1, u64::from(w.cached_tokens))).sum();
            let extra = b.attention_s - a.attention_s;
            let want = 0.25 * decode_attention * m.num_layers as f64;
            assert!((extra - want).abs() <= 1e-9 * want, "{sms} SMs: {extra} vs {want}");
            assert_eq!((b.hbm_bytes, b.memory_s, b.linear_s), (a.hbm_bytes, a.memory_s, a.linear_s));
            assert!(b.total > a.total);
        }
    }

    #[test]
    fn iteration_sums_operators_by_hand() {
        let gpu = GpuSpec::by_name("h100-sxm").unwrap();
        let cm = CostModel::with_curves(
            tiny(),
            gpu,
            Arc::new(Flat),
            CostConfig {
                iteration_overhead_ns: 500,
                graph_launch_ns: 7,
                per_seq_overhead_ns: 0,
                tensor_parallel: None,
                mixed_attention_penalty: 0.0,
            },
        );
        // One decode (q=1, c=4, emits) and one prefill chunk (q=2, c=0, does not emit): n = 3, m = 1.
        let batch = [
            SeqWork { new_tokens: 1, cached_tokens: 4, emits_token: true },
            SeqWork { new_tokens: 2, cached_tokens: 0, emits_token: false },
        ];
        let c = cm.iteration(132, &batch);
        // At 1e9 B/s against 1e12 FLOP/s every operator here is memory bound: time = bytes / 1e9.
        // Linear bytes (n = 3): QKV (192+8192+384)*2 = 17,536; O (192+4096+192)*2 = 8,960;
        // gate/up 64->256: (192+16384+768)*2 = 34,688; down 128->64: (384+8192+192)*2 = 17,536. Sum 78,720.
        assert!((c.linear_s - 2.0 * 78_720e-9).abs() < 1e-15, "{}", c.linear_s);
        // Attention: decode q=1,c=4: Q,O 2*4*1*16*2 = 256, K,V 2*2*5*16*2 = 640 -> 896;
        // prefill q=2,c=0: 512 + 2*2*2*16*2 = 512 + 256 = 768. Sum 1,664 per layer.
        assert!((c.attention_s - 2.0 * 1_664e-9).abs() < 1e-15, "{}", c.attention_s);
        // Per layer: 2 norms (4*3*64+64)*2 = 1,664 each; SiLU 3*3*128*2 = 2,304; rotary 2*3*96*2 = 1,152.
        // Once: embedding 2*3*64*2 = 768 and final norm 1,664.
        let elem = 2.0 * (2.0 * 1_664.0 + 2_304.0 + 1_152.0) + 768.0 + 1_664.0;
        assert!((c.elementwise_s - elem * 1e-9).abs() < 1e-15, "{}", c.elementwise_s);
        // LM head for 1 token: (64 + 6,400 + 100) * 2 = 13,128 bytes.
        assert!((c.lm_head_s - 13_128e-9).abs() < 1e-15, "{}", c.lm_head_s);
        let total_ns = 2.0 * 78_720.0 + 2.0 * 1_664.0 + elem + 13_128.0 + 500.0;
        assert_eq!(c.total, Nanos(total_ns as u64));
        // The same batch replayed from a CUDA graph pays the graph launch instead of the host overhead.
        assert_eq!(cm.iteration_launched(132, &batch, Launch::Graph).total, Nanos(total_ns as u64 - 500 + 7));
    }

    #[test]
    fn tensor_parallel_adds_two_all_reduces_per_layer_plus_one() {
        let gpu = GpuSpec::by_name("h100-sxm").unwrap();
        let ar = collective::RingAllReduce { bus_bandwidth: 1e9, step_latency_s: 1e-6 };
        let tp = TensorParallel { degree: 2, all_reduce: ar };
        let cfg = CostConfig { tensor_parallel: Some(tp), ..CostConfig::default() };
        let one = CostModel::with_curves(tiny(), gpu.clone(), Arc::new(Flat), CostConfig::default());
        let two = CostModel::with_curves(tiny(), gpu, Arc::new(Flat), cfg);
        let batch = [SeqWork { new_tokens: 3, cached_tokens: 0, emits_token: true }];
        let (a, b) = (one.iteration(132, &batch), two.iteration(132, &batch));
        // n h s = 3 x 64 x 2 = 384 bytes; ring over 2 GPUs: 2 steps of 192 bytes at 1e9 B/s plus 2 x 1 us
        // = 2.384 us; 2 layers x 2 + 1 = 5 all-reduces = 11.92 us.
        assert!((b.comm_s - 5.0 * 2.384e-6).abs() < 1e-15, "{}", b.comm_s);
        assert_eq!(a.comm_s, 0.0);
        assert!(((b.total - a.total).0 as f64 - b.comm_s * 1e9).abs() <= 1.0);
    }

    #[test]
    fn fewer_sms_never_faster() {
        let cm = CostModel::new(
            ModelSpec::resolve("qwen3-8b").unwrap(),
            GpuSpec::by_name("h100-sxm").unwrap(),
            CostConfig::default(),
        );
        let batch: Vec<SeqWork> = (0..32)
            .map(|i| SeqWork { new_tokens: if i == 0 { 1024 } else { 1 }, cached_tokens: 500, emits_token: true })
            .collect();
        let mut last = Nanos(u64::MAX);
        for sms in (8..=132).step_by(4) {
            let t = cm.iteration(sms, &batch).total;
            assert!(t <= last, "{sms} SMs: {t} > {last}");
            last = t;
        }
    }

    /// The policies' `predict_ns` is the executor's `total`, through the trait (`Flat` has no attention rates)
    /// and through the rates (the default curves), for decode, prefill and mixed batches.
    #[test]
    fn predictions_equal_the_executed_total() {
        let gpu = GpuSpec::by_name("h100-sxm").unwrap();
        let models = [
            CostModel::with_curves(tiny(), gpu.clone(), Arc::new(Flat), CostConfig::default()),
            CostModel::new(ModelSpec::resolve("qwen3-8b").unwrap(), gpu, CostConfig::default()),
        ];
        let seq = |q, c, e| SeqWork { new_tokens: q, cached_tokens: c, emits_token: e };
        let batches = [
            vec![seq(1, 9, true)],
            (0..200).map(|i| seq(1, 100 + 37 * i, true)).collect(),
            vec![seq(4096, 0, false)],
            vec![seq(1, 500, true), seq(0, 800, false), seq(1500, 3000, true), seq(1, 20, true)],
        ];
        for cm in &models {
            for batch in &batches {
                for sms in [4, 66, 132] {
                    for launch in [Launch::Eager, Launch::Graph] {
                        let total = cm.iteration_launched(sms, batch, launch).total.0;
                        assert_eq!(cm.predict_ns(sms, batch, launch), total);
                        assert_eq!(cm.pricer(batch, launch).predict_ns(sms), total);
                    }
                }
            }
        }
    }

    #[test]
    fn qwen3_8b_decode_is_weight_bound() {
        // A decode step of 1 request reads every weight but the embedding table (it gathers one row):
        // 15.1 GB / (3.35e12 * 0.84) = 5.4 ms, plus 1 ms overhead, plus a little attention and activation traffic.
        let m = ModelSpec::resolve("qwen3-8b").unwrap();
        let bytes = (m.weight_bytes() - m.vocab_size * m.hidden_size * m.dtype_bytes) as f64;
        let cm = CostModel::new(m, GpuSpec::by_name("h100-sxm").unwrap(), CostConfig::default());
        let t = cm.iteration(132, &[SeqWork { new_tokens: 1, cached_tokens: 1000, emits_token: true }]).total.as_secs();
        let weights_only = bytes / (3.35e12 * 0.84) + 1e-3;
        assert!(t > weights_only && t < weights_only * 1.05, "{t} vs {weights_only}");
    }
}
